package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/internal/codec"
)

// The first events of an execution with bodies of at most maxInlineBody
// bytes are stored in its row (see migration 0003): a short execution is
// then journalled as one executions row and a few node rows.
const (
	inlineEvents  = 16 // highest seq stored inline; event_seqs has a bit for each
	maxInlineBody = 1024
)

// executionColumns are the executions columns scanExecution reads.
const executionColumns = codec.ExecutionColumns + `, node_ids, nodes`

// withNodes scans the node_ids and nodes columns after the columns of its
// row.
type withNodes struct {
	row        codec.Row
	ids, nodes *string
}

func (r withNodes) Scan(dest ...any) error { return r.row.Scan(append(dest, r.ids, r.nodes)...) }

// scanExecution reads a row of executionColumns: the execution with the
// node states stored in its row (see migration 0007), or else with its
// nodes PENDING; loadNodes then adds the states stored as rows.
func scanExecution(row codec.Row) (*store.Execution, error) {
	var ids, nodes string
	e, err := codec.ScanExecution(withNodes{row, &ids, &nodes})
	if err != nil {
		return nil, err
	}
	if nodes != "" {
		e.Nodes, err = codec.DecodeNodeLines(nodes, true)
		return e, err
	}
	if ids == "" {
		return e, nil
	}
	names, err := codec.DecodeStrings(ids)
	if err != nil {
		return nil, err
	}
	e.Nodes = make([]*store.NodeState, len(names))
	for i, id := range names {
		e.Nodes[i] = &store.NodeState{NodeID: id, Status: store.NodePending}
	}
	return e, nil
}

// nodeColumns returns the node columns to read, with or without results.
func nodeColumns(results bool) string {
	if results {
		return codec.NodeColumns
	}
	return codec.NodeColumnsWithoutResult
}

// loadNodes adds the node states stored as rows to executions read by
// scanExecution: each replaces the node of its id, or is appended (nodes
// not among those the execution was created with, in the order they were
// first journalled). Without results, no node has one.
func loadNodes(ctx context.Context, q querier, execs []*store.Execution, results bool) error {
	if len(execs) == 0 {
		return nil
	}
	if !results {
		for _, e := range execs {
			for _, n := range e.Nodes {
				n.Result = nil // inline states are read with their results
			}
		}
	}
	byID := make(map[string]*store.Execution, len(execs))
	args := make([]any, len(execs))
	for i, e := range execs {
		byID[e.ID] = e
		args[i] = e.ID
	}
	rows, err := q.QueryContext(ctx, `SELECT `+nodeColumns(results)+`
		FROM execution_nodes WHERE execution_id IN (`+placeholders(len(args))+`) ORDER BY execution_id, position`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		id, n, err := codec.ScanNodeState(rows)
		if err != nil {
			return err
		}
		e := byID[id]
		k := 0
		for k < len(e.Nodes) && e.Nodes[k].NodeID != n.NodeID {
			k++
		}
		if k < len(e.Nodes) {
			e.Nodes[k] = n
		} else {
			e.Nodes = append(e.Nodes, n)
		}
	}
	return rows.Err()
}

// plainPending reports whether n is a node that has not run: it needs no
// row (see loadNodes).
func plainPending(n *store.NodeState) bool {
	return n.Status == store.NodePending && n.Attempts == 0 && n.StartTime.IsZero() && n.EndTime.IsZero() &&
		n.Error == nil && n.Result == nil
}

// execWrite is what one batch writes to one executions row.
type execWrite struct {
	id     string
	create *store.Execution // the execution, if the batch creates it
	header *store.Execution // its last header update in the batch, if any
	events []byte           // inline event lines
	nodes  []byte           // inline node states, if the batch creates it finished
	seqs   int64            // bits of the seqs <= inlineEvents the batch journals

	// For markDerived: the node states in nodes, whether the events with
	// seqs up to inlineEvents are derived, and how many were compared.
	states   []*store.NodeState
	derived  bool
	compared int
}

