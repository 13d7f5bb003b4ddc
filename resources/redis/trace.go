package redis

import (
	"context"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts the client span of one command (a child of the node
// attempt's span in ctx); nil when ctx holds no recording span (tracing
// off, or not sampled). The span names the command only, never its
// arguments.
func (h *Handle) startSpan(ctx context.Context, command string) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	op := strings.ToUpper(command)
	return otel.Tracer("github.com/kailash-gateway/kgw/resources/redis").Start(ctx, "redis "+op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("db.system.name", "redis"),
			attribute.String("db.operation.name", op),
			attribute.String("db.namespace", strconv.Itoa(h.pool.cfg.DB)),
			attribute.String("server.address", h.pool.cfg.Host),
			attribute.Int("server.port", h.pool.cfg.Port),
			attribute.String("kgw.resource", h.name),
		))
}

// endSpan ends span (nil: none) with the command's failure.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, "command failed")
	}
	span.End()
}
