package objective

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// PixelMixture is an informative start for Langevin chains: a mixture of
// low-rank Gaussians in pixel space, fitted to the training images without
// their labels (k-means for the components, then each component's top
// principal directions plus an isotropic residual). Ten Langevin steps
// cannot turn U(−1, 1) noise into a digit; a draw from this mixture already
// looks like a blurry one, so the negatives stay hard (the idea of JEM++'s
// informative initialisation, here without labels).
//
// Component k draws x = Mean[k] + Σ_j z_j·Basis[k][j] + Resid[k]·ε, with z
// and ε standard normal, clipped to [−1, 1].
type PixelMixture struct {
	Weight []float64   // K mixture weights (cluster fractions), summing to 1
	Mean   [][]float32 // K × P
	Basis  [][]float32 // K × (Rank·P): principal directions scaled by their standard deviations
	Resid  []float64   // K residual standard deviations
	Rank   int
	P      int // values per image
}

// Mixture fit settings: components, principal directions per component, and
// the images the fit looks at (a random subset keeps it to a few seconds).
const (
	MixtureComponents = 20
	MixtureRank       = 24
	mixtureFitImages  = 12000
	kmeansIterations  = 20
)

// FitPixelMixture fits a PixelMixture with k components of rank r to n
// images of p values each in x, using rng for the subset and k-means++.
func FitPixelMixture(x []float32, n, p, k, r int, rng *rand.Rand) (*PixelMixture, error) {
	switch {
	case n < 1 || len(x) != n*p:
		return nil, fmt.Errorf("mixture: %d values for %d images of %d", len(x), n, p)
	case k < 1 || r < 0 || r >= p:
		return nil, fmt.Errorf("mixture: %d components of rank %d for %d values", k, r, p)
	}
	sub, err := fitSubset(x, n, p, k, r, rng)
	if err != nil {
		return nil, err
	}
	assign := kmeans(sub, k, rng)

	m := &PixelMixture{Rank: r, P: p}
	for c := 0; c < k; c++ {
		members := cluster(sub, assign, c)
		if len(members) < 2 {
			continue // an empty cluster: drop it
		}
		mean, basis, resid := LowRankGaussian(members, r)
		m.Weight = append(m.Weight, float64(len(members)))
		m.Mean = append(m.Mean, mean)
		m.Basis = append(m.Basis, basis)
		m.Resid = append(m.Resid, resid)
	}
	if len(m.Weight) == 0 {
		return nil, errors.New("mixture: every cluster is empty")
	}
	normalise(m.Weight)
	return m, nil
}

// Sample writes one draw into dst (P values), clipped to [−1, 1].
func (m *PixelMixture) Sample(dst []float32, rng *rand.Rand) {
	u, c := rng.Float64(), 0
	for c < len(m.Weight)-1 && u >= m.Weight[c] {
		u -= m.Weight[c]
		c++
	}
	resid := m.Resid[c]
	for j, v := range m.Mean[c] {
		dst[j] = v + float32(resid*rng.NormFloat64())
	}
	basis := m.Basis[c]
	for d := 0; d < m.Rank; d++ {
		z := float32(rng.NormFloat64())
		for j, b := range basis[d*m.P : (d+1)*m.P] {
			dst[j] += z * b
		}
	}
	for j, v := range dst {
		dst[j] = max(-1, min(1, v))
	}
}

// cluster returns the rows of xs assigned to cluster c.
func cluster(xs [][]float32, assign []int, c int) [][]float32 {
	var members [][]float32
	for i, a := range assign {
		if a == c {
			members = append(members, xs[i])
		}
	}
	return members
}

// normalise scales w to sum to 1.
func normalise(w []float64) {
	var total float64
	for _, v := range w {
		total += v
	}
	for i := range w {
		w[i] /= total
	}
}

