package train

import (
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
	feed := map[string][]float32{"a": randVec(n*n, 1), "w": randVec(n*n, 2)}
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

func randVec(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	return v
}

// benchNet is m on oneDNN for the batch, holding params (skips without
// oneDNN).
func benchNet(b *testing.B, m Model, params [][]float32, batch int) *dnnl.Net {
	if !dnnl.Available {
		b.Skip("no oneDNN in this build")
	}
	nn, err := dnnlNet(m, batch)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nn.Close)
	if err := nn.SetParams(params); err != nil {
		b.Fatal(err)
	}
	return nn
}

// BenchmarkEngine measures the two training steps at batch 128 on the MNIST
// CEBM: the Langevin step (E and ∂E/∂x) and the full parameter-gradient
// step. GFLOP/s counts 2 FLOPs per multiply-add: the Langevin step is the
// forward pass plus ∂x (2× the forward's work), the parameter step the
// forward pass plus ∂ of every layer's input and weights (3×).
func BenchmarkEngine(b *testing.B) {
	const batch = 128
	m, _ := NewModel(CEBM, MNISTArch(), 0)
	e, err := NewEngine(m, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	params := m.InitParams(rand.New(rand.NewPCG(1, 2)))
	x := randVec(batch*28*28, 3)
	wa, wb := randVec(batch, 4), randVec(batch, 5)
	ref := matmulGFLOPs(b)
	fwd := m.Arch.FLOPs() * batch
	var ortLangevin float64 // seconds per step, for x_ort
	b.Run("langevin", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := e.EnergyGrad(params, x); err != nil {
				b.Fatal(err)
			}
		}
		per := b.Elapsed().Seconds() / float64(b.N)
		ortLangevin = per
		gf := 2 * fwd / per / 1e9
		b.ReportMetric(1/per, "steps/s")
		b.ReportMetric(gf, "GFLOP/s")
		b.ReportMetric(gf/ref, "matmul_ratio")
	})
	// The same step on oneDNN (train/dnnl), against the run above.
	b.Run("langevin_dnnl", func(b *testing.B) {
		nn := benchNet(b, m, params, batch)
		for b.Loop() {
			if _, _, err := nn.EnergyGrad(x); err != nil {
				b.Fatal(err)
			}
		}
		per := b.Elapsed().Seconds() / float64(b.N)
		gf := 2 * fwd / per / 1e9
		b.ReportMetric(1/per, "steps/s")
		b.ReportMetric(gf, "GFLOP/s")
		b.ReportMetric(gf/ref, "matmul_ratio")
		if ortLangevin > 0 {
			b.ReportMetric(ortLangevin/per, "x_ort")
		}
	})
	var ortParams float64
	b.Run("params", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := e.ParamGrad(params, x, wa, wb); err != nil {
				b.Fatal(err)
			}
		}
		per := b.Elapsed().Seconds() / float64(b.N)
		ortParams = per
		gf := 3 * fwd / per / 1e9
		b.ReportMetric(1/per, "steps/s")
		b.ReportMetric(gf, "GFLOP/s")
		b.ReportMetric(gf/ref, "matmul_ratio")
	})
	b.Run("params_dnnl", func(b *testing.B) {
		nn := benchNet(b, m, params, batch)
		for b.Loop() {
			if _, _, err := nn.ParamGrad(x, wa, wb); err != nil {
				b.Fatal(err)
			}
		}
		per := b.Elapsed().Seconds() / float64(b.N)
		gf := 3 * fwd / per / 1e9
		b.ReportMetric(1/per, "steps/s")
		b.ReportMetric(gf, "GFLOP/s")
		b.ReportMetric(gf/ref, "matmul_ratio")
		if ortParams > 0 {
			b.ReportMetric(ortParams/per, "x_ort")
		}
	})
	b.Logf("reference: ORT MatMul 1024³ %.0f GFLOP/s", ref)
}
