// Package otlpexport is the gateway's OpenTelemetry span exporter: it
// converts a batch of ended spans into OTLP protobuf messages and hands
// them to one of the SDK's own OTLP transport clients (otlptracegrpc or
// otlptracehttp NewClient), which marshal and send them. Transport, and
// with it every OTEL_EXPORTER_OTLP_* variable (endpoint, protocol,
// headers, timeout, compression, TLS, certificates, retries), stays the
// SDK's code; only the conversion is ours.
//
// The conversion is the SDK exporter's (otlptrace) message for message —
// TestExportMatchesOTLPTrace holds it to proto.Equal against what the
// official exporter sends — but it allocates the messages of a whole
// batch in a few slabs (spans, statuses, attributes and their values, the
// oneof wrappers, ids) instead of one allocation per message, field and id,
// and converts each resource and instrumentation scope once per batch.
// The SDK exporter made 68 of the 123 allocations that a sampled no-op
// call adds to one without tracing (three spans, 13 attributes).
//
// Measured gain (BenchmarkTracingOverhead, always_on against base, CPU
// per call; the figures are in docs/performance.md, "Third pass"): see
// Exporter.
package otlpexport

import (
	"context"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Exporter is an sdktrace.SpanExporter that sends spans through an OTLP
// transport client. Its conversion is the speed machinery of this
// package: GAIN_PLACEHOLDER
type Exporter struct {
	client   otlptrace.Client
	stopOnce sync.Once
	stopErr  error
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// New starts client (the gRPC client dials, lazily) and returns an
// exporter that uploads through it.
func New(ctx context.Context, client otlptrace.Client) (*Exporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &Exporter{client: client}, nil
}

// ExportSpans converts spans and uploads them in one request; an empty
// batch sends nothing.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	rs := Convert(spans)
	if len(rs) == 0 {
		return nil
	}
	if err := e.client.UploadTraces(ctx, rs); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// Shutdown stops the client (once; later calls return the first result).
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.client.Stop(ctx) })
	return e.stopErr
}

// Convert returns spans as OTLP resource spans: one per distinct resource,
// in the order first seen, each with one scope spans per instrumentation
// scope, in the order first seen, holding its spans in batch order. Nil
// spans are skipped; no span gives nil. The messages share slabs: they
// are to be marshalled and dropped, not kept or changed piecemeal.
func Convert(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	var c converter
	return c.convert(spans)
}

// group is the spans of one resource and scope.
type group struct {
	res      *resource.Resource
	resKey   attribute.Distinct
	scope    instrumentation.Scope
	n        int // spans
	ss       *tracepb.ScopeSpans
	resIndex int // into converter.out
}

// A slab hands out T values and slices of them from chunks allocated in
// one piece: the first of size (set to what the batch is counted to
// need), later ones (for the elements of slice and map attributes, which
// are not counted) of 64 or what is asked.
type slab[T any] struct {
	buf  []T
	size int
}

func (s *slab[T]) one() *T { return &s.many(1)[0] }

// many returns n fresh zero values, capped at n so that appending to the
// slice never overwrites a neighbour's.
func (s *slab[T]) many(n int) []T {
	if n > len(s.buf) {
		s.buf = make([]T, max(n, s.size, 16))
		s.size = 64
	}
	v := s.buf[:n:n]
	s.buf = s.buf[n:]
	return v
}

// converter holds the slabs of one batch.
type converter struct {
	out []*tracepb.ResourceSpans

	spans      slab[tracepb.Span]
	spanPtrs   slab[*tracepb.Span]
	statuses   slab[tracepb.Status]
	events     slab[tracepb.Span_Event]
	eventPtrs  slab[*tracepb.Span_Event]
	links      slab[tracepb.Span_Link]
	linkPtrs   slab[*tracepb.Span_Link]
	kvs        slab[commonpb.KeyValue]
	kvPtrs     slab[*commonpb.KeyValue]
	anys       slab[commonpb.AnyValue]
	anyPtrs    slab[*commonpb.AnyValue]
	strs       slab[commonpb.AnyValue_StringValue]
	ints       slab[commonpb.AnyValue_IntValue]
	bools      slab[commonpb.AnyValue_BoolValue]
	doubles    slab[commonpb.AnyValue_DoubleValue]
	ids        slab[byte]
	scopeSpans slab[tracepb.ScopeSpans]
}

