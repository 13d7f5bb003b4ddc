package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The reset: every connection that goes back to the pool clean (see
// session.go) is reset before anyone else can acquire it: session
// authorization and role back to the login user, every run-time parameter
// back to its value at connection start (search_path, TimeZone, custom
// settings such as app.tenant set by set_config(…, false) in a function),
// cursors closed, LISTEN ended, session advisory locks released, temporary
// tables dropped, sequence caches (currval/lastval) forgotten. The last
// statement checks that no SQL-level prepared statement exists (pgx's own
// statements are protocol-level and stay valid); the connection is
// discarded if one does, or if the reset fails. This is DISCARD ALL
// without DEALLOCATE ALL (and DISCARD PLANS), which would break pgx's
// statement cache. Running statements unprepared instead (pgx's
// describe-cache mode) would allow DISCARD ALL, but would decode results
// with client-side descriptions that go stale when a table changes. What
// the reset leaves behind is extension state (a dblink connection, the
// random seed set by setseed) changed by code the rules did not flag, the
// name — not the value — of a custom setting, and the text (not the
// parameters) of the statements pgx prepared on the connection, visible in
// pg_prepared_statements.
//
// One choke point: Pool.giveBack is the only code that puts a connection
// back in the pool (TestOneWayBack checks the package's source for any
// other Release, and for pgxpool's own query methods, which release
// connections themselves). It closes a dirty connection; it releases at
// once a clean one whose caller ran the reset after its last statement
// (resetAfter.done); it resets every other one in a goroutine of its own,
// in its own round trip, after the node has its result, while the
// connection still counts as checked out, and closes it if the reset
// fails.
//
// An earlier version ran that reset in pgxpool's AfterRelease hook, which
// starts a goroutine for every release, even one that needs no reset. CPU
// per workflow operation on BenchmarkFetchval (test process plus
// PostgreSQL, a 12000-op run minus a 2000-op run, 9 turns, both with the
// batched reset): the hook took a median 1.32× (1.01× to 1.52×) the CPU
// of giveBack, e.g. 164, 197, 243 µs against 126, 130, 197 µs.
//
// resetAfter is how a call that has a pool connection to itself (the
// handle's fetch, fetchrow, fetchval, and execute with parameters) avoids
// that round trip: its statement and the reset go to the server in one
// pgx batch, so they cost one round trip together. A batch ends with one
// Sync, so the statement and the reset form one implicit transaction:
//
//   - If the statement fails, the server skips the reset (and rolls
//     back); giveBack resets the connection in a round trip of its own.
//   - If a reset statement or the commit fails, the call's statement is
//     rolled back with it: the call fails, saying so, and giveBack resets
//     the connection (or closes it).
//   - Only a single statement whose first keyword is SELECT, WITH, TABLE,
//     VALUES, INSERT, UPDATE, DELETE, MERGE or SHOW goes in a batch:
//     a transaction statement would change what the reset runs in, several
//     statements cannot go through the extended protocol, and execute
//     without parameters keeps pgx's simple protocol (no statement to
//     prepare). Those calls, executemany, acquired connections and
//     transactions (whose connection serves several statements) keep the
//     separate reset. So do all calls when a dsn makes pgx use the
//     simple protocol (default_query_exec_mode=simple_protocol), which
//     would send the batch as one query string.
//   - A cancelled call fails with the statement or reset it interrupted,
//     and giveBack resets the connection.
//
// Cost, on BenchmarkFetchval (server/, workflow-node: one pooled fetchval
// per execution; PostgreSQL on the same 2-core machine, loaded by other
// work to a load average of 9 to 20): the test binary before this change
// (the reset in its own round trip, in pgxpool's hook, after the node has
// its result) and after it, run in turns, 2 s each.
//
//   - Round trips per call: 2 → 1 (TestResetRidesWithStatement counts
//     them).
//   - CPU per workflow operation, test process plus PostgreSQL (a 12000-op
//     run minus a 2000-op run): 348, 318, 392 µs before against 126, 130,
//     197 µs after, in 3 turns.
//   - Wall clock, 8 pairs at load average 17 to 20: workflow node median
//     586 µs/op before (276–1399), 371 µs/op after (266–422); per pair,
//     before ÷ after, median 1.71× (0.95× to 3.45×). Ratio to bare
//     pgxpool: median 0.19× before (0.07–0.36), 0.21× after (0.10–0.39);
//     per pair, after ÷ before, median 1.20× (0.76× to 2.39×, 7 of 8
//     better).
//   - Allocations per operation: 97 before, 153 after (79 with no reset at
//     all): pgx's pipeline keeps lists per statement, and a batch has
//     eight.
//   - With the batched reset but still the hook (above), 14 pairs at load
//     average 9 to 12 gave a median ratio of 0.24× both before and after,
//     and a binary with no reset at all 0.34× (6 runs, 0.25–0.59): on
//     cores this loaded the node waits for CPU, not for the network, so
//     the 0.50× target is out of reach here even with no reset; what is
//     left is the node's own CPU (executor, Starlark, pgx).
//
// Measured and not used: the reset as one DO block (a single statement, so
// a smaller batch) takes 75–85 µs of server time against 14–17 µs for the
// seven statements (plpgsql compiles the block each time). Of the seven,
// the prepared-statement check is the dearest (about 7 µs): it lists
// every statement prepared on the connection, pgx's own included, so it
// grows with pgx's statement cache (up to 512 statements).
//
// The connection given back after a call is still reset at once: nothing
// it holds (advisory locks, LISTEN, temporary tables) waits for its next
// use. Skipping the reset when a connection goes back to the same
// execution would not help here (every operation is a new execution), and
// pgxpool has no notion of it.
var resetStatements = [...]string{
	"SET SESSION AUTHORIZATION DEFAULT",
	"RESET ALL",
	"CLOSE ALL",
	"UNLISTEN *",
	"DISCARD TEMP",
	"DISCARD SEQUENCES",
	// Last: reports whether an SQL-level prepared statement survives.
	"SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE from_sql) FROM pg_advisory_unlock_all()",
}

// resetSQL is the reset in one simple-protocol query (giveBack's round
// trip).
var resetSQL = strings.Join(resetStatements[:], "; ")

// resetTimeout bounds a reset; a connection that takes longer is closed.
const resetTimeout = 5 * time.Second

// resetSession resets c's session in one round trip and reports whether
// c may go back to the pool (false: close it).
func resetSession(c *pgx.Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
	defer cancel()
	mrr := c.PgConn().Exec(ctx, resetSQL)
	prepared := true // until the last statement says otherwise
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			v := rr.Values()
			prepared = len(v) != 1 || string(v[0]) != "f"
		}
		if _, err := rr.Close(); err != nil {
			break
		}
	}
	if err := mrr.Close(); err != nil || prepared {
		return false
	}
	return c.PgConn().TxStatus() == 'I'
}

