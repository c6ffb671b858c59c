package engine

import (
	"fmt"
	"github.com/cebm/cebm/train/internal/traintest"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cebm/cebm/train/model"
)

// TestNetworkGradients checks ∂E/∂x and every ∂E/∂θ of whole networks (the
// MNIST and CIFAR encoders, GMM-CEBM and IGEBM) against central finite
// differences of the energy graph. float32 throughout (ONNX Runtime has no
// float64 Conv); the CEBM and IGEBM weights are scaled ×3 from their initial
// values so the energy is not dominated by float32 cancellation (the GMM
// energy is large already), and the tolerance is 2% of max(1, |numeric|) at
// 6 sampled coordinates per tensor.
func TestNetworkGradients(t *testing.T) {
	cases := []struct {
		kind  model.Kind
		arch  model.Arch
		scale float32
	}{{model.CEBM, model.MNISTArch(), 3}, {model.GMMCEBM, model.MNISTArch(), 1}, {model.IGEBM, model.MNISTArch(), 3}, {model.CEBM, model.CIFARArch(), 3}}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.kind, c.arch.Name), func(t *testing.T) {
			if testing.Short() && c.arch.Name == "cifar" {
				t.Skip("CIFAR encoder in -short mode")
			}
			checkNetworkGradients(t, c.kind, c.arch, c.scale)
		})
	}
}

func checkNetworkGradients(t *testing.T, kind model.Kind, arch model.Arch, scale float32) {
	const n = 2
	m, err := model.NewModel(kind, arch, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(len(kind))))
	params := m.InitParams(rng)
	for i, s := range m.ParamSpecs() {
		if s.FanIn > 0 {
			for j := range params[i] {
				params[i][j] *= scale
			}
		}
	}
	per := arch.C * arch.H * arch.W
	x := traintest.RandVec(n*per, 13)
	e, err := NewORTEngine(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Analytic: ∂ΣE/∂x from the Langevin graph; ∂(Σ w_i E_i)/∂θ from the
	// step graph with a = w, b = 0.
	_, gx, err := e.EnergyGrad(params, x)
	if err != nil {
		t.Fatal(err)
	}
	gradX := append([]float32(nil), gx...)
	w := []float32{0.7, -1.3}
	_, gp, err := e.ParamGrad(params, x, w, []float32{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	gradP := make([][]float32, len(gp))
	for i := range gp {
		gradP[i] = append([]float32(nil), gp[i]...)
	}
	lossX := func() float64 {
		en, err := e.Energy(params, x)
		if err != nil {
			t.Fatal(err)
		}
		return float64(en[0]) + float64(en[1])
	}
	lossP := func() float64 {
		en, err := e.Energy(params, x)
		if err != nil {
			t.Fatal(err)
		}
		return float64(w[0]*en[0]) + float64(w[1]*en[1])
	}
	check := func(name string, v, analytic []float32, loss func() float64) {
		checkFD(t, rng, name, v, analytic, loss)
	}
	check("x", x, gradX, lossX)
	for i, s := range m.ParamSpecs() {
		check(s.Name, params[i], gradP[i], lossP)
	}
}

// checkFD compares analytic[j] with a finite difference of loss in v[j] at
// 6 random coordinates: Richardson extrapolation of two central differences
// (h = 0.01, 0.02) cancels the h² truncation term, leaving float32 rounding
// as the error. Tolerance: 2% of max(1, |numeric|).
func checkFD(t *testing.T, rng *rand.Rand, name string, v, analytic []float32, loss func() float64) {
	t.Helper()
	for k := 0; k < 6; k++ {
		j := rng.IntN(len(v))
		central := func(h float32) float64 {
			orig := v[j]
			v[j] = orig + h
			up := loss()
			v[j] = orig - h
			down := loss()
			v[j] = orig
			return (up - down) / float64(2*h)
		}
		num := (4*central(1e-2) - central(2e-2)) / 3
		if rel := math.Abs(num-float64(analytic[j])) / math.Max(1, math.Abs(num)); rel > 2e-2 {
			t.Errorf("%s[%d]: analytic %.5g, numeric %.5g", name, j, analytic[j], num)
		}
	}
}
