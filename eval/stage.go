package eval

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
)

// Sets says which images a suite runs on: the data set, which split 1-NN
// queries, how many images of each side, and the OOD sets.
type Sets struct {
	// Data is the data set's name; empty: the one the model was trained on
	// (its metadata), or mnist when the file does not say.
	Data string
	// Split is what 1-NN queries: "test" (the test split against the
	// training split; empty means test) or "val" (the last ValN training
	// images against the ones before them, for choosing recipes).
	Split      string
	ValN       int // images held out by Split "val"
	TrainLimit int // the first N reference images only (0: all)
	TestLimit  int // the first N query images only (0: all)
	// OODData is a comma list of data sets whose test split is OOD; empty:
	// the model's counterpart (fashion-mnist for mnist and vice versa).
	OODData string
}

// ModelData is the data set an exported model was trained on, from its
// metadata; mnist when the file does not say or cannot be read.
func ModelData(model string) string {
	m, err := encoder.Load(model, 1)
	if err != nil {
		return "mnist"
	}
	defer m.Close()
	return cmp.Or(m.Dataset, "mnist")
}

// OODCounterpart is the other data set an MNIST-style model is tested
// against, as in the paper ("" for others).
func OODCounterpart(name string) string {
	switch name {
	case "mnist":
		return "fashion-mnist"
	case "fashion-mnist":
		return "mnist"
	}
	return ""
}

// Load fills opt's Train, Test and (when opt.OOD) OODSets from s, reading
// the data sets with data.LoadEnv; an empty s.Data becomes opt.Model's.
func (s Sets) Load(opt *Options, env func(string) string) error {
	name := cmp.Or(s.Data, ModelData(opt.Model))
	var err error
	if opt.Train, err = data.LoadEnv(name, "train", env); err != nil {
		return err
	}
	switch s.Split {
	case "test", "":
		if opt.Test, err = data.LoadEnv(name, "test", env); err != nil {
			return err
		}
	case "val":
		if opt.Train, opt.Test, err = data.ValidationSplit(opt.Train, s.ValN); err != nil {
			return err
		}
	default:
		return fmt.Errorf("eval: --split %q: want test or val", s.Split)
	}
	limit(opt.Train, s.TrainLimit)
	limit(opt.Test, s.TestLimit)
	if !opt.OOD {
		return nil
	}
	for _, o := range strings.Split(cmp.Or(s.OODData, OODCounterpart(name)), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		set, err := data.LoadEnv(o, "test", env)
		if err != nil {
			return fmt.Errorf("OOD set: %w", err)
		}
		opt.OODSets = append(opt.OODSets, set)
	}
	return nil
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

// RunInto runs the suite and, with an output folder, writes its report
// (WriteReport) and pictures there. They are made in a hidden folder
// beside out and moved into out only when the suite has finished, so a
// cancelled or failed run leaves out as it was. Without out it is Run.
func RunInto(ctx context.Context, opt Options, out string) (*Report, error) {
	if out == "" {
		return Run(ctx, opt)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	opt.Out = stage
	r, err := Run(ctx, opt)
	if err != nil {
		return nil, err
	}
	if err := WriteReport(stage, r); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	files, err := os.ReadDir(stage)
	if err != nil {
		return nil, err
	}
	for _, e := range files {
		if err := os.Rename(filepath.Join(stage, e.Name()), filepath.Join(out, e.Name())); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Models evaluates every exported model in dir (*.onnx, in name order)
// with opt's suite, each on its own data set (s, with s.Data empty: the
// model's) into out/NAME (RunInto), and returns those folders, ready for
// ResultsTable. It stops at the first failure.
func Models(ctx context.Context, dir, out string, opt Options, s Sets, env func(string) string) ([]string, error) {
	models, err := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("eval: no *.onnx models in %s", dir)
	}
	if out == "" {
		return nil, errors.New("eval: evaluating a folder of models needs an output folder")
	}
	var dirs []string
	for _, m := range models {
		name := strings.TrimSuffix(filepath.Base(m), ".onnx")
		o := opt
		o.Model = m
		o.OODSets = nil
		d := filepath.Join(out, name)
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "== %s → %s\n", m, d)
		}
		if err := s.Load(&o, env); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		if _, err := RunInto(ctx, o, d); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// UpdateReadmeFrom rewrites the results table of readme from the
// results.json in each of dirs (UpdateReadme of ResultsTable).
func UpdateReadmeFrom(readme string, dirs []string) error {
	if len(dirs) == 0 {
		return errors.New("eval: the results table needs result folders")
	}
	var reports []*Report
	for _, d := range dirs {
		r, err := ReadReport(filepath.Join(d, "results.json"))
		if err != nil {
			return err
		}
		reports = append(reports, r)
	}
	return UpdateReadme(readme, ResultsTable(reports, dirs))
}
