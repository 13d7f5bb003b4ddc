// Package paging holds what the SQL stores (store/sqlite and
// store/postgres) share to list: reading a result set into one
// page with the cursor of the next, and building the query of a page of
// executions in either backend's SQL. The stored forms (columns, cursor
// text) are package codec's; this package only pages over them.
//
// All functions are safe for concurrent use.
package paging

import (
	"strconv"
	"strings"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// Rows is a result set as both drivers give it (*sql.Rows, pgx.Rows).
// The caller closes it.
type Rows interface {
	codec.Row
	Next() bool
	Err() error
}

// Scan reads every row with scan.
func Scan[T any](rows Rows, scan func(codec.Row) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Cut ends a page of rows read with limit+1 (see Limit): when there is a
// row beyond limit, it drops it and returns the cursor of the last row
// kept, which key gives; otherwise next is empty (the last page).
func Cut[T any](out []T, limit int, key func(T) string) (page []T, next string) {
	if len(out) <= limit {
		return out, ""
	}
	out = out[:limit]
	return out, key(out[limit-1])
}

// Read reads one page from rows, the result of a query asked for the
// page's n rows of Limit: the rows (scan reads each), and the cursor of
// the next page, which key gives (empty on the last page).
func Read[T any](rows Rows, limit int, scan func(codec.Row) (T, error), key func(T) string) ([]T, string, error) {
	out, err := Scan(rows, scan)
	if err != nil {
		return nil, "", err
	}
	out, next := Cut(out, limit, key)
	return out, next, nil
}

// Limit returns the page size for a requested limit (codec.PageLimit) and
// the number of rows to ask for: one more, to know whether a next page
// exists.
func Limit(n int) (limit, query int) {
	limit = codec.PageLimit(n)
	return limit, limit + 1
}

// ExecutionCursor is the cursor of e in a list of executions (newest
// first): its creation time and id.
func ExecutionCursor(e *store.Execution) string {
	return codec.ExecutionCursor(codec.Nanos(e.CreateTime), e.ID)
}

// Dialect is how a backend writes what ExecutionsQuery builds.
type Dialect struct {
	// Placeholder returns the placeholder of the n-th argument (from 1):
	// "?" for SQLite, "$n" for PostgreSQL.
	Placeholder func(n int) string
	// RowValues compares the cursor as a (create_time, id) row, which
	// PostgreSQL answers from its index; without it the comparison is
	// spelled out column by column, as SQLite's planner wants it.
	RowValues bool
}

// ExecutionsQuery builds the query of one page of executions matching q
// (workflow, status, caller, cursor), newest first: it selects columns
// from executions and asks for one row more than limit (see Cut). A bad
// cursor gives codec's error.
func ExecutionsQuery(d Dialect, columns string, q store.ExecutionQuery) (query string, args []any, limit int, err error) {
	var conds []string
	arg := func(v any) string {
		args = append(args, v)
		return d.Placeholder(len(args))
	}
	if q.Workflow != "" {
		conds = append(conds, "workflow = "+arg(q.Workflow))
	}
	if q.Status != store.ExecutionUnspecified {
		conds = append(conds, "status = "+arg(int32(q.Status)))
	}
	if q.Caller != "" {
		conds = append(conds, "caller = "+arg(q.Caller))
	}
	if q.Page.After != "" {
		ct, id, err := codec.ParseExecutionCursor(q.Page.After)
		if err != nil {
			return "", nil, 0, err
		}
		if d.RowValues {
			conds = append(conds, "(create_time, id) < ("+arg(ct)+", "+arg(id)+")")
		} else {
			conds = append(conds, "(create_time < "+arg(ct)+" OR (create_time = "+arg(ct)+" AND id < "+arg(id)+"))")
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	limit, n := Limit(q.Page.Limit)
	query = "SELECT " + columns + " FROM executions" + where + " ORDER BY create_time DESC, id DESC LIMIT " + arg(n)
	return query, args, limit, nil
}

// Question is SQLite's placeholder: "?" whatever n.
func Question(int) string { return "?" }

// Dollar is PostgreSQL's placeholder: "$n".
func Dollar(n int) string { return "$" + strconv.Itoa(n) }
