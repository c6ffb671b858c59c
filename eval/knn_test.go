package eval

import (
	"math"
	"testing"
)

func TestScoreConfusionRowsSumToOne(t *testing.T) {
	truth := []int{0, 0, 1, 1, 1, 2}
	pred := []int{0, 1, 1, 1, 2, 2}
	r := Score(pred, truth, 3)
	if r.Correct != 4 || math.Abs(r.Accuracy-4.0/6) > 1e-12 {
		t.Fatalf("accuracy %v (%d correct)", r.Accuracy, r.Correct)
	}
	for i, row := range r.Confusion {
		var s float64
		for _, v := range row {
			s += v
		}
		if math.Abs(s-1) > 1e-12 {
			t.Errorf("row %d sums to %v", i, s)
		}
	}
	if r.Confusion[1][2] != 1.0/3 {
		t.Errorf("confusion[1][2] = %v, want 1/3", r.Confusion[1][2])
	}
}

func TestKNNNearest(t *testing.T) {
	ref := []float32{0, 0, 10, 10, 0, 10}
	refL := []int{0, 1, 2}
	test := []float32{1, 1, 9, 8, 1, 9, 0.2, 0.1}
	testL := []int{0, 1, 2, 1}
	r, err := KNN(t.Context(), ref, refL, test, testL, 2, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Correct != 3 {
		t.Fatalf("%d correct, want 3", r.Correct)
	}
}