// encodedBatch is a JournalBatch encoded as statement arguments (see
// encodeBatch).
type encodedBatch struct {
	creates, updates, nodes, events []any
	updateIDs                       []any // the executions of updates, in order
}

// WriteJournal implements store.Store. Updating an unknown execution, or
// writing nodes or events of one, fails with store.ErrNotFound.
//
// Everything is encoded before the write connection is taken; each
// execution the batch touches is one row inserted or updated (header,
// inline events and the check for seqs already journalled), and the node
// states and other events are written with a few multi-row statements
// (see execRows): the statement overhead is paid per batch, not per row.
func (s *Store) WriteJournal(ctx context.Context, b *store.JournalBatch) error {
	enc, err := s.encodeBatch(b)
	if err != nil {
		return fmt.Errorf("sqlite: write journal: %w", err)
	}
	err = s.journalTx(ctx, func(ctx context.Context) error { return s.applyBatch(ctx, enc) })
	if err != nil {
		return fmt.Errorf("sqlite: write journal: %w", err)
	}
	return nil
}

// encodeBatch encodes b, merging several updates of one header or node
// state (the last state wins, in the place of the first).
func (s *Store) encodeBatch(b *store.JournalBatch) (*encodedBatch, error) {
	ws := &execWrites{byID: make(map[string]*execWrite, len(b.Creates)+len(b.Executions))}
	nodes, err := ws.addExecutions(b)
	if err != nil {
		return nil, err
	}
	if nodes, err = ws.inlineNodes(nodes); err != nil {
		return nil, err
	}
	enc := &encodedBatch{creates: make([]any, 0, insertExecutionsCols*len(b.Creates))}
	ws.markDerived(b.Events)
	if err := enc.addEvents(ws, b.Events); err != nil {
		return nil, err
	}
	if err := enc.addNodes(ws, nodes, &s.position); err != nil {
		return nil, err
	}
	if err := enc.addExecutions(ws.order); err != nil {
		return nil, err
	}
	return enc, nil
}

// execWrites gathers a batch's writes per execution, in the order the
// batch first touches each execution.
type execWrites struct {
	order []*execWrite
	byID  map[string]*execWrite
}

// touch returns the writes of execution id, adding them if new.
func (ws *execWrites) touch(id string) *execWrite {
	w := ws.byID[id]
	if w == nil {
		w = &execWrite{id: id}
		ws.byID[id] = w
		ws.order = append(ws.order, w)
	}
	return w
}

// addExecutions records b's created executions and header updates, and
// returns the node writes of b: the non-pending nodes of its creates and
// its node updates, merged per node.
func (ws *execWrites) addExecutions(b *store.JournalBatch) ([]store.NodeUpdate, error) {
	var nodes []store.NodeUpdate
	for _, e := range b.Creates {
		if e.CreateTime.IsZero() {
			e.CreateTime = time.Unix(0, time.Now().UnixNano()).UTC()
		}
		w := ws.touch(e.ID)
		if w.create != nil {
			return nil, fmt.Errorf("execution %s created twice: %w", e.ID, store.ErrAlreadyExists)
		}
		w.create = e
		for _, n := range e.Nodes {
			if !plainPending(n) {
				nodes = append(nodes, store.NodeUpdate{ExecutionID: e.ID, State: n})
			}
		}
	}
	for _, h := range b.Executions {
		ws.touch(h.ID).header = h
	}
	nodes = append(nodes, b.Nodes...)
	if len(nodes) > 1 {
		nodes = mergeNodes(nodes)
	}
	return nodes, nil
}

// maxInlineNodes is the most bytes of node states (codec.AppendNodeLine)
// an execution keeps in its row.
const maxInlineNodes = 1024

