//go:build cgo && linux && amd64 && dnnl

package dnnl

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// tinyNet is the smallest encoder of the shape the trainer builds: 2
// images of 1×5×5, a convolution to 2 channels (3×3, stride 1, pad 1
// then 0 by the case), one hidden layer of 3, and the head.
type tinyNet struct {
	n, c, h, w int
	conv       ConvLayer
	hidden     int
	latent     int // 0: an IGEBM head
}

var tiny = tinyNet{n: 2, c: 1, h: 5, w: 5, conv: ConvLayer{Out: 2, Kernel: 3, Stride: 2, Pad: 1}, hidden: 3, latent: 2}

func (t tinyNet) convOut() (int, int) {
	k, s, p := t.conv.Kernel, t.conv.Stride, t.conv.Pad
	return (t.h+2*p-k)/s + 1, (t.w+2*p-k)/s + 1
}

func (t tinyNet) headOut() int {
	if t.latent == 0 {
		return 1
	}
	return 2 * t.latent
}

// params draws the parameters in the trainer's order and layouts.
func (t tinyNet) params(seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	oh, ow := t.convOut()
	sizes := []int{t.conv.Out * t.c * t.conv.Kernel * t.conv.Kernel, t.conv.Out,
		t.hidden * t.conv.Out * oh * ow, t.hidden, t.headOut() * t.hidden, t.headOut()}
	ps := make([][]float32, len(sizes))
	for i, n := range sizes {
		ps[i] = make([]float32, n)
		for j := range ps[i] {
			ps[i][j] = float32(rng.NormFloat64() * 0.5)
		}
	}
	return ps
}

func (t tinyNet) input(seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 2))
	x := make([]float32, t.n*t.c*t.h*t.w)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}

func (t tinyNet) build(tb testing.TB) *Net {
	tb.Helper()
	nn, err := NewNet(t.n, t.c, t.h, t.w, []ConvLayer{t.conv}, []int{t.hidden}, t.latent, 0, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nn.Close)
	return nn
}

func swish(z float64) float64 { return z / (1 + math.Exp(-z)) }

// reference is the energy of each image in float64, written out loop by
// loop from the model's definition: convolution, Swish, dense, Swish, the
// head, then a CEBM's −log of the N(0, I) prior's normaliser ratio
// (Σ ½·log(1+2s²) − t1²/(2(1+2s²))) or an IGEBM's output itself.
func (t tinyNet) reference(ps [][]float32, x []float32) []float64 {
	oh, ow := t.convOut()
	k, s, p := t.conv.Kernel, t.conv.Stride, t.conv.Pad
	out := make([]float64, t.n)
	for b := range t.n {
		img := x[b*t.c*t.h*t.w:]
		a1 := make([]float64, 0, t.conv.Out*oh*ow) // CHW order, as the dense weights read it
		for o := range t.conv.Out {
			for i := range oh {
				for j := range ow {
					z := float64(ps[1][o])
					for c := range t.c {
						for ki := range k {
							for kj := range k {
								y, xx := i*s+ki-p, j*s+kj-p
								if y < 0 || y >= t.h || xx < 0 || xx >= t.w {
									continue
								}
								z += float64(ps[0][((o*t.c+c)*k+ki)*k+kj]) * float64(img[(c*t.h+y)*t.w+xx])
							}
						}
					}
					a1 = append(a1, swish(z))
				}
			}
		}
		dense := func(w, bias []float32, in []float64, act bool) []float64 {
			o := make([]float64, len(bias))
			for r := range o {
				z := float64(bias[r])
				for c, v := range in {
					z += float64(w[r*len(in)+c]) * v
				}
				if act {
					z = swish(z)
				}
				o[r] = z
			}
			return o
		}
		a2 := dense(ps[2], ps[3], a1, true)
		head := dense(ps[4], ps[5], a2, false)
		if t.latent == 0 {
			out[b] = head[0]
			continue
		}
		for j := range t.latent {
			t1, sj := head[j], head[t.latent+j]
			u := 1 + 2*sj*sj
			out[b] += 0.5*math.Log(u) - t1*t1/(2*u)
		}
	}
	return out
}

// TestNetMatchesReference: E(x), ∂ΣE/∂x and Σ∂E/∂θ of a tiny CEBM and
// IGEBM on oneDNN equal the float64 reference above and its central
// differences.
func TestNetMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  tinyNet
	}{{"cebm", tiny}, {"igebm", func() tinyNet { n := tiny; n.latent = 0; return n }()}, {"cebm/pad0", func() tinyNet { n := tiny; n.conv.Pad, n.conv.Stride = 0, 1; return n }()}} {
		t.Run(tc.name, func(t *testing.T) {
			tn := tc.net
			nn := tn.build(t)
			ps, x := tn.params(1), tn.input(2)
			if err := nn.SetParams(ps); err != nil {
				t.Fatal(err)
			}
			want := tn.reference(ps, x)
			e, err := nn.Energy(x)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if d := math.Abs(float64(e[i]) - want[i]); d > 1e-4*(1+math.Abs(want[i])) {
					t.Errorf("E(x_%d) = %v, reference %v", i, e[i], want[i])
				}
			}
			sum := func(ps [][]float32, x []float32) float64 {
				var s float64
				for _, v := range tn.reference(ps, x) {
					s += v
				}
				return s
			}
			const h = 1e-3
			_, dx, err := nn.EnergyGrad(x)
			if err != nil {
				t.Fatal(err)
			}
			for i := range x {
				xp, xm := append([]float32(nil), x...), append([]float32(nil), x...)
				xp[i] += h
				xm[i] -= h
				fd := (sum(ps, xp) - sum(ps, xm)) / (2 * h)
				if math.Abs(float64(dx[i])-fd) > 2e-3*(1+math.Abs(fd)) {
					t.Errorf("∂ΣE/∂x[%d] = %v, central difference %v", i, dx[i], fd)
				}
			}
			ones, zeros := []float32{1, 1}, []float32{0, 0}
			_, grads, err := nn.ParamGrad(x, ones, zeros)
			if err != nil {
				t.Fatal(err)
			}
			for k := range ps {
				for j := range ps[k] {
					pp := clone(ps)
					pp[k][j] += h
					up := sum(pp, x)
					pp[k][j] -= 2 * h
					fd := (up - sum(pp, x)) / (2 * h)
					if math.Abs(float64(grads[k][j])-fd) > 2e-3*(1+math.Abs(fd)) {
						t.Errorf("Σ∂E/∂θ[%d][%d] = %v, central difference %v", k, j, grads[k][j], fd)
					}
				}
			}
		})
	}
}

