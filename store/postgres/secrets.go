package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// InsertSecretVersion implements store.Store.
func (s *Store) InsertSecretVersion(ctx context.Context, r *store.SecretRecord) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, version, keys, description, create_time,
		expire_time, allowed_hosts, wrapped_key, ciphertext) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.Name, r.Version, codec.EncodeStrings(r.Keys), r.Description, codec.Nanos(r.CreateTime), codec.Nanos(r.ExpireTime),
		codec.EncodeStrings(r.AllowedHosts), r.WrappedKey, r.Ciphertext)
	if err != nil {
		return fmt.Errorf("postgres: insert secret %s version %d: %w", r.Name, r.Version, translate(err))
	}
	return nil
}

// GetSecret implements store.Store.
func (s *Store) GetSecret(ctx context.Context, name string, version int32) (*store.SecretRecord, error) {
	var row pgx.Row
	if version == 0 {
		row = s.pool.QueryRow(ctx, `SELECT `+codec.SecretColumns+` FROM secrets WHERE name = $1
			ORDER BY version DESC LIMIT 1`, name)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+codec.SecretColumns+` FROM secrets WHERE name = $1 AND version = $2`,
			name, version)
	}
	r, err := codec.ScanSecret(row)
	if err != nil {
		return nil, fmt.Errorf("postgres: get secret %s version %d: %w", name, version, translate(err))
	}
	return r, nil
}

// ListSecrets implements store.Store.
func (s *Store) ListSecrets(ctx context.Context, page store.Page) ([]*store.SecretRecord, string, error) {
	out, next, err := listPage(ctx, s, `SELECT `+codec.SecretColumns+` FROM secrets s
		WHERE name > $1 AND version = (SELECT max(version) FROM secrets WHERE name = s.name)
		ORDER BY name LIMIT $2`,
		page, codec.ScanSecret, func(v *store.SecretRecord) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list secrets: %w", err)
	}
	return out, next, nil
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	if err := s.deleteByName(ctx, `DELETE FROM secrets WHERE name = $1`, name); err != nil {
		return fmt.Errorf("postgres: delete secret %s: %w", name, err)
	}
	return nil
}

// RewrapSecrets implements store.Store.
func (s *Store) RewrapSecrets(ctx context.Context, rewrap func(*store.SecretRecord) ([]byte, error), keyCheck []byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock the key check first so that concurrent rotations serialize.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM key_check WHERE id = 1 FOR UPDATE`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+codec.SecretColumns+` FROM secrets ORDER BY name, version FOR UPDATE`)
		if err != nil {
			return err
		}
		var all []*store.SecretRecord
		for rows.Next() {
			r, err := codec.ScanSecret(rows)
			if err != nil {
				rows.Close()
				return err
			}
			all = append(all, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		batch := &pgx.Batch{}
		for _, r := range all {
			wrapped, err := rewrap(r)
			if err != nil {
				return fmt.Errorf("rewrap %s version %d: %w", r.Name, r.Version, err)
			}
			batch.Queue(`UPDATE secrets SET wrapped_key = $1 WHERE name = $2 AND version = $3`, wrapped, r.Name, r.Version)
		}
		batch.Queue(`INSERT INTO key_check (id, value) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET value = excluded.value`, keyCheck)
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: rewrap secrets: %w", err)
	}
	return nil
}

// GetKeyCheck implements store.Store.
func (s *Store) GetKeyCheck(ctx context.Context) ([]byte, error) {
	var v []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM key_check WHERE id = 1`).Scan(&v); err != nil {
		return nil, fmt.Errorf("postgres: get key check: %w", translate(err))
	}
	return v, nil
}

// PutKeyCheck implements store.Store.
func (s *Store) PutKeyCheck(ctx context.Context, keyCheck []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO key_check (id, value) VALUES (1, $1)`, keyCheck); err != nil {
		return fmt.Errorf("postgres: put key check: %w", translate(err))
	}
	return nil
}
