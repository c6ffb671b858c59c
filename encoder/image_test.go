package encoder

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"slices"
	"testing"

	"github.com/cebm/cebm/data"
	xdraw "golang.org/x/image/draw"
)

var mnistShape = [3]int{1, 28, 28}

var ctx = context.Background()

func testDigits(t *testing.T) *data.Set {
	t.Helper()
	s, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func grayImage(pix []uint8, w, h int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	copy(g.Pix, pix)
	return g
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A 28×28 MNIST digit saved as PNG reaches the model exactly as the
// training data did; a dark-on-light copy is detected and inverted back,
// unless the request says not to.
func TestPreprocessMatchesTrainingData(t *testing.T) {
	s := testDigits(t)
	for i := 0; i < 20; i++ {
		pix := s.Pixel(i)
		in, err := Preprocess(ctx, encodePNG(t, grayImage(pix, 28, 28)), mnistShape, "light-on-dark", Limits{}, InvertAuto)
		if err != nil {
			t.Fatal(err)
		}
		if in.Inverted || !slices.Equal(in.X, s.Image(i)) {
			t.Fatalf("digit %d: preprocessed input differs from the training scaling (inverted %v)", i, in.Inverted)
		}
		neg := make([]uint8, len(pix))
		for j, v := range pix {
			neg[j] = 255 - v
		}
		b := encodePNG(t, grayImage(neg, 28, 28))
		in, err = Preprocess(ctx, b, mnistShape, "light-on-dark", Limits{}, InvertAuto)
		if err != nil {
			t.Fatal(err)
		}
		if !in.Inverted || !slices.Equal(in.X, s.Image(i)) {
			t.Fatalf("digit %d: dark-on-light upload not restored (inverted %v)", i, in.Inverted)
		}
		if in, _ = Preprocess(ctx, b, mnistShape, "light-on-dark", Limits{}, InvertNever); in.Inverted || slices.Equal(in.X, s.Image(i)) {
			t.Fatalf("digit %d: invert=false still inverted", i)
		}
	}
}

// A digit uploaded at 4× size in colour comes back close to the original:
// the resampler averages over the source area, and colour becomes luma.
func TestPreprocessResamplesAndConvertsColour(t *testing.T) {
	s := testDigits(t)
	src := grayImage(s.Pixel(3), 28, 28)
	big := image.NewRGBA(image.Rect(0, 0, 112, 112))
	xdraw.NearestNeighbor.Scale(big, big.Bounds(), src, src.Bounds(), xdraw.Src, nil)
	// An RGBA upload whose channels are equal: its luma is the grey level.
	in, err := Preprocess(ctx, encodePNG(t, big), mnistShape, "light-on-dark", Limits{}, InvertAuto)
	if err != nil {
		t.Fatal(err)
	}
	var diff float64
	want := s.Image(3)
	for i := range want {
		diff += math.Abs(float64(in.X[i] - want[i]))
	}
	if mean := diff / float64(len(want)); mean > 0.05 {
		t.Fatalf("mean |difference| after 4× up- and down-sampling is %.3f (scale [-1, 1])", mean)
	}
	red := image.NewRGBA(image.Rect(0, 0, 28, 28))
	for y := 0; y < 28; y++ {
		for x := 0; x < 28; x++ {
			red.Set(x, y, color.RGBA{200, 0, 0, 255})
		}
	}
	in, err = Preprocess(ctx, encodePNG(t, red), mnistShape, "", Limits{}, InvertNever)
	if err != nil {
		t.Fatal(err)
	}
	wantLuma := float32(math.Round(0.299*200))/127.5 - 1
	if math.Abs(float64(in.X[0]-wantLuma)) > 1.0/127.5 {
		t.Fatalf("pure red became %v, want luma %v", in.X[0], wantLuma)
	}
}

func TestPreprocessRejectsBadInput(t *testing.T) {
	good := encodePNG(t, image.NewGray(image.Rect(0, 0, 100, 100)))
	cases := []struct {
		name string
		b    []byte
		lim  Limits
		want error
	}{
		{"not an image", []byte("hello, world"), Limits{}, ErrUnsupported},
		{"truncated png", good[:len(good)/2], Limits{}, ErrUndecodable},
		{"too many pixels", good, Limits{MaxPixels: 99 * 100}, ErrTooLarge},
		{"side too long", good, Limits{MaxSide: 99}, ErrTooLarge},
		{"too narrow", encodePNG(t, image.NewGray(image.Rect(0, 0, 65, 1))), DefaultLimits, ErrTooLarge},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), Limits{}, ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Preprocess(ctx, c.b, mnistShape, "light-on-dark", c.lim, InvertAuto); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
