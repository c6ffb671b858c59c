package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/internal/expfam"
	"github.com/cebm/cebm/internal/modelfile"
)

// refConv is a plain-Go float64 convolution (NCHW, OIHW), the independent
// reference for ONNX Runtime's output.
func refConv(x []float64, n, c, h, w int, wt, bias []float32, l ConvLayer) ([]float64, int, int, int) {
	oh, ow := convOut(h, l), convOut(w, l)
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
func refEncoder(a Arch, params [][]float32, x []float32, n int) []float64 {
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
func testMeta(m Model, params [][]float32) modelfile.Meta {
	d := m.Arch.LatentDim
	if m.Kind == IGEBM {
		d = m.Arch.Hidden[len(m.Arch.Hidden)-1]
	}
	return modelfile.Meta{Kind: m.Kind, LatentDim: d, InputShape: [3]int{m.Arch.C, m.Arch.H, m.Arch.W}, Prior: m.Prior(params)}
}

// TestForwardParity: ONNX Runtime's MNIST encoder equals the plain-Go
// reference to 1e-5 relative, and its energy equals the closed form of
// internal/expfam evaluated on the reference's t(x).
func TestForwardParity(t *testing.T) {
	const n = 4
	m, _ := NewModel(CEBM, MNISTArch(), 0)
	params := m.InitParams(rand.New(rand.NewPCG(3, 4)))
	x := randVec(n*28*28, 9)
	model, err := ExportGraph(m, params, testMeta(m, params))
	if err != nil {
		t.Fatal(err)
	}
	out := runExported(t, model, []string{outT1, outT2, outE}, x, n)
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
	byName := map[string][]float32{outT1: o.T1, outT2: o.T2, outFeat: o.Feature, outE: o.Energy}
	out := make([][]float32, len(outputs))
	for i, name := range outputs {
		out[i] = byName[name]
	}
	return out
}

// TestExportReproducesTraining: the exported file, loaded in a fresh
// session, gives the training graph's energies; GMM-CEBM and IGEBM too.
func TestExportReproducesTraining(t *testing.T) {
	const n = 5
	for _, kind := range []Kind{CEBM, GMMCEBM, IGEBM} {
		t.Run(string(kind), func(t *testing.T) {
			m, err := NewModel(kind, MNISTArch(), 10)
			if err != nil {
				t.Fatal(err)
			}
			params := m.InitParams(rand.New(rand.NewPCG(5, 6)))
			x := randVec(n*28*28, 11)
			e, err := NewORTEngine(m, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			want, err := e.Energy(params, x)
			if err != nil {
				t.Fatal(err)
			}
			model, err := ExportGraph(m, params, testMeta(m, params))
			if err != nil {
				t.Fatal(err)
			}
			got := runExported(t, model, []string{outE}, x, n)[0]
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
					t.Errorf("image %d: exported %v, training graph %v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestNetworkGradients checks ∂E/∂x and every ∂E/∂θ of whole networks (the
// MNIST and CIFAR encoders, GMM-CEBM and IGEBM) against central finite
// differences of the energy graph. float32 throughout (ONNX Runtime has no
// float64 Conv); the CEBM and IGEBM weights are scaled ×3 from their initial
// values so the energy is not dominated by float32 cancellation (the GMM
// energy is large already), and the tolerance is 2% of max(1, |numeric|) at
// 6 sampled coordinates per tensor.
func TestNetworkGradients(t *testing.T) {
	cases := []struct {
		kind  Kind
		arch  Arch
		scale float32
	}{{CEBM, MNISTArch(), 3}, {GMMCEBM, MNISTArch(), 1}, {IGEBM, MNISTArch(), 3}, {CEBM, CIFARArch(), 3}}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.kind, c.arch.Name), func(t *testing.T) {
			if testing.Short() && c.arch.Name == "cifar" {
				t.Skip("CIFAR encoder in -short mode")
			}
			checkNetworkGradients(t, c.kind, c.arch, c.scale)
		})
	}
}

func checkNetworkGradients(t *testing.T, kind Kind, arch Arch, scale float32) {
	const n = 2
	m, err := NewModel(kind, arch, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(len(kind))))
	params := m.InitParams(rng)
	for i, s := range m.ParamSpecs() {
		if s.FanIn > 0 {
			for j := range params[i] {
				params[i][j] *= scale
			}
		}
	}
	per := arch.C * arch.H * arch.W
	x := randVec(n*per, 13)
	e, err := NewORTEngine(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Analytic: ∂ΣE/∂x from the Langevin graph; ∂(Σ w_i E_i)/∂θ from the
	// step graph with a = w, b = 0.
	_, gx, err := e.EnergyGrad(params, x)
	if err != nil {
		t.Fatal(err)
	}
	gradX := append([]float32(nil), gx...)
	w := []float32{0.7, -1.3}
	_, gp, err := e.ParamGrad(params, x, w, []float32{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	gradP := make([][]float32, len(gp))
	for i := range gp {
		gradP[i] = append([]float32(nil), gp[i]...)
	}
	lossX := func() float64 {
		en, err := e.Energy(params, x)
		if err != nil {
			t.Fatal(err)
		}
		return float64(en[0]) + float64(en[1])
	}
	lossP := func() float64 {
		en, err := e.Energy(params, x)
		if err != nil {
			t.Fatal(err)
		}
		return float64(w[0]*en[0]) + float64(w[1]*en[1])
	}
	check := func(name string, v, analytic []float32, loss func() float64) {
		checkFD(t, rng, name, v, analytic, loss)
	}
	check("x", x, gradX, lossX)
	for i, s := range m.ParamSpecs() {
		check(s.Name, params[i], gradP[i], lossP)
	}
}

// checkFD compares analytic[j] with a finite difference of loss in v[j] at
// 6 random coordinates: Richardson extrapolation of two central differences
// (h = 0.01, 0.02) cancels the h² truncation term, leaving float32 rounding
// as the error. Tolerance: 2% of max(1, |numeric|).
func checkFD(t *testing.T, rng *rand.Rand, name string, v, analytic []float32, loss func() float64) {
	t.Helper()
	for k := 0; k < 6; k++ {
		j := rng.IntN(len(v))
		central := func(h float32) float64 {
			orig := v[j]
			v[j] = orig + h
			up := loss()
			v[j] = orig - h
			down := loss()
			v[j] = orig
			return (up - down) / float64(2*h)
		}
		num := (4*central(1e-2) - central(2e-2)) / 3
		if rel := math.Abs(num-float64(analytic[j])) / math.Max(1, math.Abs(num)); rel > 2e-2 {
			t.Errorf("%s[%d]: analytic %.5g, numeric %.5g", name, j, analytic[j], num)
		}
	}
}
