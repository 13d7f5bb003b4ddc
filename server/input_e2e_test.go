package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/server"
)

// Reusing an idempotency key with the same request attaches to the first
// execution; with any field of the request different it is refused with
// FAILED_PRECONDITION naming the key, on every RPC that starts executions.
func TestIdempotencyKeyReuse(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	s.register(t, pipeline("pipe")) // version 2
	s.register(t, pipeline("other"))
	ctx := t.Context()
	base := func() *kgwv1.ExecuteWorkflowRequest {
		return &kgwv1.ExecuteWorkflowRequest{
			Workflow:       "pipe",
			Parameters:     params(t, map[string]any{"n": 2, "tags": []any{"a", "b"}}),
			Context:        params(t, map[string]any{"tenant": "t1"}),
			Timeout:        durationpb.New(time.Minute),
			IdempotencyKey: "order-42",
		}
	}
	first, err := s.ex.ExecuteWorkflow(ctx, base())
	if err != nil {
		t.Fatal(err)
	}
	id := first.GetExecution().GetId()
	again, err := s.ex.ExecuteWorkflow(ctx, base())
	if err != nil || again.GetExecution().GetId() != id {
		t.Fatalf("same request again = %v, %v; want execution %s", again.GetExecution().GetId(), err, id)
	}
	// Map order and an equal Struct built another way do not matter.
	same := base()
	same.Parameters = params(t, map[string]any{"tags": []any{"a", "b"}, "n": 2.0})
	if r, err := s.ex.ExecuteWorkflow(ctx, same); err != nil || r.GetExecution().GetId() != id {
		t.Fatalf("equal request = %v, %v; want execution %s", r.GetExecution().GetId(), err, id)
	}
	if r, err := s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "pipe", Parameters: base().Parameters,
		Context: base().Context, Timeout: base().Timeout, IdempotencyKey: "order-42"}); err != nil || r.GetExecutionId() != id {
		t.Fatalf("StartExecution with the same request = %v, %v; want %s", r.GetExecutionId(), err, id)
	}

	cache := &kgwv1.ResourceSpec{Type: "cache", Config: params(t, map[string]any{"host": "127.0.0.1", "port": 6379})}
	tests := []struct {
		name   string
		change func(r *kgwv1.ExecuteWorkflowRequest)
	}{
		{"other workflow", func(r *kgwv1.ExecuteWorkflowRequest) { r.Workflow = "other" }},
		{"version as written", func(r *kgwv1.ExecuteWorkflowRequest) { r.Version = 2 }},
		{"other parameter value", func(r *kgwv1.ExecuteWorkflowRequest) {
			r.Parameters = params(t, map[string]any{"n": 3, "tags": []any{"a", "b"}})
		}},
		{"list order", func(r *kgwv1.ExecuteWorkflowRequest) {
			r.Parameters = params(t, map[string]any{"n": 2, "tags": []any{"b", "a"}})
		}},
		{"no parameters", func(r *kgwv1.ExecuteWorkflowRequest) { r.Parameters = nil }},
		{"other context", func(r *kgwv1.ExecuteWorkflowRequest) { r.Context = params(t, map[string]any{"tenant": "t2"}) }},
		{"with a resource", func(r *kgwv1.ExecuteWorkflowRequest) {
			r.Resources = map[string]*kgwv1.ResourceSpec{"cache": cache}
		}},
		{"other timeout", func(r *kgwv1.ExecuteWorkflowRequest) { r.Timeout = durationpb.New(2 * time.Minute) }},
		{"no timeout", func(r *kgwv1.ExecuteWorkflowRequest) { r.Timeout = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := base()
			tt.change(req)
			wantReusedEverywhere(t, s, req, id)
		})
	}

	// A different key runs the different request.
	other := base()
	other.IdempotencyKey, other.Parameters = "order-43", params(t, map[string]any{"n": 3})
	if r, err := s.ex.ExecuteWorkflow(ctx, other); err != nil || r.GetExecution().GetId() == id {
		t.Fatalf("new key = %v, %v; want a new execution", r.GetExecution().GetId(), err)
	}
}

