package otlpexport_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"

	"github.com/kailash-gateway/kgw/internal/otlpexport"
)

// capture is an OTLP transport client that keeps what it is asked to
// upload, marshalled at once (as the real clients marshal before they
// return): it stands between an exporter's conversion and the wire.
type capture struct {
	mu       sync.Mutex
	requests [][]byte
}

func (c *capture) Start(context.Context) error { return nil }
func (c *capture) Stop(context.Context) error  { return nil }
func (c *capture) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	b, err := proto.Marshal(&collectortrace.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.requests = append(c.requests, b)
	c.mu.Unlock()
	return nil
}

var _ otlptrace.Client = (*capture)(nil)

// exportBoth exports spans with the SDK's OTLP exporter and with ours and
// returns the requests each uploaded.
func exportBoth(t *testing.T, spans []sdktrace.ReadOnlySpan) (official, ours []*collectortrace.ExportTraceServiceRequest) {
	t.Helper()
	ctx := context.Background()
	var a, b capture
	sdkExp, err := otlptrace.New(ctx, &a)
	if err != nil {
		t.Fatal(err)
	}
	ourExp, err := otlpexport.New(ctx, &b)
	if err != nil {
		t.Fatal(err)
	}
	if err := sdkExp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := ourExp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	return decode(t, a.requests), decode(t, b.requests)
}

func decode(t *testing.T, raw [][]byte) []*collectortrace.ExportTraceServiceRequest {
	t.Helper()
	var out []*collectortrace.ExportTraceServiceRequest
	for _, b := range raw {
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			t.Fatal(err)
		}
		out = append(out, req)
	}
	return out
}

// canonical orders a request's resource spans by their resource (the SDK's
// exporter emits them in map order); scope spans and spans keep their
// order, which both exporters take from the batch.
func canonical(t *testing.T, req *collectortrace.ExportTraceServiceRequest) *collectortrace.ExportTraceServiceRequest {
	t.Helper()
	key := func(rs *tracepb.ResourceSpans) string {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rs.GetResource())
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\x00" + rs.GetSchemaUrl()
	}
	slices.SortStableFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	return req
}

func assertSame(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	official, ours := exportBoth(t, spans)
	if len(official) != len(ours) {
		t.Fatalf("the SDK's exporter sent %d requests, ours %d", len(official), len(ours))
	}
	for i := range official {
		a, b := canonical(t, official[i]), canonical(t, ours[i])
		if !proto.Equal(a, b) {
			t.Fatalf("request %d differs:\nSDK's: %v\nours:  %v", i, a, b)
		}
	}
}

func tid(b byte) trace.TraceID {
	return trace.TraceID{b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, b}
}
func sid(b byte) trace.SpanID { return trace.SpanID{b, 1, 2, 3, 4, 5, 6, b} }

// everyAttribute has one attribute of each type the SDK knows.
func everyAttribute(p string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(p+"s", "text ✓"),
		attribute.String(p+"empty", ""),
		attribute.Bool(p+"b", true),
		attribute.Bool(p+"f", false),
		attribute.Int(p+"i", -7),
		attribute.Int64(p+"i64", 1<<62),
		attribute.Float64(p+"d", 3.25),
		attribute.BoolSlice(p+"bs", []bool{true, false, true}),
		attribute.IntSlice(p+"is", []int{1, -2, 3}),
		attribute.Int64Slice(p+"i64s", []int64{4, 5}),
		attribute.Float64Slice(p+"ds", []float64{0.5, -1e300}),
		attribute.StringSlice(p+"ss", []string{"a", "", "c"}),
		attribute.StringSlice(p+"ss0", nil),
		attribute.ByteSlice(p+"bytes", []byte{0, 1, 255}),
		attribute.Slice(p+"mixed", attribute.StringValue("x"), attribute.Int64Value(2), attribute.SliceValue(attribute.BoolValue(true))),
		attribute.Map(p+"map", attribute.String("k", "v"), attribute.Map("inner", attribute.Float64("f", 1.5))),
		{Key: attribute.Key(p + "none")}, // EMPTY
	}
}

