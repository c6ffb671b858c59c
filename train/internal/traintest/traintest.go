// Package traintest holds what the tests of train's packages share: the
// real MNIST training images and random inputs.
package traintest

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cebm/cebm/data"
)

var mnist struct {
	once sync.Once
	set  *data.Set
	err  error
}

// MNIST returns the first n images of the real MNIST training split (NCHW
// in [−1, 1]) and its class names, loaded once per test binary.
func MNIST(t testing.TB, n int) (x []float32, classes []string) {
	t.Helper()
	mnist.once.Do(func() { mnist.set, mnist.err = data.Load("mnist", "train") })
	if mnist.err != nil {
		t.Fatal(mnist.err)
	}
	s := mnist.set
	return s.Images[:n*s.Size()], s.Classes
}

// RandVec is n values U(−1, 1) from seed.
func RandVec(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	return v
}
