package objective

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cebm/cebm/data"
)

// Two well-separated elongated clusters: the fit must find both means, the
// long direction's spread and the residual noise.
func TestFitPixelMixtureSynthetic(t *testing.T) {
	const p, n = 8, 4000
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*p)
	for i := 0; i < n; i++ {
		sign := float32(1)
		if i%2 == 1 {
			sign = -1
		}
		long := float32(0.2 * rng.NormFloat64()) // std 0.2 along coordinate 0
		for j := 0; j < p; j++ {
			v := sign*0.5 + float32(0.02*rng.NormFloat64())
			if j == 0 {
				v += long
			}
			x[i*p+j] = v
		}
	}
	m, err := FitPixelMixture(x, n, p, 2, 1, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Weight) != 2 {
		t.Fatalf("%d components, want 2", len(m.Weight))
	}
	for c := range m.Weight {
		if math.Abs(m.Weight[c]-0.5) > 0.02 {
			t.Errorf("component %d weight %.3f, want 0.5", c, m.Weight[c])
		}
		sign := float32(1)
		if m.Mean[c][1] < 0 {
			sign = -1
		}
		for j, v := range m.Mean[c] {
			if math.Abs(float64(v-sign*0.5)) > 0.02 {
				t.Errorf("component %d mean[%d] = %.3f, want %.1f", c, j, v, sign*0.5)
			}
		}
		if b := math.Abs(float64(m.Basis[c][0])); math.Abs(b-0.2) > 0.02 {
			t.Errorf("component %d: spread along the long direction %.3f, want 0.2", c, b)
		}
		if math.Abs(m.Resid[c]-0.02) > 0.005 {
			t.Errorf("component %d: residual std %.4f, want 0.02", c, m.Resid[c])
		}
	}
}

// On real MNIST, draws from the mixture must be far closer to the data than
// U(−1, 1) noise (the chains' default start) and stay in [−1, 1].
func TestPixelMixtureMNIST(t *testing.T) {
	set, err := data.LoadEnv("mnist", "train", os.Getenv)
	if err != nil {
		t.Skipf("MNIST not installed (make setup): %v", err)
	}
	const n = 3000
	per := set.Size()
	x := set.Images[:n*per]
	rng := rand.New(rand.NewPCG(5, 6))
	m, err := FitPixelMixture(x, n, per, 10, 8, rng)
	if err != nil {
		t.Fatal(err)
	}
	var wsum float64
	for _, w := range m.Weight {
		wsum += w
	}
	if math.Abs(wsum-1) > 1e-9 {
		t.Errorf("weights sum to %v", wsum)
	}
	nearest := func(s []float32) float64 {
		best := math.Inf(1)
		for i := 0; i < 500; i++ {
			var d float64
			for j, v := range x[i*per : (i+1)*per] {
				e := float64(v - s[j])
				d += e * e
			}
			best = min(best, d)
		}
		return best
	}
	s := make([]float32, per)
	var mixD, uniD float64
	for k := 0; k < 20; k++ {
		m.Sample(s, rng)
		for _, v := range s {
			if v < -1 || v > 1 {
				t.Fatalf("sample value %v outside [-1, 1]", v)
			}
		}
		mixD += nearest(s)
		for j := range s {
			s[j] = float32(2*rng.Float64() - 1)
		}
		uniD += nearest(s)
	}
	if mixD > uniD/4 {
		t.Errorf("mixture draws are %.0f from the data (squared, summed), uniform noise %.0f: want at least 4× closer", mixD, uniD)
	}
	t.Logf("squared distance to the nearest of 500 training images, 20 draws: mixture %.0f, uniform %.0f", mixD, uniD)
}
