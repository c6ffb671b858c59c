package engine

import (
	"github.com/cebm/cebm/train/internal/traintest"
	"github.com/cebm/cebm/train/model"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDSMGradients checks the score-matching graph's ∂θ, a second-order
// gradient, against central finite differences of its own loss, on the
// MNIST CEBM: once for ½‖∂E/∂x‖² (σ = 1, ε = 0, no base measure) and once
// for the full loss with random noise levels, noise and base measure.
// Weights are scaled ×2 (at ×3 the loss, itself a derivative, is curved
// enough in the first layer's weights that the finite differences' own
// error reaches a few per cent at some coordinates); tolerance 2% of
// max(1, |numeric|) at 6 coordinates per tensor.
func TestDSMGradients(t *testing.T) {
	const n = 2
	m, _ := model.NewModel(model.CEBM, model.MNISTArch(), 0)
	rng := rand.New(rand.NewPCG(21, 22))
	params := m.InitParams(rng)
	for i, s := range m.ParamSpecs() {
		if s.FanIn > 0 {
			for j := range params[i] {
				params[i][j] *= 2
			}
		}
	}
	e, err := NewORTEngine(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	per := 784
	x := traintest.RandVec(n*per, 23)
	w := []float32{0.7, 1.3}
	for _, tc := range []struct {
		name               string
		eps, sigma, invVar []float32
	}{
		{"half squared input gradient", make([]float32, n*per), []float32{1, 1}, []float32{0, 0}},
		// ε is scaled down so that the loss stays O(1): a float32 loss of
		// ½·784 would round off more than the finite differences resolve.
		{"score matching with base measure", scaled(traintest.RandVec(n*per, 24), 0.1), []float32{0.4, 0.9}, []float32{1.2, 0.6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, gp, err := e.DSMGrad(params, x, tc.eps, tc.sigma, tc.invVar, w)
			if err != nil {
				t.Fatal(err)
			}
			analytic := make([][]float32, len(gp))
			for i := range gp {
				analytic[i] = append([]float32(nil), gp[i]...)
			}
			loss := func() float64 {
				_, l, _, err := e.DSMGrad(params, x, tc.eps, tc.sigma, tc.invVar, w)
				if err != nil {
					t.Fatal(err)
				}
				return float64(w[0]*l[0]) + float64(w[1]*l[1])
			}
			for i, s := range m.ParamSpecs() {
				checkFD(t, rng, s.Name, params[i], analytic[i], loss)
			}
		})
	}
}

func scaled(v []float32, c float32) []float32 {
	for i := range v {
		v[i] *= c
	}
	return v
}

// TestDSMRecoversGaussianScore: denoising score matching of a small CEBM on
// Gaussian data, x ~ N(0, v0·I + a1²·u1u1ᵀ + a2²·u2u2ᵀ) in 16 dimensions,
// with the base measure carrying the isotropic part (σ_B² = v0), must learn
// the rest of the noisy data's score: ∂E/∂x(x̃) ≈ (Σ + σ²I)⁻¹x̃ − x̃/(v0 + σ²).
func TestDSMRecoversGaussianScore(t *testing.T) {
	const (
		dim, batch, steps = 16, 64, 600
		v0, sigma         = 0.01, 0.1
	)
	arch := model.Arch{Name: "tiny", C: 1, H: 4, W: 4, Hidden: []int{32}, LatentDim: 4}
	m, err := model.NewModel(model.CEBM, arch, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(31, 32))
	params := m.InitParams(rng)
	e, err := NewORTEngine(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	// Two orthonormal directions with standard deviations 1.0 and 0.6.
	u := [2][dim]float64{}
	for j := 0; j < dim; j++ {
		u[0][j] = 1 / math.Sqrt(dim)
		u[1][j] = 1 / math.Sqrt(dim)
		if j%2 == 1 {
			u[1][j] = -u[1][j]
		}
	}
	amp := [2]float64{1.0, 0.6}
	draw := func(dst []float32) {
		z0, z1 := rng.NormFloat64(), rng.NormFloat64()
		for j := range dst {
			dst[j] = float32(amp[0]*z0*u[0][j] + amp[1]*z1*u[1][j] + math.Sqrt(v0)*rng.NormFloat64())
		}
	}
	// target is (Σ + σ²I)⁻¹x − x/(v0 + σ²): only the two directions remain.
	target := func(x []float32) []float64 {
		out := make([]float64, dim)
		for k := 0; k < 2; k++ {
			var p float64
			for j := range x {
				p += float64(x[j]) * u[k][j]
			}
			c := 1/(amp[k]*amp[k]+v0+sigma*sigma) - 1/(v0+sigma*sigma)
			for j := range out {
				out[j] += c * p * u[k][j]
			}
		}
		return out
	}
	test := make([]float32, 200*dim)
	for i := 0; i < 200; i++ {
		draw(test[i*dim : (i+1)*dim])
		for j := 0; j < dim; j++ {
			test[i*dim+j] += float32(sigma * rng.NormFloat64())
		}
	}
	relErr := func() float64 {
		_, gx, err := e.EnergyGrad(params, test)
		if err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for i := 0; i < 200; i++ {
			want := target(test[i*dim : (i+1)*dim])
			for j, v := range want {
				d := float64(gx[i*dim+j]) - v
				num += d * d
				den += v * v
			}
		}
		return math.Sqrt(num / den)
	}
	before := relErr()

	xt, eps := make([]float32, batch*dim), make([]float32, batch*dim)
	sig, iv, w := make([]float32, batch), make([]float32, batch), make([]float32, batch)
	for i := range sig {
		sig[i], iv[i], w[i] = sigma, 1/(v0+sigma*sigma), 1/float32(batch)
	}
	mom, vel := make([][]float32, len(params)), make([][]float32, len(params))
	for i, p := range params {
		mom[i], vel[i] = make([]float32, len(p)), make([]float32, len(p))
	}
	for step := 1; step <= steps; step++ {
		for i := 0; i < batch; i++ {
			draw(xt[i*dim : (i+1)*dim])
			for j := 0; j < dim; j++ {
				eps[i*dim+j] = float32(rng.NormFloat64())
				xt[i*dim+j] += sigma * eps[i*dim+j]
			}
		}
		_, _, grads, err := e.DSMGrad(params, xt, eps, sig, iv, w)
		if err != nil {
			t.Fatal(err)
		}
		lr := 3e-3 * math.Sqrt(1-math.Pow(0.999, float64(step))) / (1 - math.Pow(0.9, float64(step)))
		for i, g := range grads {
			for j, gj := range g {
				mom[i][j] = 0.9*mom[i][j] + 0.1*gj
				vel[i][j] = 0.999*vel[i][j] + 0.001*gj*gj
				params[i][j] -= float32(lr) * mom[i][j] / (float32(math.Sqrt(float64(vel[i][j]))) + 1e-8)
			}
		}
	}
	after := relErr()
	t.Logf("relative error of ∂E/∂x against the Gaussian's score: %.3f before, %.3f after %d steps", before, after, steps)
	if after > 0.25 || after > before/3 {
		t.Fatalf("score not recovered: relative error %.3f before, %.3f after", before, after)
	}
}
