package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/engine"
)

// TestVersion: `cebm version` names Go, a loaded ONNX Runtime and the
// engines this binary was built with; without -tags dnnl it says how to
// get oneDNN.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, os.Getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"cebm ", "go: go1.", "onnxruntime: 1.", "engines: onnxruntime"} {
		if !strings.Contains(s, want) {
			t.Errorf("version output lacks %q:\n%s", want, s)
		}
	}
	if has := strings.Contains(s, "engines: onnxruntime, onednn\n"); has != dnnl.Available {
		t.Errorf("oneDNN in this build %v, output:\n%s", dnnl.Available, s)
	}
	if !dnnl.Available && !strings.Contains(s, engine.OneDNNHint) {
		t.Errorf("no hint on building with oneDNN:\n%s", s)
	}
	if err := run(context.Background(), []string{"version", "x"}, os.Getenv, &out, io.Discard); err == nil {
		t.Error("version x: no error")
	}
}

// TestTrainEngineMissing: without oneDNN in the binary, `cebm train
// --engine onednn` stops before touching the run folder, with the hint of
// `cebm version`; with it, an unknown engine is refused the same way.
func TestTrainEngineMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	name := "onednn"
	if dnnl.Available {
		name = "cuda"
	}
	err := run(context.Background(), []string{"train", "--quiet", "--steps", "1", "--out", dir, "--engine", name}, os.Getenv, io.Discard, io.Discard)
	if err == nil {
		t.Fatalf("--engine %s: no error", name)
	}
	want := engine.OneDNNHint
	if dnnl.Available {
		want = `engine "cuda"`
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("--engine %s: %v, want it to contain %q", name, err, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("run folder %s made (%v)", dir, err)
	}
}
