//go:build cgo && linux && amd64 && dnnl && dnnlconv

package engine

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/graph"
	"github.com/cebm/cebm/train/internal/traintest"
)

// The training engine's measured decision (docs/benchmarks.md): the
// dominant layer of the MNIST encoder, conv2 (64 → 64 channels, 4×4,
// stride 2, pad 1, on 28×28), at batch 128, as the trainer's ONNX Runtime
// graphs run it and as oneDNN's primitives do.
var dominantLayer = dnnl.Shape{N: 128, C: 64, H: 28, W: 28, O: 64, K: 4, Stride: 2, Pad: 1}

// ortConvStep is one convolution step as the trainer's graphs emit it:
// Conv; its input gradient (ConvTranspose); its weight gradient
// (Transpose, Conv, Transpose). Inputs are named a and b like the oneDNN
// step's: x, w (forward); dy, w (backward data); x, dy (backward weights).
type ortConvStep struct {
	s    *graph.Session
	feed map[string][]float32
}

func newORTConvStep(op dnnl.Op, sh dnnl.Shape, threads int) (*ortConvStep, error) {
	oh, ow := sh.OutHW()
	g := graph.New(graph.Float32)
	spec := graph.ConvSpec{Stride: sh.Stride, Pad: sh.Pad}
	st := &ortConvStep{feed: map[string][]float32{}}
	switch op {
	case dnnl.Forward:
		x := g.Input("a", graph.Batch, sh.C, sh.H, sh.W)
		w := g.Input("b", sh.O, sh.C, sh.K, sh.K)
		g.Output("out", g.Conv(x, w, nil, spec))
	case dnnl.BackwardData:
		dy := g.Input("a", graph.Batch, sh.O, oh, ow)
		w := g.Input("b", sh.O, sh.C, sh.K, sh.K)
		x := g.Input("x", graph.Batch, sh.C, sh.H, sh.W) // its shape only: the gradient does not read it
		g.Output("out", g.Grad(g.Conv(x, w, nil, spec), dy, x)[0])
		st.feed["x"] = make([]float32, sh.N*sh.C*sh.H*sh.W)
	case dnnl.BackwardWeights:
		x := g.Input("a", graph.Batch, sh.C, sh.H, sh.W)
		dy := g.Input("b", graph.Batch, sh.O, oh, ow)
		w := g.Input("w", sh.O, sh.C, sh.K, sh.K)
		g.Output("out", g.Grad(g.Conv(x, w, nil, spec), dy, w)[0])
		st.feed["w"] = make([]float32, sh.O*sh.C*sh.K*sh.K)
	}
	s, err := graph.NewSession(g, graph.ModelOptions{}, threads)
	if err != nil {
		return nil, err
	}
	st.s = s
	return st, nil
}

func (st *ortConvStep) run(a, b []float32, n int) ([]float32, error) {
	st.feed["a"], st.feed["b"] = a, b
	out, err := st.s.Run(n, st.feed)
	return out["out"], err
}

var convOps = []struct {
	name string
	op   dnnl.Op
}{{"forward", dnnl.Forward}, {"input_grad", dnnl.BackwardData}, {"weight_grad", dnnl.BackwardWeights}}

// TestDNNLConvParity: oneDNN's three steps equal the ONNX Runtime graphs'
// within 1e-4 of the output's scale (float32).
func TestDNNLConvParity(t *testing.T) {
	if !dnnl.Available {
		t.Skip("no oneDNN in this build")
	}
	sh := dominantLayer
	sh.N = 3
	for _, o := range convOps {
		t.Run(o.name, func(t *testing.T) {
			c, err := dnnl.New(o.op, sh)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			copy(c.In(0), traintest.RandVec(len(c.In(0)), 1))
			copy(c.In(1), traintest.RandVec(len(c.In(1)), 2))
			if err := c.Run(); err != nil {
				t.Fatal(err)
			}
			ref, err := newORTConvStep(o.op, sh, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.s.Close()
			want, err := ref.run(c.In(0), c.In(1), sh.N)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Out()
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			var scale, worst float64
			for i := range want {
				scale = max(scale, math.Abs(float64(want[i])))
				worst = max(worst, math.Abs(float64(got[i]-want[i])))
			}
			if worst > 1e-4*scale {
				t.Errorf("max |oneDNN − ORT| = %g, output scale %g", worst, scale)
			}
		})
	}
}

// median runs f reps times (after one warm-up) and returns its median
// duration in seconds.
func median(reps int, f func() error) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	ts := make([]float64, reps)
	for i := range ts {
		start := nowSeconds()
		if err := f(); err != nil {
			return 0, err
		}
		ts[i] = nowSeconds() - start
	}
	slices.Sort(ts)
	return ts[reps/2], nil
}

// BenchmarkConvLayer times the dominant layer's three steps at batch 128
// on ONNX Runtime (the trainer's graphs) and on oneDNN, in one run, with
// all cores: medians of 15, each as GFLOP/s, as a ratio to ONNX Runtime's
// 1024³ MatMul, and oneDNN's speed over ONNX Runtime's (x_ort).
func BenchmarkConvLayer(b *testing.B) {
	if !dnnl.Available {
		b.Skip("no oneDNN in this build")
	}
	sh := dominantLayer
	oh, ow := sh.OutHW()
	flops := 2 * float64(sh.N*sh.O*oh*ow*sh.C*sh.K*sh.K)
	ref := matmulGFLOPs(b)
	for _, o := range convOps {
		b.Run(o.name, func(b *testing.B) {
			c, err := dnnl.New(o.op, sh)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			copy(c.In(0), traintest.RandVec(len(c.In(0)), 1))
			copy(c.In(1), traintest.RandVec(len(c.In(1)), 2))
			ort, err := newORTConvStep(o.op, sh, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer ort.s.Close()
			var tOrt, tDnnl float64
			for b.Loop() {
				if tOrt, err = median(15, func() error { _, err := ort.run(c.In(0), c.In(1), sh.N); return err }); err != nil {
					b.Fatal(err)
				}
				if tDnnl, err = median(15, c.Run); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops/tOrt/1e9, "ort_GFLOP/s")
			b.ReportMetric(flops/tDnnl/1e9, "dnnl_GFLOP/s")
			b.ReportMetric(flops/tOrt/1e9/ref, "ort_matmul_ratio")
			b.ReportMetric(flops/tDnnl/1e9/ref, "dnnl_matmul_ratio")
			b.ReportMetric(tOrt/tDnnl, "x_ort")
		})
	}
	b.Logf("reference: ORT MatMul 1024³ %s GFLOP/s", fmt.Sprintf("%.0f", ref))
}
