// Package experiment runs one training recipe in increments of training
// time and evaluates 1-NN after each (`cebm experiment`), appending a line
// per evaluation to the lab book, experiments.tsv (read back by
// eval.ReadLabBook):
//
//	name  train_minutes  steps  knn1  pixel_knn1  split  flags  pca50_knn1
//
// Recipes are chosen on the validation split: the run trains on the first
// 50,000 training images and each evaluation is 1-NN of the last 10,000
// against those (eval.Sets with Split "val"); Split "test" trains on all of
// them and evaluates on the test split (for shipped models). The run
// folder, Runs/exp-NAME, outlives the experiment: running it again with
// later marks resumes it.
package experiment

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cebm/cebm/eval"
	"github.com/cebm/cebm/train"
)

// Files in Options.Runs.
const (
	LabBookFile = "experiments.tsv"
	runPrefix   = "exp-"
)

// ValTrainLimit is the training images of a run chosen on the validation
// split: the first 50,000, so that the last 10,000 stay unseen.
const ValTrainLimit = 50000

// Options describe an experiment.
type Options struct {
	Name string
	// Minutes are the marks, in training minutes from the run's start, at
	// which it stops to be evaluated (increasing).
	Minutes []float64
	// InitShares, each a number in [0, 1) as written, also evaluate after
	// every increment the run's export blended with its initial parameters
	// at that share (train's InitShare), as "NAME(init SHARE)".
	InitShares []string
	// Runs is the folder of the run folders and the lab book.
	Runs string
	// Config is the recipe; its Run.Data is also evaluated on. Steps and
	// Duration are set per increment, and with Eval.Split "val" TrainLimit
	// becomes ValTrainLimit unless TrainLimitGiven.
	Config          train.Config
	TrainLimitGiven bool
	// OnResume changes a resumed run's recipe (the settings given again
	// that a resume may change); nil: none.
	OnResume func(*train.Config)
	// Flags is the training flags as given, the lab book's last column.
	Flags string
	// Eval is where the evaluations' images come from (Data is set to the
	// recipe's); Split "val" or "test".
	Eval eval.Sets
	// ThreadsFile, when it names a file, is read before each increment for
	// the thread count of its training and evaluations (it may change while
	// the experiment runs).
	ThreadsFile string
	Env         func(string) string
	// Out receives each lab-book line as it is appended (nil: none).
	Out io.Writer
}

// Run trains and evaluates o's increments in turn. Training and
// evaluation logs go to Runs/exp-NAME.log.
func Run(ctx context.Context, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Runs, 0o755); err != nil {
		return err
	}
	dir := filepath.Join(o.Runs, runPrefix+o.Name)
	logf, err := os.OpenFile(dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	prev := 0.0
	for _, m := range o.Minutes {
		if err := o.increment(ctx, dir, time.Duration((m-prev)*float64(time.Minute)), logf); err != nil {
			return err
		}
		prev = m
	}
	return nil
}

// check rejects options the experiment cannot run.
func (o *Options) check() error {
	switch {
	case o.Name == "" || strings.ContainsAny(o.Name, "/\\\t\n"):
		return fmt.Errorf("experiment: bad name %q", o.Name)
	case len(o.Minutes) == 0:
		return errors.New("experiment: no --minutes marks")
	case o.Runs == "":
		return errors.New("experiment: no runs folder")
	case o.Eval.Split != "val" && o.Eval.Split != "test":
		return fmt.Errorf("experiment: split %q: want val or test", o.Eval.Split)
	}
	prev := 0.0
	for _, m := range o.Minutes {
		if !(m > prev) {
			return fmt.Errorf("experiment: minute marks must increase from 0: %v", o.Minutes)
		}
		prev = m
	}
	for _, b := range o.InitShares {
		if v, err := strconv.ParseFloat(b, 64); err != nil || v < 0 || v >= 1 || strings.ContainsAny(b, "/\\") {
			return fmt.Errorf("experiment: init share %q: want a number in [0, 1)", b)
		}
	}
	if o.Env == nil {
		o.Env = os.Getenv
	}
	return nil
}

