package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs cebm with args and an environment that overrides the process's.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, getenv, &stdout, &stderr)
	return stdout.String(), err
}

func TestDataVerifyMNIST(t *testing.T) {
	out, err := runCmd(t, nil, "data", "verify", "mnist")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, re := range []string{
		`(?m)^  SPLIT\s+train\s+test$`,
		`(?m)^  images\s+60000\s+10000$`,
		`(?m)^  class 0\s+5923\s+980$`,
		`(?m)train-images-idx3-ubyte(\.gz)?\s+OK$`,
		`(?m)t10k-labels-idx1-ubyte(\.gz)?\s+OK$`,
		`(?m)^mnist: OK$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}
	if n := len(regexp.MustCompile(`(?m)ubyte(\.gz)?\s+OK$`).FindAllString(out, -1)); n != 4 {
		t.Errorf("%d files OK, want 4:\n%s", n, out)
	}
}

func TestDataVerifyFault(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte{0, 0, 8, 1, 0, 0, 0, 0}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCmd(t, map[string]string{"CEBM_MNIST_DIR": dir}, "data", "verify", "mnist")
	if err == nil || !strings.Contains(out, "FAULT") || !strings.Contains(out, "sha256") || !strings.Contains(out, "mnist: 2 fault(s)") {
		t.Fatalf("err = %v, output:\n%s", err, out)
	}
}

func TestDataList(t *testing.T) {
	out, err := runCmd(t, map[string]string{"CEBM_FASHION_MNIST_DIR": t.TempDir()}, "data", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^mnist\s+present\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^fashion-mnist\s+missing\s`).MatchString(out) ||
		!strings.Contains(out, "make setup") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestDataShow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grid.png")
	out, err := runCmd(t, nil, "data", "show", "mnist", "--split", "test", "--n", "12", "--cols", "4", "--out", path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "images 0..11 of mnist test") {
		t.Errorf("output: %s", out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 4*58+2 || b.Dy() != 3*73+2 {
		t.Fatalf("grid is %v", b)
	}
}

func TestDataErrors(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"data"}, "missing subcommand"},
		{[]string{"data", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"data", "verify"}, "no data set named"},
		{[]string{"data", "verify", "imagenet"}, "1 fault(s)"},
		{[]string{"data", "show", "mnist"}, "--out is required"},
		{[]string{"data", "show", "mnist", "--out", "x.png", "--from", "70000"}, "has 60000 images"},
		{[]string{"data", "show", "--bogus"}, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if _, err := runCmd(t, nil, tt.args...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := runCmd(t, nil, "data", "show", "-h"); err != nil {
		t.Fatalf("-h: %v", err)
	}
}
