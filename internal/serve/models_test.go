package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/train"
)

const (
	gmmModel     = "../../models/mnist-gmm-cebm.onnx"
	fashionModel = "../../models/fashion-mnist-cebm.onnx"
	nRef         = 300 // reference images of the tests' services
)

// encoded is what a test knows of a model without the server: its digest,
// the latents of the reference images and of the query digits.
type encoded struct {
	digest  string
	refs    []float32 // nRef latents, one after another
	queries []float32
	dim     int
}

// encodeDirectly loads the model at path and encodes the first nRef MNIST
// training images and the given test images with it.
func encodeDirectly(t *testing.T, path string, test *data.Set, queries []int) encoded {
	t.Helper()
	m, err := encoder.Load(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	set, err := data.Load("mnist", "train")
	if err != nil {
		t.Fatal(err)
	}
	refs, _, err := m.LatentsEnergies(context.Background(), set.Images[:nRef*784], nRef, 64)
	if err != nil {
		t.Fatal(err)
	}
	var x []float32
	for _, i := range queries {
		x = append(x, test.Images[i*784:(i+1)*784]...)
	}
	qs, _, err := m.LatentsEnergies(context.Background(), x, len(queries), 64)
	if err != nil {
		t.Fatal(err)
	}
	return encoded{digest: m.Digest, refs: refs, queries: qs, dim: m.LatentDim}
}

func sqDist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-3*(1+math.Abs(b)) }