// increment trains the run folder dir for d more (resuming it when it has
// a checkpoint) and evaluates its exports.
func (o *Options) increment(ctx context.Context, dir string, d time.Duration, log io.Writer) error {
	_, err := os.Stat(filepath.Join(dir, train.CheckpointFile))
	resume := err == nil
	cfg := o.Config
	threads := -1
	if o.ThreadsFile != "" {
		if b, err := os.ReadFile(o.ThreadsFile); err == nil {
			if threads, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				return fmt.Errorf("experiment: threads file %s: %w", o.ThreadsFile, err)
			}
			cfg.Run.Threads = threads
		}
	}
	cfg.Run.Steps, cfg.Run.Duration = 0, d
	if o.Eval.Split == "val" && !o.TrainLimitGiven {
		cfg.Run.TrainLimit = ValTrainLimit
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "model-init*.onnx"))
	for _, p := range append(stale, filepath.Join(dir, train.LastModelFile)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	imgs, err := train.LoadImages(cfg.Run, o.Env)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "%s training %s (resume %v)\n", time.Now().Format(time.RFC3339), d, resume)
	opt := train.RunOptions{Dir: dir, Resume: resume, OnResume: o.OnResume,
		Log: func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) }}
	if _, err := train.Run(ctx, cfg, imgs, opt); err != nil {
		return fmt.Errorf("experiment %s: %w", o.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mins, err := trainMinutes(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		return err
	}
	models := []string{filepath.Join(dir, train.ModelFile), filepath.Join(dir, train.LastModelFile)}
	labels := []string{o.Name, o.Name + "(last)"}
	for _, b := range o.InitShares {
		v, _ := strconv.ParseFloat(b, 64)
		p := filepath.Join(dir, "model-init"+b+".onnx")
		if _, err := train.ExportCheckpoint(dir, p, func(c *train.Config) { c.Optimiser.InitShare = v }, o.Env); err != nil {
			return fmt.Errorf("experiment %s: init share %s: %w", o.Name, b, err)
		}
		models, labels = append(models, p), append(labels, o.Name+"(init "+b+")")
	}
	for i, m := range models {
		if _, err := os.Stat(m); err != nil {
			continue // model-last.onnx: only with a moving average
		}
		p, err := o.evaluate(ctx, m, threads, log)
		if err != nil {
			return err
		}
		p.Run, p.Minutes = labels[i], mins
		if err := o.appendLine(p); err != nil {
			return err
		}
	}
	return nil
}

// evaluate is `cebm eval --model m --split S --json`'s 1-NN figures.
func (o *Options) evaluate(ctx context.Context, m string, threads int, log io.Writer) (eval.LabPoint, error) {
	opt := eval.DefaultOptions()
	opt.Model, opt.Log = m, log
	if threads >= 0 {
		opt.Threads = threads
	}
	s := o.Eval
	s.Data = o.Config.Run.Data
	if err := s.Load(&opt, o.Env); err != nil {
		return eval.LabPoint{}, err
	}
	r, err := eval.Run(ctx, opt)
	if err != nil {
		return eval.LabPoint{}, fmt.Errorf("experiment %s: evaluating %s: %w", o.Name, m, err)
	}
	return eval.LabPoint{Steps: r.Steps, KNN1: r.KNN1Accuracy, PixelKNN1: r.PixelKNN1Accuracy, PCA50KNN1: r.PCA50KNN1Accuracy, Split: o.Eval.Split, Flags: o.Flags}, nil
}

// appendLine appends p to the lab book and writes it to o.Out.
func (o *Options) appendLine(p eval.LabPoint) error {
	line := Line(p)
	f, err := os.OpenFile(filepath.Join(o.Runs, LabBookFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, line); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if o.Out != nil {
		io.WriteString(o.Out, line)
	}
	return nil
}

// Line is p as a lab-book line: minutes to one decimal, accuracies as
// `cebm eval --json` prints them.
func Line(p eval.LabPoint) string {
	num := func(v float64) string {
		b, err := json.Marshal(v)
		if err != nil { // NaN or ±Inf
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
		return string(b)
	}
	line := fmt.Sprintf("%s\t%.1f\t%d\t%s\t%s\t%s\t%s", p.Run, p.Minutes, p.Steps, num(p.KNN1), num(p.PixelKNN1), p.Split, p.Flags)
	if p.PCA50KNN1 > 0 {
		line += "\t" + num(p.PCA50KNN1)
	}
	return line + "\n"
}

// trainMinutes is the run's training minutes so far, from the last line
// of its metrics (evaluations excluded).
func trainMinutes(metrics string) (float64, error) {
	f, err := os.Open(metrics)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var last []byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) > 0 {
			last = append(last[:0], sc.Bytes()...)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	var m struct {
		Elapsed *float64 `json:"elapsed_s"`
	}
	if err := json.Unmarshal(last, &m); err != nil || m.Elapsed == nil {
		return 0, fmt.Errorf("%s: no elapsed_s in its last line", metrics)
	}
	return *m.Elapsed / 60, nil
}
