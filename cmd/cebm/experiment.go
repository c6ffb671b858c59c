package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cebm/cebm/eval"
	"github.com/cebm/cebm/experiment"
)

// experimentFlags are the flags `cebm experiment` reads itself; every
// other argument after NAME is a `cebm train` flag. Each is also read from
// the environment: CEBM_MINUTES, CEBM_INIT_SHARES, CEBM_SPLIT, CEBM_RUNS,
// CEBM_THREADS_FILE.
var experimentFlags = map[string]string{
	"minutes":      "training minutes, from the run's start, after which to evaluate (a space-separated list, e.g. \"3 6 10\")",
	"init-shares":  "also evaluate the export blended with the initial parameters at each of these shares (cebm train --init-share), as NAME(init β)",
	"split":        "val (train on the first 50,000 training images, 1-NN of the last 10,000 against them) or test (all of them, the test split)",
	"runs":         "folder of the run folders (exp-NAME) and of the lab book experiments.tsv (default $HOME/cebm-runs)",
	"threads-file": "read the thread count of each increment from this file, which may change while the experiment runs",
}

// runExperiment is `cebm experiment NAME --minutes "M1 M2 …" [flags]
// [train flags]`: package experiment.
func runExperiment(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		experimentUsage(stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errors.New("experiment: NAME first")
	}
	own, rest, err := splitExperimentArgs(args[1:])
	if err != nil {
		return err
	}
	for k := range experimentFlags {
		if _, ok := own[k]; !ok {
			if v := env(envName(k)); v != "" {
				own[k] = v
			}
		}
	}
	tc, err := parseTrainFlags(rest, env, stderr)
	if tc == nil || err != nil {
		return err
	}
	if err := tc.Run.Engine.Usable(); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	for _, f := range []string{"out", "resume", "export", "export-only", "steps", "duration"} {
		if tc.given[f] {
			return fmt.Errorf("experiment: --%s is the experiment's to set", f)
		}
	}
	o := experiment.Options{Name: args[0], Config: tc.Run, TrainLimitGiven: tc.given["train-limit"],
		Flags: strings.Join(rest, " "), Env: env, Out: stdout, ThreadsFile: own["threads-file"],
		Eval: eval.Sets{Split: "val", ValN: 10000}}
	if s := own["split"]; s != "" {
		o.Eval.Split = s
	}
	if o.Runs = own["runs"]; o.Runs == "" {
		o.Runs = filepath.Join(env("HOME"), "cebm-runs")
	}
	for _, m := range strings.Fields(own["minutes"]) {
		v, err := strconv.ParseFloat(m, 64)
		if err != nil {
			return fmt.Errorf("experiment: --minutes %q: %w", m, err)
		}
		o.Minutes = append(o.Minutes, v)
	}
	o.InitShares = strings.Fields(own["init-shares"])
	o.OnResume = tc.resumeOverrides(slog.New(slog.NewTextHandler(stderr, nil)))
	return experiment.Run(ctx, o)
}

// splitExperimentArgs takes the experiment's own flags (--minutes X or
// --minutes=X, one dash or two) out of args and returns the rest, the
// training flags, in their order.
func splitExperimentArgs(args []string) (map[string]string, []string, error) {
	own := map[string]string{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		key, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := experimentFlags[key]; !ok || !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("experiment: --%s needs a value", key)
			}
			i++
			val = args[i]
		}
		own[key] = val
	}
	return own, rest, nil
}

func experimentUsage(w io.Writer) {
	fmt.Fprint(w, `usage: cebm experiment NAME --minutes "M1 M2 …" [--init-shares "β1 β2"] [--split val|test] [--runs DIR] [cebm train flags]

Trains one recipe in increments of training time in $CEBM_RUNS/exp-NAME
(resuming it when it exists) and, after each, evaluates 1-NN of its export
(and of model-last.onnx with --ema, and of each --init-shares blend),
appending one line per evaluation to $CEBM_RUNS/experiments.tsv:
name, train_minutes, steps, knn1, pixel_knn1, split, flags.

`)
	for _, k := range []string{"minutes", "init-shares", "split", "runs", "threads-file"} {
		fmt.Fprintf(w, "  --%s\n    \t%s\n", k, experimentFlags[k])
	}
}
