package objective

import (
	"math"
	"math/rand/v2"
	"testing"
)

// rankingNCE's gradient matches central differences of its loss.
func TestRankingNCEGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const b, m = 4, 6
	energy := make([]float32, b+m)
	logQ := make([]float64, b+m)
	for i := range energy {
		energy[i] = float32(rng.NormFloat64())
		logQ[i] = 3 * rng.NormFloat64()
	}
	_, grad := rankingNCE(energy, logQ, b)
	for i := range energy {
		const h = 1e-2
		e := append([]float32(nil), energy...)
		e[i] += h
		up, _ := rankingNCE(e, logQ, b)
		e[i] -= 2 * h
		down, _ := rankingNCE(e, logQ, b)
		if fd := (up - down) / (2 * h); math.Abs(fd-grad[i]) > 1e-3 {
			t.Errorf("∂L/∂E[%d] = %v, central difference %v", i, grad[i], fd)
		}
	}
	// A data image's energy far below every draw's: nothing left to learn.
	energy = []float32{-100, 0, 0}
	loss, grad := rankingNCE(energy, []float64{0, 0, 0}, 1)
	if loss > 1e-6 || math.Abs(grad[0]) > 1e-6 {
		t.Errorf("separated: loss %v, gradient %v", loss, grad)
	}
}
