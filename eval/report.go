package eval

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cebm/cebm/internal/atomicfile"
)

// Paper holds the published figures of the CEBM paper (Wu et al. 2021), in
// per cent, keyed by model ("pixels", "vae", "igebm", "cebm", "gmm-cebm",
// "bigan") and data set name.
var Paper = struct {
	KNN1  map[string]map[string]float64
	Probe map[string]map[string][4]float64 // 1, 10, 100 labels per class, full
	// OOD is for models trained on Fashion-MNIST: OOD set → [−E, −‖∇E‖].
	OOD map[string]map[string][2]float64
}{
	KNN1: map[string]map[string]float64{
		"pixels":   {"mnist": 96.91, "fashion-mnist": 84.97, "cifar10": 35.39, "svhn": 42.37},
		"vae":      {"mnist": 94.75, "fashion-mnist": 79.10, "cifar10": 37.91, "svhn": 39.60},
		"igebm":    {"mnist": 96.17, "fashion-mnist": 80.61, "cifar10": 39.62, "svhn": 21.33},
		"cebm":     {"mnist": 98.10, "fashion-mnist": 84.31, "cifar10": 45.43, "svhn": 48.61},
		"gmm-cebm": {"cifar10": 41.26},
	},
	Probe: map[string]map[string][4]float64{
		"vae":      {"mnist": {42, 78, 89, 95}, "fashion-mnist": {41, 63, 72, 81}, "cifar10": {16, 22, 31, 38}, "svhn": {13, 13, 16, 36}},
		"igebm":    {"mnist": {63, 89, 95, 97}, "fashion-mnist": {50, 70, 79, 83}, "cifar10": {16, 26, 33, 42}, "svhn": {10, 16, 35, 49}},
		"cebm":     {"mnist": {67, 89, 95, 97}, "fashion-mnist": {52, 70, 77, 83}, "cifar10": {19, 30, 42, 52}, "svhn": {12, 25, 48, 70}},
		"gmm-cebm": {"mnist": {67, 91, 97, 98}, "fashion-mnist": {52, 71, 80, 85}, "cifar10": {16, 29, 42, 51}},
		"bigan":    {"mnist": {41, 78, 91, 96}, "fashion-mnist": {46, 66, 76, 82}, "cifar10": {19, 33, 45, 56}, "svhn": {12, 21, 39, 55}},
	},
	OOD: map[string]map[string][2]float64{
		"igebm":    {"mnist": {35, 78}, "constant": {90, 96}},
		"cebm":     {"mnist": {37, 82}, "constant": {90, 98}},
		"gmm-cebm": {"mnist": {56, 56}, "constant": {92, 95}},
	},
}

// paperSet maps a data-set name as given to data.Load to the paper's.
func paperSet(name string) string {
	switch {
	case strings.HasPrefix(name, "cifar10"):
		return "cifar10"
	case strings.HasPrefix(name, "svhn"):
		return "svhn"
	}
	return name
}

func pct(v float64) string { return fmt.Sprintf("%.2f", 100*v) }

func paperKNN(model, set string) string {
	if v, ok := Paper.KNN1[model][paperSet(set)]; ok {
		return fmt.Sprintf("%.2f", v)
	}
	return "–"
}

func paperProbe(model, set string) string {
	if v, ok := Paper.Probe[model][paperSet(set)]; ok {
		return fmt.Sprintf("%g / %g / %g / %g", v[0], v[1], v[2], v[3])
	}
	return "–"
}

var probeKeys = []string{"1", "10", "100"}

func probeCells(acc, std map[string]float64) string {
	var cells []string
	for _, k := range probeKeys {
		if v, ok := acc[k]; ok {
			cells = append(cells, fmt.Sprintf("%.1f ± %.1f", 100*v, 100*std[k]))
		} else {
			cells = append(cells, "–")
		}
	}
	if v, ok := acc["full"]; ok {
		cells = append(cells, fmt.Sprintf("%.1f", 100*v))
	} else {
		cells = append(cells, "–")
	}
	return strings.Join(cells, " | ")
}

// querySplit is the split 1-NN queried: "test", or a validation split
// such as "train[50000:60000]" (reports written before the field: test).
func (r *Report) querySplit() string { return cmp.Or(r.QuerySplit, "test") }