// inlineNodes writes the node states of each execution that the batch
// creates already finished into its row, if they fit in maxInlineNodes,
// and returns the node writes of the other executions. A finished
// execution changes no more, so its states need no rows of their own:
// a short workflow run at once (the journal's lazy creations) is then one
// row, not one plus one per node. BenchmarkJournalFinished (one-node
// executions, 16 per batch, as the executor writes them), five runs in
// turns: 15.2 → 12.1 µs per execution (−20%). kgw serve at 64 callers (loadgen, both builds in
// turns, three runs): chain3 1.02–1.10× the throughput, no-op 0.97–1.06×
// (docs/performance.md, sixth part).
func (ws *execWrites) inlineNodes(nodes []store.NodeUpdate) ([]store.NodeUpdate, error) {
	var final map[string][]*store.NodeState
	for _, w := range ws.order {
		if w.create == nil || !w.status().Terminal() {
			continue
		}
		if final == nil {
			final = make(map[string][]*store.NodeState)
		}
		final[w.id] = slices.Clone(w.create.Nodes)
	}
	if final == nil {
		return nodes, nil
	}
	for _, u := range nodes {
		states, ok := final[u.ExecutionID]
		if !ok {
			continue
		}
		if k := slices.IndexFunc(states, func(n *store.NodeState) bool { return n.NodeID == u.State.NodeID }); k >= 0 {
			states[k] = u.State
		} else {
			final[u.ExecutionID] = append(states, u.State)
		}
	}
	for id, states := range final {
		var lines []byte
		for _, n := range states {
			var ok bool
			var err error
			if lines, ok, err = codec.AppendNodeLine(lines, n); err != nil {
				return nil, err
			}
			if !ok || len(lines) > maxInlineNodes {
				lines = nil
				break
			}
		}
		if lines == nil {
			delete(final, id)
			continue
		}
		ws.byID[id].nodes, ws.byID[id].states = lines, states
	}
	// nodes is the batch's own list (addExecutions), not b.Nodes.
	return slices.DeleteFunc(nodes, func(u store.NodeUpdate) bool { _, ok := final[u.ExecutionID]; return ok }), nil
}

// status is the state the batch leaves a new execution in.
func (w *execWrite) status() store.ExecutionStatus {
	if w.header != nil {
		return w.header.Status
	}
	return w.create.Status
}

// addEvents encodes events: small early ones inline in their execution's
// row, the others as event rows. The early events of an execution marked
// derived (markDerived) are not encoded at all.
func (enc *encodedBatch) addEvents(ws *execWrites, events []*store.Event) error {
	for _, ev := range events {
		w := ws.touch(ev.ExecutionID)
		early := ev.Seq >= 1 && ev.Seq <= inlineEvents
		if early {
			bit := int64(1) << (ev.Seq - 1)
			if w.seqs&bit != 0 {
				return fmt.Errorf("event %d of %s twice in a batch: %w", ev.Seq, ev.ExecutionID, store.ErrConflict)
			}
			w.seqs |= bit
			if w.derived {
				continue
			}
		}
		encode := codec.EncodeEventBody
		if ev.Execution != nil && w.header != nil {
			// The batch journals the final state that the event carries:
			// ListEvents loads it from there (see package doc).
			encode = codec.EncodeEventBodyByRef
		}
		body, err := encode(ev)
		if err != nil {
			return err
		}
		if early && len(body) <= maxInlineBody {
			w.events = appendInline(w.events, ev, body)
			continue
		}
		enc.events = append(enc.events, ev.ExecutionID, ev.Seq, codec.Nanos(ev.Time), int32(ev.Kind), body)
	}
	return nil
}

// addNodes encodes the node rows, each with the next write position.
func (enc *encodedBatch) addNodes(ws *execWrites, nodes []store.NodeUpdate, position *atomic.Int64) error {
	enc.nodes = make([]any, 0, 9*len(nodes))
	for _, u := range nodes {
		ws.touch(u.ExecutionID)
		n := u.State
		errJSON, err := codec.EncodeError(n.Error)
		if err != nil {
			return err
		}
		res, err := codec.EncodeMap(n.Result)
		if err != nil {
			return err
		}
		enc.nodes = append(enc.nodes, u.ExecutionID, n.NodeID, position.Add(1), int32(n.Status), n.Attempts,
			codec.Nanos(n.StartTime), codec.Nanos(n.EndTime), errJSON, res)
	}
	return nil
}

