package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestServeOTLP: `cebm serve --otlp-endpoint URL` sends the spans of a
// request, in the caller's trace, to an OTLP/HTTP receiver at URL (the
// path /v1/traces added), decoded here as the OTLP protobuf it is.
func TestServeOTLP(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	var (
		mu    sync.Mutex
		names = map[string]string{} // span name → its trace id
		paths []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					names[sp.Name] = hex.EncodeToString(sp.TraceId)
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	defer collector.Close()
	base := serveInProcess(t, "--model", shippedModel, "--reference-limit", "300", "--cache-dir", t.TempDir(),
		"--state-dir", t.TempDir(), "--otlp-endpoint", collector.URL)
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequest("POST", base+"/classify-knn", bytes.NewReader(digitPNG(t, test, 0)))
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("classify: %v %v", resp, err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second) // the exporter sends every 5 s
	for {
		mu.Lock()
		got := len(names)
		var missing []string
		for _, n := range []string{"POST /classify-knn", "decode", "queue wait", "encode", "store put", "index search"} {
			if names[n] != traceID {
				missing = append(missing, n)
			}
		}
		p := slices.Clone(paths)
		mu.Unlock()
		if len(missing) == 0 {
			if p[0] != "/v1/traces" {
				t.Errorf("spans sent to %s", p[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector has %d spans; missing in trace %s: %v", got, traceID, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := parseServeFlags([]string{"--otlp-endpoint", "localhost:4318"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--otlp-endpoint without a scheme was accepted")
	}
}