// Markdown is results.md: the figures of a report beside the paper's.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Evaluation of `%s`\n\n", r.Model)
	w("- model: %s, trained on %s for %d steps (%.0f s of training); sha256 `%.16s…`\n", r.Kind, r.Data, r.Steps, r.TrainWallTime, r.Digest)
	w("- evaluated on %s: %d %s images against %d training images; the evaluation took %.1f s\n", r.Data, r.TestImages, r.querySplit(), r.TrainImages, r.Seconds)
	w("- the paper's figures (Wu et al. 2021) are for models trained 90k steps on a GPU\n\n")

	w("## 1-NN accuracy (%%), %s against the training images, squared L2\n\n", r.querySplit())
	w("| representation | ours | paper |\n|---|---|---|\n")
	w("| %s latent (posterior mean) | %s | %s |\n", r.Kind, pct(r.KNN1Accuracy), paperKNN(r.Kind, r.Data))
	for _, bl := range r.Baselines {
		w("| baseline `%s` (%s, %d steps) | %s | %s |\n", filepath.Base(bl.Model), bl.Kind, bl.Steps, pct(bl.KNN1Accuracy), paperKNN(bl.Kind, r.Data))
	}
	w("| pixels | %s | %s |\n", pct(r.PixelKNN1Accuracy), paperKNN("pixels", r.Data))
	if r.PCA50KNN1Accuracy > 0 { // reports written before the PCA baseline have none
		for _, c := range []struct {
			k   int
			acc float64
		}{{30, r.PCA30KNN1Accuracy}, {50, r.PCA50KNN1Accuracy}, {80, r.PCA80KNN1Accuracy}} {
			w("| PCA-%d of pixels | %s | – |\n", c.k, pct(c.acc))
		}
		w("\nPCA-k: the pixels projected onto the k leading principal directions of %d training images drawn at random (the first 50 carry %.1f %% of their variance), then 1-NN as above.\n",
			r.Settings.PCAImages, 100*r.Settings.PCA50Variance)
	}
	w("\n")

	if r.ProbeAccuracy != nil {
		w("## Linear probe accuracy (%%) on the whole %s split\n\n", r.querySplit())
		w("Multinomial logistic regression (L-BFGS, gonum/optimize; mean cross-entropy + %g/2·‖W‖², at most %d iterations, %d for pixels) on features standardised with the whole training split's mean and deviation; few-label columns are the mean ± std over %d seeded subsets of that many labelled training images per class.\n\n",
			r.Settings.ProbeL2, r.Settings.ProbeMaxIter, r.Settings.PixelMaxIter, r.Settings.ProbeSeeds)
		w("| representation | 1 | 10 | 100 | full | paper (1 / 10 / 100 / full) |\n|---|---|---|---|---|---|\n")
		w("| %s latent | %s | %s |\n", r.Kind, probeCells(r.ProbeAccuracy, r.ProbeStd), paperProbe(r.Kind, r.Data))
		for _, bl := range r.Baselines {
			w("| baseline `%s` (%s) | %s | %s |\n", filepath.Base(bl.Model), bl.Kind, probeCells(bl.ProbeAccuracy, bl.ProbeStd), paperProbe(bl.Kind, r.Data))
		}
		if r.PixelProbeAccuracy != nil {
			w("| pixels | %s | – |\n", probeCells(r.PixelProbeAccuracy, r.PixelProbeStd))
		}
		if r.PCA50ProbeAccuracy != nil {
			w("| PCA-50 of pixels | %s | – |\n", probeCells(r.PCA50ProbeAccuracy, r.PCA50ProbeStd))
		}
		w("\n")
	}

	if r.OODAUROC != nil {
		w("## Out-of-distribution detection: AUROC (×100)\n\n")
		w("In-distribution (positives): %d images of the %s %s split. Scores −E(x) and −‖∇x E(x)‖ (higher = more in-distribution), ties counted ½. ",
			r.OODImages["in-distribution"], r.Data, r.querySplit())
		w("Constant images: one U(−1, 1) value per image; uniform: U(−1, 1) per pixel. The paper's figures are for models trained on Fashion-MNIST.\n\n")
		w("| OOD set (images) | model | −E | −‖∇E‖ | paper −E | paper −‖∇E‖ |\n|---|---|---|---|---|---|\n")
		row := func(name, model, kind string, s OODScore) {
			pe, pg := "–", "–"
			if paperSet(r.Data) == "fashion-mnist" {
				if v, ok := Paper.OOD[kind][name]; ok {
					pe, pg = fmt.Sprintf("%g", v[0]), fmt.Sprintf("%g", v[1])
				}
			}
			w("| %s (%d) | %s | %.1f | %.1f | %s | %s |\n", name, r.OODImages[name], model, 100*s.NegEnergy, 100*s.NegGradNorm, pe, pg)
		}
		for _, name := range oodOrder(r.OODAUROC) {
			row(name, r.Kind, r.Kind, r.OODAUROC[name])
			for _, bl := range r.Baselines {
				if s, ok := bl.OODAUROC[name]; ok {
					row(name, "`"+filepath.Base(bl.Model)+"`", bl.Kind, s)
				}
			}
		}
		w("\n")
	}

	if r.Pictures != nil {
		w("## Pictures\n\n")
		w("1-NN confusion matrix in latent space (rows: true class, fractions of the row):\n\n![confusion](%s)\n\n", r.Pictures["confusion"])
		w("The same in pixel space:\n\n![pixel confusion](%s)\n\n", r.Pictures["pixel_confusion"])
		w("t-SNE map of %d %s posterior means (exact t-SNE, perplexity %g), coloured by class:\n\n![t-SNE](%s)\n\n", r.Settings.TSNEPoints, r.querySplit(), r.Settings.TSNEPerplex, r.Pictures["latent_map"])
		if r.Pictures["samples"] == "" {
			w("No SGLD samples: the model carries no training config to rebuild its energy gradient from.\n\n")
		} else {
			w("%d samples drawn by SGLD from U(−1, 1) noise, %d steps of x ← x − %g·∇E(x) + %g·ε (the model's training settings):\n\n![samples](%s)\n\n",
				r.Settings.SGLDChains, r.Settings.SGLDSteps, r.Settings.SGLDStep, r.Settings.SGLDNoise, r.Pictures["samples"])
		}
	}
	if len(r.Timings) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.Timings) {
			parts = append(parts, fmt.Sprintf("%s %.1f s", k, r.Timings[k]))
		}
		w("Time: %s.\n", strings.Join(parts, ", "))
	}
	return b.String()
}

