package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestFitWhitening: on Gaussian data of known covariance, P is symmetric,
// keeps the total variance, and maps the covariance's eigenvalues λ to
// c·λ·(λ+eps)^−2power: power ½ with a small eps whitens.
func TestFitWhitening(t *testing.T) {
	const p, n = 6, 20000
	lambda := []float64{16, 4, 1, 0.25, 0.0625, 0}
	rng := rand.New(rand.NewPCG(3, 4))
	// A random rotation from the QR of a Gaussian matrix.
	g := mat.NewDense(p, p, nil)
	for i := range p {
		for j := range p {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	x := make([]float32, n*p)
	z := make([]float64, p)
	for r := range n {
		for k := range z {
			z[k] = math.Sqrt(lambda[k]) * rng.NormFloat64()
		}
		for i := range p {
			var s float64
			for k := range p {
				s += q.At(i, k) * z[k]
			}
			x[r*p+i] = float32(s)
		}
	}
	for _, tc := range []struct{ power, eps float64 }{{0.5, 1e-3}, {0.25, 0.05}} {
		pm, err := FitWhitening(x, n, p, tc.power, tc.eps, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		P := mat.NewDense(p, p, nil)
		for i := range p {
			for j := range p {
				P.Set(i, j, float64(pm[i*p+j]))
				if pm[i*p+j] != pm[j*p+i] {
					t.Fatalf("P is not symmetric at (%d, %d)", i, j)
				}
			}
		}
		// P's action on each true principal direction: a gain of
		// c·(λ+eps)^−power (the fit sees a sample covariance, hence 5%).
		var trace, traceW float64
		gains := make([]float64, p)
		for k := range p {
			u := mat.NewVecDense(p, nil)
			for i := range p {
				u.SetVec(i, q.At(i, k))
			}
			var pu mat.VecDense
			pu.MulVec(P, u)
			gains[k] = mat.Norm(&pu, 2)
			trace += lambda[k]
			traceW += lambda[k] * gains[k] * gains[k]
		}
		if math.Abs(traceW/trace-1) > 0.05 {
			t.Errorf("power %v: total variance ×%.3f, want ×1", tc.power, traceW/trace)
		}
		for k := 1; k < p-1; k++ {
			want := math.Pow((lambda[k]+tc.eps)/(lambda[0]+tc.eps), -tc.power)
			if got := gains[k] / gains[0]; math.Abs(got/want-1) > 0.05 {
				t.Errorf("power %v: direction %d gain ratio %.3f, want %.3f", tc.power, k, got, want)
			}
		}
	}
	if _, err := FitWhitening(x[:5], 1, 5, 0.25, 0.05, rng); err == nil {
		t.Error("one image was accepted")
	}
}