// addExecutions encodes the executions rows: the inserts of new
// executions and the updates (header, inline events) of the others.
func (enc *encodedBatch) addExecutions(order []*execWrite) error {
	for _, w := range order {
		if w.create != nil {
			var err error
			if enc.creates, err = appendCreate(enc.creates, w); err != nil {
				return fmt.Errorf("create execution %s: %w", w.id, err)
			}
			continue
		}
		hasHeader, status, start, end, owner := 0, int32(0), int64(0), int64(0), ""
		var errJSON *string
		if h := w.header; h != nil {
			var err error
			if errJSON, err = codec.EncodeError(h.Error); err != nil {
				return err
			}
			hasHeader, status, start, end, owner = 1, int32(h.Status), codec.Nanos(h.StartTime), codec.Nanos(h.EndTime), h.Owner
		}
		enc.updates = append(enc.updates, w.id, hasHeader, status, errJSON, start, end, owner, string(w.events), w.seqs)
		enc.updateIDs = append(enc.updateIDs, w.id)
	}
	return nil
}

// appendCreate appends to args the values of the executions row of a new
// execution, with the header update and inline events of its batch.
func appendCreate(args []any, w *execWrite) ([]any, error) {
	e := w.create
	status, errState, start, end, owner := e.Status, e.Error, e.StartTime, e.EndTime, e.Owner
	if h := w.header; h != nil {
		status, errState, start, end, owner = h.Status, h.Error, h.StartTime, h.EndTime, h.Owner
	}
	req, err := codec.EncodeRequest(&e.Request)
	if err != nil {
		return args, err
	}
	errJSON, err := codec.EncodeError(errState)
	if err != nil {
		return args, err
	}
	events := string(w.events)
	if w.derived {
		events = derivedLine
	}
	nodeIDs := ""
	if w.nodes == nil {
		ids := make([]string, len(e.Nodes))
		for i, n := range e.Nodes {
			ids[i] = n.NodeID
		}
		nodeIDs = codec.EncodeStrings(ids)
	}
	return append(args, e.ID, e.Workflow, e.Version, int32(status), req, errJSON,
		codec.Nanos(e.CreateTime), codec.Nanos(start), codec.Nanos(end),
		e.IdempotencyKey, e.Caller, owner, nodeIDs, string(w.nodes), events, w.seqs), nil
}

// applyBatch writes an encoded batch in the transaction journalTx opened.
func (s *Store) applyBatch(ctx context.Context, enc *encodedBatch) error {
	if _, err := execRows(ctx, &s.insertExecutions, enc.creates); err != nil {
		return fmt.Errorf("create executions: %w", translate(err))
	}
	n, err := execRows(ctx, &s.updateExecutions, enc.updates)
	if err != nil {
		return translate(err)
	}
	if n < int64(len(enc.updateIDs)) {
		return unchangedError(ctx, s.wc, enc.updateIDs)
	}
	if _, err := execRows(ctx, &s.upsertNodes, enc.nodes); err != nil {
		return translate(err)
	}
	if _, err := execRows(ctx, &s.insertEvents, enc.events); err != nil {
		if isUnique(err) {
			return fmt.Errorf("event seq already journalled: %w", store.ErrConflict)
		}
		return translate(err)
	}
	return nil
}