// TestExportMatchesOTLPTrace: for a batch with every attribute type,
// events, links, each status, kind, local and remote parents, trace
// state, dropped counts, three resources (two of them equal) and several
// scopes, what our exporter uploads is proto.Equal to what the SDK's OTLP
// exporter uploads; and for an empty batch (or one of nil spans) neither
// uploads anything.
func TestExportMatchesOTLPTrace(t *testing.T) {
	resA := resource.NewSchemaless(attribute.String("service.name", "a"), attribute.Int("n", 1), attribute.StringSlice("l", []string{"x"}))
	resA2 := resource.NewSchemaless(attribute.String("service.name", "a"), attribute.Int("n", 1), attribute.StringSlice("l", []string{"x"})) // equal, another pointer
	resB := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "b"))
	resEmpty := resource.Empty()
	scopes := []instrumentation.Scope{
		{Name: "github.com/kailash-gateway/kgw/executor"},
		{Name: "otelgrpc", Version: "0.72.0", SchemaURL: "https://opentelemetry.io/schemas/1.30.0", Attributes: attribute.NewSet(attribute.String("scope.attr", "v"), attribute.Bool("on", true))},
		{}, // no scope
	}
	ts, err := trace.ParseTraceState("vendor=abc,kgw=1")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 123456789, time.UTC)
	var stubs tracetest.SpanStubs
	for i := range 24 {
		b := byte(i + 1)
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(b), SpanID: sid(b), TraceFlags: trace.TraceFlags(i % 2)})
		if i%3 == 0 {
			sc = sc.WithTraceState(ts)
		}
		var parent trace.SpanContext
		switch i % 3 {
		case 1:
			parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(b), SpanID: sid(b + 100), TraceFlags: trace.FlagsSampled})
		case 2:
			parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(b), SpanID: sid(b + 100), TraceFlags: trace.FlagsSampled, Remote: true})
		}
		st := sdktrace.Status{}
		switch i % 4 {
		case 1:
			st = sdktrace.Status{Code: codes.Ok}
		case 2:
			st = sdktrace.Status{Code: codes.Error, Description: "node failed: INTERNAL"}
		case 3:
			st = sdktrace.Status{Code: codes.Error}
		}
		res := []*resource.Resource{resA, resA2, resB, resEmpty}[i%4]
		s := tracetest.SpanStub{
			Name:                 fmt.Sprintf("span %d", i),
			SpanContext:          sc,
			Parent:               parent,
			SpanKind:             trace.SpanKind(i % 7), // unspecified through consumer, and one out of range
			StartTime:            t0.Add(time.Duration(i) * time.Millisecond),
			EndTime:              t0.Add(time.Duration(i)*time.Millisecond + 1500*time.Microsecond),
			Status:               st,
			DroppedAttributes:    i % 2,
			DroppedEvents:        i % 5,
			DroppedLinks:         i % 3,
			Resource:             res,
			InstrumentationScope: scopes[(i/4)%len(scopes)],
		}
		if i%2 == 0 {
			s.Attributes = everyAttribute("")
		} else {
			s.Attributes = []attribute.KeyValue{attribute.String("kgw.execution_id", fmt.Sprint(i)), attribute.Int("kgw.attempt", i)}
		}
		if i%3 != 1 {
			s.Events = []sdktrace.Event{
				{Name: "exception", Time: t0.Add(time.Millisecond), Attributes: everyAttribute("ev."), DroppedAttributeCount: 2},
				{Name: "bare", Time: t0},
			}
		}
		if i%4 != 3 {
			s.Links = []sdktrace.Link{
				{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(b + 50), SpanID: sid(b + 50), TraceFlags: trace.FlagsSampled, Remote: true, TraceState: ts}), Attributes: everyAttribute("link."), DroppedAttributeCount: 1},
				{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid(b + 60), SpanID: sid(b + 60)})},
			}
		}
		if i == 5 {
			s.StartTime, s.EndTime = time.Time{}, time.Time{} // before 1970: the SDK's exporter writes 0
		}
		if i == 7 {
			s.DroppedAttributes = 1 << 40 // beyond uint32
		}
		stubs = append(stubs, s)
	}
	spans := stubs.Snapshots()
	assertSame(t, spans)
	// Nil spans among them are skipped.
	assertSame(t, append([]sdktrace.ReadOnlySpan{nil}, append(spans[:3:3], nil)...))
	// One span.
	assertSame(t, spans[4:5])

	for _, batch := range [][]sdktrace.ReadOnlySpan{nil, {}, {nil, nil}} {
		official, ours := exportBoth(t, batch)
		if len(official) != 0 || len(ours) != 0 {
			t.Errorf("batch %v: %d and %d requests, want none", batch, len(official), len(ours))
		}
	}
}