func clone(ps [][]float32) [][]float32 {
	out := make([][]float32, len(ps))
	for i, p := range ps {
		out[i] = append([]float32(nil), p...)
	}
	return out
}

// TestNetRejects: every size the network does not expect is an error that
// says what was wrong, on the Go side and, when the Go side is passed, on
// the C side; nothing is read or written out of bounds.
func TestNetRejects(t *testing.T) {
	nn := tiny.build(t)
	ps, x := tiny.params(1), tiny.input(2)
	if err := nn.SetParams(ps); err != nil {
		t.Fatal(err)
	}
	short := clone(ps)
	short[2] = short[2][1:]
	checks := []struct {
		name string
		err  error
		want string
	}{
		{"too few tensors", nn.SetParams(ps[:4]), "4 parameter tensors, want 6"},
		{"short weights", nn.SetParams(short), "layer 1: 53 weights and 3 biases, want 54 and 3"},
		{"C: short weights", nn.setLayerC(1, short[2], short[3]), "setting layer 1: layer 1: 53 weights and 3 biases, want 54 and 3"},
		{"C: no layer 7", nn.setLayerC(7, ps[0], ps[1]), "layer 7: the network has 3"},
		{"C: short input", nn.energyC(x, len(x)-1), "Energy: 49 input values, want 50"},
	}
	_, err := nn.Energy(x[1:])
	checks = append(checks, struct {
		name string
		err  error
		want string
	}{"short input", err, "Energy: 49 values for a batch of 2 images of 25"})
	_, _, err = nn.ParamGrad(x, []float32{1}, []float32{0, 0})
	checks = append(checks, struct {
		name string
		err  error
		want string
	}{"short loss weights", err, "1 and 2 weights for a batch of 2"})
	_, err = nn.ScoreParamGrad(x)
	checks = append(checks, struct {
		name string
		err  error
		want string
	}{"second order without EnergyGrad", err, "needs EnergyGrad"})
	for _, c := range checks {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to contain %q", c.name, c.err, c.want)
		}
	}
	// The network still works after the refusals.
	e, err := nn.Energy(x)
	if err != nil {
		t.Fatal(err)
	}
	if want := tiny.reference(ps, x); math.Abs(float64(e[0])-want[0]) > 1e-4*(1+math.Abs(want[0])) {
		t.Errorf("after the refusals E(x_0) = %v, reference %v", e[0], want[0])
	}
	nn.Close()
	nn.Close() // a second Close does nothing
}

// TestNewNetRejects: shapes oneDNN cannot build are errors naming the
// layer and what is wrong, and a failed construction frees what it made
// (run under the race detector and many times: no crash, no double free).
func TestNewNetRejects(t *testing.T) {
	conv := []ConvLayer{{Out: 2, Kernel: 3, Stride: 1, Pad: 0}}
	for _, c := range []struct {
		name               string
		n, ch, h, w        int
		convs              []ConvLayer
		hidden             []int
		latent, components int
		want               string
	}{
		{"kernel larger than the image", 2, 1, 5, 5, []ConvLayer{{Out: 2, Kernel: 9, Stride: 1}}, []int{3}, 2, 0, "convolution 0: kernel 9 on 5×5 with pad 0 leaves no output"},
		{"zero channels", 2, 1, 5, 5, []ConvLayer{{Out: 2, Kernel: 3, Stride: 1}, {Out: 0, Kernel: 1, Stride: 1}}, []int{3}, 2, 0, "convolution 1: 0 channels"},
		{"zero stride", 2, 1, 5, 5, []ConvLayer{{Out: 2, Kernel: 3}}, []int{3}, 2, 0, "stride 0"},
		{"zero width", 2, 1, 5, 5, conv, []int{3, 0}, 2, 0, "dense layer 2: width 0"},
		{"empty batch", 0, 1, 5, 5, conv, []int{3}, 2, 0, "batch 0 of 1×5×5 images"},
		{"components without a latent space", 2, 1, 5, 5, conv, []int{3}, 0, 4, "a latent space for components"},
		{"too many layers", 2, 1, 5, 5, conv, []int{3, 3, 3, 3, 3, 3, 3}, 2, 0, "7 layers in all at most"},
		{"no dense layer", 2, 1, 5, 5, conv, nil, 2, 0, "at least one dense layer"},
	} {
		for range 20 {
			nn, err := NewNet(c.n, c.ch, c.h, c.w, c.convs, c.hidden, c.latent, c.components, 1)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				if nn != nil {
					nn.Close()
				}
				t.Errorf("%s: err %v, want it to contain %q", c.name, err, c.want)
				break
			}
		}
	}
}
