package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// queryTracer is the pgx tracer of a pool: one client span per statement,
// a child of the node attempt's span. It does nothing when the context
// holds no recording span (tracing off, or not sampled), so that untraced
// queries cost one check. The span names the statement's first keyword
// only: statement text and arguments may hold data the trace should not.
type queryTracer struct {
	db, host string
	port     int
}

func (t queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	op := strings.ToUpper(firstWord(data.SQL))
	ctx, _ = otel.Tracer("github.com/kailash-gateway/kgw/resources/postgres").Start(ctx, "postgresql "+op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.namespace", t.db),
			attribute.String("db.operation.name", op),
			attribute.String("server.address", t.host),
			attribute.Int("server.port", t.port),
		))
	return ctx
}

func (t queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if data.Err != nil {
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}

// firstWord is the first word of a statement, for the span name.
func firstWord(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return ""
	}
	w := f[0]
	if len(w) > 16 {
		w = w[:16]
	}
	return w
}
