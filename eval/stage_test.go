package eval

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModels: Models evaluates every model of a folder on its own data set
// into out/NAME, each report as a single run of the suite gives it, and a
// folder whose model cannot be read fails naming it (before the others), leaving no folder for
// it; UpdateReadmeFrom writes the table of those folders.
func TestModels(t *testing.T) {
	src, err := os.ReadFile(shippedModel)
	if err != nil {
		t.Fatal(err)
	}
	dir, out := t.TempDir(), filepath.Join(t.TempDir(), "eval")
	if err := os.WriteFile(filepath.Join(dir, "a.onnx"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := DefaultOptions()
	opt.Threads = 1
	sets := Sets{TrainLimit: 400, TestLimit: 100}
	dirs, err := Models(context.Background(), dir, out, opt, sets, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 1 || dirs[0] != filepath.Join(out, "a") {
		t.Fatalf("folders %q", dirs)
	}
	got, err := ReadReport(filepath.Join(dirs[0], "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	one := opt
	one.Model = filepath.Join(dir, "a.onnx")
	if err := sets.Load(&one, os.Getenv); err != nil {
		t.Fatal(err)
	}
	want, err := Run(context.Background(), one)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != "mnist" || got.KNN1Accuracy != want.KNN1Accuracy || got.TestImages != 100 || got.TrainImages != 400 {
		t.Errorf("report: data %s, 1-NN %v on %d against %d; want mnist, %v on 100 against 400", got.Data, got.KNN1Accuracy, got.TestImages, got.TrainImages, want.KNN1Accuracy)
	}
	readme := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(readme, []byte("# models\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateReadmeFrom(readme, dirs); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(readme); !strings.Contains(string(b), "`a.onnx`") {
		t.Errorf("results table lacks a.onnx:\n%s", b)
	}

	if err := os.WriteFile(filepath.Join(dir, "0-broken.onnx"), []byte("not onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Models(context.Background(), dir, out, opt, sets, os.Getenv); err == nil || !strings.Contains(err.Error(), "0-broken.onnx") {
		t.Errorf("a broken model: err %v, want one naming 0-broken.onnx", err)
	}
	if _, err := os.Stat(filepath.Join(out, "0-broken")); !os.IsNotExist(err) {
		t.Errorf("a folder for the broken model (%v)", err)
	}
	if _, err := Models(context.Background(), t.TempDir(), out, opt, sets, os.Getenv); err == nil || !strings.Contains(err.Error(), "no *.onnx") {
		t.Errorf("an empty folder: err %v", err)
	}
}
