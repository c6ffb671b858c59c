package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/index"
	"github.com/getkin/kin-openapi/openapi3"
)

func req(method, path, ct string, body []byte) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func jsonBodyOf(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func multipartBody(t testing.TB, images [][]byte, fields map[string][]string) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i, img := range images {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="image"; filename="%d.png"`, i))
		h.Set("Content-Type", "image/png")
		p, _ := mw.CreatePart(h)
		p.Write(img)
	}
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func decode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, w.Body.String())
	}
	return v
}

// TestEndpoints drives every endpoint and body form on a freshly exported
// model; do validates each response against openapi.yaml. Each subtest
// runs alone (go test -run TestEndpoints/NAME): what one needs from
// another, such as a stored posterior's id, it makes itself.
func TestEndpoints(t *testing.T) {
	setup(t)
	s, m := newTestServer(t, fixture.cebm, 1000, DefaultConfig())
	png0, png1 := digitPNG(t, 0), digitPNG(t, 1)
	b64 := base64.StdEncoding.EncodeToString
	// encodeID posts png0 to /encode and returns its posterior's id.
	encodeID := func(t *testing.T) string {
		t.Helper()
		w := do(t, s, req("POST", "/encode", "image/png", png0))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return decode[wire.EncodeResponse](t, w).Results[0].ID
	}

	t.Run("encode", func(t *testing.T) {
		var ids []string
		mp, mct := multipartBody(t, [][]byte{png0, png1}, map[string][]string{"invert": {"auto"}})
		for _, c := range []struct {
			name, ct string
			body     []byte
			n        int
		}{
			{"png", "image/png", png0, 1},
			{"jpeg", "image/jpeg", digitJPEG(t, 0), 1},
			{"multipart", mct, mp, 2},
			{"json", "application/json", jsonBodyOf(t, map[string]any{"images": []string{b64(png0), b64(png1)}, "invert": "auto"}), 2},
		} {
			t.Run(c.name, func(t *testing.T) {
				w := do(t, s, req("POST", "/encode", c.ct, c.body))
				if w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				res := decode[wire.EncodeResponse](t, w)
				if len(res.Results) != c.n || res.Model != m.Digest {
					t.Fatalf("got %d results for model %s", len(res.Results), res.Model)
				}
				p := res.Results[0]
				if len(p.Mean) != 128 || len(p.Variance) != 128 || p.NaturalParams == nil || len(p.NaturalParams.Eta1) != 128 {
					t.Fatalf("posterior has the wrong shape: %+v", p)
				}
				for j := range p.Mean { // mean = −η1/(2η2), variance = −1/(2η2)
					e1, e2 := float64(p.NaturalParams.Eta1[j]), float64(p.NaturalParams.Eta2[j])
					if d := float64(p.Mean[j]) + e1/(2*e2); d*d > 1e-8 || float64(p.Variance[j])+1/(2*e2) > 1e-4 {
						t.Fatalf("dimension %d: mean %v variance %v from η (%v, %v)", j, p.Mean[j], p.Variance[j], e1, e2)
					}
				}
				if c.name == "jpeg" && !p.Inverted {
					t.Error("dark-on-light JPEG was not inverted")
				}
				ids = append(ids, p.ID)
			})
		}
		// Fewer than four when -run picks some of the cases.
		if len(ids) == 4 && (ids[0] != ids[2] || ids[0] != ids[3]) {
			t.Errorf("the same PNG got different ids: %v", ids)
		}
	})
	t.Run("invert forced", func(t *testing.T) {
		id := encodeID(t)
		w := do(t, s, req("POST", "/encode?invert=true", "image/png", png0))
		if p := decode[wire.EncodeResponse](t, w).Results[0]; !p.Inverted || p.ID == id {
			t.Errorf("invert=true: inverted %v, id %s", p.Inverted, p.ID)
		}
	})
	t.Run("posterior", func(t *testing.T) {
		id := encodeID(t)
		w := do(t, s, req("GET", "/posterior/"+id, "", nil))
		if w.Code != 200 || decode[wire.Posterior](t, w).ID != id {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		w = do(t, s, req("GET", "/posterior/ffff", "", nil))
		if w.Code != 404 || !strings.Contains(w.Body.String(), "unknown-id") {
			t.Fatalf("unknown id: %d %s", w.Code, w.Body)
		}
		// An index item's id (a neighbour's): TestItemPosterior.
	})
	t.Run("classify", func(t *testing.T) {
		id := encodeID(t)
		mp, mct := multipartBody(t, [][]byte{png0, png1}, map[string][]string{"k": {"3"}})
		for _, c := range []struct {
			name, path, ct string
			body           []byte
			k, n           int
		}{
			{"png", "/classify-knn", "image/png", png0, 1, 1},
			{"png k=5", "/classify-knn?k=5", "image/png", png0, 5, 1},
			{"multipart", "/classify-knn", mct, mp, 3, 2},
			{"json image", "/classify-knn", "application/json", jsonBodyOf(t, map[string]any{"image": b64(png0)}), 1, 1},
			{"json id", "/classify-knn", "application/json", jsonBodyOf(t, map[string]any{"id": id, "k": 3}), 3, 1},
			{"json mean", "/classify-knn", "application/json", jsonBodyOf(t, map[string]any{"mean": make([]float32, 128)}), 1, 1},
		} {
			t.Run(c.name, func(t *testing.T) {
				w := do(t, s, req("POST", c.path, c.ct, c.body))
				if w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				res := decode[wire.ClassifyResponse](t, w)
				if res.K != c.k || len(res.Results) != c.n || len(res.Results[0].Neighbors) != c.k || len(res.Results[0].Votes) == 0 {
					t.Fatalf("%+v", res)
				}
			})
		}
	})
	t.Run("index items", func(t *testing.T) {
		s, _ := newTestServer(t, fixture.cebm, 1000, DefaultConfig()) // its own: adding changes the index
		before := s.served().st.ix.Len()
		w := do(t, s, req("POST", "/index/items?label=7", "image/png", png0))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		body := jsonBodyOf(t, map[string]any{"items": []map[string]any{{"image": b64(png1), "label": 2}, {"image": b64(png0), "label": "7"}}})
		w = do(t, s, req("POST", "/index/items", "application/json", body))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		mp, mct := multipartBody(t, [][]byte{png1}, map[string][]string{"label": {"2"}})
		w = do(t, s, req("POST", "/index/items", mct, mp))
		if res := decode[wire.AddItemsResponse](t, w); w.Code != 200 || res.IndexSize != before+4 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		// The added image is now its own nearest neighbour, at distance 0.
		w = do(t, s, req("POST", "/classify-knn", "image/png", png0))
		nb := decode[wire.ClassifyResponse](t, w).Results[0].Neighbors[0]
		if nb.ID < before || nb.Distance != 0 || nb.Label != 7 {
			t.Errorf("nearest after adding: %+v", nb)
		}
		// GET /index/items/{id} gives the added item back, and its image
		// is the model's input.
		w = do(t, s, req("GET", fmt.Sprintf("/index/items/%d", nb.ID), "", nil))
		if it := decode[wire.IndexItem](t, w); w.Code != 200 || it.ID != nb.ID || it.Label != 7 || it.Class != "7" ||
			it.Source != "added" || !it.Image || len(it.Mean) != s.served().st.ix.Dim() {
			t.Errorf("GET /index/items/%d: %d %s", nb.ID, w.Code, w.Body)
		}
		for id, want := range map[int][]uint8{nb.ID: fixture.test.Pixel(0), 3: fixture.train.Pixel(3)} {
			w = do(t, s, req("GET", fmt.Sprintf("/index/items/%d/image", id), "", nil))
			img, err := png.Decode(w.Body)
			if w.Code != 200 || err != nil {
				t.Fatalf("image of item %d: %d %v", id, w.Code, err)
			}
			g, ok := img.(*image.Gray)
			if !ok || !bytes.Equal(g.Pix, want) {
				t.Errorf("image of item %d is not the digit it was made from", id)
			}
		}
		if it := decode[wire.IndexItem](t, do(t, s, req("GET", "/index/items/3", "", nil))); it.Source != "reference" || !it.Image {
			t.Errorf("reference item: %+v", it)
		}
		for path, code := range map[string]int{"/index/items/99999999": 404, "/index/items/-1": 400, "/index/items/x": 400,
			"/index/items/99999999/image": 404, "/index/items/x/image": 400} {
			if w := do(t, s, req("GET", path, "", nil)); w.Code != code {
				t.Errorf("GET %s: %d, want %d", path, w.Code, code)
			}
		}
	})
	t.Run("plain endpoints", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/models", "/openapi.yaml"} {
			if w := do(t, s, req("GET", p, "", nil)); w.Code != 200 {
				t.Errorf("%s: %d", p, w.Code)
			}
		}
		w := do(t, s, req("GET", "/metrics", "", nil))
		for _, name := range []string{"cebm_http_requests_total", "cebm_batch_size", "cebm_queue_depth", "cebm_index_items", `route="/encode"`} {
			if !strings.Contains(w.Body.String(), name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
	})
}

// shippedModel is the default model of cebm serve.
const shippedModel = "../models/mnist-cebm.onnx"

// shippedAndFashion sets up the fixture and returns the Fashion-MNIST test
// split, skipping without the shipped model or Fashion-MNIST.
func shippedAndFashion(t *testing.T) *data.Set {
	t.Helper()
	setup(t)
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	fashion, err := data.Load("fashion-mnist", "test")
	if err != nil {
		t.Skipf("Fashion-MNIST: %v", err)
	}
	return fashion
}

// TestServersRelative: the document's only server is "/", so Swagger UI
// at /docs sends "Try it out" to the server that served it, whatever its
// address, and not to a fixed one.
func TestServersRelative(t *testing.T) {
	setup(t)
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		var urls []string
		for _, sv := range doc.Servers {
			urls = append(urls, sv.URL)
		}
		t.Errorf("servers %q, want only \"/\"", urls)
	}
}

// TestSetIndexChecksModel: an index built with another model is refused,
// and the served one stays.
func TestSetIndexChecksModel(t *testing.T) {
	setup(t)
	if err := New(DefaultConfig(), nil).SetIndex(index.New(128, "sha256:any"), nil, Reference{}); err == nil {
		t.Error("SetIndex before SetModel succeeded")
	}
	s, m := newTestServer(t, fixture.cebm, 100, DefaultConfig())
	served := s.served()
	if err := s.SetIndex(index.New(m.LatentDim, "another model"), nil, Reference{}); err == nil {
		t.Fatal("an index of another model was accepted")
	}
	if s.served() != served {
		t.Error("the refused index replaced the served one")
	}
	if err := s.SetIndex(index.New(m.LatentDim, m.Digest), nil, Reference{}); err != nil {
		t.Errorf("an index of the served model: %v", err)
	}
}

// TestGolden: the served document is the repository's openapi.yaml.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(OpenAPI, want) {
		t.Fatal("api/openapi.yaml differs from ../openapi.yaml: run go generate ./api")
	}
	s := New(DefaultConfig(), nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/openapi.yaml", nil))
	if !bytes.Equal(w.Body.Bytes(), want) {
		t.Fatal("GET /openapi.yaml does not serve openapi.yaml")
	}
}

// TestErrors: every error status, as a problem with a stable type.
func TestErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes, cfg.MaxPixels, cfg.MaxParts = 64<<10, 100*100, 2
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	png0 := digitPNG(t, 0)
	huge := bigPNG(t, 200, 200)
	mp3, mct3 := multipartBody(t, [][]byte{png0, png0, png0}, nil)
	mpField, mctField := multipartBody(t, [][]byte{png0}, map[string][]string{"colour": {"red"}})
	for _, c := range []struct {
		name, method, path, ct string
		body                   []byte
		status                 int
		typ                    string
	}{
		{"undecodable", "POST", "/encode", "image/png", []byte("\x89PNG\r\n\x1a\nnot really"), 400, "undecodable-image"},
		{"bad json", "POST", "/encode", "application/json", []byte(`{"images": [`), 400, "invalid-request"},
		{"unknown json field", "POST", "/encode", "application/json", []byte(`{"imgs": []}`), 400, "invalid-request"},
		{"bad base64", "POST", "/encode", "application/json", []byte(`{"image": "!!"}`), 400, "invalid-request"},
		{"no image", "POST", "/encode", "application/json", []byte(`{}`), 400, "invalid-request"},
		{"null invert", "POST", "/encode", "application/json", []byte(`{"image": "aGVsbG8=", "invert": null}`), 400, "invalid-request"},
		{"numeric invert", "POST", "/encode", "application/json", []byte(`{"image": "aGVsbG8=", "invert": 1}`), 400, "invalid-request"},
		{"k in encode json", "POST", "/encode", "application/json", []byte(`{"image": "aGVsbG8=", "k": 3}`), 400, "invalid-request"},
		{"k in encode query", "POST", "/encode?k=3", "image/png", png0, 400, "invalid-request"},
		{"unknown label filter in classify", "POST", "/classify-knn?label=cat", "image/png", png0, 400, "invalid-request"},
		{"tags in classify", "POST", "/classify-knn?tags=a", "image/png", png0, 400, "invalid-request"},
		{"two query forms", "POST", "/classify-knn", "application/json", []byte(`{"id": "abc", "mean": [1]}`), 400, "invalid-request"},
		{"item without label", "POST", "/index/items", "application/json", []byte(`{"items": [{"image": "aGVsbG8="}]}`), 400, "invalid-request"},
		{"unknown multipart field", "POST", "/encode", mctField, mpField, 400, "invalid-request"},
		{"bad k", "POST", "/classify-knn?k=0", "image/png", png0, 400, "invalid-request"},
		{"k too large", "POST", "/classify-knn?k=1000", "image/png", png0, 400, "invalid-request"},
		{"bad invert", "POST", "/encode?invert=maybe", "image/png", png0, 400, "invalid-request"},
		{"wrong mean", "POST", "/classify-knn", "application/json", []byte(`{"mean": [1, 2]}`), 400, "invalid-request"},
		{"missing label", "POST", "/index/items", "image/png", png0, 400, "invalid-request"},
		{"bad label", "POST", "/index/items?label=cat", "image/png", png0, 400, "invalid-request"},
		{"unknown id", "POST", "/classify-knn", "application/json", []byte(`{"id": "abc"}`), 404, "unknown-id"},
		{"unknown path", "GET", "/nope", "", nil, 404, "not-found"},
		{"method", "GET", "/encode", "", nil, 405, "method-not-allowed"},
		{"body too large", "POST", "/encode", "image/png", make([]byte, 65<<10), 413, "too-large"},
		{"too many pixels", "POST", "/encode", "image/png", huge, 413, "too-large"},
		{"side too long", "POST", "/encode", "image/png", bigPNG(t, 8193, 1), 413, "too-large"},
		{"too narrow", "POST", "/encode", "image/png", bigPNG(t, 65, 1), 413, "too-large"},
		{"too many parts", "POST", "/encode", mct3, mp3, 413, "too-large"},
		{"no content type", "POST", "/encode", "", png0, 415, "unsupported-media-type"},
		{"text", "POST", "/encode", "text/plain", []byte("hello"), 415, "unsupported-media-type"},
		{"gif", "POST", "/encode", "image/png", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), 415, "unsupported-media-type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := do(t, s, req(c.method, c.path, c.ct, c.body))
			checkProblem(t, w, c.status, c.typ)
		})
	}
}

func checkProblem(t testing.TB, w *httptest.ResponseRecorder, status int, typ string) {
	t.Helper()
	if w.Code != status || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s %s, want %d", w.Code, w.Header().Get("Content-Type"), w.Body, status)
	}
	p := decode[Problem](t, w)
	if p.Type != ProblemBase+typ || p.Status != status || p.Title == "" {
		t.Fatalf("problem %+v, want type %s", p, typ)
	}
}

// TestNotReady: before the model and index load, /healthz answers and
// everything else is 503 with Retry-After.
func TestNotReady(t *testing.T) {
	setup(t)
	s := New(DefaultConfig(), nil)
	if w := do(t, s, req("GET", "/healthz", "", nil)); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
	for _, p := range []string{"/readyz", "/models"} {
		w := do(t, s, req("GET", p, "", nil))
		checkProblem(t, w, 503, "not-ready")
		if w.Header().Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	}
	w := do(t, s, req("POST", "/encode", "image/png", digitPNG(t, 0)))
	checkProblem(t, w, 503, "not-ready")
}

// TestAPIKey: a key guards all but health and metrics.
func TestAPIKey(t *testing.T) {
	cfg := DefaultConfig()
	cfg.APIKey = "s3cret"
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if w := do(t, s, req("GET", p, "", nil)); w.Code != 200 {
			t.Errorf("%s without key: %d", p, w.Code)
		}
	}
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Bearer s3cret2"} {
		r := req("GET", "/models", "", nil)
		r.Header.Set("Authorization", auth)
		checkProblem(t, do(t, s, r), 401, "unauthorized")
	}
	r := req("POST", "/encode", "image/png", digitPNG(t, 0))
	r.Header.Set("Authorization", "Bearer s3cret")
	if w := do(t, s, r); w.Code != 200 {
		t.Fatalf("with key: %d %s", w.Code, w.Body)
	}
}

// TestOverload: with the batcher held and its queue full, requests get 429
// with Retry-After, and the held ones finish once it is released.
func TestOverload(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	cfg := DefaultConfig()
	cfg.Batch.Queue, cfg.Batch.MaxBatch = 1, 1
	var blocked atomic.Bool
	cfg.Batch.OnBatch = func(int, time.Duration) { blocked.Store(true); <-release }
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	defer once.Do(func() { close(release) })
	png0 := digitPNG(t, 0)
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ { // one runs and blocks, one waits in the queue
		go func() {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req("POST", "/encode", "image/png", png0))
			codes <- w.Code
		}()
		for deadline := time.Now().Add(5 * time.Second); ; {
			if n := s.served().b.QueueLen(); (i == 0 && n == 0 && blocked.Load()) || (i == 1 && n == 1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("requests did not queue")
			}
			time.Sleep(time.Millisecond)
		}
	}
	w := do(t, s, req("POST", "/encode", "image/png", png0))
	checkProblem(t, w, 429, "overloaded")
	if w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	once.Do(func() { close(release) })
	for i := 0; i < 2; i++ {
		if c := <-codes; c != 200 {
			t.Errorf("held request: %d", c)
		}
	}
}

// TestRecover: a panicking handler answers a plain 500 problem.
func TestRecover(t *testing.T) {
	s := New(DefaultConfig(), nil)
	h := s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret internals") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	checkProblem(t, w, 500, "internal")
	if strings.Contains(w.Body.String(), "secret") {
		t.Error("internals leaked")
	}
}

// TestGMM: a GMM-CEBM answers responsibilities and every component.
func TestGMM(t *testing.T) {
	setup(t)
	s, _ := newTestServer(t, fixture.gmm, 300, DefaultConfig())
	w := do(t, s, req("POST", "/encode", "image/png", digitPNG(t, 3)))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	p := decode[wire.EncodeResponse](t, w).Results[0]
	if len(p.Components) != 10 || len(p.Responsibilities) != 10 {
		t.Fatalf("%d components, %d responsibilities", len(p.Components), len(p.Responsibilities))
	}
	var sum float64
	for _, r := range p.Responsibilities {
		sum += r
	}
	if sum < 0.999 || sum > 1.001 {
		t.Errorf("responsibilities sum to %v", sum)
	}
}
