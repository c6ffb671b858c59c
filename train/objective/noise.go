package objective

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// NoiseMixture is noise-contrastive estimation's noise density q: a
// mixture of Gaussians in pixel space, each with a low-rank covariance plus
// a per-pixel diagonal, fitted to the training images without their labels
// (the clusters and principal directions of [PixelMixture]). Unlike the
// chains' starts it is not clipped, so its log-density is exact, and its
// diagonal is each pixel's variance left after the principal directions
// plus the data noise σ_d², so the background of a draw is as quiet as the
// background of a noisy training image.
//
// Component k is N(Mean[k], D_k + B_kᵀB_k), B_k the Rank × P rows of
// Basis[k] and D_k = diag(Diag[k]).
type NoiseMixture struct {
	Weight []float64   // K mixture weights, summing to 1
	Mean   [][]float32 // K × P
	Basis  [][]float32 // K × (Rank·P): principal directions scaled by their standard deviations
	Diag   [][]float64 // K × P: the diagonal's variances
	Rank   int
	P      int

	// Woodbury's terms of each component's log-density, from prepare.
	logNorm []float64       // log w_k − ½(P·log 2π + log|Σ_k|)
	scaled  [][]float64     // B_k·D_k⁻¹, Rank × P
	chol    []*mat.Cholesky // of I + B_k·D_k⁻¹·B_kᵀ
}

// FitNoiseMixture fits a NoiseMixture with k components of rank r to n
// images of p values each in x, for training images with N(0, dataNoise²)
// added; rng picks the subset and seeds k-means.
func FitNoiseMixture(x []float32, n, p, k, r int, dataNoise float64, rng *rand.Rand) (*NoiseMixture, error) {
	switch {
	case n < 1 || len(x) != n*p:
		return nil, fmt.Errorf("noise mixture: %d values for %d images of %d", len(x), n, p)
	case k < 1 || r < 0 || r >= p:
		return nil, fmt.Errorf("noise mixture: %d components of rank %d for %d values", k, r, p)
	case dataNoise <= 0:
		return nil, fmt.Errorf("noise mixture: data noise %v, want > 0 (it keeps every variance positive)", dataNoise)
	}
	sub, err := fitSubset(x, n, p, k, r, rng)
	if err != nil {
		return nil, err
	}
	assign := kmeans(sub, k, rng)
	m := &NoiseMixture{Rank: r, P: p}
	floor := dataNoise * dataNoise
	for c := 0; c < k; c++ {
		members := cluster(sub, assign, c)
		if len(members) < r+2 {
			continue // too few to fit: drop it
		}
		mean, basis, _ := LowRankGaussian(members, r)
		diag := make([]float64, p)
		for _, x := range members {
			for j, v := range x {
				d := float64(v - mean[j])
				diag[j] += d * d
			}
		}
		for j := range diag {
			v := diag[j] / float64(len(members)-1)
			for d := 0; d < r; d++ {
				b := float64(basis[d*p+j])
				v -= b * b
			}
			diag[j] = max(v, 0) + floor
		}
		m.Weight = append(m.Weight, float64(len(members)))
		m.Mean = append(m.Mean, mean)
		m.Basis = append(m.Basis, basis)
		m.Diag = append(m.Diag, diag)
	}
	if len(m.Weight) == 0 {
		return nil, errors.New("noise mixture: every cluster is too small")
	}
	normalise(m.Weight)
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m, nil
}

// fitSubset is a random subset of at most mixtureFitImages of the n images
// in x, enough for k components of rank r.
func fitSubset(x []float32, n, p, k, r int, rng *rand.Rand) ([][]float32, error) {
	idx := rng.Perm(n)
	if len(idx) > mixtureFitImages {
		idx = idx[:mixtureFitImages]
	}
	if len(idx) < k*(r+2) {
		return nil, fmt.Errorf("mixture: %d images are too few for %d components of rank %d", len(idx), k, r)
	}
	sub := make([][]float32, len(idx))
	for i, j := range idx {
		sub[i] = x[j*p : (j+1)*p]
	}
	return sub, nil
}

// prepare computes each component's Woodbury terms: with A = I + B·D⁻¹·Bᵀ,
// log|Σ| = Σ log d_j + log|A| and Σ⁻¹ = D⁻¹ − D⁻¹Bᵀ·A⁻¹·B·D⁻¹.
func (m *NoiseMixture) prepare() error {
	r, p := m.Rank, m.P
	k := len(m.Weight)
	m.logNorm, m.scaled, m.chol = make([]float64, k), make([][]float64, k), make([]*mat.Cholesky, k)
	for c := 0; c < k; c++ {
		diag, basis := m.Diag[c], m.Basis[c]
		bd := make([]float64, r*p)
		logDet := 0.0
		for j, d := range diag {
			logDet += math.Log(d)
			for i := 0; i < r; i++ {
				bd[i*p+j] = float64(basis[i*p+j]) / d
			}
		}
		a := mat.NewSymDense(r, nil)
		for i := 0; i < r; i++ {
			for l := i; l < r; l++ {
				var s float64
				for j := 0; j < p; j++ {
					s += bd[i*p+j] * float64(basis[l*p+j])
				}
				if i == l {
					s++
				}
				a.SetSym(i, l, s)
			}
		}
		var ch mat.Cholesky
		if r > 0 && !ch.Factorize(a) {
			return fmt.Errorf("noise mixture: component %d's covariance is not positive definite", c)
		}
		if r > 0 {
			logDet += ch.LogDet()
		}
		m.logNorm[c] = math.Log(m.Weight[c]) - 0.5*(float64(p)*math.Log(2*math.Pi)+logDet)
		m.scaled[c], m.chol[c] = bd, &ch
	}
	return nil
}

// Sample writes one draw into dst (P values), not clipped.
func (m *NoiseMixture) Sample(dst []float32, rng *rand.Rand) {
	u, c := rng.Float64(), 0
	for c < len(m.Weight)-1 && u >= m.Weight[c] {
		u -= m.Weight[c]
		c++
	}
	for j, v := range m.Mean[c] {
		dst[j] = v + float32(math.Sqrt(m.Diag[c][j])*rng.NormFloat64())
	}
	basis := m.Basis[c]
	for d := 0; d < m.Rank; d++ {
		z := float32(rng.NormFloat64())
		for j, b := range basis[d*m.P : (d+1)*m.P] {
			dst[j] += z * b
		}
	}
}

// LogDensity returns log q(x) of one image (P values).
func (m *NoiseMixture) LogDensity(x []float32) float64 {
	r, p := m.Rank, m.P
	d := make([]float64, p)
	v := mat.NewVecDense(max(r, 1), nil)
	var w mat.VecDense
	best := math.Inf(-1)
	logs := make([]float64, len(m.Weight))
	for c := range m.Weight {
		mean, diag, bd := m.Mean[c], m.Diag[c], m.scaled[c]
		var quad float64
		for j, xv := range x {
			d[j] = float64(xv - mean[j])
			quad += d[j] * d[j] / diag[j]
		}
		if r > 0 {
			for i := 0; i < r; i++ {
				var s float64
				row := bd[i*p : (i+1)*p]
				for j, dj := range d {
					s += row[j] * dj
				}
				v.SetVec(i, s)
			}
			if err := m.chol[c].SolveVecTo(&w, v); err == nil {
				quad -= mat.Dot(v, &w)
			}
		}
		logs[c] = m.logNorm[c] - 0.5*quad
		best = max(best, logs[c])
	}
	var s float64
	for _, l := range logs {
		s += math.Exp(l - best)
	}
	return best + math.Log(s)
}
