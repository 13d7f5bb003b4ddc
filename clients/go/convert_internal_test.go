package kgw

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExecutionFromProto(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &kgwv1.Execution{
		Id: "ex1", Workflow: "hello_db", Version: 2, Status: kgwv1.ExecutionStatus_EXECUTION_STATUS_FAILED,
		Result: map[string]*structpb.Struct{"query": mustStruct(t, map[string]any{"message": "hi", "n": 2})},
		Error:  &kgwv1.ExecutionError{NodeId: "b", Code: "NODE_ERROR", Message: "node 'b' line 1:1: boom", Traceback: "tb"},
		Nodes: []*kgwv1.NodeExecution{{
			NodeId: "query", Status: kgwv1.NodeStatus_NODE_STATUS_COMPLETED, Attempts: 1,
			StartTime: timestamppb.New(t0), EndTime: timestamppb.New(t0.Add(time.Second)), Duration: durationpb.New(time.Second),
		}},
		CreateTime: timestamppb.New(t0), IdempotencyKey: "k",
	}
	got := executionFromProto(p)
	want := &Execution{
		ID: "ex1", Workflow: "hello_db", Version: 2, Status: StatusFailed,
		Result: map[string]map[string]any{"query": {"message": "hi", "n": 2.0}},
		Error:  &ExecutionError{NodeID: "b", Code: "NODE_ERROR", Message: "node 'b' line 1:1: boom", Traceback: "tb"},
		Nodes: []NodeExecution{{NodeID: "query", Status: NodeStatusCompleted, Attempts: 1,
			StartTime: t0, EndTime: t0.Add(time.Second), Duration: time.Second}},
		CreateTime: t0, IdempotencyKey: "k",
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Execution{}, "Proto")); diff != "" {
		t.Errorf("executionFromProto mismatch (-want +got):\n%s", diff)
	}
	var ee *ExecutionError
	if err := got.Err(); !errors.As(err, &ee) || ee.NodeID != "b" {
		t.Errorf("Err() = %v, want the node error", err)
	}
	if !got.Status.Terminal() || StatusRunning.Terminal() {
		t.Errorf("Terminal() wrong")
	}
	if err := (&Execution{Status: StatusCompleted}).Err(); err != nil {
		t.Errorf("completed Err() = %v, want nil", err)
	}
	if err := (&Execution{ID: "x", Status: StatusRunning}).Err(); err == nil {
		t.Errorf("running Err() = nil, want an error")
	}
}

func TestStatusRoundTrip(t *testing.T) {
	for v := range kgwv1.ExecutionStatus_name {
		s := statusFromProto(kgwv1.ExecutionStatus(v))
		back, ok := s.proto()
		if !ok || back != kgwv1.ExecutionStatus(v) {
			t.Errorf("status %v -> %q -> %v, %v", v, s, back, ok)
		}
	}
	if _, ok := Status("bogus").proto(); ok {
		t.Errorf(`Status("bogus").proto() ok = true`)
	}
}

func TestEventFromProto(t *testing.T) {
	final := &kgwv1.Execution{Id: "ex1", Status: kgwv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED}
	tests := []struct {
		name string
		ev   *kgwv1.ExecutionEvent
		want Event
	}{
		{"started", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_ExecutionStarted{ExecutionStarted: &kgwv1.ExecutionStarted{Workflow: "w", Version: 3, Resumed: true}}},
			Event{Kind: EventExecutionStarted, Workflow: "w", Version: 3, Resumed: true}},
		{"node started", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_NodeStarted{NodeStarted: &kgwv1.NodeStarted{NodeId: "a", Attempt: 1}}},
			Event{Kind: EventNodeStarted, NodeID: "a", Attempt: 1}},
		{"log", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_NodeLog{NodeLog: &kgwv1.NodeLog{NodeId: "a", Attempt: 1, Level: kgwv1.LogLevel_LOG_LEVEL_WARNING, Message: "m", Fields: mustStruct(t, map[string]any{"k": true})}}},
			Event{Kind: EventNodeLog, NodeID: "a", Attempt: 1, Level: "warning", Message: "m", Fields: map[string]any{"k": true}}},
		{"retrying", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_NodeRetrying{NodeRetrying: &kgwv1.NodeRetrying{NodeId: "a", Attempt: 1, Error: &kgwv1.ExecutionError{Code: "NODE_ERROR"}, Backoff: durationpb.New(time.Second)}}},
			Event{Kind: EventNodeRetrying, NodeID: "a", Attempt: 1, Error: &ExecutionError{Code: "NODE_ERROR"}, Backoff: time.Second}},
		{"completed", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_NodeCompleted{NodeCompleted: &kgwv1.NodeCompleted{NodeId: "a", Attempt: 2, Result: mustStruct(t, map[string]any{"x": "y"}), Duration: durationpb.New(time.Millisecond)}}},
			Event{Kind: EventNodeCompleted, NodeID: "a", Attempt: 2, Result: map[string]any{"x": "y"}, Duration: time.Millisecond}},
		{"failed", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_NodeFailed{NodeFailed: &kgwv1.NodeFailed{NodeId: "a", Attempt: 3, Error: &kgwv1.ExecutionError{Message: "x"}}}},
			Event{Kind: EventNodeFailed, NodeID: "a", Attempt: 3, Error: &ExecutionError{Message: "x"}}},
		{"terminal", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_ExecutionCompleted{ExecutionCompleted: &kgwv1.ExecutionCompleted{Execution: final}}},
			Event{Kind: EventExecutionCompleted, Execution: executionFromProto(final)}},
		{"timed out", &kgwv1.ExecutionEvent{Event: &kgwv1.ExecutionEvent_ExecutionTimedOut{ExecutionTimedOut: &kgwv1.ExecutionTimedOut{Execution: final}}},
			Event{Kind: EventExecutionTimedOut, Execution: executionFromProto(final)}},
		{"unknown", &kgwv1.ExecutionEvent{}, Event{Kind: EventUnknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ev.ExecutionId, tt.ev.Seq = "ex1", 7
			got := eventFromProto(tt.ev)
			want := tt.want
			want.ExecutionID, want.Seq = "ex1", 7
			if diff := cmp.Diff(&want, got, cmpopts.IgnoreFields(Event{}, "Proto"), cmpopts.IgnoreFields(Execution{}, "Proto")); diff != "" {
				t.Errorf("eventFromProto mismatch (-want +got):\n%s", diff)
			}
			if got.Terminal() != (want.Execution != nil) {
				t.Errorf("Terminal() = %v", got.Terminal())
			}
		})
	}
}

func TestSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want map[string]any // config; nil for no config check
		typ  string
	}{
		{"database", DatabaseSpec{Host: "127.0.0.1", Port: 5433, Database: "app", MaxSize: 5, Timeout: 1500 * time.Millisecond,
			ServerSettings: map[string]string{"application_name": "t"}, CredentialsRef: "creds", Config: map[string]any{"max_size": 7}},
			map[string]any{"host": "127.0.0.1", "port": 5433.0, "database": "app", "max_size": 7.0, "timeout": 1.5,
				"server_settings": map[string]any{"application_name": "t"}}, "database"},
		{"cache", CacheSpec{Port: 6380, TLS: true}, map[string]any{"port": 6380.0, "tls": true}, "cache"},
		{"http", HTTPClientSpec{BaseURL: "http://127.0.0.1:1", Headers: map[string]string{"x": "y"}, CredentialsKey: "k"},
			map[string]any{"base_url": "http://127.0.0.1:1", "headers": map[string]any{"x": "y"}}, "http_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.spec.ResourceSpec()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, p.GetConfig().AsMap()); diff != "" || p.GetType() != tt.typ {
				t.Errorf("config mismatch (-want +got):\n%s\ntype %q, want %q", diff, p.GetType(), tt.typ)
			}
		})
	}
	if _, err := (DatabaseSpec{Config: map[string]any{"password": "x"}}).ResourceSpec(); err == nil {
		t.Errorf("a password in config was accepted")
	}
	if _, err := (CacheSpec{Config: map[string]any{"bad": make(chan int)}}).ResourceSpec(); err == nil {
		t.Errorf("an unconvertible config value was accepted")
	}
	if p, err := Ref("orders_db").ResourceSpec(); err != nil || p.GetRef() != "orders_db" || p.GetType() != "" {
		t.Errorf("Ref = %v, %v", p, err)
	}
	if _, err := Ref("").ResourceSpec(); err == nil {
		t.Errorf("empty Ref accepted")
	}
}

func TestExecOptions(t *testing.T) {
	r, err := newExecRequest([]ExecOption{
		Params(map[string]any{"a": 1}), Param("b", "x"), Context(map[string]any{"user": "u"}),
		Resource("db", DatabaseSpec{Database: "d"}), Resources(map[string]*ResourceSpec{"c": {Ref: "cache"}}),
		Timeout(time.Second), Version(2), IdempotencyKey("k"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"a": 1.0, "b": "x"}, r.params.AsMap()); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if r.context.AsMap()["user"] != "u" || r.resources["db"].GetType() != "database" || r.resources["c"].GetRef() != "cache" ||
		r.timeout.AsDuration() != time.Second || r.cfg.version != 2 || r.cfg.idemKey != "k" {
		t.Errorf("request = %+v", r)
	}
	for _, bad := range [][]ExecOption{
		{Params(map[string]any{"f": func() {}})},
		{Timeout(-1)},
		{Version(-1)},
		{Resource("x", Ref(""))},
	} {
		if _, err := newExecRequest(bad); err == nil {
			t.Errorf("newExecRequest(%v) error = nil, want one", bad)
		}
	}
}

func TestIsLoopbackTarget(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:50051": true, "[::1]:50051": true, "localhost:50051": true, "unix:///run/kgw.sock": true,
		"dns:///localhost:50051": true, "passthrough:///127.0.0.2:1": true,
		"kgw.internal:443": false, "10.0.0.1:50051": false, "dns:///kgw:50051": false,
	} {
		if got := isLoopbackTarget(target); got != want {
			t.Errorf("isLoopbackTarget(%q) = %v, want %v", target, got, want)
		}
	}
}
