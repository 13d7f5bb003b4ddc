package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.starlark.net/starlark"

	"github.com/kailash-gateway/kgw/internal/starval"
)

// methodNames are the query methods shared by the database handle, its
// acquired connections and its transactions.
var methodNames = []string{"execute", "executemany", "fetch", "fetchrow", "fetchval", "transaction"}

// method returns the builtin called name bound to r, or nil. With r and
// h nil, the builtin runs on its receiver, a *Handle (see handleMethods).
func method(r runner, h *Handle, name string) *starlark.Builtin {
	switch name {
	case "fetch":
		return queryMethod(r, h, name, fetchAll)
	case "fetchrow":
		return queryMethod(r, h, name, fetchFirst)
	case "fetchval":
		return queryMethod(r, h, name, fetchValue)
	case "execute":
		return queryMethod(r, h, name, execute)
	case "executemany":
		return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			r, h := bound(r, h, b)
			return executemany(th, b, args, kwargs, r, h)
		})
	case "transaction":
		return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var fn starlark.Callable
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn); err != nil {
				return nil, err
			}
			r, h := bound(r, h, b)
			return transaction(th, r, h, fn)
		})
	}
	return nil
}

// bound returns r and h, or when r is nil, the handle b is bound to.
func bound(r runner, h *Handle, b *starlark.Builtin) (runner, *Handle) {
	if r != nil {
		return r, h
	}
	h = b.Receiver().(*Handle)
	return h, h
}

// methods builds all the query builtins for r, for the values (acquired
// connections, transactions) that hold them in a map.
func methods(r runner, h *Handle) map[string]*starlark.Builtin {
	m := make(map[string]*starlark.Builtin, len(methodNames)+1)
	for _, name := range methodNames {
		m[name] = method(r, h, name)
	}
	return m
}

// queryMethod returns the builtin name(sql, *params, timeout=None) that
// runs f against r (see method for nil r).
func queryMethod(r runner, h *Handle, name string, f queryFunc) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		r, h := bound(r, h, b)
		sql, params, timeout, err := unpackQuery(b.Name(), args, kwargs)
		if err != nil {
			return nil, err
		}
		ctx, cancel := callContext(th, timeout)
		defer cancel()
		out, err := r.run(ctx, sql, params, f)
		if err != nil {
			err = cancelled(ctx, err)
			h.pool.noteError(err)
			return nil, h.wrap(name, err)
		}
		return out, nil
	})
}

func fetchAll(ctx context.Context, q querier, sql string, args []any) (starlark.Value, pgconn.CommandTag, error) {
	rows, tag, err := fetchRows(ctx, q, sql, args, -1)
	if err != nil {
		return nil, tag, err
	}
	return starlark.NewList(rows), tag, nil
}

func fetchFirst(ctx context.Context, q querier, sql string, args []any) (starlark.Value, pgconn.CommandTag, error) {
	rows, tag, err := fetchRows(ctx, q, sql, args, 1)
	if err != nil || len(rows) == 0 {
		return starlark.None, tag, err
	}
	return rows[0], tag, nil
}

func execute(ctx context.Context, q querier, sql string, args []any) (starlark.Value, pgconn.CommandTag, error) {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return nil, tag, err
	}
	return starlark.String(tag.String()), tag, nil
}

// executemany runs sql once per row of rows as one batch.
func executemany(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, r runner, h *Handle) (starlark.Value, error) {
	var sql string
	var rows starlark.Iterable
	var timeout starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "sql", &sql, "rows", &rows, "timeout?", &timeout); err != nil {
		return nil, err
	}
	batch := &pgx.Batch{}
	it := rows.Iterate()
	defer it.Done()
	var row starlark.Value
	for i := 0; it.Next(&row); i++ {
		seq, ok := row.(starlark.Indexable)
		if !ok {
			return nil, fmt.Errorf("%s: row %d is a %s, want a list or tuple", b.Name(), i, row.Type())
		}
		params, err := bindArgs(seq)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", b.Name(), i, err)
		}
		batch.Queue(sql, params...)
	}
	d, err := seconds(b.Name(), timeout)
	if err != nil {
		return nil, err
	}
	ctx, cancel := callContext(th, d)
	defer cancel()
	if batch.Len() == 0 {
		return starlark.None, nil
	}
	_, err = r.run(ctx, sql, nil, func(ctx context.Context, q querier, _ string, _ []any) (starlark.Value, pgconn.CommandTag, error) {
		br := q.SendBatch(ctx, batch)
		var tag pgconn.CommandTag // the first unclean tag, else the last
		for range batch.Len() {
			t, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return nil, tag, err
			}
			if cleanTag(tag) {
				tag = t
			}
		}
		return starlark.None, tag, br.Close()
	})
	if err != nil {
		err = cancelled(ctx, err)
		h.pool.noteError(err)
		return nil, h.wrap("executemany", err)
	}
	return starlark.None, nil
}

