package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cebm/cebm/train/internal/traintest"
	"github.com/cebm/cebm/train/model"
)

// smallConfig is a recipe small enough for unit tests.
func smallConfig() Config {
	c := DefaultConfig()
	c.Optimiser.BatchSize, c.Objective.CD.BufferSize, c.Objective.CD.SGLDSteps = 16, 64, 4
	c.Run.Steps, c.Run.CheckpointEvery, c.Run.Threads = 6, 2, 1
	return c
}

// mnistTrain is the first n images of the real MNIST training split.
func mnistTrain(t *testing.T, n int) Images {
	t.Helper()
	x, classes := traintest.MNIST(t, n)
	return Images{X: x, N: n, Classes: classes}
}

// TestResumeMatchesUninterrupted: stopping at a checkpoint and resuming
// reaches bit-for-bit the state of a run that never stopped.
func TestResumeMatchesUninterrupted(t *testing.T) {
	data := mnistTrain(t, 200)
	cfg := smallConfig()
	full := t.TempDir()
	want, err := Run(context.Background(), cfg, data, RunOptions{Dir: full})
	if err != nil {
		t.Fatal(err)
	}
	part := t.TempDir()
	half := cfg
	half.Run.Steps = 4
	if _, err := Run(context.Background(), half, data, RunOptions{Dir: part}); err != nil {
		t.Fatal(err)
	}
	// Simulate a kill after step 5: metrics were written past the checkpoint.
	f, _ := os.OpenFile(filepath.Join(part, MetricsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"step":5,"loss":123}` + "\n")
	f.Close()
	got, err := Run(context.Background(), cfg, data, RunOptions{Dir: part, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Step != want.Step {
		t.Fatalf("resumed run at step %d, uninterrupted at %d", got.Step, want.Step)
	}
	for i := range want.Params {
		if !slices.Equal(got.Params[i], want.Params[i]) || !slices.Equal(got.AdamV[i], want.AdamV[i]) {
			t.Fatalf("parameter tensor %d differs after resume", i)
		}
	}
	if !slices.Equal(got.Objective.Buffer, want.Objective.Buffer) {
		t.Fatal("replay buffer differs after resume")
	}
	ms, err := ReadMetrics(filepath.Join(part, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != cfg.Run.Steps || ms[4].Loss == 123 {
		t.Fatalf("metrics log after resume has %d lines (want %d) or kept a line past the checkpoint", len(ms), cfg.Run.Steps)
	}
}

// TestCheckpointRefusesCorruption: a truncated or altered checkpoint is
// refused, never half-read.
func TestCheckpointRefusesCorruption(t *testing.T) {
	cfg := smallConfig()
	m, _ := ModelFor(cfg)
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := SaveCheckpoint(path, NewState(cfg, m)); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	if _, err := LoadCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated": good[:len(good)/2],
		"flipped":   append(append([]byte(nil), good[:100]...), append([]byte{good[100] ^ 1}, good[101:]...)...),
		"empty":     nil,
	} {
		os.WriteFile(path, b, 0o644)
		if _, err := LoadCheckpoint(path); err == nil {
			t.Errorf("%s checkpoint accepted", name)
		}
	}
}

// TestShortRunLowersLoss trains on a few hundred real MNIST images: the
// loss falls, nothing is NaN, and the exported model loads.
func TestShortRunLowersLoss(t *testing.T) {
	cfg := smallConfig()
	cfg.Run.Steps, cfg.Run.CheckpointEvery, cfg.Optimiser.LR = 30, 10, 1e-3
	dir := t.TempDir()
	st, err := Run(context.Background(), cfg, mnistTrain(t, 300), RunOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	mean := func(ms []Metrics) float64 {
		var s float64
		for _, m := range ms {
			if math.IsNaN(m.Loss) || math.IsNaN(m.EPos) || math.IsNaN(m.ENeg) {
				t.Fatalf("NaN at step %d", m.Step)
			}
			s += m.Loss
		}
		return s / float64(len(ms))
	}
	first, last := mean(ms[:5]), mean(ms[len(ms)-5:])
	t.Logf("loss: first 5 steps %.4f, last 5 %.4f", first, last)
	if !(last < first) {
		t.Fatalf("loss did not fall: first %.4f, last %.4f", first, last)
	}
	out := filepath.Join(dir, "m.onnx")
	if err := ExportModel(out, st, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CurvesFile, SamplesFile, out} {
		if fi, err := os.Stat(filepath.Join(dir, filepath.Base(f))); err != nil || fi.Size() == 0 {
			t.Errorf("%s missing", f)
		}
	}
}

// TestDivergenceGuard: an exploding loss stops the run with ErrDiverged
// and the last good checkpoint survives.
func TestDivergenceGuard(t *testing.T) {
	cfg := smallConfig()
	cfg.Run.Steps, cfg.Run.CheckpointEvery = 4, 1
	dir := t.TempDir()
	data := mnistTrain(t, 100)
	if _, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	// Blow the head up: the energy explodes on the next step.
	st, err := LoadCheckpoint(filepath.Join(dir, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	head := st.Params[len(st.Params)-2]
	for i := range head {
		head[i] *= 1e4
	}
	if err := SaveCheckpoint(filepath.Join(dir, CheckpointFile), st); err != nil {
		t.Fatal(err)
	}
	cfg.Run.Steps = 8
	_, err = Run(context.Background(), cfg, data, RunOptions{Dir: dir, Resume: true})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("want ErrDiverged, got %v", err)
	}
	kept, err := LoadCheckpoint(filepath.Join(dir, CheckpointFile))
	if err != nil || kept.Step != 4 {
		t.Fatalf("last good checkpoint not kept: %v (step %v)", err, kept)
	}
}

// TestEMA: the moving average starts at the parameters, trails them with
// the configured decay, and is what gets exported.
func TestEMA(t *testing.T) {
	cfg := smallConfig()
	cfg.Optimiser.EMA, cfg.Run.Steps = 0.5, 3
	st, err := Run(context.Background(), cfg, mnistTrain(t, 100), RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.EMA) != len(st.Params) {
		t.Fatal("no moving average kept")
	}
	if slices.Equal(st.EMA[0], st.Params[0]) {
		t.Fatal("moving average equals the last parameters after 3 steps")
	}
	m, _ := ModelFor(cfg)
	if p, _ := st.ExportParams(m); &p[0][0] != &st.EMA[0][0] {
		t.Fatal("export does not use the moving average")
	}
	st.Config.Optimiser.EMA = 0
	if p, _ := st.ExportParams(m); &p[0][0] != &st.Params[0][0] {
		t.Fatal("export with EMA off does not use the last parameters")
	}
}

// TestTrajectoryAverage: the exported blend β·θ₀ + (1 − β)·θ̄ is the
// trajectory average θ̄ = Σₖ (1 − d)·d^(n−k)·θₖ / (1 − dⁿ) over the
// parameters after each update, θ₁…θₙ, recorded here one update at a time
// — the first update's parameters with the same weight as the formula
// gives them, not scaled up by the correction.
func TestTrajectoryAverage(t *testing.T) {
	cfg := smallConfig()
	cfg.Optimiser.EMA, cfg.Optimiser.InitShare = 0.9, 0.3
	m, _ := ModelFor(cfg)
	st := NewState(cfg, m)
	tr, err := NewTrainer(st, mnistTrain(t, 64))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	theta0 := clone2(st.Params)
	const n = 4
	var traj [][][]float32
	for k := 0; k < n; k++ {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
		traj = append(traj, clone2(st.Params))
	}
	got, err := st.ExportParams(m)
	if err != nil {
		t.Fatal(err)
	}
	d, dn := cfg.Optimiser.EMA, math.Pow(cfg.Optimiser.EMA, n)
	var worst float64
	for i := range got {
		for j, v := range got[i] {
			var avg float64
			for k, p := range traj {
				avg += (1 - d) * math.Pow(d, float64(n-1-k)) * float64(p[i][j])
			}
			avg /= 1 - dn
			want := cfg.Optimiser.InitShare*float64(theta0[i][j]) + (1-cfg.Optimiser.InitShare)*avg
			worst = max(worst, math.Abs(float64(v)-want))
		}
	}
	// Adam's first step moves each weight by about the learning rate; an
	// average seeded with θ₁ would be off by about lr·dⁿ/(1 − dⁿ)·(1 − β) ≈ 1.3e-4 (lr 1e-4).
	if worst > 2e-6 {
		t.Fatalf("exported blend differs from β·θ₀ + (1 − β)·θ̄ by %g", worst)
	}
}

func clone2(p [][]float32) [][]float32 {
	out := make([][]float32, len(p))
	for i, v := range p {
		out[i] = append([]float32(nil), v...)
	}
	return out
}

// TestInitShare: --init-share β exports β·θ₀ + (1 − β)·θ̄, θ₀ the run's
// initial parameters and θ̄ the moving average with its start taken out
// (or the last parameters without one); a moving average turned on by a
// resume is refused, and so is the data-dependent LSUV init.
func TestInitShare(t *testing.T) {
	cfg := smallConfig()
	cfg.Optimiser.EMA, cfg.Run.Steps = 0.5, 3
	st, err := Run(context.Background(), cfg, mnistTrain(t, 100), RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if st.EMAStart != 0 || !st.EMAFromInit {
		t.Fatalf("moving average seeded after update %d (from θ₀: %v), want θ₀", st.EMAStart, st.EMAFromInit)
	}
	m, _ := ModelFor(cfg)
	init := NewState(cfg, m).Params
	check := func(name string, beta float64, want func(i, j int) float64) {
		t.Helper()
		st.Config.Optimiser.InitShare = beta
		got, err := st.ExportParams(m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			for j, v := range got[i] {
				if w := want(i, j); math.Abs(float64(v)-w) > 1e-5*max(1, math.Abs(w)) {
					t.Fatalf("%s: tensor %d[%d] = %v, want %v", name, i, j, v, w)
				}
			}
		}
	}
	// After 3 updates the average holds d³ = ⅛ of θ₀.
	avg := func(i, j int) float64 { return (float64(st.EMA[i][j]) - 0.125*float64(init[i][j])) / 0.875 }
	check("β 0.25 on the average", 0.25, func(i, j int) float64 { return 0.25*float64(init[i][j]) + 0.75*avg(i, j) })
	// β = dⁿ, the average's own share, reproduces the moving average.
	check("β = the average's own share", 0.125, func(i, j int) float64 { return float64(st.EMA[i][j]) })
	st.Config.Optimiser.EMA = 0
	check("β 0.4 on the last parameters", 0.4, func(i, j int) float64 { return 0.4*float64(init[i][j]) + 0.6*float64(st.Params[i][j]) })
	st.Config.Optimiser.EMA, st.EMAStart, st.EMAFromInit = 0.5, 2, false
	st.Config.Optimiser.InitShare = 0.3
	if _, err := st.ExportParams(m); err == nil {
		t.Error("init share accepted a moving average that started at update 2")
	}
	st.EMAStart = 1 // a checkpoint from before exact seeding: started at θ₁
	if _, err := st.ExportParams(m); err == nil {
		t.Error("init share accepted a moving average seeded with θ₁")
	}
	var moved float64
	for i := range init {
		for j := range init[i] {
			moved = max(moved, math.Abs(float64(st.Params[i][j]-init[i][j])))
		}
	}
	if moved == 0 {
		t.Fatal("the parameters equal the initial ones: the test cannot tell them apart")
	}
	cfg.Optimiser.InitShare, cfg.Model.Init = 0.5, model.InitLSUV
	if err := cfg.Validate(); err == nil {
		t.Error("init share with the lsuv init accepted")
	}
	cfg.Optimiser.InitShare, cfg.Model.Init = 1, ""
	if err := cfg.Validate(); err == nil {
		t.Error("init share 1 accepted")
	}
}

// TestFreezeConvs: with FreezeConvs the convolutions keep their initial
// values and the dense layers still learn.
func TestFreezeConvs(t *testing.T) {
	cfg := smallConfig()
	cfg.Optimiser.FreezeConvs, cfg.Run.Steps, cfg.Optimiser.LR = true, 2, 1e-3
	m, _ := ModelFor(cfg)
	init := NewState(cfg, m).Params
	st, err := Run(context.Background(), cfg, mnistTrain(t, 64), RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range m.ParamSpecs() {
		same := slices.Equal(st.Params[i], init[i])
		if conv := strings.HasPrefix(s.Name, "conv"); conv != same {
			t.Errorf("%s: unchanged %v, want unchanged only for convolutions", s.Name, same)
		}
	}
}

// TestLookahead: after K updates the parameters are θ₀ + α·(θ_K − θ₀),
// θ_K where Adam alone would have taken them, and the slow weights are
// there too.
func TestLookahead(t *testing.T) {
	cfg := smallConfig()
	cfg.Optimiser.LR = 1e-3
	m, _ := ModelFor(cfg)
	run := func(k int) (*State, [][]float32) {
		c := cfg
		c.Optimiser.LookaheadK, c.Optimiser.LookaheadAlpha = k, 0.5
		st := NewState(c, m)
		theta0 := clone2(st.Params)
		tr, err := NewTrainer(st, mnistTrain(t, 64))
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		for range 3 {
			if _, err := tr.Step(); err != nil {
				t.Fatal(err)
			}
		}
		return st, theta0
	}
	plain, theta0 := run(0)
	la, _ := run(3)
	var worst, moved float64
	for i := range la.Params {
		for j, v := range la.Params[i] {
			want := theta0[i][j] + 0.5*(plain.Params[i][j]-theta0[i][j])
			worst = max(worst, math.Abs(float64(v-want)), math.Abs(float64(la.Slow[i][j]-v)))
			moved = max(moved, math.Abs(float64(plain.Params[i][j]-theta0[i][j])))
		}
	}
	if moved == 0 || worst > 1e-6 {
		t.Fatalf("after K updates: off by %g from θ₀ + α·(θ_K − θ₀) (Adam moved %g)", worst, moved)
	}
}

// TestChainEvery: with ChainEvery 2 the chains (and so the replay buffer)
// move at every other update only, while the parameters move at each.
func TestChainEvery(t *testing.T) {
	cfg := smallConfig()
	cfg.Objective.CD.ChainEvery = 2
	m, _ := ModelFor(cfg)
	st := NewState(cfg, m)
	tr, err := NewTrainer(st, mnistTrain(t, 64))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for k := 1; k <= 4; k++ {
		buf, params := slices.Clone(st.Objective.Buffer), clone2(st.Params)
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
		chains := !slices.Equal(buf, st.Objective.Buffer)
		if want := k%2 == 1; chains != want {
			t.Errorf("update %d: chains moved %v, want %v", k, chains, want)
		}
		if slices.Equal(params[0], st.Params[0]) {
			t.Errorf("update %d: parameters did not move", k)
		}
	}
}
