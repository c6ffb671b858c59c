package main

import (
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExperimentArgs: the experiment's own flags, in either spelling, are
// taken out of the command line and the training flags stay in order.
func TestExperimentArgs(t *testing.T) {
	own, rest, err := splitExperimentArgs([]string{"--lr", "5e-4", "--minutes", "3 6", "-init-shares=0.1 0.3", "--split", "test", "--ema=0.99"})
	if err != nil {
		t.Fatal(err)
	}
	if own["minutes"] != "3 6" || own["init-shares"] != "0.1 0.3" || own["split"] != "test" {
		t.Errorf("own flags %v", own)
	}
	if want := []string{"--lr", "5e-4", "--ema=0.99"}; !slices.Equal(rest, want) {
		t.Errorf("training flags %q, want %q", rest, want)
	}
	if _, _, err := splitExperimentArgs([]string{"--minutes"}); err == nil {
		t.Error("--minutes without a value: no error")
	}
}

// TestExperimentCommandErrors: mistakes stop `cebm experiment` with a
// clear error before anything trains.
func TestExperimentCommandErrors(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	env := func(k string) string {
		if k == "CEBM_RUNS" {
			return runs
		}
		return ""
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "NAME first"},
		{[]string{"x"}, "no --minutes"},
		{[]string{"x", "--minutes", "1 ten"}, `--minutes "ten"`},
		{[]string{"x", "--minutes", "1", "--out", "y"}, "--out is the experiment's"},
		{[]string{"x", "--minutes", "1", "--lrr", "1"}, "lrr"},
		{[]string{"x", "--minutes", "1", "--split", "train"}, `split "train"`},
	} {
		err := run(context.Background(), append([]string{"experiment"}, c.args...), env, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("experiment %q: err %v, want it to contain %q", c.args, err, c.want)
		}
	}
}
