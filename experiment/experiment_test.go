package experiment

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cebm/cebm/eval"
	"github.com/cebm/cebm/train"
)

// tiny is a recipe that trains in a second: a small batch, buffer and
// chain on the first 300 MNIST images, with a moving average (so that the
// last parameters are exported too).
func tiny(runs string) Options {
	c := train.DefaultConfig()
	c.Optimiser.BatchSize, c.Objective.CD.BufferSize, c.Objective.CD.SGLDSteps = 16, 64, 4
	c.Run.CheckpointEvery, c.Run.Threads, c.Run.TrainLimit = 2, 1, 300
	c.Optimiser.EMA = 0.9
	return Options{Name: "tiny", Minutes: []float64{0.01, 0.02}, InitShares: []string{"0.3"}, Runs: runs,
		Config: c, TrainLimitGiven: true, Flags: "--ema 0.9 --train-limit 300",
		Eval: eval.Sets{Split: "val", ValN: 100, TrainLimit: 300}}
}

// TestExperiment: two increments of a real run on real MNIST append, per
// increment, the export's, the last parameters' and the init-share blend's
// lines to the lab book (which eval.ReadLabBook reads back), with training
// minutes and steps that grow and the 1-NN accuracy that `cebm eval` gives
// the same file.
func TestExperiment(t *testing.T) {
	runs := t.TempDir()
	o := tiny(runs)
	var out bytes.Buffer
	o.Out = &out
	if err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	tsv, err := os.ReadFile(filepath.Join(runs, LabBookFile))
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(tsv) {
		t.Errorf("lines written %q, lab book %q", out.String(), tsv)
	}
	pts, err := eval.ReadLabBook(bytes.NewReader(tsv))
	if err != nil {
		t.Fatal(err)
	}
	wantRuns := []string{"tiny", "tiny(last)", "tiny(init 0.3)", "tiny", "tiny(last)", "tiny(init 0.3)"}
	if len(pts) != len(wantRuns) {
		t.Fatalf("%d lab-book lines, want %d:\n%s", len(pts), len(wantRuns), tsv)
	}
	for i, p := range pts {
		if p.Run != wantRuns[i] || p.Split != "val" || p.Flags != o.Flags {
			t.Errorf("line %d: run %q split %q flags %q, want %q val %q", i+1, p.Run, p.Split, p.Flags, wantRuns[i], o.Flags)
		}
		if p.KNN1 <= 0.1 || p.KNN1 > 1 || p.PixelKNN1 <= 0.1 || p.PixelKNN1 > 1 || p.Steps < 1 {
			t.Errorf("line %d: knn1 %v, pixel %v, steps %d", i+1, p.KNN1, p.PixelKNN1, p.Steps)
		}
		if i%3 != 0 && (p.Steps != pts[i-i%3].Steps || p.Minutes != pts[i-i%3].Minutes) {
			t.Errorf("line %d: steps %d, minutes %v unlike its increment's first line", i+1, p.Steps, p.Minutes)
		}
	}
	if pts[3].Steps <= pts[0].Steps || pts[3].Minutes < pts[0].Minutes {
		t.Errorf("second increment at step %d, %v min; first at %d, %v min", pts[3].Steps, pts[3].Minutes, pts[0].Steps, pts[0].Minutes)
	}
	last := pts[len(pts)-1]
	if !strings.HasSuffix(string(tsv), "\tval\t--ema 0.9 --train-limit 300\t"+strconv.FormatFloat(last.PCA50KNN1, 'f', -1, 64)+"\n") || last.PCA50KNN1 <= 0.1 {
		t.Errorf("lab book does not end with the split, the flags and the PCA-50 figure: %q", tsv)
	}
	// The last increment's export, evaluated as cebm eval would.
	opt := eval.DefaultOptions()
	opt.Model = filepath.Join(runs, "exp-tiny", train.ModelFile)
	s := o.Eval
	s.Data = "mnist"
	if err := s.Load(&opt, os.Getenv); err != nil {
		t.Fatal(err)
	}
	r, err := eval.Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if r.KNN1Accuracy != pts[3].KNN1 || r.Steps != pts[3].Steps || r.PCA50KNN1Accuracy != pts[3].PCA50KNN1 {
		t.Errorf("lab book: 1-NN %v at step %d; eval of the file: %v at %d", pts[3].KNN1, pts[3].Steps, r.KNN1Accuracy, r.Steps)
	}
	if _, err := os.Stat(filepath.Join(runs, "exp-tiny.log")); err != nil {
		t.Errorf("no log: %v", err)
	}
}

// TestExperimentRejects: options it cannot run are refused before any
// file is written.
func TestExperimentRejects(t *testing.T) {
	for name, change := range map[string]func(*Options){
		"no marks":       func(o *Options) { o.Minutes = nil },
		"marks go back":  func(o *Options) { o.Minutes = []float64{2, 1} },
		"zero mark":      func(o *Options) { o.Minutes = []float64{0} },
		"bad share":      func(o *Options) { o.InitShares = []string{"1.5"} },
		"path in share":  func(o *Options) { o.InitShares = []string{"../x"} },
		"bad split":      func(o *Options) { o.Eval.Split = "train" },
		"name with path": func(o *Options) { o.Name = "a/b" },
	} {
		runs := filepath.Join(t.TempDir(), "runs")
		o := tiny(runs)
		change(&o)
		if err := Run(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "experiment: ") {
			t.Errorf("%s: err %v, want an experiment: error", name, err)
		}
		if _, err := os.Stat(runs); !os.IsNotExist(err) {
			t.Errorf("%s: runs folder made", name)
		}
	}
}

// TestLine: the lab book's number formats.
func TestLine(t *testing.T) {
	got := Line(eval.LabPoint{Run: "r(last)", Minutes: 2.96, Steps: 120, KNN1: 0.9712, PixelKNN1: 0.97, Split: "val", Flags: "--lr 5e-4"})
	if want := "r(last)\t3.0\t120\t0.9712\t0.97\tval\t--lr 5e-4\n"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	got = Line(eval.LabPoint{Run: "r", Minutes: 3, Steps: 120, KNN1: 0.9712, PixelKNN1: 0.97, Split: "val", PCA50KNN1: 0.9756})
	if want := "r\t3.0\t120\t0.9712\t0.97\tval\t\t0.9756\n"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	pts, err := eval.ReadLabBook(strings.NewReader(got))
	if err != nil || len(pts) != 1 || pts[0].PCA50KNN1 != 0.9756 || pts[0].Flags != "" {
		t.Errorf("read back %+v, %v", pts, err)
	}
}