// transaction runs fn(tx), committing if it returns and rolling back (and
// returning fn's error unchanged) if it fails.
func transaction(th *starlark.Thread, r runner, h *Handle, fn starlark.Callable) (starlark.Value, error) {
	ctx := starval.Context(th)
	tv, err := r.begin(ctx)
	if err != nil {
		err = cancelled(ctx, err)
		h.pool.noteError(err)
		return nil, h.wrap("transaction", err)
	}
	tv.attrs = methods(tv, h)
	out, callErr := starlark.Call(th, fn, starlark.Tuple{tv}, nil)
	if callErr != nil {
		_ = tv.end(ctx, false)
		return nil, callErr
	}
	if err := tv.end(ctx, true); err != nil {
		err = cancelled(ctx, err)
		h.pool.noteError(err)
		return nil, h.wrap("transaction commit", err)
	}
	return out, nil
}

func unpackQuery(fnname string, args starlark.Tuple, kwargs []starlark.Tuple) (string, []any, time.Duration, error) {
	if len(args) == 0 {
		return "", nil, 0, fmt.Errorf("%s: missing argument sql", fnname)
	}
	sql, ok := starlark.AsString(args[0])
	if !ok {
		return "", nil, 0, fmt.Errorf("%s: sql must be a string, not %s", fnname, args[0].Type())
	}
	var timeout time.Duration
	for _, kv := range kwargs {
		if k, _ := starlark.AsString(kv[0]); k != "timeout" {
			return "", nil, 0, fmt.Errorf("%s: unexpected keyword argument %s (pass query parameters positionally)", fnname, kv[0])
		}
		d, err := seconds(fnname, kv[1])
		if err != nil {
			return "", nil, 0, err
		}
		timeout = d
	}
	params, err := bindArgs(args[1:])
	if err != nil {
		return "", nil, 0, fmt.Errorf("%s: %w", fnname, err)
	}
	return sql, params, timeout, nil
}

func bindArgs(seq starlark.Indexable) ([]any, error) {
	params := make([]any, seq.Len())
	for i := range params {
		v, err := toGo(seq.Index(i))
		if err != nil {
			return nil, fmt.Errorf("parameter $%d: %w", i+1, err)
		}
		params[i] = v
	}
	return params, nil
}

func seconds(fnname string, v starlark.Value) (time.Duration, error) {
	if v == starlark.None {
		return 0, nil
	}
	f, ok := starlark.AsFloat(v)
	if !ok || f <= 0 {
		return 0, fmt.Errorf("%s: timeout must be a positive number of seconds", fnname)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// callContext is the attempt's context, with timeout applied if positive.
func callContext(th *starlark.Thread, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx := starval.Context(th)
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return ctx, func() {}
}

// fetchRows runs a query and returns up to limit rows (all if limit < 0)
// as dicts keyed by column name, and its command tag.
func fetchRows(ctx context.Context, q querier, sql string, args []any, limit int) ([]starlark.Value, pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, tag, err
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	var out []starlark.Value
	for (limit < 0 || len(out) < limit) && rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, tag, err
		}
		d := starlark.NewDict(len(vals))
		for i, v := range vals {
			sv, err := toStarlark(v)
			if err != nil {
				return nil, tag, fmt.Errorf("column %q: %w", fields[i].Name, err)
			}
			if err := d.SetKey(starlark.String(fields[i].Name), sv); err != nil {
				return nil, tag, err
			}
		}
		out = append(out, d)
	}
	rows.Close()
	return out, rows.CommandTag(), rows.Err()
}

func fetchValue(ctx context.Context, q querier, sql string, args []any) (starlark.Value, pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, tag, err
	}
	defer rows.Close()
	var out starlark.Value = starlark.None
	if rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, tag, err
		}
		if len(vals) == 0 {
			return nil, tag, errors.New("query returned no columns")
		}
		out, err = toStarlark(vals[0])
		if err != nil {
			return nil, tag, fmt.Errorf("column %q: %w", rows.FieldDescriptions()[0].Name, err)
		}
	}
	rows.Close()
	return out, rows.CommandTag(), rows.Err()
}
