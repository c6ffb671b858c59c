package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"path/filepath"

	"github.com/cebm/cebm/internal/atomicfile"
	"github.com/cebm/cebm/internal/modelfile"

	"github.com/cebm/cebm/data"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Metadata describes a trained model for its export (the file's contract is
// package modelfile).
func Metadata(st *State, m Model, classes []string) (modelfile.Meta, error) {
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
		Dataset:    st.Config.Data,
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
	if m.Kind == IGEBM {
		meta.LatentDim = m.Arch.Hidden[len(m.Arch.Hidden)-1]
	}
	return meta, nil
}

// ExportModel writes the encoder of a trained state to path (atomically).
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
	b, err := ExportGraph(m, params, meta)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, b)
}

// WritePictures draws the training curves and a grid of samples into the
// run folder: the replay buffer's chains (contrastive divergence), or
// annealed Langevin samples (score matching, which keeps no chains).
func WritePictures(dir string, t *Trainer) error {
	ms, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil {
		return err
	}
	if err := PlotCurves(filepath.Join(dir, CurvesFile), ms); err != nil {
		return err
	}
	a := t.Model.Arch
	if t.State.Config.Objective == "dsm" {
		x, err := t.AnnealedSamples(64, t.State.Config.Seed)
		if err != nil {
			return err
		}
		return data.SaveGrid(filepath.Join(dir, SamplesFile), x, 64, a.C, a.H, a.W, nil, 8)
	}
	n := min(64, t.State.Config.BufferSize)
	return data.SaveGrid(filepath.Join(dir, SamplesFile), t.State.Buffer[:n*a.C*a.H*a.W], n, a.C, a.H, a.W, nil, 8)
}

// PlotCurves draws loss, mean E(x+) and mean E(x−) against the step.
func PlotCurves(path string, ms []Metrics) error {
	if len(ms) == 0 {
		return fmt.Errorf("no metrics to plot")
	}
	p := plot.New()
	p.Title.Text = "CEBM training"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "value"
	p.Add(plotter.NewGrid())
	series := []struct {
		name string
		get  func(Metrics) float64
		c    color.RGBA
	}{
		{"loss", func(m Metrics) float64 { return m.Loss }, color.RGBA{0, 0, 0, 255}},
		{"mean E(x+) data", func(m Metrics) float64 { return m.EPos }, color.RGBA{31, 119, 180, 255}},
		{"mean E(x−) samples", func(m Metrics) float64 { return m.ENeg }, color.RGBA{214, 39, 40, 255}},
	}
	for _, s := range series {
		pts := make(plotter.XYs, len(ms))
		for i, m := range ms {
			pts[i].X, pts[i].Y = float64(m.Step), s.get(m)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = s.c
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Legend.Top = true
	w, err := p.WriterTo(8*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, buf.Bytes())
}
