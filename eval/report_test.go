package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateReadme(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	for _, tc := range []struct {
		name, before, want string
		bad                bool
	}{
		{"replace", "a\n" + ResultsBegin + "\nold\n" + ResultsEnd + "\nb\n", "a\n" + ResultsBegin + "\nNEW\n" + ResultsEnd + "\nb\n", false},
		{"append", "a\n", "a\n\n## Evaluation results\n\nWritten by `make eval-models` (`cebm eval --models models --update-readme models/README.md`: each model with `--out DIR`, then the table); do not edit by hand. Each model's results.md (its figures beside the paper's) and pictures are in the folder of the last column, written locally and not committed.\n\n" + ResultsBegin + "\nNEW\n" + ResultsEnd + "\n", false},
		{"unbalanced", "a\n" + ResultsEnd + "\n" + ResultsBegin + "\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
			err := UpdateReadme(path, "NEW\n")
			if tc.bad {
				if err == nil {
					t.Error("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b, tc.want)
			}
		})
	}
}

func TestMarkdownBesideThePaper(t *testing.T) {
	r := &Report{Model: "m.onnx", Kind: "cebm", Data: "fashion-mnist", KNN1Accuracy: 0.8, PixelKNN1Accuracy: 0.85,
		ProbeAccuracy: map[string]float64{"1": 0.5, "10": 0.7, "100": 0.75, "full": 0.8}, ProbeStd: map[string]float64{"1": 0.05, "10": 0.01, "100": 0.01},
		OODAUROC:          map[string]OODScore{"mnist": {0.4, 0.8}, "constant": {0.9, 0.95}, "uniform": {1, 1}},
		OODImages:         map[string]int{"in-distribution": 2000, "mnist": 2000, "constant": 2000, "uniform": 2000},
		PCA30KNN1Accuracy: 0.83, PCA50KNN1Accuracy: 0.84, PCA80KNN1Accuracy: 0.845,
		PCA50ProbeAccuracy: map[string]float64{"1": 0.4, "10": 0.6, "100": 0.7, "full": 0.78}, PCA50ProbeStd: map[string]float64{"1": 0.04, "10": 0.02, "100": 0.01},
		Settings: Settings{PCAImages: 20000, PCA50Variance: 0.8612}}
	md := r.Markdown()
	for _, want := range []string{
		"| cebm latent (posterior mean) | 80.00 | 84.31 |",
		"| pixels | 85.00 | 84.97 |",
		"| cebm latent | 50.0 ± 5.0 | 70.0 ± 1.0 | 75.0 ± 1.0 | 80.0 | 52 / 70 / 77 / 83 |",
		"| mnist (2000) | cebm | 40.0 | 80.0 | 37 | 82 |",
		"| constant (2000) | cebm | 90.0 | 95.0 | 90 | 98 |",
		"| PCA-30 of pixels | 83.00 | – |\n| PCA-50 of pixels | 84.00 | – |\n| PCA-80 of pixels | 84.50 | – |",
		"principal directions of 20000 training images drawn at random (the first 50 carry 86.1 % of their variance)",
		"| PCA-50 of pixels | 40.0 ± 4.0 | 60.0 ± 2.0 | 70.0 ± 1.0 | 78.0 | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "| mnist (") > strings.Index(md, "| uniform (") {
		t.Error("OOD data sets should come before constant and uniform images")
	}
}

// The summary table puts PCA-50 between latent and pixels, in 1-NN and in a
// probe column of its own, and a dash for reports made before it.
func TestResultsTablePCA(t *testing.T) {
	probe := map[string]float64{"1": 0.5, "10": 0.8, "100": 0.9, "full": 0.95}
	now := &Report{Model: "models/a.onnx", Kind: "cebm", Data: "mnist", Steps: 10, KNN1Accuracy: 0.9735, PCA50KNN1Accuracy: 0.9732, PixelKNN1Accuracy: 0.9691,
		ProbeAccuracy: probe, PCA50ProbeAccuracy: map[string]float64{"1": 0.45, "10": 0.75, "100": 0.88, "full": 0.92}}
	old := &Report{Model: "models/b.onnx", Kind: "cebm", Data: "mnist", Steps: 10, KNN1Accuracy: 0.9, PixelKNN1Accuracy: 0.9691, ProbeAccuracy: probe}
	table := ResultsTable([]*Report{now, old}, []string{"runs/a", "runs/b"})
	for _, want := range []string{
		"| 1-NN latent / PCA-50 / pixels (%) | probe 1 / 10 / 100 / full (%) | PCA-50 probe (%) |",
		"| `a.onnx` | cebm | mnist | 10 | 97.35 / 97.32 / 96.91 | 50.0 / 80.0 / 90.0 / 95.0 | 45.0 / 75.0 / 88.0 / 92.0 | – | `runs/a/` |",
		"| `b.onnx` | cebm | mnist | 10 | 90.00 / – / 96.91 | 50.0 / 80.0 / 90.0 / 95.0 | – | – | `runs/b/` |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
