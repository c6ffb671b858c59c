package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAUROCHandComputed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pos, neg []float64
		want     float64
	}{
		{"separated", []float64{3, 4}, []float64{1, 2}, 1},
		{"reversed", []float64{1, 2}, []float64{3, 4}, 0},
		{"all tied", []float64{1, 1}, []float64{1, 1, 1}, 0.5},
		// pairs (p, n): (2,1)=1 (2,2)=½ (2,3)=0 (4,1)=1 (4,2)=1 (4,3)=1 → 4.5/6
		{"one tie", []float64{2, 4}, []float64{1, 2, 3}, 4.5 / 6},
		// p=1: 1 + ½ + 0; each p=3: 1 + 1 + ½
		{"ties both sides", []float64{1, 3, 3}, []float64{0, 1, 3}, (1.5 + 2.5 + 2.5) / 9},
		{"interleaved", []float64{1, 3, 5}, []float64{2, 4, 6}, 3.0 / 9},
		{"infinities", []float64{math.Inf(1)}, []float64{math.Inf(-1), math.Inf(1)}, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AUROC(tc.pos, tc.neg)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("AUROC = %v, want %v", got, tc.want)
			}
		})
	}
}

// The rank formula must agree with counting all pairs.
func TestAUROCMatchesPairCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pos, neg := make([]float64, 57), make([]float64, 43)
	for i := range pos {
		pos[i] = float64(rng.IntN(10)) // many ties
	}
	for i := range neg {
		neg[i] = float64(rng.IntN(8))
	}
	var u float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				u++
			case p == n:
				u += 0.5
			}
		}
	}
	got, err := AUROC(pos, neg)
	if err != nil {
		t.Fatal(err)
	}
	if want := u / float64(len(pos)*len(neg)); math.Abs(got-want) > 1e-12 {
		t.Errorf("AUROC = %v, pair count gives %v", got, want)
	}
}

func TestAUROCRejects(t *testing.T) {
	if _, err := AUROC(nil, []float64{1}); err == nil {
		t.Error("no positives accepted")
	}
	if _, err := AUROC([]float64{math.NaN()}, []float64{1}); err == nil {
		t.Error("NaN accepted")
	}
}
