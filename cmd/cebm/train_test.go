package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cebm/cebm/train"
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
	if c.Run.Gamma != want.Gamma || c.Run.SGLDSteps != want.SGLDSteps || c.Run.Steps != want.Steps {
		t.Errorf("preset not applied: γ %v, L %d, steps %d", c.Run.Gamma, c.Run.SGLDSteps, c.Run.Steps)
	}
	if c.Run.LR != 5e-4 {
		t.Errorf("--lr beside the preset: lr %v, want 5e-4 (the flag wins over CEBM_LR and the preset)", c.Run.LR)
	}
	if c.Run.Seed != 7 || !c.given["seed"] {
		t.Errorf("CEBM_SEED=7: seed %d (given %v)", c.Run.Seed, c.given["seed"])
	}

	c, err = parseTrainFlags([]string{"--model", "gmm-cebm"}, env(nil), &stderr)
	if err != nil || c.Run.Kind != train.GMMCEBM {
		t.Fatalf("--model gmm-cebm: kind %q, err %v", c.Run.Kind, err)
	}
	if !strings.Contains(stderr.String(), "--model is deprecated") {
		t.Errorf("no deprecation message for --model: %q", stderr.String())
	}
	c, err = parseTrainFlags([]string{"--kind", "igebm"}, env(nil), &stderr)
	if err != nil || c.Run.Kind != train.IGEBM {
		t.Fatalf("--kind igebm: kind %q, err %v", c.Run.Kind, err)
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
	r.LR, r.Gamma, r.EMA = 1e-3, 0.005, 0.99
	c.resumeOverrides(discardLogger())(&r)
	if r.LR != 2e-4 || r.Gamma != 0.005 || r.EMA != 0.99 {
		t.Errorf("after resume overrides: lr %v (want 2e-4), γ %v (want the checkpoint's 0.005), ema %v (want 0.99)", r.LR, r.Gamma, r.EMA)
	}
	c, err = parseTrainFlags([]string{"--init-share", "0.3"}, func(string) string { return "" }, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	c.resumeOverrides(discardLogger())(&r)
	if r.InitShare != 0.3 || r.LR != 2e-4 {
		t.Errorf("after --init-share 0.3 on resume: init share %v, lr %v (want 0.3, the earlier 2e-4)", r.InitShare, r.LR)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
