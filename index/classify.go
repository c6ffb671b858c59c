package index

import (
	"context"
	"fmt"
)

// Result is a k-NN classification.
type Result struct {
	// Label is the majority label among the labelled neighbours; a tie goes
	// to the label with the smaller summed distance, then the smaller label.
	// It is -1 when no neighbour is labelled.
	Label int
	// Votes is how many neighbours carry Label.
	Votes int
	// Neighbors are the k nearest items, nearest first.
	Neighbors []Neighbor
}

// Vote returns the majority label of ns, as Result describes (unlabelled
// neighbours do not vote), and its number of votes.
func Vote(ns []Neighbor) (label, votes int) {
	type tally struct {
		n   int
		sum float64
	}
	t := map[int]*tally{}
	label = -1
	for _, nb := range ns {
		if nb.Label < 0 {
			continue
		}
		v := t[nb.Label]
		if v == nil {
			v = &tally{}
			t[nb.Label] = v
		}
		v.n++
		v.sum += float64(nb.Distance)
	}
	var best *tally
	for l, v := range t {
		if best == nil || v.n > best.n || (v.n == best.n && (v.sum < best.sum || (v.sum == best.sum && l < label))) {
			best, label = v, l
		}
	}
	if best == nil {
		return -1, 0
	}
	return label, best.n
}

// Classify finds the k nearest items to q and takes their majority vote.
func (ix *Index) Classify(q []float32, k int) (Result, error) {
	ns, err := ix.Search(q, k)
	if err != nil {
		return Result{}, err
	}
	l, v := Vote(ns)
	return Result{Label: l, Votes: v, Neighbors: ns}, nil
}

// ClassifyBatch classifies every query in qs (row after row) as Classify
// does, searching them as SearchBatch does.
func (ix *Index) ClassifyBatch(qs []float32, k int) ([]Result, error) {
	all, err := ix.SearchBatch(qs, k)
	if err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	res := make([]Result, len(all))
	for i, ns := range all {
		l, v := Vote(ns)
		res[i] = Result{Label: l, Votes: v, Neighbors: ns}
	}
	return res, nil
}

// classifySlice is how many queries ClassifyBatchContext searches between
// looks at its context: a few of the search kernel's panels.
const classifySlice = 48

// ClassifyBatchContext is ClassifyBatch, searching a few queries at a time
// and stopping with ctx's error once ctx ends.
func (ix *Index) ClassifyBatchContext(ctx context.Context, qs []float32, k int) ([]Result, error) {
	var res []Result
	for step := classifySlice * ix.dim; len(qs) > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(step, len(qs))
		r, err := ix.ClassifyBatch(qs[:n], k)
		if err != nil {
			return nil, err
		}
		res, qs = append(res, r...), qs[n:]
	}
	return res, nil
}
