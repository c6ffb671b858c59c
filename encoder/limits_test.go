package encoder

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"runtime"
	"slices"
	"testing"

	xdraw "golang.org/x/image/draw"
)

// A digit drawn as ink on a transparent background reaches the model as
// the training data did, whether the ink is light or dark: the background
// becomes the colour that keeps the ink visible.
func TestPreprocessTransparentInk(t *testing.T) {
	s := testDigits(t)
	for i := 0; i < 10; i++ {
		pix := s.Pixel(i)
		for _, ink := range []uint8{0, 255} {
			img := image.NewNRGBA(image.Rect(0, 0, 28, 28))
			for j, v := range pix {
				img.Pix[4*j], img.Pix[4*j+1], img.Pix[4*j+2], img.Pix[4*j+3] = ink, ink, ink, v
			}
			in, err := Preprocess(ctx, encodePNG(t, img), mnistShape, "light-on-dark", DefaultLimits, InvertAuto)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(in.X, s.Image(i)) {
				t.Fatalf("digit %d in ink %d on transparent: the input differs from the digit (inverted %v)", i, ink, in.Inverted)
			}
			if in.Inverted != (ink == 0) {
				t.Fatalf("digit %d in ink %d: inverted %v", i, ink, in.Inverted)
			}
		}
	}
}

// meanAbsDiff is the mean |a − b|.
func meanAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d += math.Abs(float64(a[i] - b[i]))
	}
	return d / float64(len(a))
}

// allocated is what f allocates, in bytes.
func allocated(f func()) int64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return int64(b.TotalAlloc - a.TotalAlloc)
}

// A digit blown up 64 times, in 16-bit colour, is shrunk back close to the
// original, and preprocessing it allocates no more than Inspect said.
func TestPreprocessShrinksLargeImages(t *testing.T) {
	s := testDigits(t)
	src := grayImage(s.Pixel(5), 28, 28)
	big := image.NewRGBA64(image.Rect(0, 0, 28*64, 28*64))
	xdraw.NearestNeighbor.Scale(big, big.Bounds(), src, src.Bounds(), xdraw.Src, nil)
	b := encodePNG(t, big)
	h, err := Inspect(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	n := allocated(func() { in, err = Preprocess(ctx, b, mnistShape, "light-on-dark", DefaultLimits, InvertAuto) })
	if err != nil {
		t.Fatal(err)
	}
	if d := meanAbsDiff(in.X, s.Image(5)); d > 0.05 {
		t.Fatalf("mean |difference| after 64× up- and down-sampling is %.3f (scale [-1, 1])", d)
	}
	if n > h.DecodeBytes {
		t.Fatalf("preprocessing a %d×%d image allocated %d bytes; Inspect said at most %d", h.Width, h.Height, n, h.DecodeBytes)
	}
	t.Logf("%d×%d RGBA64: allocated %.1f MiB, bound %.1f MiB", h.Width, h.Height, float64(n)/(1<<20), float64(h.DecodeBytes)/(1<<20))
}

// decodeSamples are images of every kind the decoders return, each a few
// hundred pixels on a side.
func decodeSamples(t testing.TB) map[string][]byte {
	enc := func(img image.Image) []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	r := image.Rect(0, 0, 300, 200)
	pal := image.NewPaletted(r, color.Palette{color.Black, color.White, color.Gray{128}})
	var jg, jc bytes.Buffer
	if err := jpeg.Encode(&jg, image.NewGray(r), nil); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jc, image.NewRGBA(r), nil); err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"gray": enc(image.NewGray(r)), "gray16": enc(image.NewGray16(r)), "rgba": enc(image.NewRGBA(r)),
		"nrgba": enc(image.NewNRGBA(r)), "rgba64": enc(image.NewRGBA64(r)), "nrgba64": enc(image.NewNRGBA64(r)),
		"paletted": enc(pal), "jpeg gray": jg.Bytes(), "jpeg colour": jc.Bytes(),
	}
}

// Inspect's bound holds for every kind of image, and is not wildly above
// what decoding takes.
func TestDecodeBytesBound(t *testing.T) {
	for name, b := range decodeSamples(t) {
		h, err := Inspect(b, DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := allocated(func() { _, err = Preprocess(ctx, b, mnistShape, "light-on-dark", DefaultLimits, InvertAuto) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n > h.DecodeBytes || h.DecodeBytes > 4*n+decodeOverhead {
			t.Errorf("%s: allocated %d bytes, bound %d", name, n, h.DecodeBytes)
		}
	}
}

// Decoding stops when the context ends.
func TestPreprocessStopsWithContext(t *testing.T) {
	b := encodePNG(t, image.NewRGBA64(image.Rect(0, 0, 2000, 2000)))
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Preprocess(c, b, mnistShape, "", DefaultLimits, InvertAuto); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// Past decoding, the block averaging stops too.
	if _, err := reduce(c, image.NewGray(image.Rect(0, 0, 2000, 2000)), true, 112, 112); !errors.Is(err, context.Canceled) {
		t.Fatalf("reduce: got %v, want context.Canceled", err)
	}
}

// fuzzLimits keep every fuzzed image small enough to decode in a few
// milliseconds: the bound FuzzDecodeBytes checks does not depend on the size
// (TestPreprocessShrinksLargeImages and TestDecodeBytesBound cover large
// images), and an input that takes seconds starves the fuzzing workers.
var fuzzLimits = Limits{MaxPixels: 1 << 18, MaxSide: 2048, MaxAspect: 64}

// FuzzDecodeBytes: no bytes within fuzzLimits make preprocessing panic or
// allocate more than Inspect bounded.
func FuzzDecodeBytes(f *testing.F) {
	for _, b := range decodeSamples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Inspect(b, fuzzLimits)
		if err != nil {
			return
		}
		var in Input
		n := allocated(func() { in, err = Preprocess(ctx, b, mnistShape, "light-on-dark", fuzzLimits, InvertAuto) })
		if n > h.DecodeBytes {
			t.Fatalf("%s %d×%d: allocated %d bytes, bound %d", h.Format, h.Width, h.Height, n, h.DecodeBytes)
		}
		if err == nil && len(in.X) != 784 {
			t.Fatalf("%d values", len(in.X))
		}
	})
}