// wantReusedEverywhere sends req, whose idempotency key execution id
// already holds for another request, through each RPC that starts
// executions, and checks each is refused (wantReused).
func wantReusedEverywhere(t *testing.T, s *stack, req *kgwv1.ExecuteWorkflowRequest, id string) {
	t.Helper()
	ctx := t.Context()
	key := req.IdempotencyKey
	_, err := s.ex.ExecuteWorkflow(ctx, req)
	wantReused(t, "ExecuteWorkflow", err, key, id)
	_, err = s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: req.Workflow, Version: req.Version,
		Parameters: req.Parameters, Context: req.Context, Resources: req.Resources, Timeout: req.Timeout,
		IdempotencyKey: key})
	wantReused(t, "StartExecution", err, key, id)
	stream, err := s.ex.StreamExecution(ctx, &kgwv1.StreamExecutionRequest{Workflow: req.Workflow, Version: req.Version,
		Parameters: req.Parameters, Context: req.Context, Resources: req.Resources, Timeout: req.Timeout,
		IdempotencyKey: key})
	if err == nil {
		_, err = stream.Recv()
	}
	wantReused(t, "StreamExecution", err, key, id)
}

func wantReused(t *testing.T, rpc string, err error, key, id string) {
	t.Helper()
	code, info, _ := details(t, err)
	if code != codes.FailedPrecondition || info.GetReason() != server.ReasonIdempotencyKeyReused {
		t.Fatalf("%s = %v, want FAILED_PRECONDITION %s", rpc, err, server.ReasonIdempotencyKeyReused)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, `"`+key+`"`) || !strings.Contains(msg, id) {
		t.Errorf("%s message %q does not name key %q and execution %s", rpc, msg, key, id)
	}
	if info.GetMetadata()["idempotency_key"] != key || info.GetMetadata()["execution_id"] != id {
		t.Errorf("%s ErrorInfo metadata = %v", rpc, info.GetMetadata())
	}
}

// nested returns a Struct nested depth levels deep (the top Struct is level
// 1), alternating Structs and lists.
func nested(depth int) *structpb.Struct {
	v := structpb.NewStringValue("leaf")
	for d := depth; d > 1; d-- {
		if d%2 == 0 {
			v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
		} else {
			v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"k": v}})
		}
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{"top": v}}
}

// Values nested deeper than 64 levels are INVALID_ARGUMENT with a field
// violation in every Struct-carrying field of every RPC; 64 levels pass.
func TestNestingLimit(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, &kgwv1.Workflow{Name: "echo", Nodes: []*kgwv1.Node{{Id: "n", Code: `result = {"ok": True}`}}})
	ctx := t.Context()
	cacheSpec := func(depth int) *kgwv1.ResourceSpec {
		return &kgwv1.ResourceSpec{Type: "cache", Config: nested(depth)}
	}
	calls := []struct {
		name  string
		field string
		call  func(depth int) error
	}{
		{"ExecuteWorkflow parameters", "parameters", func(d int) error {
			_, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "echo", Parameters: nested(d)})
			return err
		}},
		{"ExecuteWorkflow context", "context", func(d int) error {
			_, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "echo", Context: nested(d)})
			return err
		}},
		{"StartExecution parameters", "parameters", func(d int) error {
			_, err := s.ex.StartExecution(ctx, &kgwv1.StartExecutionRequest{Workflow: "echo", Parameters: nested(d)})
			return err
		}},
		{"StreamExecution context", "context", func(d int) error {
			stream, err := s.ex.StreamExecution(ctx, &kgwv1.StreamExecutionRequest{Workflow: "echo", Context: nested(d)})
			if err != nil {
				return err
			}
			for {
				ev, err := stream.Recv()
				if err != nil || ev.GetEvent().GetExecutionCompleted() != nil || ev.GetEvent().GetExecutionFailed() != nil {
					return err
				}
			}
		}},
		{"ExecuteWorkflow resource config", `resources["cache"].config`, func(d int) error {
			_, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "echo",
				Resources: map[string]*kgwv1.ResourceSpec{"cache": cacheSpec(d)}})
			return err
		}},
		{"PutResource config", "spec.config", func(d int) error {
			_, err := s.res.PutResource(ctx, &kgwv1.PutResourceRequest{Name: "deep", Spec: cacheSpec(d)})
			return err
		}},
		{"CheckResource spec config", "spec.config", func(d int) error {
			_, err := s.res.CheckResource(ctx, &kgwv1.CheckResourceRequest{Target: &kgwv1.CheckResourceRequest_Spec{Spec: cacheSpec(d)}})
			return err
		}},
		{"StoreSecret value", "value", func(d int) error {
			_, err := s.sec.StoreSecret(ctx, &kgwv1.StoreSecretRequest{Name: "deep", Value: nested(d)})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) { checkNestingRefused(t, c.field, c.call) })
	}
	// Deeper than the protobuf decoder accepts at all (10,000 messages
	// inside one another): still INVALID_ARGUMENT, from the codec.
	for _, depth := range []int{5000, 20000} {
		_, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "echo", Parameters: nested(depth)})
		code, _, br := details(t, err)
		if code != codes.InvalidArgument || len(br.GetFieldViolations()) != 1 ||
			!strings.Contains(br.GetFieldViolations()[0].GetDescription(), "nested too deeply") {
			t.Errorf("%d levels: %v, want INVALID_ARGUMENT saying nested too deeply", depth, err)
		}
	}
}

