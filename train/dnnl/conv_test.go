//go:build cgo && linux && amd64 && dnnl && dnnlconv

package dnnl

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestConvForward: the forward step equals the convolution written out
// loop by loop, and a shape without output is an error.
func TestConvForward(t *testing.T) {
	s := Shape{N: 2, C: 3, H: 6, W: 5, O: 4, K: 3, Stride: 2, Pad: 1}
	c, err := New(Forward, s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2 {
		for j := range c.In(i) {
			c.In(i)[j] = float32(rng.NormFloat64())
		}
	}
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	x, w, y := c.In(0), c.In(1), c.Out()
	oh, ow := s.OutHW()
	for n := range s.N {
		for o := range s.O {
			for i := range oh {
				for j := range ow {
					var z float64
					for ch := range s.C {
						for ki := range s.K {
							for kj := range s.K {
								r, q := i*s.Stride+ki-s.Pad, j*s.Stride+kj-s.Pad
								if r >= 0 && r < s.H && q >= 0 && q < s.W {
									z += float64(w[((o*s.C+ch)*s.K+ki)*s.K+kj]) * float64(x[((n*s.C+ch)*s.H+r)*s.W+q])
								}
							}
						}
					}
					if got := y[((n*s.O+o)*oh+i)*ow+j]; math.Abs(float64(got)-z) > 1e-4*(1+math.Abs(z)) {
						t.Fatalf("y[%d,%d,%d,%d] = %v, want %v", n, o, i, j, got, z)
					}
				}
			}
		}
	}
	if _, err := New(Forward, Shape{N: 1, C: 1, H: 2, W: 2, O: 1, K: 5, Stride: 1}); err == nil || !strings.Contains(err.Error(), "want positive sizes and an output") {
		t.Errorf("a kernel larger than the image: err %v", err)
	}
	if _, err := New(Op(7), s); err == nil || !strings.Contains(err.Error(), "unknown op 7") {
		t.Errorf("op 7: err %v", err)
	}
}
