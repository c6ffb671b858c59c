package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// whitenImages is how many training images FitWhitening looks at.
const whitenImages = 10000

// FitWhitening returns the p×p map P = U·diag((λ + eps)^−power)·Uᵀ of
// Config.Whiten (row-major, symmetric) from the covariance UΛUᵀ of up to
// 10,000 of the n images of p values in x, scaled so that the images keep
// their total variance: tr(PΣP) = tr(Σ). Power ½ whitens; ¼ is half-way
// on a log scale. eps keeps directions without variance (MNIST's blank
// border) from being blown up.
func FitWhitening(x []float32, n, p int, power, eps float64, rng *rand.Rand) ([]float32, error) {
	if n < 2 || len(x) != n*p {
		return nil, fmt.Errorf("whitening: %d values for %d images of %d", len(x), n, p)
	}
	m := min(n, whitenImages)
	idx := rng.Perm(n)[:m]
	mean := make([]float64, p)
	for _, i := range idx {
		for j, v := range x[i*p : (i+1)*p] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(m)
	}
	centred := mat.NewDense(m, p, nil)
	for r, i := range idx {
		row := centred.RawRowView(r)
		for j, v := range x[i*p : (i+1)*p] {
			row[j] = float64(v) - mean[j]
		}
	}
	var cov mat.SymDense
	cov.SymOuterK(1/float64(m-1), centred.T())
	var eig mat.EigenSym
	if !eig.Factorize(&cov, true) {
		return nil, fmt.Errorf("whitening: eigendecomposition failed")
	}
	lambda := eig.Values(nil)
	var u mat.Dense
	eig.VectorsTo(&u)
	// scale² · Σ λ(λ+eps)^−2power = Σ λ
	var total, kept float64
	gain := make([]float64, p)
	for i, l := range lambda {
		l = max(l, 0)
		gain[i] = math.Pow(l+eps, -power)
		total += l
		kept += l * gain[i] * gain[i]
	}
	scale := math.Sqrt(total / kept)
	out := make([]float32, p*p)
	for a := 0; a < p; a++ {
		for b := a; b < p; b++ {
			var s float64
			for i := range lambda {
				s += u.At(a, i) * gain[i] * u.At(b, i)
			}
			out[a*p+b], out[b*p+a] = float32(scale*s), float32(scale*s)
		}
	}
	return out, nil
}
