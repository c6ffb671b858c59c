package api

import (
	"context"
	"net/http"

	"github.com/cebm/cebm/encoder"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing: with Config.TracerProvider set, every request is a server span
// (its parent the caller's, from a W3C traceparent header) with a child
// span for each step: decode, queue wait, encode, index search and every
// store call. Without one nothing is traced and the steps cost a branch.

// tracerName names the spans' instrumentation scope.
const tracerName = "github.com/cebm/cebm/api"

// noSpan is what startSpan returns while tracing is off.
var noSpan = trace.SpanFromContext(context.Background())

// traceRequests starts each request's server span; without a tracer
// provider it is not in the chain at all.
func (s *Server) traceRequests(next http.Handler) http.Handler {
	if s.tracer == nil {
		return next
	}
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		if rc := chi.RouteContext(ctx); rc != nil && rc.RoutePattern() != "" {
			span.SetName(r.Method + " " + rc.RoutePattern())
			span.SetAttributes(attribute.String("http.route", rc.RoutePattern()))
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// startSpan starts a child span of ctx's named name; while tracing is off
// it returns ctx and a span that records nothing.
func (s *Server) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, noSpan
	}
	return s.tracer.Start(ctx, name)
}

// endSpan ends a step's span, marking it failed with err.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// traceBatch records an Encode call's wait in the queue and its batch's run
// as spans under ctx's, after the fact, with their own times.
func (s *Server) traceBatch(ctx context.Context, t encoder.Timing, images int) {
	if s.tracer == nil || t.Started.IsZero() {
		return
	}
	_, wait := s.tracer.Start(ctx, "queue wait", trace.WithTimestamp(t.Enqueued))
	wait.End(trace.WithTimestamp(t.Started))
	_, run := s.tracer.Start(ctx, "encode", trace.WithTimestamp(t.Started),
		trace.WithAttributes(attribute.Int("cebm.images", images), attribute.Int("cebm.batch_images", t.BatchImages)))
	run.End(trace.WithTimestamp(t.Finished))
}
