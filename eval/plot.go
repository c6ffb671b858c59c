package eval

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/cebm/cebm/internal/atomicfile"

	"github.com/cebm/cebm/data"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

const dpi = 110

// ConfusionPNG draws a confusion matrix (rows: true class, fractions) as a
// heat map with every cell's fraction printed, class names on both axes and
// a colour bar, and writes it to path as PNG.
func ConfusionPNG(path string, conf [][]float64, classes []string, title string) error {
	k := len(conf)
	if k == 0 || len(classes) != k {
		return fmt.Errorf("eval: confusion matrix of %d rows for %d classes", k, len(classes))
	}
	cm := &linearMap{stops: blues, max: 1}
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.X.Label.Text = "predicted class"
	p.Y.Label.Text = "true class"
	hm := plotter.NewHeatMap(confGrid(conf), cm.Palette(256))
	hm.Min, hm.Max = 0, 1
	p.Add(hm)

	var xys plotter.XYs
	var labels []string
	var styles []text.Style
	for i, row := range conf {
		for j, v := range row {
			xys = append(xys, plotter.XY{X: float64(j), Y: float64(k - 1 - i)})
			labels = append(labels, fmt.Sprintf("%.2f", v))
			st := text.Style{Font: p.X.Tick.Label.Font, XAlign: draw.XCenter, YAlign: draw.YCenter, Handler: p.X.Tick.Label.Handler}
			st.Font.Size = vg.Points(9)
			st.Color = color.Black
			if v > 0.55 {
				st.Color = color.White
			}
			styles = append(styles, st)
		}
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return err
	}
	lab.TextStyle = styles
	p.Add(lab)

	xt, yt := make([]plot.Tick, k), make([]plot.Tick, k)
	for i, c := range classes {
		xt[i] = plot.Tick{Value: float64(i), Label: c}
		yt[i] = plot.Tick{Value: float64(k - 1 - i), Label: c}
	}
	p.X.Tick.Marker = plot.ConstantTicks(xt)
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(k)-0.5

	bar := plot.New()
	bar.Add(&plotter.ColorBar{ColorMap: cm, Vertical: true})
	bar.HideX()
	bar.Y.Label.Text = "fraction of the true class"
	bar.Y.Min, bar.Y.Max = 0, 1
	bar.Title.Text = " " // keeps the bar level with the heat map

	const w, h, barW = 8.4 * vg.Inch, 7 * vg.Inch, 1.3 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -barW, 0, 0))
	bar.Draw(draw.Crop(dc, w-barW, -0.25*vg.Inch, 1.05*vg.Inch, 0))
	return writePNG(path, img)
}

// confGrid shows row i (true class i) at the top for i = 0.
type confGrid [][]float64

func (g confGrid) Dims() (c, r int)   { return len(g), len(g) }
func (g confGrid) Z(c, r int) float64 { return g[len(g)-1-r][c] }
func (g confGrid) X(c int) float64    { return float64(c) }
func (g confGrid) Y(r int) float64    { return float64(r) }

// ScatterPNG draws 2-D points (xy: [n, 2]) coloured by class with a legend.
func ScatterPNG(path string, xy []float64, labels []int, classes []string, title, xLabel, yLabel string) error {
	if len(xy) != 2*len(labels) {
		return fmt.Errorf("eval: %d coordinates for %d labels", len(xy), len(labels))
	}
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	leg := plot.NewLegend()
	leg.Top = true
	leg.Left = true
	for c, name := range classes {
		var pts plotter.XYs
		for i, l := range labels {
			if l == c {
				pts = append(pts, plotter.XY{X: xy[2*i], Y: xy[2*i+1]})
			}
		}
		if len(pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: classColor(c), Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}
		p.Add(s)
		icon := *s
		icon.GlyphStyle.Radius = vg.Points(4)
		leg.Add(fmt.Sprintf("%s (%d)", name, len(pts)), &icon)
	}
	const w, h, legW = 9 * vg.Inch, 7 * vg.Inch, 1.9 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -legW, 0, 0))
	leg.Draw(draw.Crop(dc, w-legW+0.15*vg.Inch, 0, 0, -0.5*vg.Inch))
	return writePNG(path, img)
}

// SamplesPNG draws n images (NCHW in [−1, 1]) as a grid of cols columns
// under a title.
func SamplesPNG(path string, x []float32, n, c, h, w, cols int, title string) error {
	grid, err := data.GridImage(x, n, c, h, w, nil, cols)
	if err != nil {
		return err
	}
	// Nearest-neighbour upscaling keeps the pixels sharp.
	const zoom = 3
	b := grid.Bounds()
	big := image.NewRGBA(image.Rect(0, 0, b.Dx()*zoom, b.Dy()*zoom))
	for y := 0; y < b.Dy()*zoom; y++ {
		for x := 0; x < b.Dx()*zoom; x++ {
			big.Set(x, y, grid.At(b.Min.X+x/zoom, b.Min.Y+y/zoom))
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.HideAxes()
	p.Add(plotter.NewImage(big, 0, 0, float64(big.Bounds().Dx()), float64(big.Bounds().Dy())))
	side := vg.Length(big.Bounds().Dx()) * vg.Inch / dpi
	img := vgimg.NewWith(vgimg.UseWH(max(side, 6*vg.Inch), side*vg.Length(big.Bounds().Dy())/vg.Length(big.Bounds().Dx())+0.6*vg.Inch), vgimg.UseDPI(dpi))
	p.Draw(draw.New(img))
	return writePNG(path, img)
}

func writePNG(path string, img *vgimg.Canvas) error {
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, buf.Bytes())
}

// classColor is matplotlib's tab10 palette (then repeats, darker).
func classColor(c int) color.Color {
	tab10 := []color.RGBA{
		{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
		{188, 189, 34, 255}, {23, 190, 207, 255},
	}
	col := tab10[c%len(tab10)]
	if c >= len(tab10) {
		col.R, col.G, col.B = col.R/2, col.G/2, col.B/2
	}
	return col
}

// blues runs from white to dark blue (matplotlib's "Blues").
var blues = []color.RGBA{
	{247, 251, 255, 255}, {198, 219, 239, 255}, {107, 174, 214, 255},
	{33, 113, 181, 255}, {8, 48, 107, 255},
}

// linearMap is a palette.ColorMap interpolating evenly spaced colour stops.
type linearMap struct {
	stops    []color.RGBA
	min, max float64
	alpha    float64
}

func (m *linearMap) At(v float64) (color.Color, error) {
	if v < m.min || v > m.max || math.IsNaN(v) {
		return nil, palette.ErrOverflow
	}
	t := 0.0
	if m.max > m.min {
		t = (v - m.min) / (m.max - m.min) * float64(len(m.stops)-1)
	}
	i := min(int(t), len(m.stops)-2)
	f := t - float64(i)
	a, b := m.stops[i], m.stops[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-f) + float64(y)*f)) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}, nil
}
func (m *linearMap) Max() float64       { return m.max }
func (m *linearMap) Min() float64       { return m.min }
func (m *linearMap) SetMax(v float64)   { m.max = v }
func (m *linearMap) SetMin(v float64)   { m.min = v }
func (m *linearMap) Alpha() float64     { return 1 }
func (m *linearMap) SetAlpha(a float64) { m.alpha = a }
func (m *linearMap) Palette(n int) palette.Palette {
	cs := make([]color.Color, n)
	for i := range cs {
		cs[i], _ = m.At(m.min + (m.max-m.min)*float64(i)/float64(max(n-1, 1)))
	}
	return plainPalette(cs)
}

type plainPalette []color.Color

func (p plainPalette) Colors() []color.Color { return p }
