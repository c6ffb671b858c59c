package plots

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCurves: the curves of a few updates are a PNG file; no updates is an
// error.
func TestCurves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curves.png")
	ps := []Point{{1, 0.5, -1, -0.5}, {2, 0.3, -1.2, -0.9}, {3, 0.2, -1.3, -1.1}}
	if err := Curves(path, ps); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("curves.png: %d bytes, err %v", len(b), err)
	}
	if err := Curves(path, nil); err == nil {
		t.Error("no updates accepted")
	}
}
