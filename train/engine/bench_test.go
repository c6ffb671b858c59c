package engine

import (
	"github.com/cebm/cebm/train/internal/traintest"
	"github.com/cebm/cebm/train/model"
	"math/rand/v2"
	"testing"

	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/graph"
)

// matmulGFLOPs measures ONNX Runtime's own 1024×1024×1024 float32 MatMul, the
// machine's reference matrix-product rate for the ratios below.
func matmulGFLOPs(b *testing.B) float64 {
	const n = 1024
	g := graph.New(graph.Float32)
	x := g.Input("a", graph.Batch, n)
	w := g.Param("w", n, n)
	g.Output("y", g.MatMul(x, w))
	s, err := graph.NewSession(g, graph.ModelOptions{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	feed := map[string][]float32{"a": traintest.RandVec(n*n, 1), "w": traintest.RandVec(n*n, 2)}
	if _, err := s.Run(n, feed); err != nil { // warm-up
		b.Fatal(err)
	}
	const reps = 5
	best := 0.0
	for r := 0; r < reps; r++ {
		t := nowSeconds()
		if _, err := s.Run(n, feed); err != nil {
			b.Fatal(err)
		}
		if gf := 2 * n * n * n / (nowSeconds() - t) / 1e9; gf > best {
			best = gf
		}
	}
	return best
}

// BenchmarkEngine measures the training steps at batch 128 on the MNIST
// CEBM, on ONNX Runtime (ORTEngine) and on oneDNN (OneDNNEngine), through
// the Engine interface (parameters loaded at every call, as in training):
//
//	langevin: E and ∂E/∂x, every SGLD step                    2 forward passes' work
//	params:   contrastive divergence's parameter gradient      3
//	dsm:      score matching's second-order parameter step     6
//
// GFLOP/s counts 2 FLOPs per multiply-add of that work, matmul_ratio is it
// over ONNX Runtime's 1024³ MatMul in the same process, and x_ort the
// oneDNN step's speed over the ONNX Runtime step's, measured just before
// it. threads=1 runs each engine on one thread (the other sub-benchmarks
// use every core): the ratio between the two is the second core's gain.
func BenchmarkEngine(b *testing.B) {
	const batch = 128
	m, _ := model.NewModel(model.CEBM, model.MNISTArch(), 0)
	params := m.InitParams(rand.New(rand.NewPCG(1, 2)))
	x := traintest.RandVec(batch*28*28, 3)
	wa, wb := traintest.RandVec(batch, 4), traintest.RandVec(batch, 5)
	eps := traintest.RandVec(batch*28*28, 6)
	sigma, invVar := make([]float32, batch), make([]float32, batch)
	for i := range sigma {
		sigma[i], invVar[i] = 0.3+0.005*float32(i), 1
	}
	ref := matmulGFLOPs(b)
	fwd := m.Arch.FLOPs() * batch
	steps := []struct {
		name string
		work float64 // forward passes' worth
		run  func(Engine) error
	}{
		{"langevin", 2, func(e Engine) error { _, _, err := e.EnergyGrad(params, x); return err }},
		{"params", 3, func(e Engine) error { _, _, err := e.ParamGrad(params, x, wa, wb); return err }},
		{"dsm", 6, func(e Engine) error { _, _, _, err := e.DSMGrad(params, x, eps, sigma, invVar, wa); return err }},
	}
	for _, threads := range []int{0, 1} {
		for _, st := range steps {
			var ortPer float64
			for _, engine := range []Name{ORT, OneDNN} {
				name := st.name + "/" + string(engine)
				if threads == 1 {
					name += "/threads=1"
				}
				b.Run(name, func(b *testing.B) {
					if engine == OneDNN && !dnnl.Available {
						b.Skip("no oneDNN in this build: -tags dnnl with libdnnl-dev installed (make bench adds it)")
					}
					e, err := New(engine, m, threads)
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					if err := st.run(e); err != nil { // warm-up: builds the batch's network
						b.Fatal(err)
					}
					b.ResetTimer()
					for b.Loop() {
						if err := st.run(e); err != nil {
							b.Fatal(err)
						}
					}
					per := b.Elapsed().Seconds() / float64(b.N)
					gf := st.work * fwd / per / 1e9
					b.ReportMetric(1/per, "steps/s")
					b.ReportMetric(gf, "GFLOP/s")
					b.ReportMetric(gf/ref, "matmul_ratio")
					if engine == ORT {
						ortPer = per
					} else if ortPer > 0 {
						b.ReportMetric(ortPer/per, "x_ort")
					}
				})
			}
		}
	}
	b.Logf("reference: ORT MatMul 1024³ %.0f GFLOP/s", ref)
}
