package modelfile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cebm/cebm/internal/expfam"
)

func testMeta(kind Kind) Meta {
	m := Meta{
		Kind: kind, LatentDim: 2, InputShape: [3]int{1, 28, 28}, Scaling: Scaling, Polarity: LightOnDark,
		Classes: []string{"a", "b"}, Dataset: "mnist", Steps: 3, WallTime: 12.5, Config: json.RawMessage(`{"kind":"cebm"}`),
	}
	switch kind {
	case CEBM:
		m.Prior = expfam.Mixture{expfam.StandardNormal(2)}
	case GMMCEBM:
		m.Prior = expfam.Mixture{expfam.NaturalParams([]float64{0.1, -0.3}, []float64{2, 0.5}), expfam.StandardNormal(2)}
	}
	return m
}

// TestRoundTrip: Decode(Encode(m)) is m, for every kind.
func TestRoundTrip(t *testing.T) {
	for _, kind := range []Kind{CEBM, GMMCEBM, IGEBM} {
		m := testMeta(kind)
		kv, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if kv[KeyOutputs] != strings.Join(kind.Outputs(), ",") {
			t.Errorf("%s: outputs %q", kind, kv[KeyOutputs])
		}
		got, err := Decode(kv)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: decoded\n%+v\nencoded\n%+v", kind, got, m)
		}
	}
}

// TestDecodeRefuses: metadata a reader could not use is an error that
// names what is wrong.
func TestDecodeRefuses(t *testing.T) {
	good, err := testMeta(CEBM).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, value, want string
	}{
		{KeyKind, "", "not a cebm model"},
		{KeyKind, "vae", "unknown model kind"},
		{KeyOutputs, "feature,energy", KeyOutputs},
		{KeyInputShape, "[1, 28]", KeyInputShape},
		{KeyLatentDim, "0", KeyLatentDim},
		{KeyLatentDim, "x", KeyLatentDim},
		{KeyPrior, "[]", KeyPrior},
		{KeyPrior, `[{"eta1": [0], "eta2": [-0.5]}]`, "wrong dimension"},
		{KeyPrior, `[{"eta1": [0, 0], "eta2": [-0.5, 0]}]`, "η2 ≥ 0"},
		{KeyClasses, "{", KeyClasses},
	} {
		kv := map[string]string{}
		for k, v := range good {
			kv[k] = v
		}
		kv[c.key] = c.value
		if _, err := Decode(kv); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: error %v, want one naming %q", c.key, c.value, err, c.want)
		}
	}
}
