package train

import (
	"encoding/json"
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