// giveBack puts c, checked out from p, back (see "One choke point"
// above). clean is false if a statement may have changed c's session
// (session.go): c is closed. reset is true if the reset ran, and
// succeeded, after the last statement c ran.
func (p *Pool) giveBack(c pooledConn, clean, reset bool) {
	if !clean || paramsChanged(c.Conn().PgConn()) {
		closeConn(c.Hijack())
		return
	}
	if reset {
		c.Release() // pgxpool closes it if it is busy or in a transaction
		return
	}
	if pc := c.Conn().PgConn(); pc.IsBusy() || pc.TxStatus() != 'I' {
		closeConn(c.Hijack()) // nothing to reset it from
		return
	}
	go func() {
		if resetSession(c.Conn()) {
			c.Release()
			return
		}
		conn := c.Hijack()
		if conn.IsClosed() {
			p.lostAt.Store(time.Now().UnixNano())
		}
		closeConn(conn)
	}()
}

// batchable reports whether sql may go in one batch with the reset (see
// above): one statement whose first keyword is one of those listed.
func batchable(sql string) bool {
	s := strings.TrimRight(sql, " \t\r\n\f;")
	if strings.IndexByte(s, ';') >= 0 {
		return false
	}
	var buf [16]byte
	first, _ := keyword(s, &buf)
	switch string(first) {
	case "select", "with", "table", "values", "insert", "update", "delete", "merge", "show":
		return true
	}
	return false
}