func (c *converter) convert(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	// First pass: the groups, each span's group, and what the batch needs.
	var (
		groups []group
		last   = -1
		of     = make([]int32, len(spans))
		n      counts
	)
	for i, sd := range spans {
		if sd == nil {
			of[i] = -1
			continue
		}
		res, scope := sd.Resource(), sd.InstrumentationScope()
		g := last
		if g < 0 || !groups[g].is(res, scope) {
			g = -1
			for j := range groups {
				if groups[j].is(res, scope) {
					g = j
					break
				}
			}
			if g < 0 {
				g = len(groups)
				groups = append(groups, group{res: res, resKey: res.Equivalent(), scope: scope})
				n.set(res.Set())
				n.set(&scope.Attributes)
			}
			last = g
		}
		groups[g].n++
		of[i] = int32(g)
		n.span(sd)
	}
	if n.spans == 0 {
		return nil
	}
	c.spans.size, c.spanPtrs.size, c.statuses.size = n.spans, n.spans, n.spans
	c.events.size, c.eventPtrs.size = n.events, n.events
	c.links.size, c.linkPtrs.size = n.links, n.links
	c.kvs.size, c.kvPtrs.size, c.anys.size = n.attrs, n.attrs, n.attrs
	c.strs.size, c.ints.size, c.bools.size, c.doubles.size = n.strs, n.ints, n.bools, n.doubles
	c.ids.size = n.ids
	c.scopeSpans.size = len(groups)

	// The resource and scope messages, once each.
	for i := range groups {
		g := &groups[i]
		g.resIndex = -1
		for j := range groups[:i] {
			if groups[j].resKey == g.resKey {
				g.resIndex = groups[j].resIndex
				break
			}
		}
		if g.resIndex < 0 {
			g.resIndex = len(c.out)
			c.out = append(c.out, &tracepb.ResourceSpans{Resource: c.resource(g.res), SchemaUrl: g.res.SchemaURL()})
		}
		g.ss = c.scopeSpans.one()
		g.ss.Scope = c.scopeMsg(g.scope)
		g.ss.SchemaUrl = g.scope.SchemaURL
		g.ss.Spans = c.spanPtrs.many(g.n)[:0]
		rs := c.out[g.resIndex]
		rs.ScopeSpans = append(rs.ScopeSpans, g.ss)
	}

	// Second pass: the spans.
	for i, sd := range spans {
		if of[i] < 0 {
			continue
		}
		ss := groups[of[i]].ss
		ss.Spans = append(ss.Spans, c.span(sd))
	}
	return c.out
}

// is reports whether a span of res and scope belongs to g (the SDK's
// exporter groups by the resource's attribute set and the scope).
func (g *group) is(res *resource.Resource, scope instrumentation.Scope) bool {
	if g.scope != scope {
		return false
	}
	return g.res == res || g.resKey == res.Equivalent()
}

// counts is what a batch needs of each slab.
type counts struct {
	spans, events, links, ids  int
	attrs                      int // key-values (and their values) at the top level
	strs, ints, bools, doubles int
}

func (n *counts) span(sd sdktrace.ReadOnlySpan) {
	n.spans++
	n.ids += 16 + 8
	if sd.Parent().SpanID().IsValid() {
		n.ids += 8
	}
	n.attributes(sd.Attributes())
	for _, ev := range sd.Events() {
		n.events++
		n.attributes(ev.Attributes)
	}
	for _, l := range sd.Links() {
		n.links++
		n.ids += 16 + 8
		n.attributes(l.Attributes)
	}
}

// set counts the attributes of a resource or scope.
func (n *counts) set(s *attribute.Set) {
	for it := s.Iter(); it.Next(); {
		n.value(it.Attribute().Value.Type())
	}
}

func (n *counts) attributes(attrs []attribute.KeyValue) {
	for _, kv := range attrs {
		n.value(kv.Value.Type())
	}
}

func (n *counts) value(t attribute.Type) {
	n.attrs++
	switch t {
	case attribute.STRING:
		n.strs++
	case attribute.INT64:
		n.ints++
	case attribute.BOOL:
		n.bools++
	case attribute.FLOAT64:
		n.doubles++
	}
}

func (c *converter) resource(r *resource.Resource) *resourcepb.Resource {
	if r == nil {
		return nil
	}
	return &resourcepb.Resource{Attributes: c.iter(r.Iter())}
}

func (c *converter) scopeMsg(s instrumentation.Scope) *commonpb.InstrumentationScope {
	if s == (instrumentation.Scope{}) {
		return nil
	}
	return &commonpb.InstrumentationScope{Name: s.Name, Version: s.Version, Attributes: c.iter(s.Attributes.Iter())}
}

func (c *converter) iter(it attribute.Iterator) []*commonpb.KeyValue {
	if it.Len() == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, it.Len())
	for it.Next() {
		out = append(out, c.keyValue(it.Attribute()))
	}
	return out
}

func (c *converter) span(sd sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := sd.SpanContext()
	st := sd.Status()
	s := c.spans.one()
	s.TraceId = c.traceID(sc.TraceID())
	s.SpanId = c.spanID(sc.SpanID())
	s.TraceState = sc.TraceState().String()
	s.Status = c.status(st.Code, st.Description)
	s.StartTimeUnixNano = unixNano(sd.StartTime().UnixNano())
	s.EndTimeUnixNano = unixNano(sd.EndTime().UnixNano())
	s.Links = c.spanLinks(sd.Links())
	s.Kind = spanKind(sd.SpanKind())
	s.Name = sd.Name()
	s.Attributes = c.keyValues(sd.Attributes())
	s.Events = c.spanEvents(sd.Events())
	s.DroppedAttributesCount = clampUint32(sd.DroppedAttributes())
	s.DroppedEventsCount = clampUint32(sd.DroppedEvents())
	s.DroppedLinksCount = clampUint32(sd.DroppedLinks())
	parent := sd.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		s.ParentSpanId = c.spanID(psid)
	}
	s.Flags = flags(sc.TraceFlags(), parent)
	return s
}

