package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// InsertSecretVersion implements store.Store.
func (s *Store) InsertSecretVersion(ctx context.Context, r *store.SecretRecord) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, version, keys, description, create_time,
			expire_time, allowed_hosts, wrapped_key, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Name, r.Version, codec.EncodeStrings(r.Keys), r.Description, codec.Nanos(r.CreateTime), codec.Nanos(r.ExpireTime),
			codec.EncodeStrings(r.AllowedHosts), r.WrappedKey, r.Ciphertext)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: insert secret %s version %d: %w", r.Name, r.Version, translate(err))
	}
	return nil
}

// GetSecret implements store.Store.
func (s *Store) GetSecret(ctx context.Context, name string, version int32) (*store.SecretRecord, error) {
	var row *sql.Row
	if version == 0 {
		row = s.r.QueryRowContext(ctx, `SELECT `+codec.SecretColumns+` FROM secrets WHERE name = ?
			ORDER BY version DESC LIMIT 1`, name)
	} else {
		row = s.r.QueryRowContext(ctx, `SELECT `+codec.SecretColumns+` FROM secrets WHERE name = ? AND version = ?`,
			name, version)
	}
	r, err := codec.ScanSecret(row)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get secret %s version %d: %w", name, version, translate(err))
	}
	return r, nil
}

// ListSecrets implements store.Store.
func (s *Store) ListSecrets(ctx context.Context, page store.Page) ([]*store.SecretRecord, string, error) {
	out, next, err := listPage(ctx, s.r, `SELECT `+codec.SecretColumns+` FROM secrets s
		WHERE name > ? AND version = (SELECT max(version) FROM secrets WHERE name = s.name)
		ORDER BY name LIMIT ?`,
		page, codec.ScanSecret, func(v *store.SecretRecord) string { return v.Name })
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list secrets: %w", err)
	}
	return out, next, nil
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	if err := s.deleteByName(ctx, `DELETE FROM secrets WHERE name = ?`, name); err != nil {
		return fmt.Errorf("sqlite: delete secret %s: %w", name, err)
	}
	return nil
}

// deleteByName runs a DELETE and reports store.ErrNotFound if it removed
// nothing.
func (s *Store) deleteByName(ctx context.Context, query, name string) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, name)
		if err != nil {
			return translate(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// RewrapSecrets implements store.Store.
func (s *Store) RewrapSecrets(ctx context.Context, rewrap func(*store.SecretRecord) ([]byte, error), keyCheck []byte) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+codec.SecretColumns+` FROM secrets ORDER BY name, version`)
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
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, r := range all {
			wrapped, err := rewrap(r)
			if err != nil {
				return fmt.Errorf("rewrap %s version %d: %w", r.Name, r.Version, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE secrets SET wrapped_key = ? WHERE name = ? AND version = ?`,
				wrapped, r.Name, r.Version); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO key_check (id, value) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET value = excluded.value`, keyCheck)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: rewrap secrets: %w", err)
	}
	return nil
}

// GetKeyCheck implements store.Store.
func (s *Store) GetKeyCheck(ctx context.Context) ([]byte, error) {
	var v []byte
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM key_check WHERE id = 1`).Scan(&v); err != nil {
		return nil, fmt.Errorf("sqlite: get key check: %w", translate(err))
	}
	return v, nil
}

// PutKeyCheck implements store.Store.
func (s *Store) PutKeyCheck(ctx context.Context, keyCheck []byte) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO key_check (id, value) VALUES (1, ?)`, keyCheck)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put key check: %w", translate(err))
	}
	return nil
}
