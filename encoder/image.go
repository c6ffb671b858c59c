package encoder

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"math"

	xdraw "golang.org/x/image/draw"
)

// Errors of [Model.Preprocess]; the API maps each to a status.
var (
	ErrUnsupported = errors.New("encoder: not a PNG or JPEG image")
	ErrTooLarge    = errors.New("encoder: image has too many pixels")
	ErrUndecodable = errors.New("encoder: image cannot be decoded")
)

// Invert says whether an upload's grey levels are flipped before encoding.
type Invert int

// Invert modes.
const (
	// InvertAuto inverts dark-on-light uploads for models that expect a
	// light figure on a dark background (input_polarity light-on-dark).
	InvertAuto Invert = iota
	// InvertAlways always inverts.
	InvertAlways
	// InvertNever never inverts.
	InvertNever
)

// ParseInvert reads "auto", "true" or "false" (also "" for auto, "1"/"0",
// "yes"/"no").
func ParseInvert(s string) (Invert, error) {
	switch s {
	case "", "auto":
		return InvertAuto, nil
	case "true", "1", "yes":
		return InvertAlways, nil
	case "false", "0", "no":
		return InvertNever, nil
	}
	return InvertAuto, fmt.Errorf("invert must be auto, true or false, not %q", s)
}

// Input is one image turned into the model's input.
type Input struct {
	X        []float32 // C·H·W values in [-1, 1], NCHW order
	Inverted bool      // whether the grey levels were flipped
}

// Preprocess decodes a PNG or JPEG image of at most maxPixels pixels
// (width × height, checked before decoding; 0: no limit) into the model's
// input: converted to the model's channels (ITU-R 601 luma for grey),
// inverted as inv says, fitted into the model's H×W box keeping its aspect
// ratio (Catmull-Rom resampling, which averages over the source area when
// shrinking), centred on its background colour, and scaled as the training
// data were: byte b → b/127.5 − 1. An image already of the model's size is
// copied pixel for pixel.
func (m *Model) Preprocess(b []byte, maxPixels int, inv Invert) (Input, error) {
	return Preprocess(b, m.InputShape, m.Polarity, maxPixels, inv)
}

// Preprocess is [Model.Preprocess] for an input shape [C, H, W] (C is 1 or
// 3) and polarity ("light-on-dark" or "").
func Preprocess(b []byte, shape [3]int, polarity string, maxPixels int, inv Invert) (Input, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return Input{}, ErrUnsupported
		}
		return Input{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if format != "png" && format != "jpeg" {
		return Input{}, ErrUnsupported
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return Input{}, fmt.Errorf("%w: empty image", ErrUndecodable)
	}
	if maxPixels > 0 && int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return Input{}, fmt.Errorf("%w: %d×%d is more than %d pixels", ErrTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return Input{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return FromImage(img, shape, polarity, inv)
}

// FromImage turns a decoded image into a model input as [Preprocess] does.
func FromImage(img image.Image, shape [3]int, polarity string, inv Invert) (Input, error) {
	c, h, w := shape[0], shape[1], shape[2]
	if c != 1 && c != 3 {
		return Input{}, fmt.Errorf("encoder: models with %d channels are not supported", c)
	}
	bounds := img.Bounds()
	if bounds.Empty() {
		return Input{}, fmt.Errorf("%w: empty image", ErrUndecodable)
	}
	// Work in the model's channel count at the upload's size.
	var src draw.Image
	if c == 1 {
		// A copy at the origin; color.GrayModel is 0.299R + 0.587G + 0.114B.
		g := image.NewGray(image.Rect(0, 0, bounds.Dx(), bounds.Dy()))
		draw.Draw(g, g.Bounds(), img, bounds.Min, draw.Src)
		src = g
	} else {
		rgba := image.NewRGBA(image.Rect(0, 0, bounds.Dx(), bounds.Dy()))
		draw.Draw(rgba, rgba.Bounds(), img, bounds.Min, draw.Src)
		src = rgba
	}
	in := Input{}
	switch inv {
	case InvertAlways:
		in.Inverted = true
	case InvertAuto:
		in.Inverted = polarity == "light-on-dark" && darkOnLight(src)
	}
	if in.Inverted {
		invert(src)
	}
	dst := fit(src, w, h)
	in.X = toFloat(dst, c, h, w)
	return in, nil
}

// luma returns the grey level of pixel (x, y) of a Gray or RGBA image.
func luma(img draw.Image, x, y int) float64 {
	switch im := img.(type) {
	case *image.Gray:
		return float64(im.Pix[im.PixOffset(x, y)])
	case *image.RGBA:
		return float64(color.GrayModel.Convert(im.RGBAAt(x, y)).(color.Gray).Y)
	}
	r, g, b, _ := img.At(x, y).RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
}

// darkOnLight reports whether the border of the image is brighter than the
// image as a whole: a dark figure on a light background.
func darkOnLight(img draw.Image) bool {
	r := img.Bounds()
	var all, border float64
	var nb int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			v := luma(img, x, y)
			all += v
			if y == r.Min.Y || y == r.Max.Y-1 || x == r.Min.X || x == r.Max.X-1 {
				border += v
				nb++
			}
		}
	}
	return border/float64(nb) > all/float64(r.Dx()*r.Dy())
}

