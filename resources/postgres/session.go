package postgres

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Session state never outlives the node attempt that created it.
//
// A pool connection is a server session: SET, SET ROLE, SET SESSION
// AUTHORIZATION, set_config(…, false), temporary tables, LISTEN, PREPARE,
// cursors WITH HOLD and session advisory locks all stay with it after it
// goes back to the pool, where the next execution (another workflow,
// possibly another caller) would find them. Two mechanisms keep them from
// getting there:
//
//   - Close. Each statement is classified as it runs, for free, and a
//     connection that ran anything that may have changed its session is
//     closed rather than pooled (pgxpool opens a new one when needed).
//     Closing is complete: it also ends extension state (dblink
//     connections, the random seed) that no reset touches.
//   - Reset. Every other connection is reset before anyone else can
//     acquire it (reset.go): this undoes what the
//     classification cannot see, such as a function called by a clean
//     SELECT that runs set_config('search_path', …, false) or SET ROLE.
//
// A statement is clean — cannot leave session state behind — when all of
// these hold; otherwise the connection it ran on is dirty:
//
//   - The SQL is one statement: no ';' except at the end. Several
//     statements (execute's simple protocol) are classified one by one
//     only if the text has no quotes, dollar signs, backslashes or
//     comments, so that splitting at ';' is exact; otherwise the call is
//     dirty.
//   - Its first keyword (after comments and parentheses) is SELECT, INSERT,
//     UPDATE, DELETE, MERGE, VALUES, WITH, TABLE, SHOW, NOTIFY, a
//     transaction statement (BEGIN, START, COMMIT, END, ROLLBACK, ABORT,
//     SAVEPOINT, RELEASE), or SET LOCAL / SET TRANSACTION / SET
//     CONSTRAINTS, which end with the transaction. Everything else — SET,
//     RESET, CREATE, LISTEN, PREPARE, DECLARE, DO, CALL, EXPLAIN, COPY … —
//     is dirty.
//   - Its text (anywhere, quoted or not, any case) names none of the
//     built-in functions and views that change session state from inside a
//     query: set_config (except a call set_config(a, b, true) whose a
//     and b are $n parameters or plain string literals: that setting ends
//     with the transaction), setseed, the session advisory locks
//     (pg_[try_]advisory_lock[_shared]; the _xact_ variants are clean),
//     dblink*, lo_open, pg_settings (UPDATE pg_settings is SET),
//     *replication_slot*, replication_origin_session*, query_to_xml and
//     cursor_to_xml (which run SQL given as a string); nor U& (escaped
//     identifiers could spell those names).
//   - A SELECT does not write INTO a table (SELECT … INTO creates one,
//     possibly temporary): every INTO follows INSERT or MERGE.
//   - The command tag the server returns (when the call succeeds) is one of
//     those statements' tags. CREATE TABLE AS and SELECT INTO report
//     SELECT, so the tag alone would not do; it guards the text rules.
//
// Besides, the run-time parameters the server reports to the client when
// they change (session_authorization, TimeZone, DateStyle, search_path on
// PostgreSQL 18 and later, …) are compared, when the connection is given
// back, with their values after connecting; a difference makes it dirty.
// That catches changes made by code the statement ran indirectly (but not
// on a call whose reset went in its own batch: the reset has restored
// them before the server reports anything, see reset.go).
//
// What the rules cannot see: other session state changed by the database's
// own code run on a clean statement's behalf — user-defined functions,
// procedures, triggers, operators, views. The reset undoes it.
//
// Misclassifying in the clean direction would leak; in the dirty direction
// it costs a reconnect. Every rule errs towards dirty.

// sessionFuncs are the names (lower case) whose appearance anywhere in a
// statement makes it dirty.
// The names without '_' come first (see containsSessionFunc).
var sessionFuncs = [...][]byte{
	[]byte("setseed"),
	[]byte("dblink"),
	[]byte("set_config"),
	[]byte("advisory_lock"), // pg_advisory_lock[_shared], pg_try_advisory_lock[_shared]
	[]byte("lo_open"),
	[]byte("pg_settings"),
	[]byte("replication_slot"),
	[]byte("replication_origin_session"),
	[]byte("query_to_xml"),
	[]byte("cursor_to_xml"),
}

