package export

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/internal/expfam"
	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/internal/traintest"
	"github.com/cebm/cebm/train/model"
)

// refConv is a plain-Go float64 convolution (NCHW, OIHW), the independent
// reference for ONNX Runtime's output.
func refConv(x []float64, n, c, h, w int, wt, bias []float32, l model.ConvLayer) ([]float64, int, int, int) {
	oh, ow := (h+2*l.Pad-l.Kernel)/l.Stride+1, (w+2*l.Pad-l.Kernel)/l.Stride+1
	out := make([]float64, n*l.Out*oh*ow)
	for b := 0; b < n; b++ {
		for o := 0; o < l.Out; o++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					s := float64(bias[o])
					for ci := 0; ci < c; ci++ {
						for ki := 0; ki < l.Kernel; ki++ {
							y := i*l.Stride - l.Pad + ki
							if y < 0 || y >= h {
								continue
							}
							for kj := 0; kj < l.Kernel; kj++ {
								xx := j*l.Stride - l.Pad + kj
								if xx < 0 || xx >= w {
									continue
								}
								s += x[((b*c+ci)*h+y)*w+xx] * float64(wt[((o*c+ci)*l.Kernel+ki)*l.Kernel+kj])
							}
						}
					}
					out[((b*l.Out+o)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return out, l.Out, oh, ow
}

func refLinear(x []float64, n, in int, wt, bias []float32) []float64 {
	out := len(bias)
	y := make([]float64, n*out)
	for b := 0; b < n; b++ {
		for o := 0; o < out; o++ {
			s := float64(bias[o])
			for i := 0; i < in; i++ {
				s += x[b*in+i] * float64(wt[o*in+i])
			}
			y[b*out+o] = s
		}
	}
	return y
}

func refSwish(v []float64) {
	for i, x := range v {
		v[i] = x / (1 + math.Exp(-x))
	}
}

// refEncoder is the MNIST CEBM encoder in plain Go: the head's output.
func refEncoder(a model.Arch, params [][]float32, x []float32, n int) []float64 {
	h := make([]float64, len(x))
	for i, v := range x {
		h[i] = float64(v)
	}
	c, hh, ww := a.C, a.H, a.W
	k := 0
	for _, l := range a.Convs {
		h, c, hh, ww = refConv(h, n, c, hh, ww, params[k], params[k+1], l)
		refSwish(h)
		k += 2
	}
	in := c * hh * ww
	for range a.Hidden {
		h = refLinear(h, n, in, params[k], params[k+1])
		refSwish(h)
		in = len(params[k+1])
		k += 2
	}
	return refLinear(h, n, in, params[k], params[k+1])
}

// testMeta is the least metadata an export of m takes.
func testMeta(m model.Model, params [][]float32) modelfile.Meta {
	d := m.Arch.LatentDim
	if m.Kind == model.IGEBM {
		d = m.Arch.Hidden[len(m.Arch.Hidden)-1]
	}
	return modelfile.Meta{Kind: m.Kind, LatentDim: d, InputShape: [3]int{m.Arch.C, m.Arch.H, m.Arch.W}, Prior: m.Prior(params)}
}

// TestForwardParity: ONNX Runtime's MNIST encoder equals the plain-Go
// reference to 1e-5 relative, and its energy equals the closed form of
// internal/expfam evaluated on the reference's t(x).
func TestForwardParity(t *testing.T) {
	const n = 4
	m, _ := model.NewModel(model.CEBM, model.MNISTArch(), 0)
	params := m.InitParams(rand.New(rand.NewPCG(3, 4)))
	x := traintest.RandVec(n*28*28, 9)
	model, err := Graph(m, params, testMeta(m, params))
	if err != nil {
		t.Fatal(err)
	}
	out := runExported(t, model, []string{modelfile.OutputT1, modelfile.OutputT2, modelfile.OutputEnergy}, x, n)
	ref := refEncoder(m.Arch, params, x, n)
	d := m.Arch.LatentDim
	var num, den float64
	prior := expfam.StandardNormal(d)
	for b := 0; b < n; b++ {
		t1 := make([]float64, d)
		t2 := make([]float64, d)
		for i := 0; i < d; i++ {
			t1[i] = ref[b*2*d+i]
			s := ref[b*2*d+d+i]
			t2[i] = -s * s
			num += sq(float64(out[0][b*d+i])-t1[i]) + sq(float64(out[1][b*d+i])-t2[i])
			den += sq(t1[i]) + sq(t2[i])
		}
		wantE := prior.Energy(t1, t2)
		if rel := math.Abs(float64(out[2][b])-wantE) / math.Max(1e-3, math.Abs(wantE)); rel > 1e-5 {
			t.Errorf("image %d: energy %v, closed form %v (rel %.2g)", b, out[2][b], wantE, rel)
		}
	}
	if rel := math.Sqrt(num / den); rel > 1e-5 {
		t.Fatalf("t(x) differs from the reference by %.3g relative", rel)
	}
}

func sq(x float64) float64 { return x * x }

// runExported loads a model file as the service does (package encoder),
// runs it on x and returns the named outputs.
func runExported(t *testing.T, model []byte, outputs []string, x []float32, n int) [][]float32 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := encoder.Load(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o, err := m.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]float32{modelfile.OutputT1: o.T1, modelfile.OutputT2: o.T2, modelfile.OutputFeature: o.Feature, modelfile.OutputEnergy: o.Energy}
	out := make([][]float32, len(outputs))
	for i, name := range outputs {
		out[i] = byName[name]
	}
	return out
}

// TestGMMEnergyGraph: the GMM-CEBM energy graph equals expfam's direct
// log-sum-exp over the components, evaluated on the graph's own t(x).
func TestGMMEnergyGraph(t *testing.T) {
	const n = 3
	m, _ := model.NewModel(model.GMMCEBM, model.MNISTArch(), 4)
	params := m.InitParams(rand.New(rand.NewPCG(2, 3)))
	x := traintest.RandVec(n*784, 4)
	model, err := Graph(m, params, testMeta(m, params))
	if err != nil {
		t.Fatal(err)
	}
	out := runExported(t, model, []string{modelfile.OutputT1, modelfile.OutputT2, modelfile.OutputEnergy}, x, n)
	mix := m.Prior(params)
	d := m.Arch.LatentDim
	for b := 0; b < n; b++ {
		t1, t2 := make([]float64, d), make([]float64, d)
		for i := 0; i < d; i++ {
			t1[i], t2[i] = float64(out[0][b*d+i]), float64(out[1][b*d+i])
		}
		want := mix.Energy(t1, t2)
		if math.Abs(float64(out[2][b])-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("image %d: graph energy %v, direct log-sum-exp %v", b, out[2][b], want)
		}
	}
}
