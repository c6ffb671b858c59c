package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// toy draws n points per class around well-separated centres in dim
// dimensions.
func toy(rng *rand.Rand, classes, n, dim int, spread float64) ([]float32, []int) {
	var x []float32
	var y []int
	for c := 0; c < classes; c++ {
		for i := 0; i < n; i++ {
			for j := 0; j < dim; j++ {
				centre := 0.0
				if j == c%dim {
					centre = 5
				}
				if j == (c+1)%dim && c >= dim {
					centre = -5
				}
				x = append(x, float32(centre+spread*rng.NormFloat64()))
			}
			y = append(y, c)
		}
	}
	return x, y
}

func TestProbeSeparable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const classes, dim = 4, 3
	x, y := toy(rng, classes, 50, dim, 0.5)
	std := FitStandardizer(x, dim)
	p, err := TrainProbe(t.Context(), std.Apply(x, nil), y, classes, DefaultProbeOptions())
	if err != nil {
		t.Fatal(err)
	}
	if acc := p.Accuracy(std.Apply(x, nil), y); acc != 1 {
		t.Errorf("training accuracy %v on separable data, want 1", acc)
	}
	xt, yt := toy(rng, classes, 20, dim, 0.5)
	if acc := p.Accuracy(std.Apply(xt, nil), yt); acc != 1 {
		t.Errorf("test accuracy %v on separable data, want 1", acc)
	}
	// One label per class is enough here too.
	sc, err := FewLabelProbe(t.Context(), std, x, y, std.Apply(xt, nil), yt, classes, 1, 5, DefaultProbeOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Runs) != 5 || sc.Mean < 0.95 {
		t.Errorf("1 label per class: %+v", sc)
	}
}

// The analytic gradient of the objective against central differences.
func TestProbeGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const classes, dim = 3, 4
	x, y := toy(rng, classes, 7, dim, 2)
	xs := FitStandardizer(x, dim).Apply(x, nil)
	n, _ := xs.Dims()
	o := &probeObjective{x: xs, y: y, classes: classes, dim: dim, l2: 0.1, logits: mat.NewDense(n, classes, nil)}
	theta := make([]float64, classes*(dim+1))
	for i := range theta {
		theta[i] = rng.NormFloat64()
	}
	g := make([]float64, len(theta))
	o.fun(theta)
	o.grad(g, theta)
	const h = 1e-6
	for i := range theta {
		tp := append([]float64(nil), theta...)
		tm := append([]float64(nil), theta...)
		tp[i] += h
		tm[i] -= h
		fd := (o.fun(tp) - o.fun(tm)) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-6*(1+math.Abs(fd)) {
			t.Errorf("∂f/∂θ[%d] = %v, finite differences %v", i, g[i], fd)
		}
	}
}

func TestProbeRejectsBadLabels(t *testing.T) {
	x := mat.NewDense(2, 1, []float64{0, 1})
	if _, err := TrainProbe(t.Context(), x, []int{0, 5}, 2, DefaultProbeOptions()); err == nil {
		t.Error("label 5 of 2 classes accepted")
	}
}

func TestMeanStd(t *testing.T) {
	m, s := meanStd([]float64{1, 2, 3, 4})
	if m != 2.5 || math.Abs(s-math.Sqrt(5.0/3)) > 1e-12 {
		t.Errorf("mean %v std %v", m, s)
	}
}

// BenchmarkProbeFull fits the full-training-set probe at MNIST's size
// (60,000 × 128, 10 classes).
func BenchmarkProbeFull(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	x, y := toy(rng, 10, 6000, 128, 3)
	std := FitStandardizer(x, 128)
	xs := std.Apply(x, nil)
	b.ResetTimer()
	for b.Loop() {
		if _, err := TrainProbe(b.Context(), xs, y, 10, DefaultProbeOptions()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(y))/b.Elapsed().Seconds()*float64(b.N), "vectors/s")
}
