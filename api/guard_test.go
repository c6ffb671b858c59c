package api

import (
	"context"
	"image"
	"image/png"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cebm/cebm/api/wire"
)

// indexSize is the index's size as GET /models reports it.
func indexSize(t *testing.T, s *Server) int {
	t.Helper()
	w := do(t, s, req("GET", "/models", "", nil))
	return decode[wire.ModelsResponse](t, w).Models[0].IndexItems
}

// TestCrossSiteWrite: without an API key, a page of another origin cannot
// add to the index (the browser's Sec-Fetch-Site or Origin gives it away),
// and nothing is stored; the server's own page, non-browser clients and the
// origins of --cors-origins can, the latter after a preflight.
func TestCrossSiteWrite(t *testing.T) {
	setup(t)
	cfg := DefaultConfig()
	cfg.CORSOrigins = []string{"https://app.example"}
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	png0 := digitPNG(t, 0)
	before := indexSize(t, s)
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"},
		{"Origin": "https://evil.example"}, // a browser that sends no Sec-Fetch-Site
		{"Origin": "null"},
	} {
		r := req("POST", "/index/items?label=7", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"+string(png0)+"\r\n--x--\r\n"))
		for k, v := range h {
			r.Header.Set(k, v)
		}
		checkProblem(t, do(t, s, r), 403, "cross-site")
	}
	if n := indexSize(t, s); n != before {
		t.Fatalf("refused cross-site writes changed the index from %d to %d items", before, n)
	}
	allowed := []map[string]string{
		{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}, // the server's own page
		{}, // curl, the Go client
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example"}, // listed in --cors-origins
	}
	for i, h := range allowed {
		r := req("POST", "/index/items?label=7", "image/png", png0)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		w := do(t, s, r)
		if w.Code != 200 {
			t.Fatalf("allowed write %d: %d %s", i, w.Code, w.Body)
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); (h["Origin"] == "https://app.example") != (got == "https://app.example") {
			t.Errorf("allowed write %d: Access-Control-Allow-Origin %q", i, got)
		}
	}
	if n := indexSize(t, s); n != before+len(allowed) {
		t.Fatalf("the index holds %d items, want %d", n, before+len(allowed))
	}

	// The listed origin's preflight is answered; another's is not.
	for origin, want := range map[string]string{"https://app.example": "https://app.example", "https://evil.example": ""} {
		r := httptest.NewRequest("OPTIONS", "/index/items", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "content-type")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
		}
		if want != "" && (w.Code != 204 || !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST")) {
			t.Errorf("preflight from %s: %d, methods %q", origin, w.Code, w.Header().Get("Access-Control-Allow-Methods"))
		}
	}
	// The page keeps its content security policy.
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Header().Get("Content-Security-Policy") != pageCSP {
		t.Errorf("the page's CSP is %q", w.Header().Get("Content-Security-Policy"))
	}
}

// TestAllowedHosts: a Host the server does not answer to (DNS rebinding)
// is refused on every path; its own names, any port, are answered.
func TestAllowedHosts(t *testing.T) {
	setup(t)
	cfg := DefaultConfig()
	cfg.AllowedHosts = []string{"localhost", "127.0.0.1", "::1"}
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	for host, want := range map[string]int{"localhost:8080": 200, "127.0.0.1:9": 200, "[::1]:8080": 200, "LOCALHOST.": 200,
		"evil.example:8080": 403, "evil.example": 403, "127.0.0.2:8080": 403} {
		for _, path := range []string{"/models", "/healthz"} {
			r := req("GET", path, "", nil)
			r.Host = host
			w := do(t, s, r)
			if want == 403 {
				checkProblem(t, w, 403, "unknown-host")
			} else if w.Code != want {
				t.Errorf("Host %s %s: %d", host, path, w.Code)
			}
		}
	}
}