// minSessionFunc is the length of the shortest of sessionFuncs.
const minSessionFunc = len("dblink")

// cleanSQL reports whether running sql (one call of a handle method) can
// not change the session state of its connection (see the rules above).
func cleanSQL(sql string) bool {
	s := strings.TrimRight(sql, " \t\r\n\f;")
	if strings.IndexByte(s, ';') < 0 {
		return cleanStatement(s)
	}
	if strings.ContainsAny(s, `'"$\`) || strings.Contains(s, "--") || strings.Contains(s, "/*") {
		return false
	}
	for stmt := range strings.SplitSeq(s, ";") {
		if !cleanStatement(stmt) {
			return false
		}
	}
	return true
}

// cleanStatement classifies a single statement (no ';').
func cleanStatement(s string) bool {
	var buf [16]byte
	first, rest := keyword(s, &buf)
	switch string(first) {
	case "select", "with", "table", "values":
		return cleanText(s, true)
	case "insert", "update", "delete", "merge", "show", "notify",
		"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release":
		return cleanText(s, false)
	case "set":
		switch next, _ := keyword(rest, &buf); string(next) {
		case "local", "transaction", "constraints":
			return cleanText(s, false)
		}
		return false
	case "":
		return cleanText(s, false) // empty, or only comments
	}
	return false
}

// keyword returns the first word of s in lower case (in buf), skipping
// white space, comments and opening parentheses, and the text after it:
// "" if there is none, "?" if s goes on with something other than plain
// ASCII letters.
func keyword(s string, buf *[16]byte) ([]byte, string) {
	i := skipSpace(s)
	j := i
	for j < len(s) && isIdentByte(s[j]) {
		j++
	}
	w := s[i:j]
	unknown := append(buf[:0], '?')
	switch {
	case i == len(s):
		return buf[:0], ""
	case len(w) == 0 || len(w) > len(buf):
		return unknown, s[j:]
	}
	for k := range len(w) {
		c := w[k]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case 'a' <= c && c <= 'z':
		default:
			return unknown, s[j:]
		}
		buf[k] = c
	}
	return buf[:len(w)], s[j:]
}

// skipSpace returns the index of the first byte of s that is not white
// space, an opening parenthesis or inside a comment. Block comments nest,
// as in PostgreSQL.
func skipSpace(s string) int {
	i := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(':
			i++
		case strings.HasPrefix(s[i:], "--"):
			nl := strings.IndexByte(s[i:], '\n')
			if nl < 0 {
				return len(s)
			}
			i += nl + 1
		case strings.HasPrefix(s[i:], "/*"):
			depth := 0
			for i < len(s) {
				if strings.HasPrefix(s[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(s[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		default:
			return i
		}
	}
	return i
}

func isIdentByte(c byte) bool { return identBytes[c] }

// identBytes marks the bytes that can be part of an identifier.
var identBytes = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
	}
	return t
}()

// cleanText checks the whole text of a statement: no session function
// names, no U&, and (if query) no INTO other than INSERT INTO and MERGE
// INTO. It looks at every word, in strings and comments too.
func cleanText(s string, query bool) bool {
	var prev string
	for i := 0; i < len(s); {
		c := s[i]
		if !isIdentByte(c) {
			if c == '&' && i > 0 && (s[i-1] == 'u' || s[i-1] == 'U') {
				return false
			}
			i++
			continue
		}
		j := i + 1
		for j < len(s) && isIdentByte(s[j]) {
			j++
		}
		w := s[i:j]
		i = j
		if len(w) < 4 {
			prev = w
			continue
		}
		if len(w) >= minSessionFunc && containsSessionFunc(w) {
			if !strings.EqualFold(w, "set_config") || !localSetConfig(s[i:]) {
				return false
			}
		}
		if query && strings.EqualFold(w, "into") && !strings.EqualFold(prev, "insert") && !strings.EqualFold(prev, "merge") {
			return false
		}
		prev = w
	}
	return true
}

// localSetConfig reports whether args, the text after the name
// set_config, is the simplest call with is_local true:
// (name, value, true) where name and value are each a $n parameter or a
// plain string literal (no quote or backslash inside). Any other call is
// not recognised.
func localSetConfig(args string) bool {
	s := strings.TrimLeft(args, " \t\r\n")
	if !strings.HasPrefix(s, "(") {
		return false
	}
	s = s[1:]
	for range 2 {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "'"):
			end := strings.IndexAny(s[1:], `'\`)
			if end < 0 || s[1+end] != '\'' {
				return false
			}
			s = s[end+2:]
		case strings.HasPrefix(s, "$"):
			n := 1
			for n < len(s) && '0' <= s[n] && s[n] <= '9' {
				n++
			}
			if n == 1 {
				return false
			}
			s = s[n:]
		default:
			return false
		}
		s = strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(s, ",") {
			return false
		}
		s = s[1:]
	}
	s = strings.TrimLeft(s, " \t\r\n")
	if len(s) < 4 || !strings.EqualFold(s[:4], "true") {
		return false
	}
	s = strings.TrimLeft(s[4:], " \t\r\n")
	return strings.HasPrefix(s, ")")
}

