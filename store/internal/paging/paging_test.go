package paging

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

func TestCut(t *testing.T) {
	key := func(s string) string { return "after:" + s }
	for _, tc := range []struct {
		in    []string
		limit int
		want  []string
		next  string
	}{
		{nil, 2, nil, ""},
		{[]string{"a"}, 2, []string{"a"}, ""},
		{[]string{"a", "b"}, 2, []string{"a", "b"}, ""},
		{[]string{"a", "b", "c"}, 2, []string{"a", "b"}, "after:b"},
	} {
		got, next := Cut(tc.in, tc.limit, key)
		if !reflect.DeepEqual(got, tc.want) || next != tc.next {
			t.Errorf("Cut(%q, %d) = %q, %q; want %q, %q", tc.in, tc.limit, got, next, tc.want, tc.next)
		}
	}
}

func TestLimit(t *testing.T) {
	for _, tc := range []struct{ in, limit, n int }{{0, 1000, 1001}, {-3, 1000, 1001}, {1, 1, 2}, {50, 50, 51}} {
		if limit, n := Limit(tc.in); limit != tc.limit || n != tc.n {
			t.Errorf("Limit(%d) = %d, %d; want %d, %d", tc.in, limit, n, tc.limit, tc.n)
		}
	}
}

func TestExecutionsQuery(t *testing.T) {
	ct := time.Unix(0, 1234567890)
	cursor := ExecutionCursor(&store.Execution{ID: "e9", CreateTime: ct})
	q := store.ExecutionQuery{Workflow: "w", Status: store.ExecutionStatus(2), Caller: "c", Page: store.Page{After: cursor, Limit: 10}}
	for _, tc := range []struct {
		d     Dialect
		query string
		args  []any
	}{
		{Dialect{Placeholder: Question},
			"SELECT cols FROM executions WHERE workflow = ? AND status = ? AND caller = ? AND (create_time < ? OR (create_time = ? AND id < ?)) ORDER BY create_time DESC, id DESC LIMIT ?",
			[]any{"w", int32(2), "c", int64(1234567890), int64(1234567890), "e9", 11}},
		{Dialect{Placeholder: Dollar, RowValues: true},
			"SELECT cols FROM executions WHERE workflow = $1 AND status = $2 AND caller = $3 AND (create_time, id) < ($4, $5) ORDER BY create_time DESC, id DESC LIMIT $6",
			[]any{"w", int32(2), "c", int64(1234567890), "e9", 11}},
	} {
		query, args, limit, err := ExecutionsQuery(tc.d, "cols", q)
		if err != nil || query != tc.query || !reflect.DeepEqual(args, tc.args) || limit != 10 {
			t.Errorf("ExecutionsQuery = %q, %#v, %d, %v;\nwant %q, %#v, 10", query, args, limit, err, tc.query, tc.args)
		}
	}

	query, args, limit, err := ExecutionsQuery(Dialect{Placeholder: Dollar}, "cols", store.ExecutionQuery{})
	if err != nil || query != "SELECT cols FROM executions ORDER BY create_time DESC, id DESC LIMIT $1" || !reflect.DeepEqual(args, []any{1001}) || limit != 1000 {
		t.Errorf("ExecutionsQuery(no filter) = %q, %v, %d, %v", query, args, limit, err)
	}

	for _, bad := range []string{"nonsense", "1:", ":e1", strings.Repeat("9", 40) + ":e1"} {
		_, _, _, err := ExecutionsQuery(Dialect{Placeholder: Question}, "cols", store.ExecutionQuery{Page: store.Page{After: bad}})
		_, _, want := codec.ParseExecutionCursor(bad)
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("cursor %q: error %v, want codec's %v", bad, err, want)
		}
	}
}

// fakeRows is a result set of strings whose Err gives errEnd.
type fakeRows struct {
	rows   []string
	i      int
	errEnd error
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.rows) }
func (r *fakeRows) Err() error { return r.errEnd }
func (r *fakeRows) Scan(dest ...any) error {
	*(dest[0].(*string)) = r.rows[r.i-1]
	return nil
}

func scanString(row codec.Row) (string, error) {
	var s string
	err := row.Scan(&s)
	if s == "bad" {
		return "", errors.New("bad row")
	}
	return s, err
}

func TestRead(t *testing.T) {
	id := func(s string) string { return s }
	out, next, err := Read(&fakeRows{rows: []string{"a", "b", "c"}}, 2, scanString, id)
	if err != nil || !reflect.DeepEqual(out, []string{"a", "b"}) || next != "b" {
		t.Errorf("Read = %q, %q, %v; want [a b], b", out, next, err)
	}
	if _, _, err := Read(&fakeRows{rows: []string{"a", "bad"}}, 2, scanString, id); err == nil || err.Error() != "bad row" {
		t.Errorf("Read of a bad row: %v, want the scan error", err)
	}
	end := errors.New("connection lost")
	if _, _, err := Read(&fakeRows{rows: []string{"a"}, errEnd: end}, 2, scanString, id); !errors.Is(err, end) {
		t.Errorf("Read with a failing result set: %v, want its error", err)
	}
}