// TestExportMatchesOTLPTraceRandom: random batches of up to 2000 spans
// (more than a slab is sized for when slices and maps nest, so the slabs
// grow) convert as the SDK's exporter converts them.
func TestExportMatchesOTLPTraceRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2026))
	resources := []*resource.Resource{
		resource.NewSchemaless(attribute.String("service.name", "kgw")),
		resource.NewSchemaless(attribute.String("service.name", "other"), attribute.Bool("x", true)),
	}
	val := func(depth int) attribute.Value {
		switch rng.IntN(9) {
		case 0:
			return attribute.StringValue(fmt.Sprint(rng.Int()))
		case 1:
			return attribute.Int64Value(rng.Int64())
		case 2:
			return attribute.BoolValue(rng.IntN(2) == 0)
		case 3:
			return attribute.Float64Value(rng.NormFloat64())
		case 4:
			return attribute.StringSliceValue(make([]string, rng.IntN(4)))
		case 5:
			return attribute.Int64SliceValue(make([]int64, rng.IntN(4)))
		case 6:
			if depth < 2 {
				return attribute.SliceValue(attribute.StringValue("a"), attribute.MapValue(attribute.Int("z", depth)))
			}
			return attribute.Float64SliceValue([]float64{1, 2})
		case 7:
			return attribute.BoolSliceValue([]bool{true})
		}
		return attribute.ByteSliceValue([]byte{byte(depth)})
	}
	for round := range 6 {
		n := rng.IntN(2000)
		stubs := make(tracetest.SpanStubs, n)
		for i := range stubs {
			attrs := make([]attribute.KeyValue, rng.IntN(20))
			for j := range attrs {
				attrs[j] = attribute.KeyValue{Key: attribute.Key(fmt.Sprint("k", j)), Value: val(0)}
			}
			var id [16]byte
			for j := range id {
				id[j] = byte(rng.IntN(256))
			}
			stubs[i] = tracetest.SpanStub{
				Name:                 fmt.Sprint("s", i),
				SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: id, SpanID: trace.SpanID(id[8:]), TraceFlags: trace.FlagsSampled}),
				StartTime:            time.Unix(0, rng.Int64()),
				EndTime:              time.Unix(0, rng.Int64()),
				Attributes:           attrs,
				Resource:             resources[rng.IntN(len(resources))],
				InstrumentationScope: instrumentation.Scope{Name: fmt.Sprint("scope", rng.IntN(5))},
			}
			if rng.IntN(3) == 0 {
				stubs[i].Events = []sdktrace.Event{{Name: "e", Attributes: attrs[:len(attrs)/2]}}
			}
		}
		t.Run(fmt.Sprint(round), func(t *testing.T) { assertSame(t, stubs.Snapshots()) })
	}
}

