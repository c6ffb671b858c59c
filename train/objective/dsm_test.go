package objective

import (
	"math"
	"slices"
	"testing"
)

// TestAnnealedSamples: score-matching runs draw their pictures by annealed
// Langevin: the right number of finite images in [−1, 1], the same for the
// same seed, and the run's own random stream is left where it was.
func TestAnnealedSamples(t *testing.T) {
	cfg := testConfig()
	cfg.Name, cfg.DSM.BaseSigma = DSM, 0.8
	f := newFixture(t, cfg, 16, 64)
	o := f.obj.(*dsm)
	rngBefore, _ := f.pcg.MarshalBinary()
	a, err := o.annealedSamples(4, 9, f.params)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := o.annealedSamples(4, 9, f.params)
	c, _ := o.annealedSamples(4, 10, f.params)
	if len(a) != 4*784 || !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("samples: %d values, same seed equal %v, other seed equal %v", len(a), slices.Equal(a, b), slices.Equal(a, c))
	}
	for _, v := range a {
		if math.IsNaN(float64(v)) || v < -1 || v > 1 {
			t.Fatalf("sample value %v", v)
		}
	}
	if rngAfter, _ := f.pcg.MarshalBinary(); !slices.Equal(rngBefore, rngAfter) {
		t.Error("drawing samples moved the run's random stream")
	}
}
