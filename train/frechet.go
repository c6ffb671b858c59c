package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cebm/cebm/train/objective"
	"gonum.org/v1/gonum/mat"
)

// SampleQuality scores how close a set of images (Langevin chains) is to
// the training images: the Fréchet distance between Gaussians fitted to
// both in the space of the training images' top principal components,
// ‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2(C₁C₂)^½) (the FID of Heusel et al. 2017,
// with PCA in place of an Inception network, which a CPU trainer has no
// use for). 0 for the data itself; U(−1, 1) noise scores in the hundreds
// on MNIST, a buffer of digit-like chains a few units. A run logs it for
// its replay buffer at every checkpoint (Metrics.BufferFD), so a run shows
// whether its sampler works while it trains.
type SampleQuality struct {
	dims   int
	per    int
	mean   []float64 // pixel mean of the training images
	basis  []float64 // dims × per principal directions, row-major
	dataMu []float64
	dataC  *mat.SymDense
}

// Sample-quality settings: components, and training images fitted.
const (
	qualityDims   = 50
	qualityImages = 5000
)

// NewSampleQuality fits the principal directions (those of the pixel
// mixture's components, objective.LowRankGaussian) and the data's Gaussian
// to at most qualityImages of the n training images in x (per values
// each), drawn with rng.
func NewSampleQuality(x []float32, n, per int, rng *rand.Rand) (*SampleQuality, error) {
	if n < 2 || len(x) != n*per {
		return nil, fmt.Errorf("sample quality: %d values for %d images of %d", len(x), n, per)
	}
	m := min(n, qualityImages)
	rows := make([][]float32, m)
	sub := make([]float32, 0, m*per)
	for k, i := range rng.Perm(n)[:m] {
		rows[k] = x[i*per : (i+1)*per]
		sub = append(sub, rows[k]...)
	}
	q := &SampleQuality{dims: min(qualityDims, per, m-1), per: per}
	mean, basis, _ := objective.LowRankGaussian(rows, q.dims)
	q.mean = make([]float64, per)
	for j, v := range mean {
		q.mean[j] = float64(v)
	}
	// Unit directions from the rows scaled by their standard deviations.
	q.basis = make([]float64, q.dims*per)
	for d := 0; d < q.dims; d++ {
		row, dir := basis[d*per:(d+1)*per], q.basis[d*per:(d+1)*per]
		var norm float64
		for _, v := range row {
			norm += float64(v) * float64(v)
		}
		if norm == 0 {
			return nil, fmt.Errorf("sample quality: %d images span fewer than %d directions", m, q.dims)
		}
		norm = math.Sqrt(norm)
		for j, v := range row {
			dir[j] = float64(v) / norm
		}
	}
	q.dataMu, q.dataC = q.gaussian(sub, m)
	return q, nil
}

// FD is the Fréchet distance of the n images in x to the training images.
func (q *SampleQuality) FD(x []float32, n int) float64 {
	mu, c := q.gaussian(x, n)
	var d2 float64
	for i, v := range mu {
		d2 += (v - q.dataMu[i]) * (v - q.dataMu[i])
	}
	// tr (C₁C₂)^½ = Σ √eig(C₂^½·C₁·C₂^½), all eigenvalues ≥ 0.
	s2 := symSqrt(q.dataC)
	var prod mat.Dense
	prod.Mul(s2, c)
	prod.Mul(&prod, s2)
	k := q.dims
	sym := mat.NewSymDense(k, nil)
	for i := 0; i < k; i++ {
		for j := i; j < k; j++ {
			sym.SetSym(i, j, (prod.At(i, j)+prod.At(j, i))/2)
		}
	}
	var eig mat.EigenSym
	eig.Factorize(sym, false)
	var trSqrt float64
	for _, v := range eig.Values(nil) {
		trSqrt += math.Sqrt(max(v, 0))
	}
	return d2 + mat.Trace(c) + mat.Trace(q.dataC) - 2*trSqrt
}

// gaussian is the mean and covariance of the images' projections.
func (q *SampleQuality) gaussian(x []float32, n int) ([]float64, *mat.SymDense) {
	proj := make([]float32, n*q.dims)
	for i := 0; i < n; i++ {
		img := x[i*q.per : (i+1)*q.per]
		for d := 0; d < q.dims; d++ {
			var s float64
			for j, b := range q.basis[d*q.per : (d+1)*q.per] {
				s += (float64(img[j]) - q.mean[j]) * b
			}
			proj[i*q.dims+d] = float32(s)
		}
	}
	return meanCov(proj, n, q.dims)
}

// meanCov returns the mean of n rows of dim values and their covariance.
func meanCov(x []float32, n, dim int) ([]float64, *mat.SymDense) {
	mean := make([]float64, dim)
	for i := 0; i < n; i++ {
		for j, v := range x[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	c := mat.NewSymDense(dim, nil)
	row := make([]float64, dim)
	for i := 0; i < n; i++ {
		for j, v := range x[i*dim : (i+1)*dim] {
			row[j] = float64(v) - mean[j]
		}
		c.SymRankOne(c, 1/float64(n-1), mat.NewVecDense(dim, row))
	}
	return mean, c
}

// symSqrt is the symmetric square root of a positive semi-definite matrix.
func symSqrt(c *mat.SymDense) *mat.Dense {
	var eig mat.EigenSym
	eig.Factorize(c, true)
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	k := len(vals)
	d := mat.NewDiagDense(k, nil)
	for i, x := range vals {
		d.SetDiag(i, math.Sqrt(max(x, 0)))
	}
	var out mat.Dense
	out.Mul(&v, d)
	out.Mul(&out, v.T())
	return &out
}

// BufferFD is the replay buffer's SampleQuality score (0 without a
// buffer: score matching), fitting it on first use.
func (t *Trainer) BufferFD() (float64, error) {
	buf := t.State.Objective.Buffer
	if len(buf) == 0 {
		return 0, nil
	}
	a := t.Model.Arch
	per := a.C * a.H * a.W
	if t.quality == nil {
		rng := rand.New(rand.NewPCG(t.State.Config.Run.Seed, 0x6664))
		q, err := NewSampleQuality(t.data.X, t.data.N, per, rng)
		if err != nil {
			return 0, err
		}
		t.quality = q
	}
	return t.quality.FD(buf, len(buf)/per), nil
}
