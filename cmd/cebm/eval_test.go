package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const shippedModel = "../../models/mnist-cebm.onnx"

// writeFolderSet writes an image-folder data set (folder:DIR) of 28×28
// grayscale images, 10 classes, perClass train and test images per class:
// class c is a bright bar at row 2c+4 over noise, so that tests need not
// decode MNIST.
func writeFolderSet(t *testing.T, dir string, perClass int, seed uint8) string {
	t.Helper()
	v := seed
	for _, split := range []string{"train", "test"} {
		for c := 0; c < 10; c++ {
			cd := filepath.Join(dir, split, fmt.Sprintf("c%d", c))
			if err := os.MkdirAll(cd, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < perClass; i++ {
				img := image.NewGray(image.Rect(0, 0, 28, 28))
				for j := range img.Pix {
					v = v*73 + 41
					img.Pix[j] = v / 4
				}
				for x := 3; x < 25; x++ {
					img.SetGray(x, 2*c+4, color.Gray{Y: 255})
				}
				f, err := os.Create(filepath.Join(cd, fmt.Sprintf("%03d.png", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := png.Encode(f, img); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}
	}
	return "folder:" + dir
}

// The whole suite on a few hundred images: every JSON key, file and
// picture is there, and the README table is rewritten from results.json.
func TestEvalSuiteSmall(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "mnist-cebm")
	set := writeFolderSet(t, filepath.Join(dir, "set"), 15, 1)
	other := writeFolderSet(t, filepath.Join(dir, "other"), 4, 2)
	stdout, err := runCmd(t, nil, "eval", "--model", shippedModel, "--data", set, "--ood-data", other, "--out", out, "--json",
		"--baseline", shippedModel, "--pixel-probe-iters", "20",
		"--probe-seeds", "2", "--probe-labels", "1,10", "--probe-iters", "30",
		"--ood-n", "40", "--tsne-n", "60", "--tsne-iters", "60", "--chains", "4", "--chain-steps", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	for _, k := range []string{"knn1_accuracy", "pixel_knn1_accuracy", "confusion", "pixel_confusion", "classes", "seconds"} {
		if _, ok := r[k]; !ok {
			t.Errorf("no %q in the JSON", k)
		}
	}
	for _, k := range []string{"pca30_knn1_accuracy", "pca50_knn1_accuracy", "pca80_knn1_accuracy"} {
		if v, ok := r[k].(float64); !ok || v <= 0 || v > 1 {
			t.Errorf("%s = %v", k, r[k])
		}
	}
	// Fewer training images than --pca-images: the directions come from all.
	if s, _ := r["settings"].(map[string]any); s["pca_fit_images"] != r["train_images"] {
		t.Errorf("PCA fitted on %v images of %v", s["pca_fit_images"], r["train_images"])
	}
	for _, key := range []string{"probe_accuracy", "pca50_probe_accuracy"} {
		probe, _ := r[key].(map[string]any)
		for _, k := range []string{"1", "10", "full"} {
			if v, ok := probe[k].(float64); !ok || v < 0 || v > 1 {
				t.Errorf("%s[%q] = %v", key, k, probe[k])
			}
		}
	}
	ood, _ := r["ood_auroc"].(map[string]any)
	for _, name := range []string{other, "constant", "uniform"} {
		s, _ := ood[name].(map[string]any)
		for _, score := range []string{"neg_energy", "neg_grad_norm"} {
			if v, ok := s[score].(float64); !ok || v < 0 || v > 1 {
				t.Errorf("ood_auroc[%q][%q] = %v", name, score, s[score])
			}
		}
	}
	for _, f := range []string{"confusion.png", "pixel_confusion.png", "tsne.png", "samples.png"} {
		fh, err := os.Open(filepath.Join(out, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := png.Decode(fh); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		fh.Close()
	}
	if bl, _ := r["baselines"].([]any); len(bl) != 1 {
		t.Errorf("baselines: %v", r["baselines"])
	} else if b, _ := bl[0].(map[string]any); b["knn1_accuracy"] != r["knn1_accuracy"] {
		t.Errorf("the model as its own baseline has 1-NN %v, itself %v", b["knn1_accuracy"], r["knn1_accuracy"])
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## 1-NN accuracy", "## Linear probe", " | – | ", "## Out-of-distribution", other + " (40)", "constant (40)", "![t-SNE](tsne.png)", "| baseline `mnist-cebm.onnx` (cebm, ", "| PCA-50 of pixels | "} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}

	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("# Shipped models\n\ntext that stays\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run replaces the table it wrote
		if _, err := runCmd(t, nil, "eval", "--update-readme", readme, out); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(readme)
	if s := string(b); strings.Count(s, "<!-- results:begin -->") != 1 || !strings.Contains(s, "text that stays") || !strings.Contains(s, "| `mnist-cebm.onnx` | cebm | "+set+" |") || !strings.Contains(s, "| 1-NN latent / PCA-50 / pixels (%) |") {
		t.Errorf("README after the update:\n%s", s)
	}
}

// Without --out or --suite, eval is the 1-NN check and its JSON has no
// probe or OOD keys.
func TestEvalDefaultIsKNN(t *testing.T) {
	set := writeFolderSet(t, t.TempDir(), 5, 3)
	stdout, err := runCmd(t, nil, "eval", "--model", shippedModel, "--data", set, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, `"knn1_accuracy"`) || !strings.Contains(stdout, `"pca50_knn1_accuracy"`) || strings.Contains(stdout, "probe_accuracy") || strings.Contains(stdout, "ood_auroc") {
		t.Errorf("output:\n%s", stdout)
	}
	out, err := runCmd(t, nil, "eval", "--model", shippedModel, "--data", set)
	if err != nil || !strings.Contains(out, "1-NN accuracy, latent space: ") || !strings.Contains(out, "1-NN accuracy, pixel space:  ") || !strings.Contains(out, "1-NN accuracy, PCA-30 / 50 / 80 of pixels: ") {
		t.Errorf("plain output (%v):\n%s", err, out)
	}
	if !strings.Contains(out, ": 50 test images against 50 training images") {
		t.Errorf("plain output does not name the test split:\n%s", out)
	}
	// --split val says that it queried the last training images, not "test".
	out, err = runCmd(t, nil, "eval", "--model", shippedModel, "--data", set, "--split", "val", "--val-n", "10")
	if err != nil || !strings.Contains(out, ": 10 train[40:50] images against 40 training images") {
		t.Errorf("--split val (%v):\n%s", err, out)
	}
}

func TestEvalSuiteFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{"knn", nil, false},
		{"full", []string{partProbe, partOOD, partPictures}, false},
		{"knn,probe", []string{partProbe}, false},
		{"ood, pictures", []string{partOOD, partPictures}, false},
		{"umap", nil, true},
	} {
		got, err := parseSuite(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
		for _, p := range tc.want {
			if !got[p] {
				t.Errorf("%q: %v lacks %s", tc.in, got, p)
			}
		}
	}
	if _, err := runCmd(t, nil, "eval", "--suite", "pictures"); err == nil {
		t.Error("pictures without --out accepted")
	}
}

// Cancelling eval (Ctrl-C) stops the full suite within a second, with the
// context's error, and leaves neither the output folder nor a partial one.
func TestEvalCancel(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	for _, after := range []time.Duration{1500 * time.Millisecond, 4 * time.Second} {
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := make(chan time.Time, 1)
		time.AfterFunc(after, func() { cancelled <- time.Now(); cancel() })
		var stdout, stderr bytes.Buffer
		err := run(ctx, []string{"eval", "--model", shippedModel, "--data", "mnist", "--out", out, "--threads", "1"}, os.Getenv, &stdout, &stderr)
		returned := time.Now()
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %v: error %v\n%s", after, err, stderr.String())
		}
		if took := returned.Sub(<-cancelled); took > time.Second {
			t.Errorf("cancelled after %v: stopped %v later\n%s", after, took, stderr.String())
		} else {
			t.Logf("cancelled after %v: stopped %v later", after, took)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("cancelled after %v: %s holds %v", after, dir, entries)
		}
	}
}

// TestEvalPrintsOnce: eval's results go to stdout once (the table, or
// --json alone); stderr carries progress, never a figure; and --split val
// says "test" nowhere: not in its output, results.md or results.json's
// values.
func TestEvalPrintsOnce(t *testing.T) {
	dir := t.TempDir()
	set := writeFolderSet(t, filepath.Join(dir, "set"), 5, 4)
	figure := regexp.MustCompile(`\d\.\d{4}`) // accuracies are printed with four decimals, timings with one
	evalOut := func(args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"eval", "--model", shippedModel, "--data", set}, args...), os.Getenv, &stdout, &stderr); err != nil {
			t.Fatalf("eval %q: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	stdout, stderr := evalOut()
	if n := strings.Count(stdout, "1-NN accuracy, latent space: "); n != 1 {
		t.Errorf("the latent 1-NN is printed %d times on stdout:\n%s", n, stdout)
	}
	if f := figure.FindAllString(stderr, -1); len(f) > 0 || !strings.Contains(stderr, "1-NN, pixel space: ") {
		t.Errorf("stderr holds figures %v (or no progress):\n%s", f, stderr)
	}

	stdout, stderr = evalOut("--json")
	var r map[string]any
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Errorf("--json: stdout is not JSON alone (%v):\n%s", err, stdout)
	}
	if f := figure.FindAllString(stderr, -1); len(f) > 0 {
		t.Errorf("--json: stderr holds figures %v:\n%s", f, stderr)
	}

	out := filepath.Join(dir, "val")
	stdout, stderr = evalOut("--split", "val", "--val-n", "20", "--out", out, "--suite", "pictures",
		"--tsne-n", "20", "--tsne-iters", "30", "--chains", "2", "--chain-steps", "2")
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	// results.json's key test_images is its schema's name for the queries'
	// count (query_split names them); no value says "test".
	js = bytes.ReplaceAll(js, []byte(`"test_images"`), nil)
	for what, s := range map[string]string{"stdout": stdout, "stderr": stderr, "results.md": string(md), "results.json": string(js)} {
		if strings.Contains(s, "test") {
			t.Errorf("--split val: %s says \"test\":\n%s", what, s)
		}
	}
	if !strings.Contains(string(md), "train[30:50]") {
		t.Errorf("results.md does not name the validation split train[30:50]:\n%s", md)
	}
}
