package encoder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"io"
	"math"

	xdraw "golang.org/x/image/draw"
)

// Errors of [Model.Preprocess]; the API maps each to a status.
var (
	ErrUnsupported = errors.New("encoder: not a PNG or JPEG image")
	ErrTooLarge    = errors.New("encoder: image too large")
	ErrUndecodable = errors.New("encoder: image cannot be decoded")
)

// A SizeError is an image beyond one of [Limits]' bounds; it wraps
// ErrTooLarge.
type SizeError struct {
	Reason string // what is too large, e.g. "is 16777216 pixels wide, more than 8192"
}

func (e *SizeError) Error() string { return "encoder: the image " + e.Reason }
func (e *SizeError) Unwrap() error { return ErrTooLarge }

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

// Preprocess decodes a PNG or JPEG image within lim (checked on its header,
// before decoding; see [Inspect]) into the model's input: converted to the
// model's channels (ITU-R 601 luma for grey), translucent pixels composited
// onto the background that keeps the figure visible (white under dark ink,
// black under light ink), inverted as inv says, fitted into the model's
// H×W box keeping its aspect ratio, centred on its background colour, and
// scaled as the training data were: byte b → b/127.5 − 1. An image larger
// than a few times the model's box is first shrunk by averaging square
// blocks of pixels, so that no step but the decoder itself costs memory or
// time in proportion to its size; the fit is Catmull-Rom resampling, which
// averages over the source area when shrinking. An opaque image already of
// the model's size is copied pixel for pixel. Decoding stops with ctx's
// error once ctx ends.
func (m *Model) Preprocess(ctx context.Context, b []byte, lim Limits, inv Invert) (Input, error) {
	return Preprocess(ctx, b, m.InputShape, m.Polarity, lim, inv)
}

// Preprocess is [Model.Preprocess] for an input shape [C, H, W] (C is 1 or
// 3) and polarity ("light-on-dark" or "").
func Preprocess(ctx context.Context, b []byte, shape [3]int, polarity string, lim Limits, inv Invert) (Input, error) {
	if _, err := Inspect(b, lim); err != nil {
		return Input{}, err
	}
	img, _, err := image.Decode(ctxReader{ctx, bytes.NewReader(b)})
	if err != nil {
		if ctx.Err() != nil {
			return Input{}, ctx.Err()
		}
		return Input{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return fromImage(ctx, img, shape, polarity, inv)
}

// ctxReader fails reads once ctx has ended, which stops a decoder.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// FromImage turns a decoded image into a model input as [Preprocess] does.
func FromImage(img image.Image, shape [3]int, polarity string, inv Invert) (Input, error) {
	return fromImage(context.Background(), img, shape, polarity, inv)
}

// reduceMultiple is how many times the model's box an image may be before
// it is shrunk by block averaging: enough for the Catmull-Rom fit to see
// every stroke, small enough to cost nothing.
const reduceMultiple = 4

func fromImage(ctx context.Context, img image.Image, shape [3]int, polarity string, inv Invert) (Input, error) {
	c, h, w := shape[0], shape[1], shape[2]
	if c != 1 && c != 3 {
		return Input{}, fmt.Errorf("encoder: models with %d channels are not supported", c)
	}
	if img.Bounds().Empty() {
		return Input{}, fmt.Errorf("%w: empty image", ErrUndecodable)
	}
	// Work in the model's channel count, at most a few times its size.
	src, err := reduce(ctx, img, c == 1, reduceMultiple*w, reduceMultiple*h)
	if err != nil {
		return Input{}, err
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

// reduce returns img as an opaque Gray (grey) or RGBA image at the origin
// of at most maxW×maxH pixels: f×f blocks of img, f the smallest integer
// that makes it fit, are averaged into one pixel (f = 1 copies). Colours
// are averaged premultiplied by their alpha and then composited onto
// black or white: white when the image's ink, the alpha-weighted mean
// luma of its pixels, is dark, black when it is light. It reads each
// pixel once and allocates only the result.
func reduce(ctx context.Context, img image.Image, grey bool, maxW, maxH int) (draw.Image, error) {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	f := max(1, ceilDiv(sw, maxW), ceilDiv(sh, maxH))
	dw, dh := ceilDiv(sw, f), ceilDiv(sh, f)
	if g, ok := img.(*image.Gray); ok && grey && f == 1 {
		// Opaque grey within the box (a 28×28 MNIST PNG): the sums
		// below would give back each pixel as it is (TestReduceGrayCopy),
		// after a call and 32 bytes of sums per pixel.
		out := image.NewGray(image.Rect(0, 0, sw, sh))
		for y := 0; y < sh; y++ {
			o := g.PixOffset(b.Min.X, b.Min.Y+y)
			copy(out.Pix[y*out.Stride:y*out.Stride+sw], g.Pix[o:o+sw])
		}
		return out, nil
	}
	// Sums of premultiplied 16-bit R, G, B and A per output pixel.
	sums := make([]uint64, 4*dw*dh)
	at := rgba64At(img)
	for y := 0; y < sh; y++ {
		if y%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		row := sums[4*(y/f)*dw:]
		for x := 0; x < sw; x++ {
			c := at(b.Min.X+x, b.Min.Y+y)
			s := row[4*(x/f):]
			s[0] += uint64(c.R)
			s[1] += uint64(c.G)
			s[2] += uint64(c.B)
			s[3] += uint64(c.A)
		}
	}
	// The ink's luma decides the background of translucent pixels.
	var tot [4]uint64
	for i, v := range sums {
		tot[i%4] += v
	}
	var bg uint64 // 0 (black) or 0xffff (white)
	if tot[3] > 0 && 0.299*float64(tot[0])+0.587*float64(tot[1])+0.114*float64(tot[2]) < 0.5*float64(tot[3]) {
		bg = 0xffff
	}
	var dst draw.Image
	var gray *image.Gray
	var rgba *image.RGBA
	if grey {
		gray = image.NewGray(image.Rect(0, 0, dw, dh))
		dst = gray
	} else {
		rgba = image.NewRGBA(image.Rect(0, 0, dw, dh))
		dst = rgba
	}
	for y := 0; y < dh; y++ {
		ny := uint64(min(f, sh-y*f))
		for x := 0; x < dw; x++ {
			n := ny * uint64(min(f, sw-x*f))
			s := sums[4*(y*dw+x):]
			a := (s[3] + n/2) / n
			var px [3]uint64
			for i := range px {
				px[i] = min(0xffff, (s[i]+n/2)/n+(0xffff-a)*bg/0xffff)
			}
			if grey {
				// color.GrayModel's luma of 16-bit values.
				gray.Pix[y*gray.Stride+x] = uint8((19595*px[0] + 38470*px[1] + 7471*px[2] + 1<<15) >> 24)
				continue
			}
			o := y*rgba.Stride + 4*x
			rgba.Pix[o], rgba.Pix[o+1], rgba.Pix[o+2], rgba.Pix[o+3] = uint8(px[0]>>8), uint8(px[1]>>8), uint8(px[2]>>8), 0xff
		}
	}
	return dst, nil
}

// rgba64At reads img's premultiplied 16-bit colours without allocating
// where img allows (every image type of the standard library does).
func rgba64At(img image.Image) func(x, y int) color.RGBA64 {
	if im, ok := img.(image.RGBA64Image); ok {
		return im.RGBA64At
	}
	return func(x, y int) color.RGBA64 {
		r, g, b, a := img.At(x, y).RGBA()
		return color.RGBA64{uint16(r), uint16(g), uint16(b), uint16(a)}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

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