// checkNestingRefused: call with a value nested deeper than 64 levels is
// INVALID_ARGUMENT with a violation on field saying so; 64 levels are not
// refused for their depth.
func checkNestingRefused(t *testing.T, field string, call func(depth int) error) {
	for _, depth := range []int{65, 200, 1500} {
		err := call(depth)
		code, info, br := details(t, err)
		if code != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest {
			t.Fatalf("depth %d: %v, want INVALID_ARGUMENT", depth, err)
		}
		found := false
		for _, v := range br.GetFieldViolations() {
			if v.GetField() == field && strings.Contains(v.GetDescription(), "nested deeper than 64 levels") {
				found = true
			}
		}
		if !found {
			t.Errorf("depth %d: violations %v, want one on %s saying nested deeper than 64 levels", depth, br.GetFieldViolations(), field)
		}
	}
	// 64 levels is not refused for its depth (a cache config that
	// deep may still be refused for its keys).
	if err := call(64); err != nil {
		_, _, br := details(t, err)
		for _, v := range br.GetFieldViolations() {
			if strings.Contains(v.GetDescription(), "nested deeper") {
				t.Errorf("depth 64 refused for its depth: %v", v)
			}
		}
		if status.Code(err) == codes.Internal {
			t.Errorf("depth 64: %v", err)
		}
	}
}

// rawCodec sends and receives bytes as they are, so a test can send what
// no protobuf library would encode.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*(v.(*[]byte)))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = rawCodec{}

// str encodes a string field with any bytes.
func str(num protowire.Number, b string) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), []byte(b))
}

// msg encodes an embedded message field.
func msg(num protowire.Number, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), body)
}