// gatewayBatch is a batch shaped like the gateway's sampled no-op calls:
// per call the otelgrpc server span, the Execution span and the RunNode
// span with their attributes.
func gatewayBatch(calls int) []sdktrace.ReadOnlySpan {
	res := resource.NewSchemaless(attribute.String("service.name", "kgw"), attribute.String("telemetry.sdk.language", "go"))
	grpcScope := instrumentation.Scope{Name: "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc", Version: "0.72.0"}
	execScope := instrumentation.Scope{Name: "github.com/kailash-gateway/kgw/executor"}
	var stubs tracetest.SpanStubs
	t0 := time.Now()
	for i := range calls {
		tr := tid(byte(i))
		sc := func(b byte) trace.SpanContext {
			return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tr, SpanID: sid(b), TraceFlags: trace.FlagsSampled})
		}
		stubs = append(stubs,
			tracetest.SpanStub{Name: "RunNode noop/n", SpanContext: sc(3), Parent: sc(2), SpanKind: trace.SpanKindInternal, StartTime: t0, EndTime: t0, Resource: res, InstrumentationScope: execScope,
				Attributes: []attribute.KeyValue{attribute.String("kgw.execution_id", "01JEXAMPLE0000000000000000"), attribute.String("kgw.node", "n"), attribute.Int("kgw.attempt", 1), attribute.String("kgw.outcome", "completed")}},
			tracetest.SpanStub{Name: "Execution noop", SpanContext: sc(2), Parent: sc(1), SpanKind: trace.SpanKindInternal, StartTime: t0, EndTime: t0, Resource: res, InstrumentationScope: execScope,
				Attributes: []attribute.KeyValue{attribute.String("kgw.execution_id", "01JEXAMPLE0000000000000000"), attribute.String("kgw.workflow", "noop"), attribute.Int("kgw.workflow_version", 1), attribute.String("kgw.status", "completed")}},
			tracetest.SpanStub{Name: "kgw.v1.ExecutionService/ExecuteWorkflow", SpanContext: sc(1), SpanKind: trace.SpanKindServer, StartTime: t0, EndTime: t0, Resource: res, InstrumentationScope: grpcScope,
				Attributes: []attribute.KeyValue{attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", "kgw.v1.ExecutionService"), attribute.String("rpc.method", "ExecuteWorkflow"),
					attribute.String("network.peer.address", "127.0.0.1"), attribute.Int("network.peer.port", 40000+i), attribute.Int("rpc.grpc.status_code", 0)}},
		)
	}
	return stubs.Snapshots()
}

// TestConvertAllocations: a batch of the gateway's spans (512, the batch
// processor's default batch size) is converted in a fixed handful of
// allocations, where the SDK's exporter makes about 20 per span. This is
// the gain that the package's comment reports; it fails if the slabs stop
// being shared.
func TestConvertAllocations(t *testing.T) {
	batch := gatewayBatch(512 / 3)
	allocs := testing.AllocsPerRun(20, func() { otlpexport.Convert(batch) })
	if allocs > 40 {
		t.Errorf("Convert of %d spans: %.0f allocations, want at most 40", len(batch), allocs)
	}
	t.Logf("Convert of %d spans: %.0f allocations", len(batch), allocs)
}

// BenchmarkConvert compares the conversion of a batch of the gateway's
// spans by the SDK's exporter (through a client that drops what it gets)
// with ours.
func BenchmarkConvert(b *testing.B) {
	batch := gatewayBatch(512 / 3)
	ctx := context.Background()
	for _, side := range []string{"otlptrace", "otlpexport"} {
		b.Run(side, func(b *testing.B) {
			var exp sdktrace.SpanExporter
			if side == "otlptrace" {
				exp, _ = otlptrace.New(ctx, discard{})
			} else {
				exp, _ = otlpexport.New(ctx, discard{})
			}
			b.ReportAllocs()
			for b.Loop() {
				exp.ExportSpans(ctx, batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
		})
	}
}

type discard struct{}

func (discard) Start(context.Context) error                                  { return nil }
func (discard) Stop(context.Context) error                                   { return nil }
func (discard) UploadTraces(context.Context, []*tracepb.ResourceSpans) error { return nil }

// receiver is an OTLP trace receiver on loopback, over gRPC and over
// HTTP, that keeps the requests and the metadata or headers they came
// with.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	got      []*collectortrace.ExportTraceServiceRequest
	headers  []map[string]string
	grpcAddr string
	httpAddr string
}

func (r *receiver) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := map[string]string{}
	for k, v := range md {
		h[k] = v[0]
	}
	if c, ok := ctx.Value(compressionKey{}).(*string); ok {
		h["compression"] = *c
	}
	r.keep(req, h)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *receiver) keep(req *collectortrace.ExportTraceServiceRequest, h map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	r.headers = append(r.headers, h)
}