// unchangedError explains why an update of the executions ids changed
// fewer rows than there are ids: an unknown execution (store.ErrNotFound)
// or, if all exist, a seq journalled before (store.ErrConflict).
func unchangedError(ctx context.Context, q querier, ids []any) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM executions WHERE id IN (`+placeholders(len(ids))+`)`,
		ids...).Scan(&n); err != nil {
		return err
	}
	if n < len(ids) {
		return fmt.Errorf("%d of the executions written to: %w", len(ids)-n, store.ErrNotFound)
	}
	return fmt.Errorf("event seq already journalled: %w", store.ErrConflict)
}

// mergeNodes returns the node updates with one entry per node: the last
// state of each, in the place of its first.
func mergeNodes(in []store.NodeUpdate) []store.NodeUpdate {
	type key struct{ exec, node string }
	at := make(map[key]int, len(in))
	out := make([]store.NodeUpdate, 0, len(in))
	for _, u := range in {
		k := key{u.ExecutionID, u.State.NodeID}
		if i, ok := at[k]; ok {
			out[i] = u
			continue
		}
		at[k] = len(out)
		out = append(out, u)
	}
	return out
}

// appendInline appends the line of an inline event: its seq, time and
// kind, then its body (JSON, which has no tab or newline outside strings,
// and escapes them inside).
func appendInline(b []byte, ev *store.Event, body string) []byte {
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, codec.Nanos(ev.Time), 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(ev.Kind), 10)
	b = append(b, '\t')
	b = append(b, body...)
	return append(b, '\n')
}

// parseInline returns the inline events of executionID with seq > afterSeq
// in seq order, and those of them that refer to their execution.
func parseInline(executionID, lines string, afterSeq int64) (out, refs []*store.Event, err error) {
	for line := range strings.Lines(lines) {
		fields := strings.SplitN(strings.TrimSuffix(line, "\n"), "\t", 4)
		if len(fields) != 4 {
			return nil, nil, errors.New("malformed inline event")
		}
		seq, err1 := strconv.ParseInt(fields[0], 10, 64)
		t, err2 := strconv.ParseInt(fields[1], 10, 64)
		kind, err3 := strconv.ParseInt(fields[2], 10, 32)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, nil, fmt.Errorf("malformed inline event: %w", err)
		}
		if seq <= afterSeq {
			continue
		}
		ev, byRef, err := codec.DecodeEvent(executionID, seq, t, int32(kind), fields[3])
		if err != nil {
			return nil, nil, err
		}
		if byRef {
			refs = append(refs, ev)
		}
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, refs, nil
}

// ListEvents implements store.Store. A limit <= 0 means 1000. A terminal
// event stored by reference gets the execution as journalled, read in the
// same transaction as the events.
func (s *Store) ListEvents(ctx context.Context, executionID string, afterSeq int64, limit int) ([]*store.Event, error) {
	limit = codec.PageLimit(limit)
	var out []*store.Event
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var lines string
		switch err := tx.QueryRowContext(ctx, `SELECT events FROM executions WHERE id = ?`, executionID).Scan(&lines); {
		case errors.Is(err, sql.ErrNoRows):
			return nil // an unknown execution has no events
		case err != nil:
			return err
		}
		lines, derived := cutDerived(lines)
		inline, refs, err := parseInline(executionID, lines, afterSeq)
		if err != nil {
			return err
		}
		var x *store.Execution
		if derived {
			if x, err = getExecution(ctx, tx, `id = ?`, executionID); err != nil {
				return fmt.Errorf("execution of derived events: %w", err)
			}
			inline = mergeEvents(deriveEvents(x, afterSeq), inline, math.MaxInt)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+codec.EventColumns+` FROM execution_events
			WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?`, executionID, afterSeq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		var stored []*store.Event
		for rows.Next() {
			ev, byRef, err := codec.ScanEventByRef(rows, executionID)
			if err != nil {
				return err
			}
			if byRef {
				refs = append(refs, ev)
			}
			stored = append(stored, ev)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		out = mergeEvents(inline, stored, limit)
		if len(refs) == 0 {
			return nil
		}
		if x == nil {
			if x, err = getExecution(ctx, tx, `id = ?`, executionID); err != nil {
				return fmt.Errorf("execution of event %d: %w", refs[0].Seq, err)
			}
		}
		for _, ev := range refs {
			ev.Execution = x
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events of %s: %w", executionID, err)
	}
	return out, nil
}

// mergeEvents merges two lists of events in seq order, keeping the first
// limit.
func mergeEvents(a, b []*store.Event, limit int) []*store.Event {
	out := make([]*store.Event, 0, min(len(a)+len(b), limit))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && a[0].Seq < b[0].Seq) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}
