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

var _ pgx.BatchTracer = queryTracer{}

func (t queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, data.SQL)
}

func (t queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx, data.Err)
}

// TraceBatchStart starts one span for a batch (executemany, or a call's
// statement sent with the session reset, see reset.go), named by its
// first statement.
func (t queryTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if data.Batch == nil || len(data.Batch.QueuedQueries) == 0 {
		return ctx
	}
	return t.start(ctx, data.Batch.QueuedQueries[0].SQL)
}

func (t queryTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	t.end(ctx, data.Err)
}

// start starts the client span of a statement, if ctx holds a recording
// span.
func (t queryTracer) start(ctx context.Context, sql string) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	op := strings.ToUpper(firstWord(sql))
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

// end ends the span start started, if any.
func (t queryTracer) end(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if err != nil {
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
