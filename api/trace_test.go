package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracing: one /classify-knn request under a caller's W3C trace
// context is a server span that continues the caller's trace, with one
// child span per step (decode, queue wait, encode, store put, index
// search) in the SDK's in-memory exporter; queries by id and GET
// /posterior/{id} have a store get span instead (failed for an unknown id);
// a server without a tracer provider exports nothing.
func TestTracing(t *testing.T) {
	setup(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(t.Context())
	cfg := DefaultConfig()
	cfg.TracerProvider = tp
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := req("POST", "/classify-knn?k=3", "image/png", digitPNG(t, 0))
	r.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	if w := do(t, s, r); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	spans := exp.GetSpans()
	var server *tracetest.SpanStub
	byName := map[string]tracetest.SpanStub{}
	for i, sp := range spans {
		byName[sp.Name] = sp
		if sp.SpanKind == trace.SpanKindServer {
			server = &spans[i]
		}
	}
	if server == nil || server.Name != "POST /classify-knn" {
		t.Fatalf("no server span POST /classify-knn among %d spans: %v", len(spans), names(spans))
	}
	if server.SpanContext.TraceID().String() != traceID || server.Parent.SpanID().String() != parentID || !server.Parent.IsRemote() {
		t.Errorf("the server span does not continue the caller's trace: trace %s parent %s", server.SpanContext.TraceID(), server.Parent.SpanID())
	}
	for _, name := range []string{"decode", "queue wait", "encode", "store put", "index search"} {
		sp, ok := byName[name]
		if !ok {
			t.Errorf("no span %q among %v", name, names(spans))
			continue
		}
		if sp.Parent.SpanID() != server.SpanContext.SpanID() || sp.SpanContext.TraceID() != server.SpanContext.TraceID() {
			t.Errorf("span %q is not a child of the server span", name)
		}
		if sp.EndTime.Before(sp.StartTime) || sp.StartTime.Before(server.StartTime) || sp.EndTime.After(server.EndTime) {
			t.Errorf("span %q (%v to %v) is not within the request (%v to %v)", name, sp.StartTime, sp.EndTime, server.StartTime, server.EndTime)
		}
	}
	if q, e := byName["queue wait"], byName["encode"]; q.EndTime != e.StartTime {
		t.Errorf("the queue wait ends at %v, the encode starts at %v", q.EndTime, e.StartTime)
	}
	if len(spans) != 6 {
		t.Errorf("%d spans, want 6: %v", len(spans), names(spans))
	}

	// An id query reads the store instead of encoding.
	exp.Reset()
	id := decodeID(t, s)
	exp.Reset()
	do(t, s, req("POST", "/classify-knn", "application/json", []byte(`{"id":"`+id+`"}`)))
	if got := names(exp.GetSpans()); len(got) != 3 || got[0] != "store get" || got[1] != "index search" || got[2] != "POST /classify-knn" {
		t.Errorf("spans of a query by id: %v", got)
	}

	// So does GET /posterior/{id}, with the store lookup its own span.
	exp.Reset()
	do(t, s, req("GET", "/posterior/"+id, "", nil))
	spans = exp.GetSpans()
	if got := names(spans); len(got) != 2 || got[0] != "store get" || got[1] != "GET /posterior/{id}" {
		t.Errorf("spans of GET /posterior/{id}: %v", got)
	} else if spans[0].Parent.SpanID() != spans[1].SpanContext.SpanID() {
		t.Errorf("the store get is not a child of the GET /posterior/{id} span")
	}
	// An unknown id: the store get span records the miss.
	exp.Reset()
	do(t, s, req("GET", "/posterior/0123456789abcdef", "", nil))
	if spans = exp.GetSpans(); len(spans) != 2 || spans[0].Name != "store get" || spans[0].Status.Code != codes.Error {
		t.Errorf("spans of GET /posterior/{id} for an unknown id: %v", names(spans))
	}

	// A traceparent is nothing to a server without tracing.
	plain, _ := newTestServer(t, fixture.cebm, 300, DefaultConfig())
	if plain.tracer != nil {
		t.Fatal("a server without a tracer provider traces")
	}
	exp.Reset()
	r = req("POST", "/classify-knn?k=3", "image/png", digitPNG(t, 0))
	r.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	if w := do(t, plain, r); w.Code != 200 {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	if len(exp.GetSpans()) != 0 {
		t.Errorf("spans from a server without tracing")
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// decodeID encodes test digit 0 and returns its posterior's id.
func decodeID(t *testing.T, h http.Handler) string {
	t.Helper()
	w := do(t, h, req("POST", "/encode", "image/png", digitPNG(t, 0)))
	var out struct {
		Results []struct{ ID string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || len(out.Results) != 1 {
		t.Fatalf("encode: %d %s", w.Code, w.Body)
	}
	return out.Results[0].ID
}

// TestTracingOffAllocates: with tracing off, a step's span is a branch, no
// allocation.
func TestTracingOffAllocates(t *testing.T) {
	s := New(DefaultConfig(), nil)
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		c, sp := s.startSpan(ctx, "decode")
		endSpan(sp, nil)
		_ = c
	})
	if allocs != 0 {
		t.Errorf("a span with tracing off allocates %v times", allocs)
	}
}