// digitPNG is MNIST test image i as a PNG.
func digitPNG(t *testing.T, test *data.Set, i int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, &image.Gray{Pix: test.Pixel(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// call runs one request on h and decodes a 200 answer into out.
func call(h http.Handler, method, path, ct string, body []byte, out any) (int, string) {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code == 200 && out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			return 0, err.Error()
		}
	}
	return w.Code, w.Body.String()
}

// modelsConfig serves the first nRef MNIST training images as the
// reference set, with the embedded store in a temporary folder.
func modelsConfig(t *testing.T) Config {
	cfg := config(t, "", t.TempDir())
	cfg.Reference, cfg.ReferenceSplit, cfg.ReferenceLimit, cfg.CacheDir = "mnist", "train", nRef, ""
	return cfg
}

// TestSeveralModels: two models served at once; each route answers with
// the model its model parameter names (the default without one), each
// answer matches that model's own encoding, each has its own posteriors
// and items, and an unknown name is 404.
func TestSeveralModels(t *testing.T) {
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := modelsConfig(t)
	cfg.Models = []string{gmmModel}
	s := start(t, cfg)
	defer s.Close()
	h := s.Handler()
	want := map[string]encoded{
		"mnist-cebm":     encodeDirectly(t, shippedModel, test, []int{0}),
		"mnist-gmm-cebm": encodeDirectly(t, gmmModel, test, []int{0}),
	}
	var models wire.ModelsResponse
	if code, body := call(h, "GET", "/models", "", nil, &models); code != 200 || len(models.Models) != 2 {
		t.Fatalf("/models: %d %s", code, body)
	}
	for i, m := range models.Models {
		if w := want[m.Name]; m.Digest != w.digest || !m.Ready || m.Default != (i == 0) || m.IndexItems != nRef {
			t.Errorf("/models[%d]: %+v", i, m)
		}
	}
	png0 := digitPNG(t, test, 0)
	for _, name := range []string{"", "mnist-cebm", "mnist-gmm-cebm"} {
		w := want[name]
		if name == "" {
			w = want["mnist-cebm"]
		}
		var enc wire.EncodeResponse
		if code, body := call(h, "POST", "/encode?model="+name, "image/png", png0, &enc); code != 200 {
			t.Fatalf("/encode?model=%s: %d %s", name, code, body)
		}
		if enc.Model != w.digest || !near(sqDist(enc.Results[0].Mean, w.queries), 0) {
			t.Errorf("/encode?model=%s: digest %s, mean %.3g away from the model's own", name, enc.Model[:8], sqDist(enc.Results[0].Mean, w.queries))
		}
		var cls wire.ClassifyResponse
		if code, body := call(h, "POST", "/classify-knn?k=3&model="+name, "image/png", png0, &cls); code != 200 {
			t.Fatalf("/classify-knn?model=%s: %d %s", name, code, body)
		}
		if cls.Model != w.digest {
			t.Errorf("/classify-knn?model=%s answered by %s", name, cls.Model)
		}
		for _, nb := range cls.Results[0].Neighbors {
			if d := sqDist(w.queries, w.refs[nb.ID*w.dim:(nb.ID+1)*w.dim]); !near(float64(nb.Distance), d) {
				t.Errorf("/classify-knn?model=%s: neighbour %d at %g, the model's own latents at %g", name, nb.ID, nb.Distance, d)
			}
		}
		t.Logf("model %q: nearest %d at %.3f", name, cls.Results[0].Neighbors[0].ID, cls.Results[0].Neighbors[0].Distance)
	}
	// Each model's posteriors are its own: an id from one is unknown to
	// the other.
	var enc wire.EncodeResponse
	call(h, "POST", "/encode?model=mnist-cebm", "image/png", png0, &enc)
	id := enc.Results[0].ID
	if code, body := call(h, "GET", "/posterior/"+id+"?model=mnist-cebm", "", nil, nil); code != 200 {
		t.Errorf("GET /posterior/{id} of its model: %d %s", code, body)
	}
	if code, body := call(h, "GET", "/posterior/"+id+"?model=mnist-gmm-cebm", "", nil, nil); code != 404 {
		t.Errorf("GET /posterior/{id} of the other model: %d %s", code, body)
	}
	if code, body := call(h, "POST", "/classify-knn?model=mnist-gmm-cebm", "application/json", []byte(`{"id":"`+id+`"}`), nil); code != 404 {
		t.Errorf("/classify-knn by an id of the other model: %d %s", code, body)
	}
	if code, body := call(h, "POST", "/encode?model=nope", "image/png", png0, nil); code != 404 || !bytes.Contains([]byte(body), []byte("model-not-found")) {
		t.Errorf("unknown model: %d %s", code, body)
	}
	// Each model has its own items: one added to the second is not in the
	// first.
	var added wire.AddItemsResponse
	if code, body := call(h, "POST", "/index/items?label=7&model=mnist-gmm-cebm", "image/png", png0, &added); code != 200 {
		t.Fatalf("adding: %d %s", code, body)
	}
	if code, _ := call(h, "GET", fmt.Sprintf("/index/items/%d?model=mnist-gmm-cebm", added.IndexIDs[0]), "", nil, nil); code != 200 {
		t.Errorf("the added item in its model: %d", code)
	}
	if code, _ := call(h, "GET", fmt.Sprintf("/index/items/%d", added.IndexIDs[0]), "", nil, nil); code != 404 {
		t.Errorf("the added item in the other model: %d", code)
	}
}

// TestSwapUnderLoad: while goroutines ask both models for encodings and
// neighbours, PUT /models/mnist-cebm replaces it with the GMM-CEBM. No
// request fails, and every answer is wholly one model's: its mean is that
// model's latent of the query and its neighbours' distances are that
// model's (a mixed pair, one model's query against the other's index,
// would match neither). Items added before the swap keep their ids and
// labels, a deleted one stays deleted, and the file is in the models
// folder for a restart.
func TestSwapUnderLoad(t *testing.T) {
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{shippedModel, fashionModel} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := modelsConfig(t)
	cfg.Model, cfg.ModelsDir, cfg.DefaultModel = "", dir, "mnist-cebm"
	s := start(t, cfg)
	defer s.Close()
	h := s.Handler()

	queries := []int{0, 1, 2, 3}
	known := map[string]encoded{}
	for _, p := range []string{shippedModel, fashionModel, gmmModel} {
		e := encodeDirectly(t, p, test, queries)
		known[e.digest] = e
	}
	pngs := make([][]byte, len(queries))
	for i, q := range queries {
		pngs[i] = digitPNG(t, test, q)
	}

	// Items added, and one deleted, before the swap.
	var ids []int
	for _, i := range []int{10, 11, 12} {
		var added wire.AddItemsResponse
		if code, body := call(h, "POST", fmt.Sprintf("/index/items?label=%d&tags=t%d", test.Labels[i], i), "image/png", digitPNG(t, test, i), &added); code != 200 {
			t.Fatalf("adding: %d %s", code, body)
		}
		ids = append(ids, added.IndexIDs[0])
	}
	if code, body := call(h, "DELETE", fmt.Sprintf("/index/items/%d", ids[1]), "", nil, nil); code != 200 {
		t.Fatalf("deleting: %d %s", code, body)
	}

	var (
		requests, failed, mixed atomic.Int64
		digests                 sync.Map
		stop                    = make(chan struct{})
		wg                      sync.WaitGroup
	)
	check := func(format string, a ...any) {
		mixed.Add(1)
		t.Errorf(format, a...)
	}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model := []string{"mnist-cebm", "fashion-mnist-cebm"}[g%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				qi := i % len(queries)
				requests.Add(1)
				if g < 2 {
					var cls wire.ClassifyResponse
					if code, body := call(h, "POST", "/classify-knn?k=2&model="+model, "image/png", pngs[qi], &cls); code != 200 {
						failed.Add(1)
						t.Errorf("/classify-knn during the swap: %d %s", code, body)
						continue
					}
					digests.Store(cls.Model, true)
					e, ok := known[cls.Model]
					if !ok {
						check("/classify-knn: unknown digest %s", cls.Model)
						continue
					}
					q := e.queries[qi*e.dim : (qi+1)*e.dim]
					for _, nb := range cls.Results[0].Neighbors {
						if nb.ID < nRef && !near(float64(nb.Distance), sqDist(q, e.refs[nb.ID*e.dim:(nb.ID+1)*e.dim])) {
							check("/classify-knn answered by %s: neighbour %d at %g, that model's latents at %g", cls.Model[:8], nb.ID, nb.Distance, sqDist(q, e.refs[nb.ID*e.dim:(nb.ID+1)*e.dim]))
						}
					}
				} else {
					var enc wire.EncodeResponse
					if code, body := call(h, "POST", "/encode?model="+model, "image/png", pngs[qi], &enc); code != 200 {
						failed.Add(1)
						t.Errorf("/encode during the swap: %d %s", code, body)
						continue
					}
					digests.Store(enc.Model, true)
					e, ok := known[enc.Model]
					if !ok || !near(sqDist(enc.Results[0].Mean, e.queries[qi*e.dim:(qi+1)*e.dim]), 0) {
						check("/encode answered by %s with another model's mean", enc.Model[:8])
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	gmm, err := os.ReadFile(gmmModel)
	if err != nil {
		t.Fatal(err)
	}
	before := requests.Load()
	var models wire.ModelsResponse
	code, body := call(h, "PUT", "/models/mnist-cebm", "application/octet-stream", gmm, &models)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if code != 200 {
		t.Fatalf("PUT /models/mnist-cebm: %d %s", code, body)
	}
	t.Logf("swap under load: %d requests (%d during the PUT), %d failed, %d mixed", requests.Load(), requests.Load()-before, failed.Load(), mixed.Load())
	digest := func(models wire.ModelsResponse) string {
		for _, m := range models.Models {
			if m.Name == "mnist-cebm" {
				return m.Digest
			}
		}
		return ""
	}
	want := known[digest(models)]
	if want.digest != known[want.digest].digest || want.refs == nil || want.digest == "" {
		t.Fatalf("after the PUT mnist-cebm is %q", digest(models))
	}
	if d := encodeDirectly(t, gmmModel, test, nil); d.digest != want.digest {
		t.Fatalf("after the PUT mnist-cebm is %s, not the GMM-CEBM's %s", want.digest, d.digest)
	}
	if _, ok := digests.Load(want.digest); !ok {
		t.Error("no answer came from the new model")
	}
	// The added items kept their ids, labels and tags, re-encoded by the new model.
	for k, i := range []int{10, 11, 12} {
		var it wire.IndexItem
		code, _ := call(h, "GET", fmt.Sprintf("/index/items/%d", ids[k]), "", nil, &it)
		if k == 1 {
			if code != 404 {
				t.Errorf("deleted item %d after the swap: %d", ids[k], code)
			}
			continue
		}
		if code != 200 || it.Label != test.Labels[i] || len(it.Tags) != 1 || it.Tags[0] != fmt.Sprintf("t%d", i) {
			t.Errorf("item %d after the swap: %d %+v", ids[k], code, it)
		}
		var cls wire.ClassifyResponse
		if code, body := call(h, "POST", "/classify-knn", "image/png", digitPNG(t, test, i), &cls); code != 200 || cls.Results[0].Neighbors[0].ID != ids[k] || cls.Results[0].Neighbors[0].Distance > 1e-6 {
			t.Errorf("added digit %d after the swap: nearest %d %s", i, code, body)
		}
	}
	// The folder holds the new model: a restart serves it.
	if b, err := os.ReadFile(filepath.Join(dir, "mnist-cebm.onnx")); err != nil || !bytes.Equal(b, gmm) {
		t.Errorf("the models folder's mnist-cebm.onnx is not the new model (%v)", err)
	}
	s.Close()
	s = start(t, cfg)
	defer s.Close()
	var it wire.IndexItem
	if code, body := call(s.Handler(), "GET", fmt.Sprintf("/index/items/%d", ids[2]), "", nil, &it); code != 200 || it.Label != test.Labels[12] {
		t.Errorf("item %d after a restart: %d %s", ids[2], code, body)
	}
	if code, _ := call(s.Handler(), "GET", "/models", "", nil, &models); code != 200 || digest(models) != want.digest {
		t.Errorf("after a restart mnist-cebm is %s, not %s", digest(models), want.digest)
	}
}

// TestSwapRefused: garbage, a model whose input is another shape and one
// whose posteriors are not finite are refused with 422, and the served model stays; a name not served is 404
// without a models folder.
func TestSwapRefused(t *testing.T) {
	s := start(t, modelsConfig(t))
	defer s.Close()
	h := s.Handler()
	var models wire.ModelsResponse
	call(h, "GET", "/models", "", nil, &models)
	digest := models.Models[0].Digest

	cfg := train.DefaultConfig()
	cfg.Model.Arch = "cifar"
	m, err := train.ModelFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cifar := filepath.Join(t.TempDir(), "cifar.onnx")
	if err := train.ExportModel(cifar, train.NewState(cfg, m), nil); err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(cifar)
	if err != nil {
		t.Fatal(err)
	}
	// A model of the right shape whose first weights are NaN: its
	// posteriors and energies are not finite.
	cfg = train.DefaultConfig()
	if m, err = train.ModelFor(cfg); err != nil {
		t.Fatal(err)
	}
	st := train.NewState(cfg, m)
	for i := range st.Params[0] {
		st.Params[0][i] = float32(math.NaN())
	}
	nan := filepath.Join(t.TempDir(), "nan.onnx")
	if err := train.ExportModel(nan, st, nil); err != nil {
		t.Fatal(err)
	}
	nanModel, err := os.ReadFile(nan)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"garbage": []byte("not an onnx model at all"), "3×32×32 input": other, "NaN weights": nanModel} {
		code, answer := call(h, "PUT", "/models/mnist-cebm", "application/octet-stream", body, nil)
		if code != 422 || !bytes.Contains([]byte(answer), []byte("model-refused")) {
			t.Errorf("%s: %d %s", name, code, answer)
		}
		t.Logf("%s: %d %s", name, code, answer)
		call(h, "GET", "/models", "", nil, &models)
		if models.Models[0].Digest != digest || !models.Models[0].Ready {
			t.Errorf("%s replaced the served model: %+v", name, models.Models[0])
		}
	}
	gmm, _ := os.ReadFile(gmmModel)
	if code, answer := call(h, "PUT", "/models/another", "application/octet-stream", gmm, nil); code != 404 {
		t.Errorf("PUT of a name not served, without a folder: %d %s", code, answer)
	}
}