// compressionSeen is a gRPC stats handler that puts the compression of a
// call's request, as the server's transport read it, in the call's
// context (under compressionKey).
type compressionSeen struct{}

type compressionKey struct{}

func (compressionSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionSeen) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if c, ok := ctx.Value(compressionKey{}).(*string); ok {
			*c = h.Compression
		}
	}
}

func (compressionSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionSeen) HandleConn(context.Context, stats.ConnStats) {}

func startReceiver(t *testing.T) *receiver {
	r := &receiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.StatsHandler(compressionSeen{}))
	collectortrace.RegisterTraceServiceServer(gs, r)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	r.grpcAddr = lis.Addr().String()
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		m := &collectortrace.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(raw, m)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := map[string]string{"path": req.URL.Path}
		for k := range req.Header {
			h[http.CanonicalHeaderKey(k)] = req.Header.Get(k)
		}
		r.keep(m, h)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})}
	go hs.Serve(hlis)
	t.Cleanup(func() { hs.Close() })
	r.httpAddr = hlis.Addr().String()
	return r
}

// TestExporterTransportFromEnvironment: our exporter sends through the
// SDK's transport clients as configured by the standard variables alone —
// endpoint, headers, compression and the insecure flag, over gRPC and over
// HTTP/protobuf (with a traces-specific endpoint path) — and what reaches
// a receiver on loopback is what the SDK's exporter sends.
func TestExporterTransportFromEnvironment(t *testing.T) {
	spans := gatewayBatch(4)
	r := startReceiver(t)

	t.Run("grpc", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+r.grpcAddr)
		t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-kgw-test=grpc%20header")
		t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
		sendBoth(t, r, spans, func() otlptrace.Client { return otlptracegrpc.NewClient() }, func(h map[string]string) error {
			if h["x-kgw-test"] != "grpc header" || h["compression"] != "gzip" {
				return fmt.Errorf("metadata %v: want x-kgw-test and gzip encoding", h)
			}
			return nil
		})
	})
	t.Run("http/protobuf", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+r.httpAddr+"/custom/traces")
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "X-Kgw-Test=http")
		t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
		sendBoth(t, r, spans, func() otlptrace.Client { return otlptracehttp.NewClient() }, func(h map[string]string) error {
			if h["path"] != "/custom/traces" || h["X-Kgw-Test"] != "http" || h["Content-Encoding"] != "gzip" {
				return fmt.Errorf("request %v: want path /custom/traces, X-Kgw-Test and gzip", h)
			}
			return nil
		})
	})
}

// sendBoth exports spans with the SDK's exporter and ours, each on a
// client made by newClient, and checks what the receiver got from each.
func sendBoth(t *testing.T, r *receiver, spans []sdktrace.ReadOnlySpan, newClient func() otlptrace.Client, check func(map[string]string) error) {
	t.Helper()
	ctx := context.Background()
	r.mu.Lock()
	r.got, r.headers = nil, nil
	r.mu.Unlock()
	sdkExp, err := otlptrace.New(ctx, newClient())
	if err != nil {
		t.Fatal(err)
	}
	defer sdkExp.Shutdown(ctx)
	ourExp, err := otlpexport.New(ctx, newClient())
	if err != nil {
		t.Fatal(err)
	}
	if err := sdkExp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := ourExp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := ourExp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ourExp.ExportSpans(ctx, spans); err == nil {
		t.Error("ExportSpans after Shutdown: no error")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != 2 {
		t.Fatalf("the receiver got %d requests, want 2", len(r.got))
	}
	for _, h := range r.headers {
		if err := check(h); err != nil {
			t.Error(err)
		}
	}
	a, b := canonical(t, r.got[0]), canonical(t, r.got[1])
	if !proto.Equal(a, b) {
		t.Errorf("the receiver got from the SDK's exporter:\n%v\nand from ours:\n%v", a, b)
	}
	if n := len(b.GetResourceSpans()[0].GetScopeSpans()); n != 2 {
		t.Errorf("%d scope spans, want 2", n)
	}
}
