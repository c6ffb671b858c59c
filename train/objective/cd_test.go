package objective

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/internal/traintest"
	"github.com/cebm/cebm/train/model"
)

// testConfig is contrastive divergence small enough for unit tests.
func testConfig() Config {
	return Config{Name: CD,
		CD:  CDConfig{Gamma: 0.1, DataNoise: 0.03, SGLDSteps: 4, SGLDStep: 1, SGLDNoise: 0.0075, BufferSize: 64, ReinitProb: 0.05, ReinitFrom: FromUniform},
		DSM: DSMConfig{SigmaMin: 0.3, SigmaMax: 1}}
}

// fixture is an objective over the MNIST CEBM on ONNX Runtime, at its
// initial parameters, with its random stream.
type fixture struct {
	obj    Objective
	params [][]float32
	st     *State
	pcg    *rand.PCG
}

// newFixture builds c's objective for batches of batch over the first n
// MNIST training images.
func newFixture(t *testing.T, c Config, batch, n int) fixture {
	t.Helper()
	m, err := model.NewModel(model.CEBM, model.MNISTArch(), 0)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := traintest.MNIST(t, n)
	pcg := rand.NewPCG(1, 2)
	rng := rand.New(pcg)
	params := m.InitParams(rng)
	st := NewState(c, 784, rng)
	e, err := engine.NewORTEngine(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	env := Env{Model: m, Engine: e, Images: x, N: n, Batch: batch, RNG: rng, Seed: 1}
	obj, err := New(env, c, &st)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{obj: obj, params: params, st: &st, pcg: pcg}
}

// TestLangevinStep: with zero noise one step is exactly x − (α/2)·∇E.
func TestLangevinStep(t *testing.T) {
	c := testConfig()
	c.CD.SGLDNoise, c.CD.SGLDStep = 0, 0.5
	f := newFixture(t, c, 16, 32)
	o := f.obj.(*cd)
	x := traintest.RandVec(2*784, 5)
	_, g, err := o.env.Engine.EnergyGrad(f.params, x)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(x))
	for i := range x {
		want[i] = x[i] - 0.5*g[i]
	}
	if err := o.langevin(f.params, x, 1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, want) {
		t.Fatal("Langevin step differs from x − (α/2)·∇E")
	}
	// With noise the step's spread around that mean is σ.
	o.cfg.SGLDNoise = 0.1
	y := traintest.RandVec(2*784, 5)
	if err := o.langevin(f.params, y, 1); err != nil {
		t.Fatal(err)
	}
	var ss float64
	for i := range y {
		d := float64(y[i] - want[i])
		ss += d * d
	}
	if sd := math.Sqrt(ss / float64(len(y))); math.Abs(sd-0.1) > 0.01 {
		t.Fatalf("noise std %.4f, want 0.1", sd)
	}
}

// TestReplayReinitRate: the fraction of chains restarted from U(−1, 1)
// matches the re-initialisation probability.
func TestReplayReinitRate(t *testing.T) {
	const batch = 100
	c := testConfig()
	c.CD.SGLDSteps, c.CD.ReinitProb, c.CD.BufferSize = 0, 0.25, 200
	f := newFixture(t, c, batch, 64)
	o := f.obj.(*cd)
	fresh, total := 0, 0
	for k := 0; k < 8; k++ {
		// A buffer of a constant no U(−1, 1) image can equal, refilled so
		// that every draw sees the marker.
		for i := range f.st.Buffer {
			f.st.Buffer[i] = 7
		}
		if _, err := o.Step(f.params); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < batch; i++ {
			if o.xNeg[i*784] != 7 {
				fresh++
			}
			total++
		}
	}
	rate := float64(fresh) / float64(total)
	// 800 Bernoulli(0.25) draws: std ≈ 0.015; allow 4σ.
	if math.Abs(rate-0.25) > 0.06 {
		t.Fatalf("re-initialisation rate %.3f, want 0.25", rate)
	}
}

// TestYoungSteps: restarted chains get YoungSteps extra Langevin steps.
// With every chain restarting, L steps plus K young steps must equal L+K
// steps exactly (same random stream, same order).
func TestYoungSteps(t *testing.T) {
	run := func(steps, young int) []float32 {
		c := testConfig()
		c.CD.ReinitProb, c.CD.SGLDSteps, c.CD.YoungSteps = 1, steps, young
		f := newFixture(t, c, 16, 64)
		if _, err := f.obj.Step(f.params); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(f.obj.(*cd).xNeg)
	}
	split, whole, short := run(2, 3), run(5, 0), run(2, 0)
	if !slices.Equal(split, whole) {
		t.Error("2 steps + 3 young steps differ from 5 steps with every chain restarting")
	}
	if slices.Equal(split, short) {
		t.Error("--young-steps had no effect")
	}
}

// TestValidate: unknown objectives and chain starts are refused by name.
func TestValidate(t *testing.T) {
	c := testConfig()
	if err := c.Validate(16); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"objective":   func(c *Config) { c.Name = "pcd" },
		"nce noise":   func(c *Config) { c.Name, c.CD.DataNoise = NCE, 0 },
		"reinit-from": func(c *Config) { c.CD.ReinitFrom = "gaussian" },
		"noise":       func(c *Config) { c.Name, c.DSM.SigmaMin = DSM, 0 },
		"base sigma":  func(c *Config) { c.DSM.BaseSigma = -1 },
		"buffer":      func(c *Config) { c.CD.BufferSize = 8 },
	} {
		bad := testConfig()
		change(&bad)
		if err := bad.Validate(16); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (Config{Name: "pcd"}).Validate(1); err == nil || err.Error() != `objective "pcd": want cd or dsm or nce` {
		t.Errorf("unknown objective: %v", err)
	}
}
