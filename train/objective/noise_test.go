package objective

import (
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distmv"

	"github.com/cebm/cebm/data"
)

// The Woodbury log-density equals the dense multivariate normal's.
func TestNoiseMixtureLogDensity(t *testing.T) {
	const p, n = 6, 3000
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, n*p)
	for i := range x {
		x[i] = float32(0.3*rng.NormFloat64()) + float32(i%p)*0.1
	}
	m, err := FitNoiseMixture(x, n, p, 2, 2, 0.03, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	dense := make([]*distmv.Normal, len(m.Weight))
	for c := range m.Weight {
		cov := mat.NewSymDense(p, nil)
		for i := 0; i < p; i++ {
			for j := i; j < p; j++ {
				var s float64
				for d := 0; d < m.Rank; d++ {
					s += float64(m.Basis[c][d*p+i]) * float64(m.Basis[c][d*p+j])
				}
				if i == j {
					s += m.Diag[c][i]
				}
				cov.SetSym(i, j, s)
			}
		}
		mu := make([]float64, p)
		for j, v := range m.Mean[c] {
			mu[j] = float64(v)
		}
		var ok bool
		if dense[c], ok = distmv.NewNormal(mu, cov, nil); !ok {
			t.Fatal("covariance not positive definite")
		}
	}
	s := make([]float32, p)
	for k := 0; k < 50; k++ {
		m.Sample(s, rng)
		xs := make([]float64, p)
		for j, v := range s {
			xs[j] = float64(v)
		}
		var want float64
		for c, w := range m.Weight {
			want += w * math.Exp(dense[c].LogProb(xs))
		}
		if got := m.LogDensity(s); math.Abs(got-math.Log(want)) > 1e-6*math.Max(1, math.Abs(got)) {
			t.Fatalf("log q = %v, dense %v", got, math.Log(want))
		}
	}
}

// On MNIST the noise density's draws and noisy training images are told
// apart by log q alone only as much as the report says: the gap NCE must
// bridge (the density chasm).
func TestNoiseMixtureMNISTChasm(t *testing.T) {
	set, err := data.LoadEnv("mnist", "train", os.Getenv)
	if err != nil {
		t.Skipf("MNIST not installed (make setup): %v", err)
	}
	const n = 12000
	per := set.Size()
	x := set.Images[:n*per]
	rng := rand.New(rand.NewPCG(5, 6))
	m, err := FitNoiseMixture(x, n, per, MixtureComponents, MixtureRank, 0.03, rng)
	if err != nil {
		t.Fatal(err)
	}
	held := set.Images[n*per:]
	s := make([]float32, per)
	var qd, qn []float64
	for k := 0; k < 300; k++ {
		src := held[k*per : (k+1)*per]
		for j, v := range src {
			s[j] = v + float32(0.03*rng.NormFloat64())
		}
		qd = append(qd, m.LogDensity(s))
		m.Sample(s, rng)
		qn = append(qn, m.LogDensity(s))
	}
	sort.Float64s(qd)
	sort.Float64s(qn)
	t.Logf("log q of held-out noisy images: median %.0f (10%% %.0f, 90%% %.0f); of q's draws: median %.0f (10%% %.0f, 90%% %.0f)",
		qd[150], qd[30], qd[270], qn[150], qn[30], qn[270])
	if math.IsNaN(qd[150]) || math.IsNaN(qn[150]) {
		t.Fatal("NaN log-density")
	}
}
