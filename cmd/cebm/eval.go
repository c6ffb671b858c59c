package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/eval"
)

// Suite parts of `cebm eval`. 1-NN (latent and pixel) always runs.
const (
	partProbe    = "probe"
	partOOD      = "ood"
	partPictures = "pictures"
)

// parseSuite reads --suite: "knn", "full", or a comma list of knn, probe,
// ood and pictures.
func parseSuite(s string) (map[string]bool, error) {
	parts := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		switch p = strings.TrimSpace(p); p {
		case "knn", "":
		case "full", "all":
			parts[partProbe], parts[partOOD], parts[partPictures] = true, true, true
		case partProbe, partOOD, partPictures:
			parts[p] = true
		default:
			return nil, fmt.Errorf("unknown --suite part %q (knn, probe, ood, pictures, full)", p)
		}
	}
	return parts, nil
}

// oodCounterpart is the other data set an MNIST-style model is tested
// against (cebm-spec §4).
func oodCounterpart(name string) string {
	switch name {
	case "mnist":
		return "fashion-mnist"
	case "fashion-mnist":
		return "mnist"
	}
	return ""
}

// runEval is `cebm eval`: 1-NN accuracy of posterior means (test split
// against training split, squared L2) beside the pixel-space baseline and,
// with --suite or --out, the linear probes, OOD detection and pictures.
//
// Without --out the default suite is knn (the fast 1-NN check the trainer
// uses); with --out it is full, and results.json, results.md and the PNGs
// go into that folder.
func runEval(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := eval.DefaultOptions()
	model := fs.String("model", "models/mnist-cebm.onnx", "exported model")
	name := fs.String("data", "", "data set (see cebm data list; default: the one the model was trained on)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	threads := fs.Int("threads", 0, "ONNX Runtime threads (0: all cores)")
	out := fs.String("out", "", "write results.json, results.md and the pictures into this folder (implies --suite full)")
	suite := fs.String("suite", "", "what to run: knn, full, or a comma list of knn, probe, ood, pictures (default knn; full with --out)")
	var baselines []string
	fs.Func("baseline", "another exported model (e.g. an IGEBM) evaluated beside --model; repeatable", func(s string) error {
		baselines = append(baselines, s)
		return nil
	})
	oodData := fs.String("ood-data", "", "comma list of data sets whose test split is OOD (default: fashion-mnist for mnist and vice versa)")
	oodN := fs.Int("ood-n", def.OODN, "images per side in each OOD comparison")
	labels := fs.String("probe-labels", "1,10,100", "comma list of labels per class for the few-label probes")
	seeds := fs.Int("probe-seeds", def.ProbeSeeds, "random subsets per few-label probe")
	l2 := fs.Float64("probe-l2", def.ProbeOpt.L2, "probe L2 weight λ (mean cross-entropy + λ/2·‖W‖²)")
	iters := fs.Int("probe-iters", def.ProbeOpt.MaxIter, "probe L-BFGS iterations at most")
	pixelIters := fs.Int("pixel-probe-iters", def.PixelProbeIters, "pixel-space probe L-BFGS iterations at most")
	tsneN := fs.Int("tsne-n", def.TSNEN, "test latents in the t-SNE map")
	tsneIters := fs.Int("tsne-iters", def.TSNEOpt.Iterations, "t-SNE iterations")
	chains := fs.Int("chains", def.Chains, "SGLD samples drawn from noise")
	chainSteps := fs.Int("chain-steps", def.ChainSteps, "SGLD steps per sample")
	seed := fs.Uint64("seed", def.Seed, "random seed (probe subsets, OOD images, t-SNE, SGLD)")
	trainLimit := fs.Int("train-limit", 0, "use only the first N training images (0: all)")
	testLimit := fs.Int("test-limit", 0, "use only the first N test images (0: all)")
	split := fs.String("split", "test", "what 1-NN queries: test (the test split against the training split) or val (the last --val-n training images against the ones before them; for choosing recipes)")
	valN := fs.Int("val-n", 10000, "images held out of the training split by --split val")
	labBook := fs.String("plot-lab-book", "", "draw 1-NN against training minutes from this lab-book TSV (scripts/experiment.sh) into --plot-out, then stop")
	plotOut := fs.String("plot-out", "docs/experiments-knn1.png", "picture written by --plot-lab-book")
	readme := fs.String("update-readme", "", "rewrite the results table of this Markdown file from the results.json in the folders given as arguments, then stop")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *readme != "" {
		return updateReadme(*readme, fs.Args())
	}
	if *labBook != "" {
		return plotLabBook(*labBook, *plotOut, *split, *name)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("eval: unexpected arguments %q", fs.Args())
	}
	if *suite == "" {
		*suite = "knn"
		if *out != "" {
			*suite = "full"
		}
	}
	parts, err := parseSuite(*suite)
	if err != nil {
		return err
	}
	if parts[partPictures] && *out == "" {
		return errors.New("eval: pictures need --out DIR")
	}
	if *name == "" {
		*name = "mnist"
		if m, err := encoder.Load(*model, 1); err == nil {
			if m.Dataset != "" {
				*name = m.Dataset
			}
			m.Close()
		}
	}
	opt := def
	opt.Model, opt.Baselines, opt.Out, opt.Threads, opt.Seed = *model, baselines, *out, *threads, *seed
	opt.Probe, opt.OOD, opt.Pictures = parts[partProbe], parts[partOOD], parts[partPictures]
	opt.OODN, opt.ProbeSeeds, opt.TSNEN, opt.Chains, opt.ChainSteps = *oodN, *seeds, *tsneN, *chains, *chainSteps
	opt.ProbeOpt.L2, opt.ProbeOpt.MaxIter, opt.PixelProbeIters, opt.TSNEOpt.Iterations = *l2, *iters, *pixelIters, *tsneIters
	opt.TSNEOpt.ExagIters = min(opt.TSNEOpt.ExagIters, *tsneIters/3)
	opt.Log = stderr
	opt.ProbeLabels = nil
	for _, f := range strings.Split(*labels, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 {
			return fmt.Errorf("eval: bad --probe-labels entry %q", f)
		}
		opt.ProbeLabels = append(opt.ProbeLabels, k)
	}
	if opt.Train, err = data.LoadEnv(*name, "train", env); err != nil {
		return err
	}
	switch *split {
	case "test":
		if opt.Test, err = data.LoadEnv(*name, "test", env); err != nil {
			return err
		}
	case "val":
		if opt.Train, opt.Test, err = data.ValidationSplit(opt.Train, *valN); err != nil {
			return err
		}
	default:
		return fmt.Errorf("eval: --split %q: want test or val", *split)
	}
	limit(opt.Train, *trainLimit)
	limit(opt.Test, *testLimit)
	if opt.OOD {
		sets := *oodData
		if sets == "" {
			sets = oodCounterpart(*name)
		}
		for _, s := range strings.Split(sets, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			set, err := data.LoadEnv(s, "test", env)
			if err != nil {
				return fmt.Errorf("OOD set: %w", err)
			}
			opt.OODSets = append(opt.OODSets, set)
		}
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	r, err := eval.Run(opt)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := eval.WriteReport(*out, r); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r, *out)
	return nil
}

// printReport is the plain-text output.
func printReport(w io.Writer, r *eval.Report, out string) {
	fmt.Fprintf(w, "model %s (%s, %d steps) on %s: %d test vs %d train images\n", r.Model, r.Kind, r.Steps, r.Data, r.TestImages, r.TrainImages)
	fmt.Fprintf(w, "1-NN accuracy, latent space: %.4f\n1-NN accuracy, pixel space:  %.4f\n", r.KNN1Accuracy, r.PixelKNN1Accuracy)
	fmt.Fprintf(w, "confusion (rows: true class, fractions):\n")
	for i, row := range r.Confusion {
		fmt.Fprintf(w, "  %-12.12s", r.Classes[i])
		for _, v := range row {
			fmt.Fprintf(w, " %5.3f", v)
		}
		fmt.Fprintln(w)
	}
	probe := func(what string, acc, std map[string]float64) {
		fmt.Fprintf(w, "linear probe, %s:", what)
		for _, k := range slices.SortedFunc(maps.Keys(std), func(a, b string) int {
			return cmp.Or(len(a)-len(b), strings.Compare(a, b))
		}) {
			fmt.Fprintf(w, "  %s/class %.4f ± %.4f", k, acc[k], std[k])
		}
		fmt.Fprintf(w, "  full %.4f\n", acc["full"])
	}
	if r.ProbeAccuracy != nil {
		probe("latent space", r.ProbeAccuracy, r.ProbeStd)
	}
	if r.PixelProbeAccuracy != nil {
		probe("pixel space ", r.PixelProbeAccuracy, r.PixelProbeStd)
	}
	for _, name := range slices.Sorted(maps.Keys(r.OODAUROC)) {
		s := r.OODAUROC[name]
		fmt.Fprintf(w, "OOD AUROC vs %-14s −E %.4f  −‖∇E‖ %.4f\n", name+":", s.NegEnergy, s.NegGradNorm)
	}
	for _, b := range r.Baselines {
		fmt.Fprintf(w, "baseline %s (%s, %d steps): 1-NN %.4f\n", b.Model, b.Kind, b.Steps, b.KNN1Accuracy)
		if b.ProbeAccuracy != nil {
			probe("baseline", b.ProbeAccuracy, b.ProbeStd)
		}
	}
	if out != "" {
		fmt.Fprintf(w, "wrote %s, %s", filepath.Join(out, "results.json"), filepath.Join(out, "results.md"))
		for _, k := range []string{"confusion", "pixel_confusion", "latent_map", "samples"} {
			if f, ok := r.Pictures[k]; ok {
				fmt.Fprintf(w, ", %s", filepath.Join(out, f))
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "(%.1f s)\n", r.Seconds)
}

// limit keeps the first n images of s (n ≤ 0: all).
func limit(s *data.Set, n int) {
	if n <= 0 || n >= s.N {
		return
	}
	per := s.Size()
	s.N = n
	s.Images, s.Pixels, s.Labels = s.Images[:n*per], s.Pixels[:n*per], s.Labels[:n]
}

// updateReadme rewrites the results table of readme from the reports in
// dirs.
func updateReadme(readme string, dirs []string) error {
	if len(dirs) == 0 {
		return errors.New("eval: --update-readme needs the result folders as arguments")
	}
	var reports []*eval.Report
	for _, d := range dirs {
		r, err := eval.ReadReport(filepath.Join(d, "results.json"))
		if err != nil {
			return err
		}
		reports = append(reports, r)
	}
	return eval.UpdateReadme(readme, eval.ResultsTable(reports, dirs))
}

// plotLabBook draws the lab book's picture: 1-NN on one split against
// training minutes, a line per run, pixels as a horizontal line.
func plotLabBook(tsv, out, split, name string) error {
	f, err := os.Open(tsv)
	if err != nil {
		return err
	}
	defer f.Close()
	pts, err := eval.ReadLabBook(f)
	if err != nil {
		return err
	}
	title := cmp.Or(name, "mnist") + ": 1-NN of posterior means, " + split + " split"
	return eval.LabCurvesPNG(out, pts, split, title)
}
