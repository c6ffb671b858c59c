package api

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/cebm/cebm/encoder"
)

// fuzzLimits keep each fuzzed image quick to decode (see encoder's
// FuzzDecodeBytes); large images have their own tests.
var fuzzLimits = encoder.Limits{MaxPixels: 1 << 18, MaxSide: 2048, MaxAspect: 64}

// FuzzPreprocess: no image bytes make preprocessing panic, and every
// success has the model's size with values in [-1, 1].
func FuzzPreprocess(f *testing.F) {
	setup(f)
	f.Add(digitPNG(f, 0))
	f.Add(digitJPEG(f, 1))
	f.Add(bigPNG(f, 3, 50))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := encoder.Preprocess(context.Background(), b, [3]int{1, 28, 28}, "light-on-dark", fuzzLimits, encoder.InvertAuto)
		if err != nil {
			return
		}
		if len(in.X) != 784 {
			t.Fatalf("%d values", len(in.X))
		}
		for _, v := range in.X {
			if !(v >= -1 && v <= 1) {
				t.Fatalf("value %v out of range", v)
			}
		}
	})
}

// FuzzRequest: no body and Content-Type make request parsing panic or
// answer anything but a problem or a parsed request (of /classify-knn, the
// request type with the most fields).
func FuzzRequest(f *testing.F) {
	setup(f)
	f.Add("application/json", []byte(`{"images": ["aGVsbG8="], "invert": true, "k": 3}`))
	f.Add("application/json", []byte(`{"items": [{"image": "aGVsbG8=", "label": 7}]}`))
	mp, ct := multipartBody(f, [][]byte{digitPNG(f, 0)}, map[string][]string{"k": {"2"}})
	f.Add(ct, mp)
	f.Add("image/png", digitPNG(f, 0))
	s := New(DefaultConfig(), nil)
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r := req("POST", "/classify-knn", ct, body)
		if err := s.readRequest(r, &classifyRequest{}); err != nil {
			w := httptest.NewRecorder()
			s.writeProblem(w, r, err)
			if w.Code == 500 {
				t.Fatalf("parse error became a 500: %v", err)
			}
		}
	})
}
