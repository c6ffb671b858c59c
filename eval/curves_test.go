package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLabBook(t *testing.T) {
	tsv := "# comment\n" +
		"a\t5.0\t100\t0.9500\t0.9712\tval\t--gamma 0.005\n" +
		"a\t10.0\t200\t0.9600\t0.9712\tval\t--gamma 0.005\n" +
		"a(last)\t10.0\t200\t0.9550\t0.9712\tval\t--gamma 0.005\t0.9756\n" +
		"b\t5.0\t90\t0.9400\t0.9691\ttest\t\n"
	pts, err := ReadLabBook(strings.NewReader(tsv))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[1].Steps != 200 || pts[1].KNN1 != 0.96 || pts[0].Flags != "--gamma 0.005" || pts[3].Split != "test" ||
		pts[2].PCA50KNN1 != 0.9756 || pts[1].PCA50KNN1 != 0 {
		t.Fatalf("parsed %+v", pts)
	}
	path := filepath.Join(t.TempDir(), "curves.png")
	for _, x := range []LabAxis{AxisMinutes, AxisUpdates} {
		if err := LabCurvesPNG(path, pts, "val", "MNIST", x); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(path); err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("no PNG written (%d bytes, %v)", len(b), err)
	}
	if err := LabCurvesPNG(path, pts, "nope", "MNIST", AxisMinutes); err == nil {
		t.Error("a split with no points was plotted")
	}
	if err := LabCurvesPNG(path, pts, "val", "MNIST", "hours"); err == nil {
		t.Error("an unknown axis was accepted")
	}
	for _, bad := range []string{"a\t5\t100\t0.95\n", "a\tfive\t100\t0.95\t0.97\tval\t\n", "a\t5\t100\t0.95\t0.97\tval\t\tPCA\n"} {
		if _, err := ReadLabBook(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: err = %v, want one naming line 1", bad, err)
		}
	}
}
