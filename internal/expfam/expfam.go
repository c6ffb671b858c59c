// Package expfam holds the closed forms of the conjugate energy-based model
// for a diagonal Gaussian latent (Wu et al. 2021, §2–3), in float64: the
// log-normaliser, the posterior and the marginal energy. The trainer builds
// the same formulas as graph nodes; the service and the tests use these.
package expfam

import "math"

// LogNormalizer is B(η1, η2) = −η1²/(4η2) − ½·log(−2η2) of a 1-D Gaussian in
// natural parameters (η2 < 0), dropping the constant ½·log 2π, which cancels
// in every energy.
func LogNormalizer(eta1, eta2 float64) float64 {
	return -eta1*eta1/(4*eta2) - 0.5*math.Log(-2*eta2)
}

// Gaussian is a diagonal Gaussian in natural parameters.
type Gaussian struct {
	Eta1, Eta2 []float64
}

// NaturalParams of N(mean, variance) per dimension: (μ/σ², −1/(2σ²)).
func NaturalParams(mean, variance []float64) Gaussian {
	g := Gaussian{make([]float64, len(mean)), make([]float64, len(mean))}
	for i := range mean {
		g.Eta1[i] = mean[i] / variance[i]
		g.Eta2[i] = -0.5 / variance[i]
	}
	return g
}

// StandardNormal is the fixed CEBM prior N(0, I): λ = (0, −½).
func StandardNormal(dim int) Gaussian {
	g := Gaussian{make([]float64, dim), make([]float64, dim)}
	for i := range g.Eta2 {
		g.Eta2[i] = -0.5
	}
	return g
}

// LogNormalizer sums B over the dimensions.
func (g Gaussian) LogNormalizer() float64 {
	var s float64
	for i := range g.Eta1 {
		s += LogNormalizer(g.Eta1[i], g.Eta2[i])
	}
	return s
}

// Posterior is the conjugate update λ + t(x): natural parameters add.
func (g Gaussian) Posterior(t1, t2 []float64) Gaussian {
	p := Gaussian{make([]float64, len(g.Eta1)), make([]float64, len(g.Eta1))}
	for i := range g.Eta1 {
		p.Eta1[i] = g.Eta1[i] + t1[i]
		p.Eta2[i] = g.Eta2[i] + t2[i]
	}
	return p
}

// Mean is −η1/(2η2) per dimension.
func (g Gaussian) Mean() []float64 {
	m := make([]float64, len(g.Eta1))
	for i := range m {
		m[i] = -g.Eta1[i] / (2 * g.Eta2[i])
	}
	return m
}

// Variance is −1/(2η2) per dimension.
func (g Gaussian) Variance() []float64 {
	v := make([]float64, len(g.Eta1))
	for i := range v {
		v[i] = -1 / (2 * g.Eta2[i])
	}
	return v
}

// Energy is the marginal energy E(x) = B(λ) − B(λ + t(x)) for prior g.
func (g Gaussian) Energy(t1, t2 []float64) float64 {
	return g.LogNormalizer() - g.Posterior(t1, t2).LogNormalizer()
}

// Mixture is a uniform mixture of diagonal Gaussians (the GMM-CEBM prior).
type Mixture []Gaussian

// Scores are score_k = B(λ_k + t) − B(λ_k), the log-evidence of each
// component up to a shared constant.
func (m Mixture) Scores(t1, t2 []float64) []float64 {
	s := make([]float64, len(m))
	for k, c := range m {
		s[k] = c.Posterior(t1, t2).LogNormalizer() - c.LogNormalizer()
	}
	return s
}

// Energy is log K − logsumexp_k score_k.
func (m Mixture) Energy(t1, t2 []float64) float64 {
	return math.Log(float64(len(m))) - LogSumExp(m.Scores(t1, t2))
}

// Responsibilities are p(y = k | x) = softmax_k score_k.
func (m Mixture) Responsibilities(t1, t2 []float64) []float64 {
	s := m.Scores(t1, t2)
	lse := LogSumExp(s)
	for k := range s {
		s[k] = math.Exp(s[k] - lse)
	}
	return s
}

// LogSumExp is log Σ exp(v), computed stably.
func LogSumExp(v []float64) float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = math.Max(mx, x)
	}
	if math.IsInf(mx, -1) {
		return mx
	}
	var s float64
	for _, x := range v {
		s += math.Exp(x - mx)
	}
	return mx + math.Log(s)
}
