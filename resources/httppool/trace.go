package httppool

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts the client span of req (a child of the node attempt's
// span in req's context) and adds the W3C traceparent and baggage headers
// of the global propagator. With tracing off the span is a no-op and no
// header is added. The span's attributes name the URL without its query,
// which may carry tokens.
func (h *Handle) startSpan(req *http.Request) (*http.Request, trace.Span) {
	ctx, span := otel.Tracer("github.com/kailash-gateway/kgw/resources/httppool").Start(req.Context(), "HTTP "+req.Method,
		trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.path", req.URL.Path),
			attribute.String("kgw.resource", h.name),
		)
		if p := req.URL.Port(); p != "" {
			if n, err := strconv.Atoi(p); err == nil {
				span.SetAttributes(attribute.Int("server.port", n))
			}
		}
	}
	req = req.WithContext(ctx)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	return req, span
}

// endSpan ends span with the response status (or the failure).
func endSpan(span trace.Span, resp *http.Response, err error) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, "request failed")
	case resp != nil:
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
		}
	}
	span.End()
}
