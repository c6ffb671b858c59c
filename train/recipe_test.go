package train

import (
	"context"
	"math"
	"strings"
	"testing"
)

// TestLRSchedule: linear warm-up, then a cosine from LR to LRFinal that
// ends at DecaySteps and holds.
func TestLRSchedule(t *testing.T) {
	c := DefaultConfig()
	c.Optimiser.LR, c.Optimiser.LRFinal, c.Optimiser.Warmup, c.Optimiser.DecaySteps = 1e-3, 1e-4, 10, 110
	for _, tc := range []struct {
		step int
		want float64
	}{
		{1, 1e-4}, {5, 5e-4}, {10, 1e-3},
		{60, 1e-4 + 0.5*(1e-3-1e-4)}, // half-way through the cosine
		{110, 1e-4}, {500, 1e-4},
	} {
		if got := c.Optimiser.LRAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LRAt(%d) = %g, want %g", tc.step, got, tc.want)
		}
	}
	if got := DefaultConfig().Optimiser.LRAt(1000); got != DefaultConfig().Optimiser.LR {
		t.Errorf("no schedule: LRAt = %g, want the constant %g", got, DefaultConfig().Optimiser.LR)
	}
	bad := c
	bad.Optimiser.LRFinal = 2e-3
	if bad.Validate() == nil {
		t.Error("a final learning rate above --lr was accepted")
	}
}

// TestReinitFromMixture: a new run's replay buffer and its restarts come
// from the mixture fitted to the training images: digit-like (mostly dark
// background, values in [−1, 1]), not U(−1, 1) noise with mean 0.
func TestReinitFromMixture(t *testing.T) {
	data := mnistTrain(t, 600)
	cfg := smallConfig()
	cfg.Objective.CD.ReinitFrom, cfg.Run.Steps = "mixture", 1
	st, err := Run(context.Background(), cfg, data, RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var mean float64
	for _, v := range st.Objective.Buffer {
		mean += float64(v)
	}
	mean /= float64(len(st.Objective.Buffer))
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
	cfg.Run.Steps = 1
	if _, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cfg.Run.Steps, cfg.Run.Duration = 0, 0
	_, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir, Resume: true})
	if err == nil || !strings.Contains(err.Error(), "--steps or --duration") {
		t.Fatalf("resume without steps or duration: err = %v", err)
	}
	cfg.Run.Steps = 2
	_, err = Run(context.Background(), cfg, data, RunOptions{Dir: dir, Resume: true,
		OnResume: func(c *Config) { c.Optimiser.LR = -1 }})
	if err == nil || !strings.Contains(err.Error(), "learning rate") {
		t.Fatalf("resume with a negative learning rate: err = %v", err)
	}
}
