// Package plots draws a training run's curves (loss and mean energies
// against the update) as PNG.
package plots

import (
	"bytes"
	"fmt"
	"image/color"

	"github.com/cebm/cebm/internal/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Point is one update on the training curves.
type Point struct {
	Step             int
	Loss, EPos, ENeg float64 // the loss, mean E(x+), mean E(x−)
}

// Curves draws loss, mean E(x+) and mean E(x−) against the step and
// writes the picture to path as PNG.
func Curves(path string, ms []Point) error {
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
		get  func(Point) float64
		c    color.RGBA
	}{
		{"loss", func(m Point) float64 { return m.Loss }, color.RGBA{0, 0, 0, 255}},
		{"mean E(x+) data", func(m Point) float64 { return m.EPos }, color.RGBA{31, 119, 180, 255}},
		{"mean E(x−) samples", func(m Point) float64 { return m.ENeg }, color.RGBA{214, 39, 40, 255}},
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