// Requests that are not valid protobuf, or carry invalid UTF-8 in any
// string field (top level, in a map key or value, inside a Struct), are
// INVALID_ARGUMENT naming the field, never INTERNAL, on unary and
// streaming RPCs; the server keeps serving.
func TestUndecodableRequests(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	conn := s.dial(t, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	ctx := t.Context()
	bad := "\xff\xfe"
	tests := []struct {
		name   string
		method string
		body   []byte
		stream bool
		field  string // "" = the whole message
	}{
		{"workflow name", "/kgw.v1.ExecutionService/ExecuteWorkflow", str(1, "pi"+bad), false, "workflow"},
		{"idempotency key", "/kgw.v1.ExecutionService/StartExecution", append(str(1, "pipe"), str(7, bad)...), false, "idempotency_key"},
		// parameters (3) → fields map entry (1) → key (1)
		{"parameter name", "/kgw.v1.ExecutionService/ExecuteWorkflow",
			append(str(1, "pipe"), msg(3, msg(1, str(1, "n"+bad)))...), false, "parameters.fields.key"},
		// parameters → fields entry → value (2) → string_value (3)
		{"parameter string value", "/kgw.v1.ExecutionService/ExecuteWorkflow",
			append(str(1, "pipe"), msg(3, msg(1, str(1, "n"), msg(2, str(3, bad))))...), false, "parameters.fields.value.string_value"},
		// resources (4) map entry → value (2) → type (1)
		{"resource type", "/kgw.v1.ExecutionService/ExecuteWorkflow",
			append(str(1, "pipe"), msg(4, str(1, "db"), msg(2, str(1, bad)))...), false, "resources.value.type"},
		{"watch execution id", "/kgw.v1.ExecutionService/WatchExecution", str(1, bad), true, "execution_id"},
		{"stream workflow", "/kgw.v1.ExecutionService/StreamExecution", str(1, bad), true, "workflow"},
		{"register workflow node code", "/kgw.v1.WorkflowService/RegisterWorkflow",
			msg(1, str(1, "w"), msg(4, str(1, "n"), str(2, "x = '"+bad+"'"))), false, "workflow.nodes.code"},
		{"secret name", "/kgw.v1.SecretService/StoreSecret", str(1, bad), false, "name"},
		{"garbage", "/kgw.v1.ExecutionService/GetExecution", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false, ""},
		{"truncated", "/kgw.v1.ExecutionService/ExecuteWorkflow", str(1, "pipeline")[:5], false, ""},
		{"field number 0", "/kgw.v1.ExecutionService/GetExecution", []byte{0x00, 0x01}, false, ""},
		{"length past the end", "/kgw.v1.SecretService/StoreSecret", []byte{0x0a, 0x7f, 'x'}, false, ""},
		{"garbage on a stream", "/kgw.v1.ExecutionService/WatchExecution", []byte{0x0a, 0x80}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := invokeRaw(ctx, conn, tt.method, tt.body, tt.stream)
			code, info, br := details(t, err)
			if code != codes.InvalidArgument || info.GetReason() != server.ReasonInvalidRequest {
				t.Fatalf("%s = %v, want INVALID_ARGUMENT %s", tt.method, err, server.ReasonInvalidRequest)
			}
			vs := br.GetFieldViolations()
			if len(vs) != 1 {
				t.Fatalf("violations = %v, want one", vs)
			}
			if tt.field != "" && (vs[0].GetField() != tt.field || !strings.Contains(vs[0].GetDescription(), "invalid UTF-8")) {
				t.Errorf("violation = %v, want invalid UTF-8 in %s", vs[0], tt.field)
			}
			if tt.field == "" && !strings.Contains(vs[0].GetDescription(), "not a valid kgw.v1.") {
				t.Errorf("violation = %v, want one saying the message is not valid", vs[0])
			}
		})
	}

	// A client cannot forge the codec's mark: an unknown field with its
	// number is ignored like any unknown field.
	forged := append(str(1, "pipe"), str(protowire.MaxValidNumber, "workflow\x00forged")...)
	var out []byte
	if err := conn.Invoke(ctx, "/kgw.v1.ExecutionService/StartExecution", &forged, &out); err != nil {
		t.Errorf("request with the mark's field number = %v, want it to run", err)
	}
	// The server still serves well-formed requests.
	if _, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Parameters: params(t, map[string]any{"n": 1})}); err != nil {
		t.Fatalf("ExecuteWorkflow after the bad requests: %v", err)
	}
}

// invokeRaw calls method with the raw message body (conn uses rawCodec):
// a unary call, or a server stream whose first message it receives. It
// returns the call's error.
func invokeRaw(ctx context.Context, conn *grpc.ClientConn, method string, body []byte, stream bool) error {
	if !stream {
		var out []byte
		return conn.Invoke(ctx, method, &body, &out)
	}
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(&body); err != nil {
		return err
	}
	_ = cs.CloseSend()
	var out []byte
	return cs.RecvMsg(&out)
}

// A message above the receive limit is RESOURCE_EXHAUSTED, not INTERNAL.
func TestOversizedRequest(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.register(t, pipeline("pipe"))
	big := params(t, map[string]any{"blob": strings.Repeat("x", server.DefaultMaxRecvMsgSize+1)})
	_, err := s.ex.ExecuteWorkflow(t.Context(), &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Parameters: big},
		grpc.MaxCallSendMsgSize(64<<20))
	if code := status.Code(err); code != codes.ResourceExhausted {
		t.Fatalf("ExecuteWorkflow of %d bytes = %v, want RESOURCE_EXHAUSTED", proto.Size(big), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.ex.ExecuteWorkflow(ctx, &kgwv1.ExecuteWorkflowRequest{Workflow: "pipe", Parameters: params(t, map[string]any{"n": 1})}); err != nil {
		t.Fatalf("ExecuteWorkflow after it: %v", err)
	}
}