// oodOrder lists the data sets first, then constant, then uniform.
func oodOrder(m map[string]OODScore) []string {
	rank := func(s string) int {
		switch s {
		case "constant":
			return 1
		case "uniform":
			return 2
		}
		return 0
	}
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return rank(keys[i]) < rank(keys[j]) })
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteReport writes results.json and results.md into dir (atomically).
func WriteReport(dir string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "results.json"), append(b, '\n')); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "results.md"), []byte(r.Markdown()))
}

// ReadReport reads a results.json.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Markers delimit the results table that UpdateReadme rewrites.
const (
	ResultsBegin = "<!-- results:begin -->"
	ResultsEnd   = "<!-- results:end -->"
)

// ResultsTable is the models' summary table for models/README.md; dirs
// name the folders holding each report's results.md and pictures.
func ResultsTable(reports []*Report, dirs []string) string {
	var b strings.Builder
	b.WriteString("| model | kind | data | steps | 1-NN latent / PCA-50 / pixels (%) | probe 1 / 10 / 100 / full (%) | PCA-50 probe (%) | OOD AUROC −E / −‖∇E‖ (×100) | results and pictures |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	probe := func(acc map[string]float64) string {
		if acc == nil {
			return "–"
		}
		var p []string
		for _, k := range append(probeKeys, "full") {
			p = append(p, fmt.Sprintf("%.1f", 100*acc[k]))
		}
		return strings.Join(p, " / ")
	}
	for i, r := range reports {
		pca := "–" // reports written before the PCA baseline have none
		if r.PCA50KNN1Accuracy > 0 {
			pca = pct(r.PCA50KNN1Accuracy)
		}
		var ood []string
		for _, name := range oodOrder(r.OODAUROC) {
			s := r.OODAUROC[name]
			ood = append(ood, fmt.Sprintf("%s %.0f / %.0f", name, 100*s.NegEnergy, 100*s.NegGradNorm))
		}
		if len(ood) == 0 {
			ood = []string{"–"}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %d | %s / %s / %s | %s | %s | %s | `%s` |\n",
			filepath.Base(r.Model), r.Kind, r.Data, r.Steps, pct(r.KNN1Accuracy), pca, pct(r.PixelKNN1Accuracy),
			probe(r.ProbeAccuracy), probe(r.PCA50ProbeAccuracy), strings.Join(ood, "; "), filepath.ToSlash(dirs[i])+"/")
	}
	return b.String()
}

// UpdateReadme replaces what lies between the results markers of the
// Markdown file at path with table (appending a marked section when there
// is none), atomically.
func UpdateReadme(path, table string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	section := ResultsBegin + "\n" + table + ResultsEnd
	var out []byte
	i, j := bytes.Index(old, []byte(ResultsBegin)), bytes.Index(old, []byte(ResultsEnd))
	switch {
	case i >= 0 && j > i:
		out = append(append(append([]byte{}, old[:i]...), section...), old[j+len(ResultsEnd):]...)
	case i < 0 && j < 0:
		out = append(bytes.TrimRight(old, "\n"), []byte("\n\n## Evaluation results\n\nWritten by `make eval-models` (`cebm eval --models models --update-readme models/README.md`: each model with `--out DIR`, then the table); do not edit by hand. Each model's results.md (its figures beside the paper's) and pictures are in the folder of the last column, written locally and not committed.\n\n"+section+"\n")...)
	default:
		return fmt.Errorf("%s: unbalanced %s / %s markers", path, ResultsBegin, ResultsEnd)
	}
	return atomicfile.WriteBytes(path, out)
}
