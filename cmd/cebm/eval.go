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
	"regexp"
	"slices"
	"strconv"
	"strings"

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

// runEval is `cebm eval`: 1-NN accuracy of posterior means (test split
// against training split, squared L2) beside the pixel-space and PCA
// baselines and,
// with --suite or --out, the linear probes, OOD detection and pictures.
//
// Without --out the default suite is knn (the fast 1-NN check the trainer
// uses); with --out it is full, and results.json, results.md and the PNGs
// go into that folder. Cancelling ctx (Ctrl-C) stops the suite and writes
// nothing.
func runEval(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f, err := parseEvalFlags(args, env, stderr)
	if f == nil || err != nil { // -h, or a bad flag
		return err
	}
	switch {
	case f.models != "":
		return evalModels(ctx, f, env, stdout, stderr)
	case f.readme != "":
		return eval.UpdateReadmeFrom(f.readme, f.args)
	case f.labBook != "":
		return plotLabBook(f.labBook, f.plotOut, f.split, f.name, f.plotRuns, eval.LabAxis(f.plotX))
	case len(f.args) > 0:
		return fmt.Errorf("eval: unexpected arguments %q", f.args)
	}
	opt, err := f.options(stderr)
	if err != nil {
		return err
	}
	// Loading does not look at ctx; an interrupt leaves it behind.
	loaded := make(chan error, 1)
	go func() { loaded <- f.sets().Load(&opt, env) }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-loaded:
		if err != nil {
			return err
		}
	}
	r, err := eval.RunInto(ctx, opt, f.out)
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r, f.out)
	return nil
}

// evalFlags are the flags of `cebm eval`; the suite's own settings go
// straight into opt.
type evalFlags struct {
	opt                                    eval.Options
	name, out, suite, oodData, probeLabels string
	split, labBook, plotOut, readme        string
	models                                 string // --models: every *.onnx in this folder
	plotRuns                               string // regexp of the runs --plot-lab-book draws
	plotX                                  string // minutes or updates along x
	asJSON                                 bool
	trainLimit, testLimit, valN            int
	args                                   []string // after the flags
}

