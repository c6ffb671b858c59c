package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cebm/cebm/encoder"
)

const shippedModel = "../models/mnist-cebm.onnx"

// The energy rebuilt from the file's initializers and config is the
// exported graph's energy, and its gradient norm is the slope along the
// gradient.
func TestEnergyModelMatchesExport(t *testing.T) {
	enc, err := encoder.Load(shippedModel, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	em, err := LoadEnergyModel(shippedModel, enc.Config, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 6
	per := enc.InputSize()
	x := append(UniformNoise(n/2, per, rng), ConstantImages(n/2, per, rng)...)
	want, err := enc.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	e, g, err := em.EnergyGrad(t.Context(), x, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range e {
		if w := float64(want.Energy[i]); math.Abs(e[i]-w) > 1e-4*(1+math.Abs(w)) {
			t.Errorf("image %d: E = %v, the exported encoder says %v", i, e[i], w)
		}
	}
	// Central difference along the unit gradient direction ≈ ‖∇E‖.
	const h = 1e-2
	_, gx, err := em.engine.EnergyGrad(em.params, x[:per])
	if err != nil {
		t.Fatal(err)
	}
	dir := append([]float32(nil), gx[:per]...)
	xp, xm := make([]float32, per), make([]float32, per)
	for j := range dir {
		u := float32(float64(dir[j]) / g[0])
		xp[j], xm[j] = x[j]+h*u, x[j]-h*u
	}
	ep, _, err := em.EnergyGrad(t.Context(), xp, 1)
	if err != nil {
		t.Fatal(err)
	}
	em2, _, err := em.EnergyGrad(t.Context(), xm, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fd := (ep[0] - em2[0]) / (2 * h); math.Abs(fd-g[0]) > 0.05*g[0] {
		t.Errorf("‖∇E‖ = %v, slope along it %v", g[0], fd)
	}
	s, err := em.Sample(t.Context(), 3, 2, 1)
	if err != nil || len(s) != 3*per {
		t.Fatalf("Sample: %d values, %v", len(s), err)
	}
}

func TestConstantImages(t *testing.T) {
	x := ConstantImages(3, 5, rand.New(rand.NewPCG(1, 2)))
	for i := 0; i < 3; i++ {
		for j := 1; j < 5; j++ {
			if x[i*5+j] != x[i*5] || x[i*5] < -1 || x[i*5] > 1 {
				t.Fatalf("image %d is not one value in [-1, 1]: %v", i, x[i*5:(i+1)*5])
			}
		}
	}
}
