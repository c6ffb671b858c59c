package data

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pngGray encodes a w×h grayscale PNG whose pixels are v, v+1, ...
func pngGray(t *testing.T, w, h int, v byte) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v + byte(i)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngRGB encodes a w×h colour PNG filled with one colour.
func pngRGB(t *testing.T, w, h int, c color.NRGBA) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegGray(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLoadFolder(t *testing.T) {
	t.Run("grayscale, whole folder is train", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "b", "2.png"), pngGray(t, 3, 2, 20))
		writeFile(t, filepath.Join(dir, "b", "1.png"), pngGray(t, 3, 2, 10))
		writeFile(t, filepath.Join(dir, "a", "x.jpg"), jpegGray(t, 3, 2))
		writeFile(t, filepath.Join(dir, "a", ".DS_Store"), []byte("junk"))
		writeFile(t, filepath.Join(dir, "README"), []byte("ignored"))
		set, err := Load("folder:"+dir, "train")
		if err != nil {
			t.Fatal(err)
		}
		if set.N != 3 || set.C != 1 || set.H != 2 || set.W != 3 {
			t.Fatalf("got %d×%d×%d×%d", set.N, set.C, set.H, set.W)
		}
		if !slices.Equal(set.Classes, []string{"a", "b"}) || !slices.Equal(set.Labels, []int{0, 1, 1}) {
			t.Fatalf("classes %v labels %v", set.Classes, set.Labels)
		}
		if !bytes.Equal(set.Pixel(1), []byte{10, 11, 12, 13, 14, 15}) { // b/1.png sorts first
			t.Fatalf("image 1 = %v", set.Pixel(1))
		}
		if _, err := Load("folder:"+dir, "test"); !errors.Is(err, ErrNoSplit) {
			t.Fatalf("test split: err = %v, want ErrNoSplit", err)
		}
	})
	t.Run("colour with train and test", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "train", "red", "1.png"), pngRGB(t, 2, 2, color.NRGBA{200, 10, 30, 255}))
		writeFile(t, filepath.Join(dir, "train", "grey", "1.png"), pngGray(t, 2, 2, 7))
		writeFile(t, filepath.Join(dir, "test", "red", "1.png"), pngRGB(t, 2, 2, color.NRGBA{1, 2, 3, 255}))
		set, err := Load("folder:"+dir, "train")
		if err != nil {
			t.Fatal(err)
		}
		if set.N != 2 || set.C != 3 {
			t.Fatalf("got %d images of %d channels", set.N, set.C)
		}
		// grey sorts first and is repeated in R, G, B.
		if want := []byte{7, 8, 9, 10, 7, 8, 9, 10, 7, 8, 9, 10}; !bytes.Equal(set.Pixel(0), want) {
			t.Fatalf("grey image = %v, want %v", set.Pixel(0), want)
		}
		if want := []byte{200, 200, 200, 200, 10, 10, 10, 10, 30, 30, 30, 30}; !bytes.Equal(set.Pixel(1), want) {
			t.Fatalf("red image = %v, want %v", set.Pixel(1), want)
		}
		test, err := Load("folder:"+dir, "test")
		if err != nil || test.N != 1 || test.Classes[0] != "red" {
			t.Fatalf("test split: %v, %+v", err, test)
		}
	})

	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr string // names the faulty file relative to the folder
	}{
		{"mixed sizes", map[string][]byte{"a/1.png": pngGray(t, 3, 3, 0), "a/2.png": pngGray(t, 3, 3, 0), "b/1.png": pngGray(t, 4, 3, 0)},
			"b/1.png: image is 4×3, but"},
		{"undecodable file", map[string][]byte{"a/1.png": pngGray(t, 3, 3, 0), "a/2.png": []byte("not an image")},
			"a/2.png: not a PNG or JPEG image"},
		{"truncated png", map[string][]byte{"a/1.png": pngGray(t, 3, 3, 0)[:40]},
			"a/1.png: cannot decode"},
		{"empty class", map[string][]byte{"a/1.png": pngGray(t, 3, 3, 0), "b/.hidden": nil},
			`b: class "b" has no images`},
		{"no classes", map[string][]byte{"README": nil}, "no class sub-folders"},
		{"nested folder", map[string][]byte{"a/sub/1.png": pngGray(t, 3, 3, 0)}, "a/sub: nested folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tt.files {
				writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), b)
			}
			_, err := Load("folder:"+dir, "train")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("err = %v, want one naming a file in %s and containing %q", err, dir, tt.wantErr)
			}
		})
	}
	t.Run("missing folder", func(t *testing.T) {
		if _, err := Load("folder:"+filepath.Join(t.TempDir(), "nope"), "train"); !errors.Is(err, ErrMissing) {
			t.Fatalf("err = %v, want ErrMissing", err)
		}
	})
}
