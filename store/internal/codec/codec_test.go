package codec

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kailash-gateway/kgw/store"
)

func TestPageLimit(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want int
	}{
		{"negative", -5, 1000},
		{"zero", 0, 1000},
		{"one", 1, 1},
		{"above default", 5000, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PageLimit(tt.n); got != tt.want {
				t.Errorf("PageLimit(%d) = %d, want %d", tt.n, got, tt.want)
			}
		})
	}
}

func TestNanos(t *testing.T) {
	if got := Nanos(time.Time{}); got != 0 {
		t.Errorf("Nanos(zero time) = %d, want 0", got)
	}
	if got := FromNanos(0); !got.IsZero() {
		t.Errorf("FromNanos(0) = %v, want the zero time", got)
	}
	local := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("UTC+5", 5*3600))
	got := FromNanos(Nanos(local))
	if !got.Equal(local) || got.Location() != time.UTC {
		t.Errorf("FromNanos(Nanos(%v)) = %v, want the same instant in UTC", local, got)
	}
	// Before 1970 is negative, not zero, and must survive.
	old := time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)
	if got := FromNanos(Nanos(old)); !got.Equal(old) {
		t.Errorf("FromNanos(Nanos(%v)) = %v", old, got)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		enc  string
	}{
		{"nil", nil, "[]"},
		{"empty", []string{}, "[]"},
		{"some", []string{"a", "b\"c", "ü"}, `["a","b\"c","ü"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := EncodeStrings(tt.in)
			if enc != tt.enc {
				t.Errorf("EncodeStrings(%q) = %s, want %s", tt.in, enc, tt.enc)
			}
			got, err := DecodeStrings(enc)
			if err != nil {
				t.Fatalf("DecodeStrings(%s): %v", enc, err)
			}
			want := tt.in
			if len(want) == 0 {
				want = nil // an empty list reads back as nil
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("DecodeStrings(%s) mismatch (-want +got):\n%s", enc, diff)
			}
		})
	}
	if _, err := DecodeStrings("{"); err == nil {
		t.Errorf(`DecodeStrings("{") succeeded, want an error`)
	}
}

func TestExecutionCursor(t *testing.T) {
	for _, tc := range []struct {
		nanos int64
		id    string
	}{
		{0, ""},
		{1700000000123456789, "exec-1"},
		{-1, "with/slash"},
		{math.MaxInt64, "x"},
	} {
		c := ExecutionCursor(tc.nanos, tc.id)
		n, id, err := ParseExecutionCursor(c)
		if err != nil || n != tc.nanos || id != tc.id {
			t.Errorf("ParseExecutionCursor(%q) = %d, %q, %v; want %d, %q, nil", c, n, id, err, tc.nanos, tc.id)
		}
	}
	for _, bad := range []string{"", "123", "abc/x", "/x", "99999999999999999999/x"} {
		if n, id, err := ParseExecutionCursor(bad); err == nil {
			t.Errorf("ParseExecutionCursor(%q) = %d, %q, nil; want an error", bad, n, id)
		}
	}
}

func TestDecodeJSONNumbers(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]any
	}{
		{"empty is nil", "", nil},
		{"null is nil", "null", nil},
		{"integer", `{"n": 42}`, map[string]any{"n": int64(42)}},
		{"exact beyond float64", `{"n": 9007199254740993}`, map[string]any{"n": int64(9007199254740993)}},
		{"negative", `{"n": -7}`, map[string]any{"n": int64(-7)}},
		{"fraction", `{"n": 1.5}`, map[string]any{"n": 1.5}},
		{"exponent", `{"n": 1e3}`, map[string]any{"n": 1000.0}},
		{"too big for int64", `{"n": 18446744073709551616}`, map[string]any{"n": 18446744073709551616.0}},
		{"nested", `{"a": [1, {"b": 2.5, "c": [3]}], "s": "x", "t": true, "z": null}`, map[string]any{
			"a": []any{int64(1), map[string]any{"b": 2.5, "c": []any{int64(3)}}},
			"s": "x", "t": true, "z": nil,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			if err := decodeJSON(tt.in, &got); err != nil {
				t.Fatalf("decodeJSON(%s): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeJSON(%s) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
	var m map[string]any
	if err := decodeJSON(`{"n": `, &m); err == nil {
		t.Errorf("decodeJSON of truncated input succeeded, want an error")
	}
}

func TestDecodeJSONTargets(t *testing.T) {
	var a any
	if err := decodeJSON(`[1, 2.5]`, &a); err != nil {
		t.Fatalf("decodeJSON into *any: %v", err)
	}
	if diff := cmp.Diff(any([]any{int64(1), 2.5}), a); diff != "" {
		t.Errorf("decodeJSON into *any mismatch (-want +got):\n%s", diff)
	}
	var l []any
	if err := decodeJSON(`[{"x": 1}]`, &l); err != nil {
		t.Fatalf("decodeJSON into *[]any: %v", err)
	}
	if diff := cmp.Diff([]any{map[string]any{"x": int64(1)}}, l); diff != "" {
		t.Errorf("decodeJSON into *[]any mismatch (-want +got):\n%s", diff)
	}
}

func TestNilMapAndError(t *testing.T) {
	if s, err := EncodeMap(nil); s != nil || err != nil {
		t.Errorf("EncodeMap(nil) = %v, %v; want nil, nil", s, err)
	}
	if m, err := decodeMap(nil); m != nil || err != nil {
		t.Errorf("decodeMap(nil) = %v, %v; want nil, nil", m, err)
	}
	if s, err := EncodeError(nil); s != nil || err != nil {
		t.Errorf("EncodeError(nil) = %v, %v; want nil, nil", s, err)
	}
	if e, err := decodeError(nil); e != nil || err != nil {
		t.Errorf("decodeError(nil) = %v, %v; want nil, nil", e, err)
	}
	// An empty map is not NULL: it is stored and read back as empty.
	s, err := EncodeMap(map[string]any{})
	if err != nil || s == nil || *s != "{}" {
		t.Fatalf("EncodeMap({}) = %v, %v; want \"{}\"", s, err)
	}
	if m, err := decodeMap(s); err != nil || m == nil || len(m) != 0 {
		t.Errorf("decodeMap(%q) = %v, %v; want an empty map", *s, m, err)
	}
}

func TestEncodeMapRejectsUnencodable(t *testing.T) {
	_, err := EncodeMap(map[string]any{"f": func() {}})
	if err == nil || !strings.Contains(err.Error(), "encode json") {
		t.Errorf("EncodeMap(func) = %v, want an encode json error", err)
	}
	var ue *json.UnsupportedTypeError
	if !errors.As(err, &ue) {
		t.Errorf("EncodeMap(func) error %v does not wrap *json.UnsupportedTypeError", err)
	}
}

func TestMapAndErrorRoundTrip(t *testing.T) {
	m := map[string]any{"rows": []any{map[string]any{"id": int64(1), "v": 0.25}}, "ok": true}
	s, err := EncodeMap(m)
	if err != nil {
		t.Fatalf("EncodeMap: %v", err)
	}
	got, err := decodeMap(s)
	if err != nil {
		t.Fatalf("decodeMap(%s): %v", *s, err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("map round trip mismatch (-want +got):\n%s", diff)
	}
	e := &store.ExecError{NodeID: "n", Code: "NODE_FAILED", Message: "boom", Traceback: "line 1"}
	es, err := EncodeError(e)
	if err != nil {
		t.Fatalf("EncodeError: %v", err)
	}
	gotE, err := decodeError(es)
	if err != nil {
		t.Fatalf("decodeError(%s): %v", *es, err)
	}
	if diff := cmp.Diff(e, gotE); diff != "" {
		t.Errorf("error round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	r := store.ExecutionRequest{
		Parameters: map[string]any{"n": int64(3), "f": 2.5, "l": []any{int64(1), "a"}},
		Resources: map[string]store.ResourceSpec{
			"db": {Type: "postgres", Config: map[string]any{"pool": int64(4)}, CredentialsRef: "db_creds", CredentialsKey: "dsn"},
			"kv": {Ref: "shared_redis"},
		},
		Context: map[string]any{"trace": "abc", "depth": int64(2)},
		Timeout: 90 * time.Second,
	}
	s, err := EncodeRequest(&r)
	if err != nil {
		t.Fatalf("EncodeRequest: %v", err)
	}
	got, err := decodeRequest(s)
	if err != nil {
		t.Fatalf("decodeRequest(%s): %v", s, err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("request round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	spec := store.ResourceSpec{Type: "http", Config: map[string]any{"base_url": "http://127.0.0.1:1", "max_conns": int64(8)}}
	s, err := EncodeSpec(&spec)
	if err != nil {
		t.Fatalf("EncodeSpec: %v", err)
	}
	got, err := decodeSpec(s)
	if err != nil {
		t.Fatalf("decodeSpec(%s): %v", s, err)
	}
	if diff := cmp.Diff(spec, got); diff != "" {
		t.Errorf("spec round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestWorkflowDefRoundTrip(t *testing.T) {
	w := &store.Workflow{
		Name: "wf", Version: 3, Description: "kept in its own column",
		Nodes: []store.Node{
			{ID: "a", Code: "result = {}", RequiredResources: []string{"db"}, Timeout: time.Second,
				Retry:       store.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Second, Multiplier: 2},
				Description: "first"},
			{ID: "b"},
		},
		Connections:    []store.Connection{{FromNode: "a", FromOutput: "x", ToNode: "b", ToInput: "y"}, {FromNode: "a", ToNode: "b"}},
		Timeout:        time.Minute,
		Labels:         map[string]string{"team": "core"},
		DisableJournal: true,
	}
	s, err := EncodeWorkflowDef(w)
	if err != nil {
		t.Fatalf("EncodeWorkflowDef: %v", err)
	}
	// Decoding overwrites the definition fields and leaves the others.
	got := &store.Workflow{Name: w.Name, Version: w.Version, Description: w.Description,
		Nodes: []store.Node{{ID: "stale"}}, Connections: []store.Connection{{FromNode: "stale"}}}
	if err := decodeWorkflowDef(s, got); err != nil {
		t.Fatalf("decodeWorkflowDef(%s): %v", s, err)
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("workflow definition round trip mismatch (-want +got):\n%s", diff)
	}
	if err := decodeWorkflowDef("not json", got); err == nil {
		t.Errorf("decodeWorkflowDef(not json) succeeded, want an error")
	}
}

func TestSummarize(t *testing.T) {
	ct := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	w := &store.Workflow{
		Name: "wf", Version: 7, Description: "d", CreateTime: ct, Labels: map[string]string{"k": "v"},
		Nodes: []store.Node{
			{ID: "a", RequiredResources: []string{"db", "kv"}},
			{ID: "b", RequiredResources: []string{"kv", "http", "db"}},
			{ID: "c"},
		},
	}
	want := &store.WorkflowSummary{
		Name: "wf", LatestVersion: 7, Description: "d", NodeCount: 3,
		RequiredResources: []string{"db", "kv", "http"}, Labels: map[string]string{"k": "v"}, CreateTime: ct,
	}
	if diff := cmp.Diff(want, Summarize(w)); diff != "" {
		t.Errorf("Summarize mismatch (-want +got):\n%s", diff)
	}
}

func TestEventBodyRoundTrip(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 5, time.UTC)
	tests := []struct {
		name string
		ev   store.Event
	}{
		{"started", store.Event{Kind: store.EventExecutionStarted, Workflow: "wf", Version: 2, Resumed: true}},
		{"log", store.Event{Kind: store.EventNodeLog, NodeID: "a", Attempt: 1, Level: store.LogWarning,
			Message: "slow", Fields: map[string]any{"ms": int64(1200), "ratio": 0.5}}},
		{"retrying", store.Event{Kind: store.EventNodeRetrying, NodeID: "a", Attempt: 2,
			Error: &store.ExecError{Code: "TIMEOUT", Message: "late"}, Backoff: 250 * time.Millisecond}},
		{"completed node", store.Event{Kind: store.EventNodeCompleted, NodeID: "a", Attempt: 1,
			Result: map[string]any{"rows": []any{int64(1), int64(2)}}, Duration: time.Second}},
		{"terminal", store.Event{Kind: store.EventExecutionCompleted, Execution: &store.Execution{
			ID: "e1", Workflow: "wf", Version: 2, Status: store.ExecutionCompleted,
			Request: store.ExecutionRequest{
				Parameters: map[string]any{"n": int64(1)},
				Resources:  map[string]store.ResourceSpec{"db": {Type: "postgres", Config: map[string]any{"pool": int64(2)}}},
				Context:    map[string]any{"c": 1.25},
			},
			Error: &store.ExecError{Message: "none really"},
			Nodes: []*store.NodeState{{NodeID: "a", Status: store.NodeCompleted, Attempts: 1,
				StartTime: t0, EndTime: t0.Add(time.Second), Result: map[string]any{"x": int64(9)}}},
			CreateTime: t0, StartTime: t0, EndTime: t0.Add(2 * time.Second),
			IdempotencyKey: "k", Caller: "alice", Owner: "gw-1",
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := EncodeEventBody(&tt.ev)
			if err != nil {
				t.Fatalf("EncodeEventBody: %v", err)
			}
			// The columns of their own are not in the body.
			got := store.Event{ExecutionID: "e1", Seq: 4, Time: t0, Kind: tt.ev.Kind}
			if _, err := decodeEventBody(s, &got); err != nil {
				t.Fatalf("decodeEventBody(%s): %v", s, err)
			}
			want := tt.ev
			want.ExecutionID, want.Seq, want.Time = "e1", 4, t0
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("event round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzExecutionCursor checks that every cursor round-trips and that
// parsing arbitrary input never panics.
func FuzzExecutionCursor(f *testing.F) {
	f.Add(int64(0), "", "")
	f.Add(int64(1700000000123456789), "exec-1", "123/abc")
	f.Add(int64(-1), "a/b", "x/")
	f.Fuzz(func(t *testing.T, nanos int64, id, raw string) {
		c := ExecutionCursor(nanos, id)
		n, gotID, err := ParseExecutionCursor(c)
		if err != nil || n != nanos || gotID != id {
			t.Fatalf("ParseExecutionCursor(%q) = %d, %q, %v; want %d, %q, nil", c, n, gotID, err, nanos, id)
		}
		_, _, _ = ParseExecutionCursor(raw)
	})
}

// FuzzJSONMap checks that decoding never panics and that the stored form
// is stable: once decoded, a map encodes and decodes to itself.
func FuzzJSONMap(f *testing.F) {
	for _, s := range []string{`{"n": 42}`, `{"n": 1.0}`, `{"n": -0.0}`, `{"n": 1e400}`,
		`{"a": [1, {"b": 2.5}], "s": "x", "z": null}`, `{"n": 18446744073709551616}`, `[]`, `null`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := decodeMap(&s)
		if err != nil {
			return
		}
		enc, err := EncodeMap(m)
		if err != nil {
			t.Fatalf("EncodeMap(decoded %q): %v", s, err)
		}
		once, err := decodeMap(enc)
		if err != nil {
			t.Fatalf("decodeMap(%v) of an encoded map: %v", enc, err)
		}
		enc2, err := EncodeMap(once)
		if err != nil {
			t.Fatalf("EncodeMap: %v", err)
		}
		twice, err := decodeMap(enc2)
		if err != nil {
			t.Fatalf("decodeMap: %v", err)
		}
		if diff := cmp.Diff(once, twice); diff != "" {
			t.Fatalf("stored form of %q is not stable (-once +twice):\n%s", s, diff)
		}
	})
}

// reflectEventBody is the event body as encoding/json writes eventBody:
// the reference of EncodeEventBody's direct encoder.
func reflectEventBody(t *testing.T, ev *store.Event) string {
	t.Helper()
	b := eventBody{
		Workflow: ev.Workflow, Version: ev.Version, Resumed: ev.Resumed,
		NodeID: ev.NodeID, Attempt: ev.Attempt, Level: ev.Level, Message: ev.Message,
		Fields: ev.Fields, Result: ev.Result, Error: ev.Error,
		Backoff: ev.Backoff, Duration: ev.Duration,
	}
	if ev.Execution != nil {
		b.Execution = toExecutionDoc(ev.Execution)
	}
	j, err := json.Marshal(&b)
	if err != nil {
		t.Fatalf("json.Marshal(eventBody): %v", err)
	}
	return string(j)
}

func TestEventBodyMatchesEncodingJSON(t *testing.T) {
	tests := []store.Event{
		{},
		{Kind: store.EventExecutionStarted, Workflow: "wf", Version: 2, Resumed: true},
		{Kind: store.EventNodeStarted, NodeID: "n-1", Attempt: 3},
		{Kind: store.EventNodeLog, NodeID: "a", Attempt: 1, Level: store.LogError,
			Message: "quote \" backslash \\ tab \t <tag> & amp é \u2028 \x7f bad \xff end",
			Fields:  map[string]any{"ms": int64(-1200), "s": "<x>"}},
		{Kind: store.EventNodeLog, NodeID: "ünï", Message: "x", Fields: map[string]any{}},
		{Kind: store.EventNodeCompleted, NodeID: "a", Attempt: 1, Result: map[string]any{}, Duration: time.Nanosecond},
		{Kind: store.EventNodeRetrying, Error: &store.ExecError{Code: "E", Message: "m"}, Backoff: -time.Second},
		{Kind: store.EventExecutionFailed, Execution: &store.Execution{ID: "e", Nodes: []*store.NodeState{{NodeID: "a"}}}},
	}
	for i, ev := range tests {
		got, err := EncodeEventBody(&ev)
		if err != nil {
			t.Fatalf("EncodeEventBody(#%d): %v", i, err)
		}
		if want := reflectEventBody(t, &ev); got != want {
			t.Errorf("EncodeEventBody(#%d) = %s\nwant (encoding/json) %s", i, got, want)
		}
	}
	if _, err := EncodeEventBody(&store.Event{Fields: map[string]any{"f": func() {}}}); err == nil {
		t.Errorf("EncodeEventBody with an unencodable field succeeded, want an error")
	}
}

func BenchmarkEncodeEventBody(b *testing.B) {
	evs := []*store.Event{
		{Kind: store.EventExecutionStarted, Workflow: "noop", Version: 1},
		{Kind: store.EventNodeStarted, NodeID: "n", Attempt: 1},
		{Kind: store.EventNodeCompleted, NodeID: "n", Attempt: 1, Result: map[string]any{}, Duration: time.Millisecond},
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, ev := range evs {
			if _, err := EncodeEventBody(ev); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestEventBodyByRef(t *testing.T) {
	final := &store.Execution{ID: "e1", Status: store.ExecutionCompleted,
		Nodes: []*store.NodeState{{NodeID: "a", Status: store.NodeCompleted, Result: map[string]any{"big": "result"}}}}
	ev := store.Event{Kind: store.EventExecutionCompleted, Execution: final}
	s, err := EncodeEventBodyByRef(&ev)
	if err != nil {
		t.Fatalf("EncodeEventBodyByRef: %v", err)
	}
	if strings.Contains(s, "result") {
		t.Errorf("EncodeEventBodyByRef wrote the execution: %s", s)
	}
	var got store.Event
	byRef, err := decodeEventBody(s, &got)
	if err != nil || !byRef || got.Execution != nil {
		t.Errorf("decodeEventBody(%s) = byRef %v, Execution %v, %v; want true, nil, nil", s, byRef, got.Execution, err)
	}
	// Without an Execution there is nothing to refer to.
	node := store.Event{Kind: store.EventNodeStarted, NodeID: "a", Attempt: 1}
	s, err = EncodeEventBodyByRef(&node)
	if err != nil {
		t.Fatalf("EncodeEventBodyByRef: %v", err)
	}
	if byRef, err := decodeEventBody(s, &got); err != nil || byRef {
		t.Errorf("decodeEventBody(%s) = byRef %v, %v; want false, nil", s, byRef, err)
	}
}

// Node lines round-trip every field, whatever the strings in errors and
// results hold; a node id that cannot be a line is refused, and damaged
// lines are errors.
func TestNodeLines(t *testing.T) {
	at := time.Unix(1_700_000_000, 123).UTC()
	states := []*store.NodeState{
		{NodeID: "pending", Status: store.NodePending},
		{NodeID: "done", Status: store.NodeCompleted, Attempts: 2, StartTime: at, EndTime: at.Add(time.Second),
			Result: map[string]any{"tab": "a\tb", "nl": "a\nb", "dash": "-", "empty": "", "u": "é\u2028", "n": 1.5, "list": []any{"\t\n", nil, true}}},
		{NodeID: "empty-result", Status: store.NodeCompleted, Attempts: 1, Result: map[string]any{}},
		{NodeID: "failed", Status: store.NodeFailed, Attempts: 3, StartTime: at,
			Error: &store.ExecError{NodeID: "failed", Code: "E", Message: "line\none\ttab", Traceback: "-"}},
	}
	var b []byte
	for _, n := range states {
		var ok bool
		var err error
		if b, ok, err = AppendNodeLine(b, n); err != nil || !ok {
			t.Fatalf("AppendNodeLine(%s) = %v, %v", n.NodeID, ok, err)
		}
	}
	if got := strings.Count(string(b), "\n"); got != len(states) {
		t.Fatalf("%d lines for %d states:\n%s", got, len(states), b)
	}
	got, err := DecodeNodeLines(string(b), true)
	if err != nil {
		t.Fatalf("DecodeNodeLines: %v", err)
	}
	if d := cmp.Diff(states, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	got, err = DecodeNodeLines(string(b), false)
	if err != nil {
		t.Fatalf("DecodeNodeLines without results: %v", err)
	}
	for i, n := range got {
		if n.Result != nil || n.NodeID != states[i].NodeID || (n.Error == nil) != (states[i].Error == nil) {
			t.Errorf("without results, node %d = %+v", i, n)
		}
	}

	for _, id := range []string{"a\tb", "a\nb"} {
		out, ok, err := AppendNodeLine([]byte("x"), &store.NodeState{NodeID: id})
		if ok || err != nil || string(out) != "x" {
			t.Errorf("AppendNodeLine(id %q) = %q, %v, %v; want it refused and the buffer unchanged", id, out, ok, err)
		}
	}
	if _, _, err := AppendNodeLine(nil, &store.NodeState{NodeID: "nan", Result: map[string]any{"x": math.NaN()}}); err == nil {
		t.Errorf("AppendNodeLine with a NaN result succeeded")
	}

	line := strings.SplitAfter(string(b), "\n")[1]
	for name, bad := range map[string]string{
		"too few fields":  "done\t4\t1\t0\t0\t-\n",
		"too many fields": strings.TrimSuffix(line, "\n") + "\t-\n",
		"bad number":      strings.Replace(line, "\t2\t", "\tx\t", 1),
		"bad JSON":        "done\t4\t1\t0\t0\t-\t{\"a\":\n",
		"bad error JSON":  "done\t4\t1\t0\t0\t[\t-\n",
	} {
		if _, err := DecodeNodeLines(bad, true); err == nil {
			t.Errorf("DecodeNodeLines(%s) succeeded", name)
		}
	}
}
