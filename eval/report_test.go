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
		{"append", "a\n", "a\n\n## Evaluation results\n\nWritten by `make eval-models` (`cebm eval --out DIR` per model, then `cebm eval --update-readme`); do not edit by hand. Each model's results.md (its figures beside the paper's) and pictures are in the folder of the last column, written locally and not committed.\n\n" + ResultsBegin + "\nNEW\n" + ResultsEnd + "\n", false},
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
		OODAUROC:  map[string]OODScore{"mnist": {0.4, 0.8}, "constant": {0.9, 0.95}, "uniform": {1, 1}},
		OODImages: map[string]int{"in-distribution": 2000, "mnist": 2000, "constant": 2000, "uniform": 2000}}
	md := r.Markdown()
	for _, want := range []string{
		"| cebm latent (posterior mean) | 80.00 | 84.31 |",
		"| pixels | 85.00 | 84.97 |",
		"| cebm latent | 50.0 ± 5.0 | 70.0 ± 1.0 | 75.0 ± 1.0 | 80.0 | 52 / 70 / 77 / 83 |",
		"| mnist (2000) | cebm | 40.0 | 80.0 | 37 | 82 |",
		"| constant (2000) | cebm | 90.0 | 95.0 | 90 | 98 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "| mnist (") > strings.Index(md, "| uniform (") {
		t.Error("OOD data sets should come before constant and uniform images")
	}
}
