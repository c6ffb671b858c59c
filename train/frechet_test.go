package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSampleQuality: held-out training images are near the data (FD a
// small fraction of the noise's), U(−1, 1) noise is far, and a sample of
// the data moved by a constant offset scores the squared length of the
// offset's projection on the principal directions.
func TestSampleQuality(t *testing.T) {
	imgs := mnistTrain(t, 8000)
	per := 784
	q, err := NewSampleQuality(imgs.X[:5000*per], 5000, per, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	held := imgs.X[5000*per:]
	fdData := q.FD(held, 3000)
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]float32, 3000*per)
	for i := range noise {
		noise[i] = float32(2*rng.Float64() - 1)
	}
	fdNoise := q.FD(noise, 3000)
	if fdNoise < 20*fdData || fdData < 0 {
		t.Fatalf("FD held-out data %.3f, noise %.3f: want data ≥ 0 and noise ≥ 20× data", fdData, fdNoise)
	}
	// The fitted images themselves score 0; shifted by c along the top
	// direction, c². With fewer images than pixels the directions come
	// from the Gram matrix, with more from the covariance: both checked.
	for _, n := range []int{600, 5000} {
		fit := imgs.X[:n*per]
		q, err := NewSampleQuality(fit, n, per, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if self := q.FD(fit, n); math.Abs(self) > 1e-6 {
			t.Fatalf("%d images: FD of the fitted images %g, want 0", n, self)
		}
		const c = 0.8
		shifted := append([]float32(nil), fit...)
		for i := 0; i < n; i++ {
			for j := 0; j < per; j++ {
				shifted[i*per+j] += float32(c * q.basis[j])
			}
		}
		if got := q.FD(shifted, n); math.Abs(got-c*c) > 1e-4 {
			t.Fatalf("%d images: a shift of %v along the top direction: FD %.6f, want %.4f", n, c, got, c*c)
		}
	}
	t.Logf("FD: held-out data %.3f, U(−1, 1) noise %.1f", fdData, fdNoise)
}
