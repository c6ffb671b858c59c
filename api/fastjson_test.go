package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cebm/cebm/api/wire"
)

// encodingJSON is what writeJSON writes for v.
func encodingJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestFastJSON: the hand-written /encode answer is byte for byte what
// encoding/json writes, for a served answer and for numbers at the edges
// of each notation, odd strings and absent fields; mixture components and
// NaN are left to encoding/json.
func TestFastJSON(t *testing.T) {
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 300, DefaultConfig())
	w := do(t, s, req("POST", "/encode", "application/json", jsonBodyOf(t, map[string]any{"images": []string{base64.StdEncoding.EncodeToString(digitPNG(t, 0)), base64.StdEncoding.EncodeToString(digitPNG(t, 1))}})))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	served := decode[wire.EncodeResponse](t, w)
	if want := encodingJSON(t, served); !bytes.Equal(w.Body.Bytes(), want) {
		t.Errorf("the /encode answer differs from encoding/json's:\n%s\n%s", w.Body, want)
	}
	if got := w.Header().Get("Content-Length"); got != strconv.Itoa(w.Body.Len()) {
		t.Errorf("Content-Length %q for %d bytes", got, w.Body.Len())
	}

	edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-6, 9.99999e-7, -1e-7, 1e-45, 1e-38, 1e20, 1e21, 3.4028235e38, -3.4028235e38,
		0.1, 1.0 / 3, 123456789, 1e-10, 12345.678, -2.5e-9}
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(50)-25)))
		}
		return v
	}
	pct := 97.5
	cases := []wire.EncodeResponse{
		{Model: "abc", Results: nil},
		{Model: "", Results: []wire.Posterior{}},
		{Model: "<&> \"quoted\" \\ é \u2028 \x01", Results: []wire.Posterior{{ID: "<id>", Energy: -1e-7, Mean: edges}}},
		{Model: "m", Results: []wire.Posterior{
			{ID: "0123456789abcdef", Energy: 1e21, NaturalParams: &wire.NaturalParams{Eta1: rnd(128), Eta2: nil}, Mean: rnd(128), Variance: rnd(128), Inverted: true,
				OOD: &wire.OOD{EnergyPercentile: 99.9, ThresholdPercentile: 99, DistancePercentile: &pct, OutOfDistribution: true, Reason: "far <away> & high"}},
			{ID: "x", Energy: 12.5, Mean: nil, Variance: []float32{}, Responsibilities: []float64{0.25, 1e-300, 0.75, math.SmallestNonzeroFloat64}},
			{ID: "y", Energy: math.MaxFloat64, Mean: rnd(1000), OOD: &wire.OOD{}},
		}},
	}
	for i := range cases {
		got, ok := appendEncodeResponse(nil, &cases[i])
		if want := encodingJSON(t, &cases[i]); !ok || !bytes.Equal(got, want) {
			t.Errorf("case %d (ok %v):\n got %s\nwant %s", i, ok, got, want)
		}
	}
	for _, bad := range []wire.EncodeResponse{
		{Results: []wire.Posterior{{Components: []wire.Component{{}}}}},
		{Results: []wire.Posterior{{Mean: []float32{float32(math.NaN())}}}},
		{Results: []wire.Posterior{{Energy: math.Inf(1)}}},
	} {
		if _, ok := appendEncodeResponse(nil, &bad); ok {
			t.Errorf("%+v was written by hand", bad)
		}
	}
	// What is left to encoding/json still answers.
	rec := httptest.NewRecorder()
	gmm := wire.EncodeResponse{Model: "g", Results: []wire.Posterior{{ID: "z", Mean: []float32{1}, Responsibilities: []float64{1}, Components: []wire.Component{{Responsibility: 1, Mean: []float32{1}, Variance: []float32{2}}}}}}
	writeEncodeJSON(rec, &gmm)
	if want := encodingJSON(t, &gmm); !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("a mixture answer: %s, want %s", rec.Body, want)
	}
}

// TestFastJSONFields: the hand-written answer knows every field of
// wire.EncodeResponse and wire.Posterior; a new one must be added to
// fastjson.go (or the answer left to encoding/json) before this passes.
func TestFastJSONFields(t *testing.T) {
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[wire.EncodeResponse](): "Model Results",
		reflect.TypeFor[wire.Posterior]():      "ID Energy NaturalParams Mean Variance Responsibilities Components Inverted OOD",
		reflect.TypeFor[wire.NaturalParams]():  "Eta1 Eta2",
	} {
		var names []string
		for f := range typ.Fields() {
			names = append(names, f.Name)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%s has the fields %s; fastjson.go writes %s", typ, got, want)
		}
	}
}

// BenchmarkPosteriorJSON: one CEBM posterior's /encode answer by
// encoding/json and by hand.
func BenchmarkPosteriorJSON(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	v := func() []float32 {
		x := make([]float32, 128)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	pct := 50.0
	out := wire.EncodeResponse{Model: "0123456789abcdef0123456789abcdef", Results: []wire.Posterior{{ID: "0123456789abcdef", Energy: -12.25,
		NaturalParams: &wire.NaturalParams{Eta1: v(), Eta2: v()}, Mean: v(), Variance: v(),
		OOD: &wire.OOD{EnergyPercentile: 40, ThresholdPercentile: 99, DistancePercentile: &pct, DistanceThresholdPercentile: 99}}}}
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_ = json.NewEncoder(discard{}).Encode(&out)
		}
	})
	b.Run("fastjson", func(b *testing.B) {
		buf := make([]byte, 0, 16<<10)
		for b.Loop() {
			buf, _ = appendEncodeResponse(buf[:0], &out)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
