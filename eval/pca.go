package eval

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// pcaBlock is how many vectors FitPCA and Project take at a time: a few
// megabytes of float64 rows, and a check of the context between blocks.
const pcaBlock = 2048

// PCA is the linear baseline of the evaluation: the leading principal
// directions of a set of vectors (images scaled as the pixel baseline
// scales them) and the projection onto them.
type PCA struct {
	Dim  int       // values per input vector
	Mean []float64 // the fitted vectors' mean
	// Directions holds the K unit principal directions as the rows of a
	// K×Dim matrix (row-major), by decreasing variance.
	Directions []float64
	// Variances[i] is the variance of the fitted vectors along direction i
	// (an eigenvalue of their covariance, with the n − 1 denominator).
	Variances []float64
	// TotalVariance is the trace of the covariance: Variances over it are
	// the fractions of variance explained.
	TotalVariance float64
}

// K is the number of directions kept.
func (p *PCA) K() int { return len(p.Variances) }

// FitPCA finds the k leading principal directions of the vectors of x
// (row-major, dim values each): the eigenvectors of their covariance with
// the k largest eigenvalues. Each direction's sign makes its largest
// component positive, so that a fit is reproducible.
func FitPCA(ctx context.Context, x []float32, dim, k int) (*PCA, error) {
	if dim < 1 || len(x)%dim != 0 {
		return nil, fmt.Errorf("eval: %d values are not vectors of %d", len(x), dim)
	}
	n := len(x) / dim
	if n < 2 || k < 1 || k > dim {
		return nil, fmt.Errorf("eval: PCA of %d components from %d vectors of %d", k, n, dim)
	}
	mean := make([]float64, dim)
	for i := range n {
		for j, v := range x[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	// The covariance's upper triangle, accumulated block by block with the
	// rows centred in float64.
	cov := blas64.Symmetric{N: dim, Stride: dim, Data: make([]float64, dim*dim), Uplo: blas.Upper}
	buf := make([]float64, pcaBlock*dim)
	for s := 0; s < n; s += pcaBlock {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := min(n, s+pcaBlock)
		centre(buf, x[s*dim:e*dim], mean)
		a := blas64.General{Rows: e - s, Cols: dim, Stride: dim, Data: buf[:(e-s)*dim]}
		blas64.Syrk(blas.Trans, 1/float64(n-1), a, 1, cov)
	}
	var es mat.EigenSym
	if !es.Factorize(mat.NewSymDense(dim, cov.Data), true) {
		return nil, fmt.Errorf("eval: the covariance's eigendecomposition did not converge")
	}
	vals := es.Values(nil) // ascending
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	p := &PCA{Dim: dim, Mean: mean, Directions: make([]float64, k*dim), Variances: make([]float64, k)}
	for j := range dim {
		p.TotalVariance += cov.Data[j*dim+j]
	}
	for i := range k {
		col := dim - 1 - i
		p.Variances[i] = max(0, vals[col])
		d := p.Directions[i*dim : (i+1)*dim]
		big := 0.0
		for j := range d {
			d[j] = vecs.At(j, col)
			if math.Abs(d[j]) > math.Abs(big) {
				big = d[j]
			}
		}
		if big < 0 {
			for j := range d {
				d[j] = -d[j]
			}
		}
	}
	return p, nil
}

// centre writes the rows of x minus mean into buf as float64.
func centre(buf []float64, x []float32, mean []float64) {
	dim := len(mean)
	for i := range len(x) / dim {
		row := buf[i*dim : (i+1)*dim]
		for j, v := range x[i*dim : (i+1)*dim] {
			row[j] = float64(v) - mean[j]
		}
	}
}

// Project returns the coordinates of the vectors of x along the first k
// directions (k values per vector, float32 as latents are): (x − mean)·Wᵀ.
// The first k' < k coordinates are the projection onto k' directions.
func (p *PCA) Project(ctx context.Context, x []float32, k int) ([]float32, error) {
	dim := p.Dim
	if len(x)%dim != 0 || k < 1 || k > p.K() {
		return nil, fmt.Errorf("eval: projecting %d values onto %d of %d directions of %d", len(x), k, p.K(), dim)
	}
	n := len(x) / dim
	w := blas64.General{Rows: k, Cols: dim, Stride: dim, Data: p.Directions[:k*dim]}
	buf := make([]float64, min(n, pcaBlock)*dim)
	prod := make([]float64, min(n, pcaBlock)*k)
	out := make([]float32, n*k)
	for s := 0; s < n; s += pcaBlock {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := min(n, s+pcaBlock)
		centre(buf, x[s*dim:e*dim], p.Mean)
		a := blas64.General{Rows: e - s, Cols: dim, Stride: dim, Data: buf[:(e-s)*dim]}
		c := blas64.General{Rows: e - s, Cols: k, Stride: k, Data: prod[:(e-s)*k]}
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, a, w, 0, c)
		for i, v := range c.Data {
			out[s*k+i] = float32(v)
		}
	}
	return out, nil
}