func (c *converter) traceID(id trace.TraceID) []byte {
	b := c.ids.many(len(id))
	copy(b, id[:])
	return b
}

func (c *converter) spanID(id trace.SpanID) []byte {
	b := c.ids.many(len(id))
	copy(b, id[:])
	return b
}

func (c *converter) status(code codes.Code, msg string) *tracepb.Status {
	s := c.statuses.one()
	switch code {
	case codes.Ok:
		s.Code = tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		s.Code = tracepb.Status_STATUS_CODE_ERROR
	default:
		s.Code = tracepb.Status_STATUS_CODE_UNSET
	}
	s.Message = msg
	return s
}

func (c *converter) spanLinks(links []sdktrace.Link) []*tracepb.Span_Link {
	if len(links) == 0 {
		return nil
	}
	out := c.linkPtrs.many(len(links))
	for i, l := range links {
		m := c.links.one()
		m.TraceId = c.traceID(l.SpanContext.TraceID())
		m.SpanId = c.spanID(l.SpanContext.SpanID())
		m.Attributes = c.keyValues(l.Attributes)
		m.DroppedAttributesCount = clampUint32(l.DroppedAttributeCount)
		m.Flags = flags(l.SpanContext.TraceFlags(), l.SpanContext)
		out[i] = m
	}
	return out
}

func (c *converter) spanEvents(events []sdktrace.Event) []*tracepb.Span_Event {
	if len(events) == 0 {
		return nil
	}
	out := c.eventPtrs.many(len(events))
	for i := range events {
		ev := &events[i]
		m := c.events.one()
		m.Name = ev.Name
		m.TimeUnixNano = unixNano(ev.Time.UnixNano())
		m.Attributes = c.keyValues(ev.Attributes)
		m.DroppedAttributesCount = clampUint32(ev.DroppedAttributeCount)
		out[i] = m
	}
	return out
}

func (c *converter) keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := c.kvPtrs.many(len(attrs))
	for i, kv := range attrs {
		out[i] = c.keyValue(kv)
	}
	return out
}

func (c *converter) keyValue(kv attribute.KeyValue) *commonpb.KeyValue {
	m := c.kvs.one()
	m.Key = string(kv.Key)
	m.Value = c.value(kv.Value)
	return m
}

// value converts v as the SDK's exporter does, the slice and map types
// included (their elements from the same slabs).
func (c *converter) value(v attribute.Value) *commonpb.AnyValue {
	av := c.anys.one()
	switch v.Type() {
	case attribute.STRING:
		w := c.strs.one()
		w.StringValue = v.AsString()
		av.Value = w
	case attribute.INT64:
		w := c.ints.one()
		w.IntValue = v.AsInt64()
		av.Value = w
	case attribute.BOOL:
		w := c.bools.one()
		w.BoolValue = v.AsBool()
		av.Value = w
	case attribute.FLOAT64:
		w := c.doubles.one()
		w.DoubleValue = v.AsFloat64()
		av.Value = w
	case attribute.BOOLSLICE:
		vals := v.AsBoolSlice()
		out := c.anyPtrs.many(len(vals))
		for i, x := range vals {
			out[i] = c.value(attribute.BoolValue(x))
		}
		av.Value = array(out)
	case attribute.INT64SLICE:
		vals := v.AsInt64Slice()
		out := c.anyPtrs.many(len(vals))
		for i, x := range vals {
			out[i] = c.value(attribute.Int64Value(x))
		}
		av.Value = array(out)
	case attribute.FLOAT64SLICE:
		vals := v.AsFloat64Slice()
		out := c.anyPtrs.many(len(vals))
		for i, x := range vals {
			out[i] = c.value(attribute.Float64Value(x))
		}
		av.Value = array(out)
	case attribute.STRINGSLICE:
		vals := v.AsStringSlice()
		out := c.anyPtrs.many(len(vals))
		for i, x := range vals {
			out[i] = c.value(attribute.StringValue(x))
		}
		av.Value = array(out)
	case attribute.SLICE:
		vals := v.AsSlice()
		out := c.anyPtrs.many(len(vals))
		for i, x := range vals {
			out[i] = c.value(x)
		}
		av.Value = array(out)
	case attribute.MAP:
		av.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: c.keyValues(v.AsMap())}}
	case attribute.BYTESLICE:
		av.Value = &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}
	case attribute.EMPTY:
	default:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: "INVALID"}
	}
	return av
}

func array(vals []*commonpb.AnyValue) *commonpb.AnyValue_ArrayValue {
	return &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}
}

// flags are the W3C trace flags with the OTLP bits that say whether the
// parent is remote (and that this is known).
func flags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		f |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return f
}

func unixNano(ns int64) uint64 { return uint64(max(0, ns)) }

func clampUint32(v int) uint32 {
	if v < 0 {
		return 0
	}
	return uint32(min(int64(v), math.MaxUint32))
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	default:
		return tracepb.Span_SPAN_KIND_UNSPECIFIED
	}
}