// containsSessionFunc reports whether word contains one of sessionFuncs,
// ignoring ASCII case.
func containsSessionFunc(word string) bool {
	var buf [64]byte
	lower := buf[:0]
	if len(word) > len(buf) {
		lower = make([]byte, 0, len(word))
	}
	for k := range len(word) {
		c := word[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	funcs := sessionFuncs[:]
	if bytes.IndexByte(lower, '_') < 0 {
		funcs = funcs[:2] // most words: no name with '_' can match
	}
	for _, f := range funcs {
		if len(f) <= len(lower) && bytes.Contains(lower, f) {
			return true
		}
	}
	return false
}

// cleanTag reports whether a statement that returned tag is of a kind the
// text rules let through (see the rules above); "" (no statement) is clean.
func cleanTag(tag pgconn.CommandTag) bool {
	s := tag.String()
	if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "", "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "SHOW", "NOTIFY",
		"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET":
		return true
	}
	return false
}

// reportedParams are the run-time parameters a server reports when they
// change that a session can change (on servers that do not report one,
// it reads as "" throughout).
var reportedParams = [...]string{
	"session_authorization", "is_superuser", "role", "search_path",
	"TimeZone", "DateStyle", "IntervalStyle", "client_encoding",
	"standard_conforming_strings", "application_name",
	"default_transaction_read_only",
}

// paramsKey is the pgconn CustomData key of a connection's reported
// parameters just after it connected.
const paramsKey = "kgw.reportedParams"

type paramValues [len(reportedParams)]string

// rememberParams records c's reported parameters, after connecting.
func rememberParams(c *pgconn.PgConn) {
	var v paramValues
	for i, k := range reportedParams {
		v[i] = c.ParameterStatus(k)
	}
	c.CustomData()[paramsKey] = &v
}

// paramsChanged reports whether a reported parameter of c differs from
// its value after connecting (or that value is unknown).
func paramsChanged(c *pgconn.PgConn) bool {
	v, ok := c.CustomData()[paramsKey].(*paramValues)
	if !ok {
		return true
	}
	for i, k := range reportedParams {
		if c.ParameterStatus(k) != v[i] {
			return true
		}
	}
	return false
}

// closeTimeout bounds closing a dirty connection (sending Terminate).
const closeTimeout = 5 * time.Second

// closeConn closes a connection taken out of the pool (sends Terminate, no
// reply awaited; closed either way).
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}
