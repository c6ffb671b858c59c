package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cebm/cebm/train"
	"github.com/cebm/cebm/train/model"
)

// TestTrainFlags: a preset sets the recipe, flags beside it override single
// settings, CEBM_<FLAG> fills what the command line does not give, and the
// old --model spelling of the family still works with a warning.
func TestTrainFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	var stderr bytes.Buffer
	c, err := parseTrainFlags([]string{"--preset", "mnist-cebm", "--lr", "5e-4"}, env(map[string]string{"CEBM_SEED": "7", "CEBM_LR": "9"}), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := presets()["mnist-cebm"].config
	if c.Run.Objective.CD.Gamma != want.Objective.CD.Gamma || c.Run.Objective.CD.SGLDSteps != want.Objective.CD.SGLDSteps || c.Run.Run.Steps != want.Run.Steps {
		t.Errorf("preset not applied: γ %v, L %d, steps %d", c.Run.Objective.CD.Gamma, c.Run.Objective.CD.SGLDSteps, c.Run.Run.Steps)
	}
	if c.Run.Optimiser.LR != 5e-4 {
		t.Errorf("--lr beside the preset: lr %v, want 5e-4 (the flag wins over CEBM_LR and the preset)", c.Run.Optimiser.LR)
	}
	if c.Run.Run.Seed != 7 || !c.given["seed"] {
		t.Errorf("CEBM_SEED=7: seed %d (given %v)", c.Run.Run.Seed, c.given["seed"])
	}

	c, err = parseTrainFlags([]string{"--model", "gmm-cebm"}, env(nil), &stderr)
	if err != nil || c.Run.Model.Kind != model.GMMCEBM {
		t.Fatalf("--model gmm-cebm: kind %q, err %v", c.Run.Model.Kind, err)
	}
	if !strings.Contains(stderr.String(), "--model is deprecated") {
		t.Errorf("no deprecation message for --model: %q", stderr.String())
	}
	c, err = parseTrainFlags([]string{"--kind", "igebm"}, env(nil), &stderr)
	if err != nil || c.Run.Model.Kind != model.IGEBM {
		t.Fatalf("--kind igebm: kind %q, err %v", c.Run.Model.Kind, err)
	}
	if _, err := parseTrainFlags([]string{"--preset", "nope"}, env(nil), &stderr); err == nil || !strings.Contains(err.Error(), "mnist-cebm") {
		t.Errorf("unknown preset: err = %v, want one listing the presets", err)
	}
	if _, err := parseTrainFlags(nil, env(map[string]string{"CEBM_STEPS": "many"}), &stderr); err == nil || !strings.Contains(err.Error(), "CEBM_STEPS") {
		t.Errorf("bad CEBM_STEPS: err = %v, want one naming the variable", err)
	}
}

// TestResumeOverrides: on --resume only the learning rate, its schedule and
// the moving average may change, and only when given.
func TestResumeOverrides(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseTrainFlags([]string{"--lr", "2e-4", "--gamma", "0.5"}, func(string) string { return "" }, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	r := train.DefaultConfig()
	r.Optimiser.LR, r.Objective.CD.Gamma, r.Optimiser.EMA = 1e-3, 0.005, 0.99
	c.resumeOverrides(discardLogger())(&r)
	if r.Optimiser.LR != 2e-4 || r.Objective.CD.Gamma != 0.005 || r.Optimiser.EMA != 0.99 {
		t.Errorf("after resume overrides: lr %v (want 2e-4), γ %v (want the checkpoint's 0.005), ema %v (want 0.99)", r.Optimiser.LR, r.Objective.CD.Gamma, r.Optimiser.EMA)
	}
	c, err = parseTrainFlags([]string{"--init-share", "0.3"}, func(string) string { return "" }, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	c.resumeOverrides(discardLogger())(&r)
	if r.Optimiser.InitShare != 0.3 || r.Optimiser.LR != 2e-4 {
		t.Errorf("after --init-share 0.3 on resume: init share %v, lr %v (want 0.3, the earlier 2e-4)", r.Optimiser.InitShare, r.Optimiser.LR)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestExportOnly: `cebm train --export-only` writes --export from a run
// folder's checkpoint, with --init-share applied, and trains nothing; it
// needs --export and a checkpoint, and says so.
func TestExportOnly(t *testing.T) {
	dir := t.TempDir()
	args := []string{"train", "--quiet", "--data", "mnist", "--out", dir, "--steps", "2", "--sgld-steps", "2",
		"--batch", "8", "--buffer", "16", "--ema", "0.5", "--train-limit", "200", "--threads", "1", "--no-eval"}
	if _, err := runCmd(t, nil, args...); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, train.CheckpointFile)
	before, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	plain, blended := filepath.Join(dir, "plain.onnx"), filepath.Join(dir, "blended.onnx")
	if _, err := runCmd(t, nil, "train", "--out", dir, "--export-only", "--export", plain); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, nil, "train", "--out", dir, "--export-only", "--export", blended, "--init-share", "0.5"); err != nil {
		t.Fatal(err)
	}
	a, errA := os.ReadFile(plain)
	b, errB := os.ReadFile(blended)
	trained, errC := os.ReadFile(filepath.Join(dir, train.ModelFile))
	if errA != nil || errB != nil || errC != nil {
		t.Fatal(errA, errB, errC)
	}
	if !bytes.Equal(a, trained) {
		t.Error("--export-only without changes differs from the run's own export")
	}
	if bytes.Equal(a, b) {
		t.Error("--init-share 0.5 exported the same parameters")
	}
	if after, _ := os.ReadFile(ckpt); !bytes.Equal(before, after) {
		t.Error("--export-only changed the checkpoint")
	}
	if _, err := runCmd(t, nil, "train", "--out", dir, "--export-only"); err == nil || !strings.Contains(err.Error(), "--export") {
		t.Errorf("no --export: err = %v", err)
	}
	if _, err := runCmd(t, nil, "train", "--out", t.TempDir(), "--export-only", "--export", plain); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("no checkpoint: err = %v", err)
	}
}

// TestTrainPrintsValidation: a run ends with one line on stdout giving the
// validation 1-NN of its exported model, MNIST's last 10,000 training
// images against the 50,000 before them whatever --train-limit the run
// had, beside the pixels' (0.9712, as cebm eval --split val prints it);
// --no-eval leaves it out.
func TestTrainPrintsValidation(t *testing.T) {
	dir := t.TempDir()
	args := []string{"train", "--quiet", "--data", "mnist", "--out", dir, "--steps", "2", "--sgld-steps", "2",
		"--batch", "8", "--buffer", "16", "--train-limit", "400"}
	stdout, err := runCmd(t, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^validation 1-NN \(mnist, 10000 train\[50000:60000\] images against 50000 before them\): posterior means (0\.\d{4}), pixels 0\.9712 \(\d+ s\)\n\z`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("stdout of the run:\n%s", stdout)
	}
	// Two updates from a random start: far above chance (random
	// convolutional features), below the pixels.
	if acc, _ := strconv.ParseFloat(m[1], 64); acc < 0.5 || acc > 0.9712 {
		t.Errorf("posterior means' validation 1-NN %v after two updates", acc)
	}
	stdout, err = runCmd(t, nil, append(args, "--resume", "--steps", "3", "--no-eval")...)
	if err != nil || stdout != "" {
		t.Errorf("--no-eval: err %v, stdout %q", err, stdout)
	}
}
