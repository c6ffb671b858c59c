package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Well-separated clusters in 10 dimensions stay separated in the map: every
// point's nearest neighbour in 2-D has its label.
func TestTSNESeparatesClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const dim = 10
	x, y := toy(rng, 3, 40, dim, 0.3)
	opt := DefaultTSNEOptions()
	opt.Perplexity, opt.Iterations, opt.ExagIters = 10, 300, 100
	emb, err := TSNE(t.Context(), x, dim, opt)
	if err != nil {
		t.Fatal(err)
	}
	n := len(y)
	wrong := 0
	for i := 0; i < n; i++ {
		best, bd := -1, math.Inf(1)
		for j := 0; j < n; j++ {
			if j == i {
				continue
			}
			d := math.Hypot(emb[2*i]-emb[2*j], emb[2*i+1]-emb[2*j+1])
			if d < bd {
				best, bd = j, d
			}
		}
		if y[best] != y[i] {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d points have a nearest neighbour of another cluster", wrong, n)
	}
}

// Each conditional distribution has the perplexity asked for, and the
// joint probabilities sum to 1.
func TestTSNEPerplexity(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, dim = 50, 5
	d := make([]float64, n)
	for j := range d {
		d[j] = 100 * rng.Float64() // a wide range of scales
	}
	row := make([]float64, n)
	conditional(d, 3, math.Log(10), row)
	var h, s float64
	for _, v := range row {
		s += v
		if v > 0 {
			h -= v * math.Log(v)
		}
	}
	if row[3] != 0 || math.Abs(s-1) > 1e-9 || math.Abs(math.Exp(h)-10) > 1e-3 {
		t.Errorf("p_i|i = %v, sum %v, perplexity %v, want 0, 1, 10", row[3], s, math.Exp(h))
	}

	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	p := tsneAffinities(x, n, dim, 10, 2)
	s = 0
	for _, v := range p {
		s += v
	}
	if math.Abs(s-1) > 1e-6 {
		t.Errorf("joint probabilities sum to %v", s)
	}
}