func invert(img draw.Image) {
	switch im := img.(type) {
	case *image.Gray:
		for i, v := range im.Pix {
			im.Pix[i] = 255 - v
		}
	case *image.RGBA:
		for i, v := range im.Pix {
			if i%4 != 3 {
				im.Pix[i] = 255 - v
			}
		}
	}
}

// background is the mean colour of the image's border.
func background(img draw.Image) color.Color {
	r := img.Bounds()
	var s [3]float64
	var n float64
	add := func(x, y int) {
		cr, cg, cb, _ := img.At(x, y).RGBA()
		s[0] += float64(cr >> 8)
		s[1] += float64(cg >> 8)
		s[2] += float64(cb >> 8)
		n++
	}
	for x := r.Min.X; x < r.Max.X; x++ {
		add(x, r.Min.Y)
		add(x, r.Max.Y-1)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		add(r.Min.X, y)
		add(r.Max.X-1, y)
	}
	px := func(v float64) uint8 { return uint8(math.Round(v / n)) }
	if _, ok := img.(*image.Gray); ok {
		return color.Gray{Y: px(s[0])}
	}
	return color.RGBA{px(s[0]), px(s[1]), px(s[2]), 255}
}

// fit returns src fitted into a w×h image of the same type: scaled by the
// largest factor that keeps it inside, centred on src's border colour.
func fit(src draw.Image, w, h int) draw.Image {
	sr := src.Bounds()
	var dst draw.Image
	if _, ok := src.(*image.Gray); ok {
		dst = image.NewGray(image.Rect(0, 0, w, h))
	} else {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	if sr.Dx() == w && sr.Dy() == h {
		draw.Draw(dst, dst.Bounds(), src, sr.Min, draw.Src)
		return dst
	}
	draw.Draw(dst, dst.Bounds(), image.NewUniform(background(src)), image.Point{}, draw.Src)
	scale := math.Min(float64(w)/float64(sr.Dx()), float64(h)/float64(sr.Dy()))
	dw := max(1, min(w, int(math.Round(float64(sr.Dx())*scale))))
	dh := max(1, min(h, int(math.Round(float64(sr.Dy())*scale))))
	x0, y0 := (w-dw)/2, (h-dh)/2
	xdraw.CatmullRom.Scale(dst, image.Rect(x0, y0, x0+dw, y0+dh), src, sr, draw.Src, nil)
	return dst
}

// scale maps a byte to [-1, 1] exactly as data.ToFloat32 does.
var scale = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i)/127.5 - 1
	}
	return t
}()

// toFloat writes a Gray or RGBA w×h image as C×H×W float32 values.
func toFloat(img draw.Image, c, h, w int) []float32 {
	out := make([]float32, c*h*w)
	switch im := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out[y*w+x] = scale[im.Pix[im.PixOffset(x, y)]]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				o := im.PixOffset(x, y)
				for ch := 0; ch < 3; ch++ {
					out[ch*h*w+y*w+x] = scale[im.Pix[o+ch]]
				}
			}
		}
	}
	return out
}