// resetAfter is the querier of a call that has a pool connection to
// itself (Handle.run). Its first statement, if batchable and the call is
// clean, goes in one batch with the reset; done reports whether that
// reset ran after the last statement and succeeded, which giveBack then
// needs not repeat. Any later use of the querier clears done.
type resetAfter struct {
	conn *pgx.Conn
	// try is whether the first statement may carry the reset: the call is
	// clean (a dirty connection is closed, not reset).
	try  bool
	sent bool // a statement was sent
	done bool

	// One allocation for the batch and its rows.
	batch   pgx.Batch
	queries [1 + len(resetStatements)]pgx.QueuedQuery
	list    [1 + len(resetStatements)]*pgx.QueuedQuery
	rows    resetRows
}

var _ querier = (*resetAfter)(nil)

// start records that a statement is about to be sent and reports whether
// it goes in a batch with the reset.
func (q *resetAfter) start(sql string) bool {
	first := !q.sent
	q.sent, q.done = true, false
	return first && q.try && batchable(sql)
}

// send sends sql with args and the reset in one batch.
func (q *resetAfter) send(ctx context.Context, sql string, args []any) pgx.BatchResults {
	q.queries[0] = pgx.QueuedQuery{SQL: sql, Arguments: args}
	q.list[0] = &q.queries[0]
	for i, s := range resetStatements {
		q.queries[i+1] = pgx.QueuedQuery{SQL: s}
		q.list[i+1] = &q.queries[i+1]
	}
	q.batch.QueuedQueries = q.list[:]
	return q.conn.SendBatch(ctx, &q.batch)
}

// finish reads the reset's results once the statement's are read, and
// closes br. An error means the statement was rolled back with the reset.
func (q *resetAfter) finish(br pgx.BatchResults) error {
	var err error
	for range len(resetStatements) - 1 {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	prepared := true
	if err == nil {
		err = br.QueryRow().Scan(&prepared)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("statement rolled back: it shares a transaction with the session reset that follows it, which failed: %w", err)
	}
	// A surviving SQL-level prepared statement: not done, so giveBack
	// runs its own reset, sees it and closes the connection.
	q.done = !prepared && q.conn.PgConn().TxStatus() == 'I'
	return nil
}

func (q *resetAfter) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if !q.start(sql) {
		return q.conn.Query(ctx, sql, args...)
	}
	br := q.send(ctx, sql, args)
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, unbatched(err)
	}
	q.rows = resetRows{Rows: rows, br: br, q: q}
	return &q.rows, nil
}

func (q *resetAfter) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(args) == 0 || !q.start(sql) {
		q.sent, q.done = true, false
		return q.conn.Exec(ctx, sql, args...)
	}
	br := q.send(ctx, sql, args)
	tag, err := br.Exec()
	if err != nil {
		_ = br.Close()
		return tag, unbatched(err)
	}
	return tag, q.finish(br)
}

func (q *resetAfter) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	q.sent, q.done = true, false
	return q.conn.SendBatch(ctx, b)
}

func (q *resetAfter) Begin(ctx context.Context) (pgx.Tx, error) {
	q.sent, q.done = true, false
	return q.conn.Begin(ctx)
}

// unbatched returns err without the wrapping pgx gives an error that
// happened before a batch ran (preparing a statement, encoding its
// parameters), so that it reads as for a statement sent alone.
func unbatched(err error) error {
	var pe pgx.ErrPreprocessingBatch
	if errors.As(err, &pe) {
		return pe.Unwrap()
	}
	return err
}

// resetRows are the rows of a statement sent with the reset: closing them
// reads the reset's results, and Err reports a failed reset.
type resetRows struct {
	pgx.Rows
	br     pgx.BatchResults
	q      *resetAfter
	err    error
	closed bool
}

func (r *resetRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *resetRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	if r.Rows.Err() != nil {
		_ = r.br.Close()
		return
	}
	r.err = r.q.finish(r.br)
}

func (r *resetRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}