// kmeans clusters xs into k groups (k-means++ seeding, then Lloyd's
// iterations) and returns each point's cluster.
func kmeans(xs [][]float32, k int, rng *rand.Rand) []int {
	p := len(xs[0])
	centres := make([][]float64, 0, k)
	add := func(x []float32) {
		c := make([]float64, p)
		for j, v := range x {
			c[j] = float64(v)
		}
		centres = append(centres, c)
	}
	add(xs[rng.IntN(len(xs))])
	d2 := make([]float64, len(xs))
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	for len(centres) < k {
		var sum float64
		last := centres[len(centres)-1]
		for i, x := range xs {
			d2[i] = min(d2[i], sqDist(x, last))
			sum += d2[i]
		}
		u := rng.Float64() * sum
		pick := len(xs) - 1
		for i, d := range d2 {
			if u < d {
				pick = i
				break
			}
			u -= d
		}
		add(xs[pick])
	}
	assign := make([]int, len(xs))
	for it := 0; it < kmeansIterations; it++ {
		for i, x := range xs {
			best, bestD := 0, math.Inf(1)
			for c, ctr := range centres {
				if d := sqDist(x, ctr); d < bestD {
					best, bestD = c, d
				}
			}
			assign[i] = best
		}
		counts := make([]int, k)
		for c := range centres {
			clear(centres[c])
		}
		for i, x := range xs {
			c := centres[assign[i]]
			counts[assign[i]]++
			for j, v := range x {
				c[j] += float64(v)
			}
		}
		for c, n := range counts {
			for j := range centres[c] {
				if n > 0 {
					centres[c][j] /= float64(n)
				}
			}
		}
	}
	return assign
}

func sqDist(x []float32, c []float64) float64 {
	var s float64
	for j, v := range x {
		d := float64(v) - c[j]
		s += d * d
	}
	return s
}

// LowRankGaussian fits mean + top-r principal directions (row k of basis,
// P values, scaled by its standard deviation; zero where the variance is)
// + an isotropic residual to the rows of xs.
func LowRankGaussian(xs [][]float32, r int) (mean []float32, basis []float32, resid float64) {
	n, p := len(xs), len(xs[0])
	mu := make([]float64, p)
	for _, x := range xs {
		for j, v := range x {
			mu[j] += float64(v)
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	centred := mat.NewDense(n, p, nil)
	for i, x := range xs {
		for j, v := range x {
			centred.Set(i, j, float64(v)-mu[j])
		}
	}
	mean = make([]float32, p)
	for j, v := range mu {
		mean[j] = float32(v)
	}
	var total float64 // trace of the covariance
	for i := 0; i < n; i++ {
		for j := 0; j < p; j++ {
			total += centred.At(i, j) * centred.At(i, j)
		}
	}
	total /= float64(n - 1)
	// The covariance CᵀC/(n−1) is p×p; with fewer images than values the
	// Gram matrix CCᵀ/(n−1), n×n, has the same nonzero eigenvalues and is
	// cheaper: its eigenvector u gives the direction Cᵀu/√((n−1)λ).
	gram := n < p
	var m mat.SymDense
	if gram {
		m.SymOuterK(1/float64(n-1), centred)
	} else {
		m.SymOuterK(1/float64(n-1), centred.T())
	}
	var eig mat.EigenSym
	if !eig.Factorize(&m, true) {
		// No eigen-decomposition: an isotropic Gaussian around the mean.
		return mean, make([]float32, r*p), math.Sqrt(max(total, 0) / float64(p))
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, len(vals))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	basis = make([]float32, r*p)
	rest := total
	for rank, i := range order[:min(r, len(order))] {
		v := max(vals[i], 0)
		rest -= v
		if v == 0 {
			continue
		}
		// Row rank of the basis: the direction scaled by √λ.
		for j := 0; j < p; j++ {
			if gram {
				var d float64 // (Cᵀu)_j
				for k := 0; k < n; k++ {
					d += centred.At(k, j) * vecs.At(k, i)
				}
				basis[rank*p+j] = float32(d / math.Sqrt(float64(n-1)))
			} else {
				basis[rank*p+j] = float32(math.Sqrt(v) * vecs.At(j, i))
			}
		}
	}
	return mean, basis, math.Sqrt(max(rest, 0) / float64(p-r))
}