// TestMethodNotAllowed: a 405 says which methods the path accepts.
func TestMethodNotAllowed(t *testing.T) {
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, DefaultConfig())
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/encode", "POST"}, {"DELETE", "/models", "GET"}, {"PUT", "/index/items", "GET, POST"}, {"POST", "/index/items/3", "GET, DELETE"},
	} {
		w := do(t, s, req(c.method, c.path, "", nil))
		checkProblem(t, w, 405, "method-not-allowed")
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

// TestGETBodyIgnored: a GET that declares a body larger than the server
// takes is answered; its body is never read.
func TestGETBodyIgnored(t *testing.T) {
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, DefaultConfig())
	for _, path := range []string{"/models", "/index/items/0"} {
		r := req("GET", path, "", nil)
		r.ContentLength = 1 << 40
		if w := do(t, s, r); w.Code != 200 {
			t.Errorf("GET %s with Content-Length 2^40: %d %s", path, w.Code, w.Body)
		}
	}
}

// TestDeadline: a request past its deadline is answered 503 timeout with
// Retry-After, whether it waits for the encoder or decodes, and the
// encoder never runs its images.
func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	var images atomic.Int64
	cfg := DefaultConfig()
	cfg.RequestTimeout = 0
	cfg.Batch.MaxBatch, cfg.Batch.Workers = 1, 1
	cfg.Batch.OnBatch = func(n int, _ time.Duration) { images.Add(int64(n)); <-release }
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	images.Store(0)
	defer once.Do(func() { close(release) })
	png0 := digitPNG(t, 0)

	// A holds the encoder; B waits behind it until its deadline.
	codeA := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req("POST", "/encode", "image/png", png0))
		codeA <- w.Code
	}()
	for deadline := time.Now().Add(time.Minute); images.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first request did not reach the encoder")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w := do(t, s, req("POST", "/encode", "image/png", digitPNG(t, 1)).WithContext(ctx))
	checkProblem(t, w, 503, "timeout")
	if w.Header().Get("Retry-After") == "" {
		t.Error("timeout without Retry-After")
	}
	once.Do(func() { close(release) })
	if c := <-codeA; c != 200 {
		t.Fatalf("the held request: %d", c)
	}
	if w := do(t, s, req("POST", "/encode", "image/png", digitPNG(t, 2))); w.Code != 200 {
		t.Fatalf("after the timeout: %d %s", w.Code, w.Body)
	}
	if n := images.Load(); n != 2 {
		t.Errorf("the encoder ran %d images; the timed-out request's should not have run", n)
	}

	// Decoding stops at the deadline too: twelve large images, none encoded.
	var b strings.Builder
	if err := png.Encode(&b, image.NewRGBA64(image.Rect(0, 0, 2000, 2000))); err != nil {
		t.Fatal(err)
	}
	big := []byte(b.String())
	mp, ct := multipartBody(t, [][]byte{big, big, big, big, big, big, big, big, big, big, big, big}, nil)
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	w = do(t, s, req("POST", "/classify-knn", ct, mp).WithContext(ctx))
	checkProblem(t, w, 503, "timeout")
	if n := images.Load(); n != 2 {
		t.Errorf("the encoder ran %d images after a request past its deadline", n)
	}
}

// TestDecodeMemory: an image that needs more decoding memory than the
// server has is refused with 413; while the images being decoded hold
// all of it, others get 503 decode-busy with Retry-After; once it is
// free, the same request succeeds.
func TestDecodeMemory(t *testing.T) {
	setup(t)
	cfg := DefaultConfig()
	cfg.DecodeBytes = 8 << 20
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	checkProblem(t, do(t, s, req("POST", "/encode", "image/png", bigPNG(t, 3000, 3000))), 413, "too-large")
	if !s.decoding.TryAcquire(cfg.DecodeBytes) {
		t.Fatal("the decoding memory is not free")
	}
	w := do(t, s, req("POST", "/encode", "image/png", digitPNG(t, 0)))
	checkProblem(t, w, 503, "decode-busy")
	if w.Header().Get("Retry-After") == "" {
		t.Error("decode-busy without Retry-After")
	}
	s.decoding.Release(cfg.DecodeBytes)
	if w := do(t, s, req("POST", "/encode", "image/png", digitPNG(t, 0))); w.Code != 200 {
		t.Fatalf("with the memory free: %d %s", w.Code, w.Body)
	}
	if n := s.decodingBytes.Load(); n != 0 {
		t.Errorf("%d bytes still reserved after the requests", n)
	}
}
