package data

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGridImage(t *testing.T) {
	// 5 grayscale 28×28 images: zoom 2 → 56×56 cells, plus a 15-pixel caption.
	images := make([]float32, 5*28*28)
	for i := range images {
		images[i] = 1 // white
	}
	img, err := GridImage(images, 5, 1, 28, 28, []string{"0", "1", "2", "3", "a-very-long-label"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 3*(56+2)+2 || b.Dy() != 2*(56+15+2)+2 {
		t.Fatalf("grid is %v", b)
	}
	if r, _, _, _ := img.At(2, 2).RGBA(); r != 0xffff {
		t.Fatalf("first pixel %v, want white", img.At(2, 2))
	}
	// The caption strip of image 0 has some white (text) pixels.
	text := 0
	for y := 2 + 56; y < 2+56+15; y++ {
		for x := 2; x < 2+56; x++ {
			if r, _, _, _ := img.At(x, y).RGBA(); r == 0xffff {
				text++
			}
		}
	}
	if text == 0 {
		t.Fatal("no label drawn")
	}

	for _, tt := range []struct {
		name       string
		images     []float32
		n, c, h, w int
		labels     []string
		wantErr    string
	}{
		{"two channels", make([]float32, 8), 1, 2, 2, 2, nil, "2 channels"},
		{"too few values", make([]float32, 7), 2, 1, 2, 2, nil, "7 values"},
		{"label count", make([]float32, 8), 2, 1, 2, 2, []string{"x"}, "1 labels for 2 images"},
		{"no images", nil, 0, 1, 2, 2, nil, "bad shape"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := GridImage(tt.images, tt.n, tt.c, tt.h, tt.w, tt.labels, 0); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSaveGrid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grid.png")
	images := make([]float32, 4*3*32*32) // colour, all mid-grey (0)
	if err := SaveGrid(path, images, 4, 3, 32, 32, nil, 0); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2*(64+2)+2 || b.Dy() != 2*(64+2)+2 {
		t.Fatalf("grid is %v", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	if err := SaveGrid(filepath.Join(dir, "no", "such", "dir.png"), images, 4, 3, 32, 32, nil, 0); err == nil {
		t.Fatal("no error writing into a missing folder")
	}
}
