package encoder

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math/rand/v2"
	"testing"
)

// opaque hides an image's concrete type, so reduce takes its general path.
type opaque struct{ image.Image }

// TestReduceGrayCopy: reduce's copy of an opaque grey image within the box
// (any size up to it, any origin, a sub-image) is what its general path of
// sums and compositing makes of the same image.
func TestReduceGrayCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	ctx := context.Background()
	for _, sz := range [][2]int{{28, 28}, {1, 1}, {112, 112}, {17, 90}, {112, 3}} {
		for _, origin := range []image.Point{{}, {-7, 13}} {
			g := image.NewGray(image.Rect(origin.X, origin.Y, origin.X+sz[0]+5, origin.Y+sz[1]+3))
			for i := range g.Pix {
				g.Pix[i] = uint8(r.IntN(256))
			}
			if r.IntN(2) == 0 {
				for i := range g.Pix {
					g.Pix[i] = []uint8{0, 255}[r.IntN(2)] // ink on a blank page, as digits are
				}
			}
			sub := g.SubImage(image.Rect(origin.X+2, origin.Y+1, origin.X+2+sz[0], origin.Y+1+sz[1])).(*image.Gray)
			fast, err := reduce(ctx, sub, true, 112, 112)
			if err != nil {
				t.Fatal(err)
			}
			slow, err := reduce(ctx, opaque{sub}, true, 112, 112)
			if err != nil {
				t.Fatal(err)
			}
			f, s := fast.(*image.Gray), slow.(*image.Gray)
			if f.Rect != s.Rect || !bytes.Equal(f.Pix, s.Pix) {
				t.Errorf("%v at %v: the copy differs from the general path", sz, origin)
			}
		}
	}
}

// BenchmarkPreprocessMNIST: one 28×28 grey PNG to the model's input.
func BenchmarkPreprocessMNIST(b *testing.B) {
	g := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range g.Pix {
		if (i/28-14)*(i/28-14)+(i%28-14)*(i%28-14) < 60 {
			g.Pix[i] = 255
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, g); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Preprocess(context.Background(), buf.Bytes(), [3]int{1, 28, 28}, "light-on-dark", Limits{MaxPixels: 1 << 20, MaxSide: 4096, MaxAspect: 100}, InvertAuto); err != nil {
			b.Fatal(err)
		}
	}
}
