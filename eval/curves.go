package eval

import (
	"bufio"
	"fmt"
	"image/color"
	"io"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// LabPoint is one evaluation of a training run, a line of the lab book's
// TSV (package experiment writes them):
//
//	name  train_minutes  steps  knn1  pixel_knn1  split  flags  [pca50_knn1]
//
// The last field, the 1-NN of a 50-component PCA of the pixels on the same
// split, came later: lines without it read as PCA50KNN1 = 0 (unknown).
type LabPoint struct {
	Run        string
	Minutes    float64
	Steps      int
	KNN1       float64
	PixelKNN1  float64
	Split      string
	Flags      string
	PCA50KNN1  float64
	LineNumber int
}

// ReadLabBook parses the lab book's TSV. Blank lines and lines starting
// with # are skipped; anything else malformed is an error naming its line.
func ReadLabBook(r io.Reader) ([]LabPoint, error) {
	var out []LabPoint
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 6 {
			return nil, fmt.Errorf("lab book line %d: %d fields, want 7 (name, minutes, steps, knn1, pixel_knn1, split, flags)", n, len(f))
		}
		p := LabPoint{Run: f[0], Split: f[5], LineNumber: n}
		if len(f) > 6 {
			p.Flags = f[6]
		}
		var err error
		if p.Minutes, err = strconv.ParseFloat(f[1], 64); err == nil {
			if p.Steps, err = strconv.Atoi(f[2]); err == nil {
				if p.KNN1, err = strconv.ParseFloat(f[3], 64); err == nil {
					p.PixelKNN1, err = strconv.ParseFloat(f[4], 64)
				}
			}
		}
		if err == nil && len(f) > 7 && f[7] != "" {
			p.PCA50KNN1, err = strconv.ParseFloat(f[7], 64)
		}
		if err != nil {
			return nil, fmt.Errorf("lab book line %d: %w", n, err)
		}
		out = append(out, p)
	}
	return out, sc.Err()
}

// LabAxis is what the lab book's picture puts along x.
type LabAxis string

// The axes: training minutes (comparable between runs only on a quiet
// machine) or updates (comparable when runs shared the cores).
const (
	AxisMinutes LabAxis = "minutes"
	AxisUpdates LabAxis = "updates"
)

// LabCurvesPNG draws 1-NN accuracy against training minutes or updates
// (x), one line per run, for the points of one split, with the pixel baseline and (where
// the lines carry it) the PCA-50 baseline as horizontal lines — the lab
// book's first picture.
func LabCurvesPNG(path string, points []LabPoint, split, title string, x LabAxis) error {
	if x != AxisMinutes && x != AxisUpdates {
		return fmt.Errorf("lab book: x axis %q: want %s or %s", x, AxisMinutes, AxisUpdates)
	}
	runs := map[string]plotter.XYs{}
	var order []string
	var pixel, pca float64
	for _, p := range points {
		if p.Split != split {
			continue
		}
		if _, ok := runs[p.Run]; !ok {
			order = append(order, p.Run)
		}
		at := p.Minutes
		if x == AxisUpdates {
			at = float64(p.Steps)
		}
		runs[p.Run] = append(runs[p.Run], plotter.XY{X: at, Y: p.KNN1})
		pixel = p.PixelKNN1
		if p.PCA50KNN1 > 0 {
			pca = p.PCA50KNN1
		}
	}
	if len(order) == 0 {
		return fmt.Errorf("lab book: no %s evaluations to plot", split)
	}
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = "training " + string(x)
	pl.Y.Label.Text = "1-NN accuracy (" + split + ")"
	pl.Add(plotter.NewGrid())
	var maxX float64
	for i, name := range order {
		xy := runs[name]
		slices.SortFunc(xy, func(a, b plotter.XY) int {
			switch {
			case a.X < b.X:
				return -1
			case a.X > b.X:
				return 1
			}
			return 0
		})
		maxX = max(maxX, xy[len(xy)-1].X)
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color, pts.Color = classColor(i), classColor(i)
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(2)
		if strings.HasSuffix(name, "(last)") {
			l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		}
		pl.Add(l, pts)
		pl.Legend.Add(name, l, pts)
	}
	base, err := plotter.NewLine(plotter.XYs{{X: 0, Y: pixel}, {X: maxX, Y: pixel}})
	if err != nil {
		return err
	}
	base.Width = vg.Points(2)
	base.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	pl.Add(base)
	pl.Legend.Add(fmt.Sprintf("pixels %.4f", pixel), base)
	if pca > 0 {
		lin, err := plotter.NewLine(plotter.XYs{{X: 0, Y: pca}, {X: maxX, Y: pca}})
		if err != nil {
			return err
		}
		lin.Width = vg.Points(2)
		lin.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		lin.Color = color.Gray{Y: 110}
		pl.Add(lin)
		pl.Legend.Add(fmt.Sprintf("PCA-50 of pixels %.4f", pca), lin)
	}
	// Runs that collapse would squeeze the rest into a thin band: the
	// axis stops 0.09 below the pixel baseline, and lower points fall off.
	pl.Y.Min, pl.Y.Max = max(pl.Y.Min, pixel-0.09), max(pl.Y.Max, pixel+0.005, pca+0.005)
	pl.Legend.Top = false
	pl.Legend.Left = true
	pl.Legend.TextStyle.Font.Size = vg.Points(8)
	img := vgimg.NewWith(vgimg.UseWH(9*vg.Inch, 5.5*vg.Inch), vgimg.UseDPI(dpi))
	pl.Draw(draw.New(img))
	return writePNG(path, img)
}