// parseEvalFlags reads args, then CEBM_<FLAG> for flags not given; it
// returns nil, nil for -h.
func parseEvalFlags(args []string, env func(string) string, stderr io.Writer) (*evalFlags, error) {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: cebm eval [flags]

Evaluates an exported model's representation: 1-NN accuracy of its posterior
means (test split against the training split, or --split val), beside raw
pixels and PCA; with --suite full or --out also linear probes, OOD AUROC
(−E and −‖∇x E‖), t-SNE and Langevin samples. Every flag is also read from
CEBM_<FLAG> (e.g. CEBM_MODEL).

`)
		fs.PrintDefaults()
	}
	f := &evalFlags{opt: eval.DefaultOptions()}
	o := &f.opt
	fs.StringVar(&o.Model, "model", "models/mnist-cebm.onnx", "exported model")
	fs.StringVar(&f.name, "data", "", "data set (see cebm data list; default: the one the model was trained on)")
	fs.BoolVar(&f.asJSON, "json", false, "print the results as JSON")
	fs.IntVar(&o.Threads, "threads", 0, "ONNX Runtime threads (0: all cores)")
	fs.StringVar(&f.out, "out", "", "write results.json, results.md and the pictures into this folder (implies --suite full)")
	fs.StringVar(&f.suite, "suite", "", "what to run: knn, full, or a comma list of knn, probe, ood, pictures (default knn; full with --out)")
	fs.Func("baseline", "another exported model (e.g. an IGEBM) evaluated beside --model; repeatable", func(s string) error {
		o.Baselines = append(o.Baselines, s)
		return nil
	})
	fs.StringVar(&f.oodData, "ood-data", "", "comma list of data sets whose test split is OOD (default: fashion-mnist for mnist and vice versa)")
	fs.IntVar(&o.OODN, "ood-n", o.OODN, "images per side in each OOD comparison")
	fs.StringVar(&f.probeLabels, "probe-labels", "1,10,100", "comma list of labels per class for the few-label probes")
	fs.IntVar(&o.ProbeSeeds, "probe-seeds", o.ProbeSeeds, "random subsets per few-label probe")
	fs.Float64Var(&o.ProbeOpt.L2, "probe-l2", o.ProbeOpt.L2, "probe L2 weight λ (mean cross-entropy + λ/2·‖W‖²)")
	fs.IntVar(&o.ProbeOpt.MaxIter, "probe-iters", o.ProbeOpt.MaxIter, "probe L-BFGS iterations at most")
	fs.IntVar(&o.PixelProbeIters, "pixel-probe-iters", o.PixelProbeIters, "pixel-space probe L-BFGS iterations at most")
	fs.IntVar(&o.PCAImages, "pca-images", o.PCAImages, "training images (drawn at random) the PCA baseline's directions are fitted on (0: all)")
	fs.IntVar(&o.TSNEN, "tsne-n", o.TSNEN, "test latents in the t-SNE map")
	fs.IntVar(&o.TSNEOpt.Iterations, "tsne-iters", o.TSNEOpt.Iterations, "t-SNE iterations")
	fs.IntVar(&o.Chains, "chains", o.Chains, "SGLD samples drawn from noise")
	fs.IntVar(&o.ChainSteps, "chain-steps", o.ChainSteps, "SGLD steps per sample")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (probe subsets, OOD images, t-SNE, SGLD)")
	fs.IntVar(&f.trainLimit, "train-limit", 0, "use only the first N training images (0: all)")
	fs.IntVar(&f.testLimit, "test-limit", 0, "use only the first N test images (0: all)")
	fs.StringVar(&f.split, "split", "test", "what 1-NN queries: test (the test split against the training split) or val (the last --val-n training images against the ones before them; for choosing recipes)")
	fs.IntVar(&f.valN, "val-n", 10000, "images held out of the training split by --split val")
	fs.StringVar(&f.labBook, "plot-lab-book", "", "draw 1-NN against training minutes from this lab-book TSV (cebm experiment) into --plot-out, then stop")
	fs.StringVar(&f.plotOut, "plot-out", "docs/experiments-knn1.png", "picture written by --plot-lab-book")
	fs.StringVar(&f.plotRuns, "plot-runs", "", "with --plot-lab-book: draw only the runs whose name matches this regular expression")
	fs.StringVar(&f.plotX, "plot-x", "minutes", "with --plot-lab-book: what goes along x, minutes or updates (updates when runs shared the cores)")
	fs.StringVar(&f.readme, "update-readme", "", "rewrite the results table of this Markdown file from the results.json in the folders given as arguments (or of --models), then stop")
	fs.StringVar(&f.models, "models", "", "evaluate every exported model (*.onnx) in this folder, each on its own data set, into --out/NAME (default runs/eval), then rewrite --update-readme's table if given")
	if _, err := parseFlags("eval", fs, args, env); err != nil {
		if err == flag.ErrHelp {
			return nil, nil
		}
		return nil, err
	}
	f.args = fs.Args()
	return f, nil
}

// options completes the suite's options from the flags: the parts of the
// suite, the probe label counts and the data set.
func (f *evalFlags) options(log io.Writer) (eval.Options, error) {
	opt := f.opt
	if f.suite == "" {
		f.suite = "knn"
		if f.out != "" {
			f.suite = "full"
		}
	}
	parts, err := parseSuite(f.suite)
	if err != nil {
		return opt, err
	}
	if parts[partPictures] && f.out == "" {
		return opt, errors.New("eval: pictures need --out DIR")
	}
	opt.Probe, opt.OOD, opt.Pictures = parts[partProbe], parts[partOOD], parts[partPictures]
	opt.TSNEOpt.ExagIters = min(opt.TSNEOpt.ExagIters, opt.TSNEOpt.Iterations/3)
	opt.Log = log
	opt.ProbeLabels = nil
	for _, s := range strings.Split(f.probeLabels, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return opt, fmt.Errorf("eval: bad --probe-labels entry %q", s)
		}
		opt.ProbeLabels = append(opt.ProbeLabels, k)
	}
	return opt, nil
}

// sets is where the suite's images come from.
func (f *evalFlags) sets() eval.Sets {
	return eval.Sets{Data: f.name, Split: f.split, ValN: f.valN, TrainLimit: f.trainLimit, TestLimit: f.testLimit, OODData: f.oodData}
}

// evalModels is `cebm eval --models DIR`: every model in DIR into
// --out/NAME with the full suite (or --suite), then the results table of
// --update-readme when given.
func evalModels(ctx context.Context, f *evalFlags, env func(string) string, stdout, stderr io.Writer) error {
	if len(f.args) > 0 {
		return fmt.Errorf("eval: unexpected arguments %q", f.args)
	}
	f.out = cmp.Or(f.out, "runs/eval")
	opt, err := f.options(stderr)
	if err != nil {
		return err
	}
	dirs, err := eval.Models(ctx, f.models, f.out, opt, f.sets(), env)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "evaluated %d models into %s\n", len(dirs), f.out)
	if f.readme == "" {
		return nil
	}
	if err := eval.UpdateReadmeFrom(f.readme, dirs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rewrote the results table of %s\n", f.readme)
	return nil
}

// printReport is the plain-text output.
func printReport(w io.Writer, r *eval.Report, out string) {
	fmt.Fprintf(w, "model %s (%s, %d steps) on %s: %d %s images against %d training images\n", r.Model, r.Kind, r.Steps, r.Data, r.TestImages, cmp.Or(r.QuerySplit, "test"), r.TrainImages)
	fmt.Fprintf(w, "1-NN accuracy, latent space: %.4f\n1-NN accuracy, pixel space:  %.4f\n", r.KNN1Accuracy, r.PixelKNN1Accuracy)
	if r.PCA50KNN1Accuracy > 0 {
		fmt.Fprintf(w, "1-NN accuracy, PCA-30 / 50 / 80 of pixels: %.4f / %.4f / %.4f (directions from %d training images)\n",
			r.PCA30KNN1Accuracy, r.PCA50KNN1Accuracy, r.PCA80KNN1Accuracy, r.Settings.PCAImages)
	}
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
	if r.PCA50ProbeAccuracy != nil {
		probe("PCA-50      ", r.PCA50ProbeAccuracy, r.PCA50ProbeStd)
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

// plotLabBook draws the lab book's picture: 1-NN on one split against
// training minutes, a line per run, pixels as a horizontal line.
func plotLabBook(tsv, out, split, name, runs string, x eval.LabAxis) error {
	re, err := regexp.Compile(runs)
	if err != nil {
		return fmt.Errorf("--plot-runs: %w", err)
	}
	f, err := os.Open(tsv)
	if err != nil {
		return err
	}
	defer f.Close()
	pts, err := eval.ReadLabBook(f)
	if err != nil {
		return err
	}
	pts = slices.DeleteFunc(pts, func(p eval.LabPoint) bool { return !re.MatchString(p.Run) })
	title := cmp.Or(name, "mnist") + ": 1-NN of posterior means, " + split + " split"
	return eval.LabCurvesPNG(out, pts, split, title, x)
}
