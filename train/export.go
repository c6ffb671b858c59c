package train

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/export"
	"github.com/cebm/cebm/train/model"
	"github.com/cebm/cebm/train/plots"
)

// Metadata describes a trained model for its export (the file's contract is
// package modelfile).
func Metadata(st *State, m model.Model, classes []string) (modelfile.Meta, error) {
	cfg, err := json.Marshal(st.Config)
	if err != nil {
		return modelfile.Meta{}, err
	}
	meta := modelfile.Meta{
		Kind:       m.Kind,
		LatentDim:  m.Arch.LatentDim,
		InputShape: [3]int{m.Arch.C, m.Arch.H, m.Arch.W},
		Scaling:    modelfile.Scaling,
		Classes:    classes,
		Dataset:    st.Config.Run.Data,
		Steps:      st.Step,
		WallTime:   st.Elapsed.Seconds(),
		Config:     cfg,
	}
	params, err := st.ExportParams(m)
	if err != nil {
		return modelfile.Meta{}, err
	}
	meta.Prior = m.Prior(params)
	if m.Arch.C == 1 {
		meta.Polarity = modelfile.LightOnDark
	}
	if m.Kind == model.IGEBM {
		meta.LatentDim = m.Arch.Hidden[len(m.Arch.Hidden)-1]
	}
	return meta, nil
}

// ExportModel writes the encoder of a trained state to path (atomically),
// with the parameters ExportParams gives.
func ExportModel(path string, st *State, classes []string) error {
	m, err := ModelFor(st.Config)
	if err != nil {
		return err
	}
	meta, err := Metadata(st, m, classes)
	if err != nil {
		return err
	}
	params, err := st.ExportParams(m)
	if err != nil {
		return err
	}
	return export.Write(path, m, params, meta)
}

// ExportCheckpoint writes to path the encoder of the checkpoint in the run
// folder dir, with change (may be nil) applied to its recipe first (the
// settings a resume may change: the moving average, the initial
// parameters' share); the class names come from the recipe's data set
// (loaded with data.LoadEnv). It trains nothing.
func ExportCheckpoint(dir, path string, change func(*Config), env func(string) string) (*State, error) {
	st, err := LoadCheckpoint(filepath.Join(dir, CheckpointFile))
	if err != nil {
		return nil, err
	}
	if change != nil {
		change(&st.Config)
	}
	if err := st.Config.Validate(); err != nil {
		return nil, err
	}
	set, err := data.LoadEnv(st.Config.Run.Data, "test", env) // for its class names
	if err != nil {
		return nil, err
	}
	if err := ExportModel(path, st, set.Classes); err != nil {
		return nil, fmt.Errorf("export %s: %w", path, err)
	}
	return st, nil
}

// LoadImages loads the training split of the run's data set (data.LoadEnv),
// keeping its first TrainLimit images when that is set.
func LoadImages(r RunConfig, env func(string) string) (Images, error) {
	set, err := data.LoadEnv(r.Data, "train", env)
	if err != nil {
		return Images{}, err
	}
	imgs := Images{X: set.Images, N: set.N, Classes: set.Classes}
	if r.TrainLimit > 0 && r.TrainLimit < set.N {
		imgs.N = r.TrainLimit
		imgs.X = set.Images[:imgs.N*set.Size()]
	}
	return imgs, nil
}

// WritePictures draws the training curves and a grid of the objective's
// samples into the run folder: the replay buffer's chains (contrastive
// divergence), or annealed Langevin samples (score matching, which keeps
// no chains).
func WritePictures(dir string, t *Trainer) error {
	ms, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		return err
	}
	ps := make([]plots.Point, len(ms))
	for i, m := range ms {
		ps[i] = plots.Point{Step: m.Step, Loss: m.Loss, EPos: m.EPos, ENeg: m.ENeg}
	}
	if err := plots.Curves(filepath.Join(dir, CurvesFile), ps); err != nil {
		return err
	}
	x, err := t.objective.Samples(64, func() ([][]float32, error) { return t.State.ExportParams(t.Model) })
	if err != nil || len(x) == 0 {
		return err
	}
	a := t.Model.Arch
	n := len(x) / (a.C * a.H * a.W)
	return data.SaveGrid(filepath.Join(dir, SamplesFile), x, n, a.C, a.H, a.W, nil, 8)
}
