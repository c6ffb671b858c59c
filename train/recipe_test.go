package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cebm/cebm/train/graph"
)

// TestLRSchedule: linear warm-up, then a cosine from LR to LRFinal that
// ends at DecaySteps and holds.
func TestLRSchedule(t *testing.T) {
	c := DefaultConfig()
	c.LR, c.LRFinal, c.Warmup, c.DecaySteps = 1e-3, 1e-4, 10, 110
	for _, tc := range []struct {
		step int
		want float64
	}{
		{1, 1e-4}, {5, 5e-4}, {10, 1e-3},
		{60, 1e-4 + 0.5*(1e-3-1e-4)}, // half-way through the cosine
		{110, 1e-4}, {500, 1e-4},
	} {
		if got := c.LRAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LRAt(%d) = %g, want %g", tc.step, got, tc.want)
		}
	}
	if got := DefaultConfig().LRAt(1000); got != DefaultConfig().LR {
		t.Errorf("no schedule: LRAt = %g, want the constant %g", got, DefaultConfig().LR)
	}
	bad := c
	bad.LRFinal = 2e-3
	if bad.Validate() == nil {
		t.Error("a final learning rate above --lr was accepted")
	}
}

// TestYoungSteps: restarted chains get YoungSteps extra Langevin steps.
// With every chain restarting, L steps plus K young steps must equal L+K
// steps exactly (same random stream, same order).
func TestYoungSteps(t *testing.T) {
	data := mnistTrain(t, 64)
	run := func(steps, young int) []float32 {
		cfg := smallConfig()
		cfg.ReinitProb, cfg.SGLDSteps, cfg.YoungSteps = 1, steps, young
		m, _ := ModelFor(cfg)
		tr, err := NewTrainer(NewState(cfg, m), data)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(tr.xNeg)
	}
	split, whole, short := run(2, 3), run(5, 0), run(2, 0)
	if !slices.Equal(split, whole) {
		t.Error("2 steps + 3 young steps differ from 5 steps with every chain restarting")
	}
	if slices.Equal(split, short) {
		t.Error("--young-steps had no effect")
	}
}

// TestReinitFromMixture: a new run's replay buffer and its restarts come
// from the mixture fitted to the training images: digit-like (mostly dark
// background, values in [−1, 1]), not U(−1, 1) noise with mean 0.
func TestReinitFromMixture(t *testing.T) {
	data := mnistTrain(t, 600)
	cfg := smallConfig()
	cfg.ReinitFrom, cfg.Steps = "mixture", 1
	st, err := Run(context.Background(), cfg, data, RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var mean float64
	for _, v := range st.Buffer {
		mean += float64(v)
	}
	mean /= float64(len(st.Buffer))
	var dataMean float64
	for _, v := range data.X {
		dataMean += float64(v)
	}
	dataMean /= float64(len(data.X))
	// MNIST's mean is about −0.74; U(−1, 1)'s is 0.
	if math.Abs(mean-dataMean) > 0.1 {
		t.Errorf("buffer mean %.3f, data mean %.3f: the buffer did not start from the mixture", mean, dataMean)
	}
}

// TestResumeValidates: settings changed on resume are checked like a new
// run's (a resume with neither steps nor duration would never stop).
func TestResumeValidates(t *testing.T) {
	data := mnistTrain(t, 64)
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.Steps = 1
	if _, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cfg.Steps, cfg.Duration = 0, 0
	_, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir, Resume: true})
	if err == nil || !strings.Contains(err.Error(), "--steps or --duration") {
		t.Fatalf("resume without steps or duration: err = %v", err)
	}
	cfg.Steps = 2
	_, err = Run(context.Background(), cfg, data, RunOptions{Dir: dir, Resume: true,
		OnResume: func(c *Config) { c.LR = -1 }})
	if err == nil || !strings.Contains(err.Error(), "learning rate") {
		t.Fatalf("resume with a negative learning rate: err = %v", err)
	}
}

// TestLSUV: after the data-dependent init every hidden layer's
// pre-activations have unit variance on training images (they start far
// below it with PyTorch's scale), and the head is left as drawn.
func TestLSUV(t *testing.T) {
	data := mnistTrain(t, 300)
	m, _ := NewModel(CEBM, MNISTArch(), 0)
	params := m.InitParams(rand.New(rand.NewPCG(1, 2)))
	head := slices.Clone(params[len(params)-2])
	stds := func() []float64 {
		g := graph.New(graph.Float32)
		x, ps := m.declare(g)
		_, _, pre := m.Arch.network(g, x, ps)
		for i, z := range pre {
			g.Output(fmt.Sprintf("pre%d", i), z)
		}
		sess, err := graph.NewSession(g, graph.ModelOptions{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		feed := map[string][]float32{inX: data.X}
		for i, s := range m.ParamSpecs() {
			feed[s.Name] = params[i]
		}
		out, err := sess.Run(data.N, feed)
		if err != nil {
			t.Fatal(err)
		}
		var res []float64
		for i := range pre {
			res = append(res, stdDev(out[fmt.Sprintf("pre%d", i)]))
		}
		return res
	}
	before := stds()
	if err := LSUV(m, params, data, rand.New(rand.NewPCG(3, 4)), 1); err != nil {
		t.Fatal(err)
	}
	after := stds()
	for i := range after {
		if math.Abs(after[i]-1) > 0.1 {
			t.Errorf("layer %d: pre-activation std %.3f after LSUV (%.3f before), want 1", i, after[i], before[i])
		}
	}
	if before[len(before)-1] > 0.5 {
		t.Errorf("the last hidden layer's std was %.3f before LSUV: the test no longer shows a change", before[len(before)-1])
	}
	if !slices.Equal(head, params[len(params)-2]) {
		t.Error("LSUV changed the head's weights")
	}
}

// TestAnnealedSamples: score-matching runs draw their pictures by annealed
// Langevin: the right number of finite images in [−1, 1], the same for the
// same seed, and the run's own random stream is left where it was.
func TestAnnealedSamples(t *testing.T) {
	cfg := smallConfig()
	cfg.Objective, cfg.BaseSigma = "dsm", 0.8
	m, _ := ModelFor(cfg)
	tr, err := NewTrainer(NewState(cfg, m), mnistTrain(t, 64))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.SyncRNG(); err != nil {
		t.Fatal(err)
	}
	rngBefore := slices.Clone(tr.State.RNG)
	a, err := tr.AnnealedSamples(4, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tr.AnnealedSamples(4, 9)
	c, _ := tr.AnnealedSamples(4, 10)
	if len(a) != 4*784 || !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("samples: %d values, same seed equal %v, other seed equal %v", len(a), slices.Equal(a, b), slices.Equal(a, c))
	}
	for _, v := range a {
		if math.IsNaN(float64(v)) || v < -1 || v > 1 {
			t.Fatalf("sample value %v", v)
		}
	}
	if err := tr.SyncRNG(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rngBefore, tr.State.RNG) {
		t.Error("drawing samples moved the run's random stream")
	}
}
