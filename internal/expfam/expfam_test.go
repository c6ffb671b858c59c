package expfam

import (
	"math"
	"testing"
)

// The log-normaliser of N(μ, σ²) in natural parameters equals
// μ²/(2σ²) + log σ (the Gaussian's log-partition without ½·log 2π).
func TestLogNormalizerClosedForm(t *testing.T) {
	for _, c := range []struct{ mu, sigma float64 }{{0, 1}, {1.5, 0.3}, {-2, 4}} {
		g := NaturalParams([]float64{c.mu}, []float64{c.sigma * c.sigma})
		want := c.mu*c.mu/(2*c.sigma*c.sigma) + math.Log(c.sigma)
		if got := g.LogNormalizer(); math.Abs(got-want) > 1e-12 {
			t.Errorf("μ=%v σ=%v: B=%v want %v", c.mu, c.sigma, got, want)
		}
	}
}

// With the N(0, I) prior and t = (t1, −s²) the spec gives σ² = 1/(1+2s²),
// μ = t1·σ² and E = Σ ½·log(1+2s²) − t1²/(2(1+2s²)).
func TestPosteriorAndEnergyStandardPrior(t *testing.T) {
	t1 := []float64{0.7, -1.2, 0}
	s := []float64{0.5, 2, -1}
	t2 := make([]float64, len(s))
	var wantE float64
	for i := range s {
		t2[i] = -s[i] * s[i]
		wantE += 0.5*math.Log(1+2*s[i]*s[i]) - t1[i]*t1[i]/(2*(1+2*s[i]*s[i]))
	}
	prior := StandardNormal(3)
	post := prior.Posterior(t1, t2)
	for i := range s {
		v := 1 / (1 + 2*s[i]*s[i])
		if math.Abs(post.Variance()[i]-v) > 1e-12 || math.Abs(post.Mean()[i]-t1[i]*v) > 1e-12 {
			t.Errorf("dim %d: mean %v var %v, want %v %v", i, post.Mean()[i], post.Variance()[i], t1[i]*v, v)
		}
	}
	if e := prior.Energy(t1, t2); math.Abs(e-wantE) > 1e-12 {
		t.Errorf("E = %v want %v", e, wantE)
	}
}

// Energy of the mixture against a direct log-sum-exp of the component
// marginals: p(x) ∝ (1/K) Σ_k exp(−E_k(x)).
func TestMixtureEnergy(t *testing.T) {
	m := Mixture{
		NaturalParams([]float64{0.3, -0.2}, []float64{2, 5}),
		NaturalParams([]float64{-1, 0.8}, []float64{1.5, 1}),
		NaturalParams([]float64{2, 0}, []float64{9, 3}),
	}
	t1, t2 := []float64{0.4, -0.9}, []float64{-0.3, -1.1}
	var sum float64
	for _, c := range m {
		sum += math.Exp(-c.Energy(t1, t2))
	}
	want := -math.Log(sum / 3)
	if got := m.Energy(t1, t2); math.Abs(got-want) > 1e-12 {
		t.Fatalf("E = %v want %v", got, want)
	}
	r := m.Responsibilities(t1, t2)
	var total float64
	for k, p := range r {
		total += p
		if direct := math.Exp(-m[k].Energy(t1, t2)) / sum; math.Abs(p-direct) > 1e-12 {
			t.Errorf("p(y=%d|x) = %v want %v", k, p, direct)
		}
	}
	if math.Abs(total-1) > 1e-12 {
		t.Errorf("responsibilities sum to %v", total)
	}
}
