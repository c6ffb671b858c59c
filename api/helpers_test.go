package api

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/internal/openapitest"
	"github.com/cebm/cebm/reference"
	"github.com/cebm/cebm/train"
	"github.com/cebm/cebm/train/model"
)

var fixture struct {
	once      sync.Once
	err       error
	dir       string
	cebm, gmm string
	train     *data.Set
	test      *data.Set
	spec      *openapitest.Spec
}

// setup exports a fresh CEBM and GMM-CEBM (untrained, deterministic) and
// loads MNIST and the OpenAPI document, once per test binary.
func setup(t testing.TB) {
	t.Helper()
	fixture.once.Do(func() {
		fixture.dir, fixture.err = os.MkdirTemp("", "cebm-api-test")
		if fixture.err != nil {
			return
		}
		for _, k := range []model.Kind{model.CEBM, model.GMMCEBM} {
			cfg := train.DefaultConfig()
			cfg.Model.Kind = k
			m, err := train.ModelFor(cfg)
			if err != nil {
				fixture.err = err
				return
			}
			p := filepath.Join(fixture.dir, string(k)+".onnx")
			if fixture.err = train.ExportModel(p, train.NewState(cfg, m), []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}); fixture.err != nil {
				return
			}
			if k == model.CEBM {
				fixture.cebm = p
			} else {
				fixture.gmm = p
			}
		}
		if fixture.train, fixture.err = data.Load("mnist", "train"); fixture.err != nil {
			return
		}
		if fixture.test, fixture.err = data.Load("mnist", "test"); fixture.err != nil {
			return
		}
		doc, err := os.ReadFile("../openapi.yaml")
		if err != nil {
			fixture.err = err
			return
		}
		fixture.spec, fixture.err = openapitest.Load(doc)
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
}

// newTestServer serves model path with the first nRef MNIST training
// images as the reference set.
func newTestServer(t testing.TB, path string, nRef int, cfg Config) (*Server, *encoder.Model) {
	t.Helper()
	setup(t)
	m, err := encoder.Load(path, testThreads)
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetModel(m)
	set := fixture.train
	ix, energies, err := reference.Build(context.Background(), m, reference.Set{Name: "test", Images: set.Images[:nRef*784], Labels: set.Labels[:nRef]}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ref := Reference{Energies: energies, Pixels: func(id int) []uint8 { return set.Pixel(id) }}
	if err := s.SetIndex(ix, nil, ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return s, m
}

// served is the default model's pair as the server serves it now.
func (s *Server) served() *served {
	set := s.models.Load()
	return set.byName[set.def]
}

// do runs one request and validates it and the response against
// openapi.yaml when the path is one the document describes: every
// response, and every request the server accepted (2xx).
func do(t testing.TB, h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	var body []byte
	if r.ContentLength > 0 { // a body in memory; others are read as they come
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	validate(t, r, body, w)
	return w
}

func validate(t testing.TB, r *http.Request, body []byte, w *httptest.ResponseRecorder) {
	t.Helper()
	err := fixture.spec.Response(r, w.Code, w.Header(), w.Body.Bytes())
	if errors.Is(err, openapitest.ErrUndescribed) {
		// Undescribed paths and methods answer problems.
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: %d with Content-Type %q for a path the document lacks", r.Method, r.URL.Path, w.Code, ct)
		}
		return
	}
	if err != nil {
		t.Errorf("%s %s: response %d does not match openapi.yaml: %v\nbody: %.300s", r.Method, r.URL.Path, w.Code, err, w.Body.String())
	}
	if w.Code/100 != 2 || (r.ContentLength != 0 && body == nil) {
		return
	}
	if err := fixture.spec.Request(r, body); err != nil {
		t.Errorf("%s %s: answered %d to a request that does not match openapi.yaml: %v\nbody: %.300q", r.Method, r.URL.Path, w.Code, err, body)
	}
}

// digitPNG encodes MNIST test image i as a 28×28 grey PNG.
func digitPNG(t testing.TB, i int) []byte {
	t.Helper()
	g := &image.Gray{Pix: append([]uint8(nil), fixture.test.Pixel(i)...), Stride: 28, Rect: image.Rect(0, 0, 28, 28)}
	var b bytes.Buffer
	if err := png.Encode(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// digitJPEG draws MNIST test image i dark on light, in colour, 3× larger.
func digitJPEG(t testing.TB, i int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 84, 84))
	p := fixture.test.Pixel(i)
	for y := 0; y < 84; y++ {
		for x := 0; x < 84; x++ {
			v := 255 - p[(y/3)*28+x/3]
			img.Set(x, y, color.RGBA{v, v, 255 - (255-v)/2, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// bigPNG is a w×h grey PNG.
func bigPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testThreads is the ONNX Runtime thread count of test servers (0: all
// cores, as cebm serve uses).
var testThreads = 0
