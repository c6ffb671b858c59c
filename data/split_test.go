package data

import "testing"

func TestValidationSplit(t *testing.T) {
	s := &Set{Name: "toy", Split: "train", N: 5, C: 1, H: 1, W: 2,
		Images: []float32{0, 0, 1, 1, 2, 2, 3, 3, 4, 4}, Pixels: []uint8{0, 0, 1, 1, 2, 2, 3, 3, 4, 4},
		Labels: []int{0, 1, 0, 1, 0}, Classes: []string{"a", "b"}}
	fit, val, err := ValidationSplit(s, 2)
	if err != nil {
		t.Fatal(err)
	}
	if fit.N != 3 || val.N != 2 || len(fit.Images) != 6 || len(val.Pixels) != 4 || val.Labels[0] != 1 || val.Images[0] != 3 {
		t.Fatalf("fit %d images, val %d images starting at %v (label %d)", fit.N, val.N, val.Images[0], val.Labels[0])
	}
	if val.Split != "train[3:5]" || fit.Split != "train[0:3]" {
		t.Errorf("split names %q, %q", fit.Split, val.Split)
	}
	// The held-out images must not be reachable through the training part.
	if cap(fit.Images) != 6 || cap(fit.Labels) != 3 {
		t.Errorf("the training part can be resliced into the held-out images")
	}
	for _, n := range []int{0, 5, -1} {
		if _, _, err := ValidationSplit(s, n); err == nil {
			t.Errorf("a validation split of %d from 5 images was accepted", n)
		}
	}
}
