package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestFlagMistakes: a wrong flag is answered with one line that names the
// flag probably meant, not with the whole usage; -h still prints the usage,
// and cebm eval -h says what eval does.
func TestFlagMistakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"serve", "--port", "9000"}, "did you mean --addr?"},
		{[]string{"train", "--duraton", "5m"}, "did you mean --duration?"},
		{[]string{"classify", "--sever", "http://x", "a.png"}, "did you mean --server?"},
		{[]string{"eval", "--splt", "val"}, "did you mean --split?"},
		{[]string{"data", "show", "--outt", "x.png", "mnist"}, "did you mean --out?"},
		{[]string{"serve", "--frobnicate"}, "cebm serve -h lists the flags"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, os.Getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%q: error %v, want one line with %q", c.args, err, c.want)
		}
		if stderr.Len() > 0 || stdout.Len() > 0 {
			t.Errorf("%q: printed %d + %d bytes besides the error:\n%s", c.args, stdout.Len(), stderr.Len(), stderr.String())
		}
	}
	for _, cmd := range []string{"serve", "train", "eval", "classify"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{cmd, "-h"}, os.Getenv, &stdout, &stderr); err != nil {
			t.Errorf("%s -h: %v", cmd, err)
		}
		if !strings.HasPrefix(stderr.String(), "usage: cebm "+cmd) || strings.Count(stderr.String(), "\n") < 5 {
			t.Errorf("%s -h printed:\n%.300s", cmd, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"eval", "-h"}, os.Getenv, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "1-NN accuracy of its posterior") {
		t.Errorf("cebm eval -h does not say what eval does:\n%.300s", stderr.String())
	}
}
