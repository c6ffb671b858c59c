package eval

import (
	"fmt"
	"math"
	"sort"
)

// AUROC is the area under the ROC curve for telling positives from
// negatives by score (higher = more positive): the probability that a random
// positive scores above a random negative, ties counting one half (the
// Mann–Whitney U statistic divided by |pos|·|neg|). In OOD detection the
// in-distribution images are the positives.
func AUROC(pos, neg []float64) (float64, error) {
	if len(pos) == 0 || len(neg) == 0 {
		return 0, fmt.Errorf("eval: AUROC needs positives and negatives (%d, %d)", len(pos), len(neg))
	}
	type item struct {
		s   float64
		pos bool
	}
	all := make([]item, 0, len(pos)+len(neg))
	for _, s := range pos {
		all = append(all, item{s, true})
	}
	for _, s := range neg {
		all = append(all, item{s, false})
	}
	for _, it := range all {
		if math.IsNaN(it.s) {
			return 0, fmt.Errorf("eval: AUROC of a NaN score")
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].s < all[j].s })
	// U = Σ over positives of (#negatives below + ½·#negatives tied).
	var u float64
	negBelow := 0
	for i := 0; i < len(all); {
		j := i
		p, n := 0, 0
		for ; j < len(all) && all[j].s == all[i].s; j++ {
			if all[j].pos {
				p++
			} else {
				n++
			}
		}
		u += float64(p) * (float64(negBelow) + 0.5*float64(n))
		negBelow += n
		i = j
	}
	return u / (float64(len(pos)) * float64(len(neg))), nil
}
