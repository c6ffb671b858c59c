package data

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"github.com/cebm/cebm/internal/atomicfile"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Grid layout: each image is enlarged by an integer factor to at least
// gridMinSide pixels, with a caption strip below it when labels are given.
const (
	gridMinSide = 56
	gridGap     = 2
	gridCaption = 15 // height of the caption strip; basicfont.Face7x13 is 13 high
)

// GridImage lays out n images of c×h×w values in [-1, 1] (NCHW, as in
// Set.Images) in a grid of cols columns (0 picks a near-square grid), with
// labels[i] written under image i when labels is not nil. c must be 1
// (grayscale) or 3 (RGB).
func GridImage(images []float32, n, c, h, w int, labels []string, cols int) (*image.RGBA, error) {
	switch {
	case n <= 0 || h <= 0 || w <= 0:
		return nil, fmt.Errorf("grid: bad shape %d×%d×%d×%d", n, c, h, w)
	case c != 1 && c != 3:
		return nil, fmt.Errorf("grid: %d channels, want 1 or 3", c)
	case len(images) != n*c*h*w:
		return nil, fmt.Errorf("grid: %d values for %d×%d×%d×%d images", len(images), n, c, h, w)
	case labels != nil && len(labels) != n:
		return nil, fmt.Errorf("grid: %d labels for %d images", len(labels), n)
	}
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(n))))
	}
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	zoom := max(1, (gridMinSide+max(h, w)-1)/max(h, w))
	cellW, cellH := w*zoom, h*zoom
	if labels != nil {
		cellH += gridCaption
	}
	out := image.NewRGBA(image.Rect(0, 0, cols*(cellW+gridGap)+gridGap, rows*(cellH+gridGap)+gridGap))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{40, 40, 40, 255}), image.Point{}, draw.Src)

	face := basicfont.Face7x13
	plane := h * w
	for i := range n {
		img := images[i*c*plane : (i+1)*c*plane]
		x0 := gridGap + (i%cols)*(cellW+gridGap)
		y0 := gridGap + (i/cols)*(cellH+gridGap)
		for y := range h {
			for x := range w {
				var px color.RGBA
				if c == 1 {
					g := toByte(img[y*w+x])
					px = color.RGBA{g, g, g, 255}
				} else {
					px = color.RGBA{toByte(img[y*w+x]), toByte(img[plane+y*w+x]), toByte(img[2*plane+y*w+x]), 255}
				}
				r := image.Rect(x0+x*zoom, y0+y*zoom, x0+(x+1)*zoom, y0+(y+1)*zoom)
				draw.Draw(out, r, image.NewUniform(px), image.Point{}, draw.Src)
			}
		}
		if labels != nil {
			text := fitText(face, labels[i], cellW)
			d := font.Drawer{
				Dst:  out,
				Src:  image.White,
				Face: face,
				Dot:  fixed.P(x0+1, y0+h*zoom+face.Ascent+1),
			}
			d.DrawString(text)
		}
	}
	return out, nil
}

// fitText shortens s until it fits in width pixels.
func fitText(face font.Face, s string, width int) string {
	r := []rune(s)
	for len(r) > 0 && font.MeasureString(face, string(r)).Ceil() > width-2 {
		r = r[:len(r)-1]
	}
	return string(r)
}

// SaveGrid writes GridImage(images, n, c, h, w, labels, cols) as a PNG file,
// atomically: the file appears complete or not at all.
func SaveGrid(path string, images []float32, n, c, h, w int, labels []string, cols int) error {
	img, err := GridImage(images, n, c, h, w, labels, cols)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) })
}
