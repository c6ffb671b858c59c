package index

import (
	"context"
	"math/rand/v2"
	"testing"
)

// subsetBrute is bruteForce among the ids for which keep is true, with the
// index's ids.
func subsetBrute(vecs []float32, labels []int, dim int, q []float32, k int, keep func(int) bool) []Neighbor {
	var sv []float32
	var sl, ids []int
	for i := range labels {
		if keep(i) {
			sv = append(sv, vecs[i*dim:(i+1)*dim]...)
			sl = append(sl, labels[i])
			ids = append(ids, i)
		}
	}
	got := bruteForce(sv, sl, dim, q, k)
	for i := range got {
		got[i].ID = ids[got[i].ID]
	}
	return got
}

func TestDeleteAndFilter(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, dim, k = 1500, 12, 9
	vecs, labels := randomData(r, n, dim, false)
	ix := New(dim, "d")
	if _, err := ix.Add(vecs, labels); err != nil {
		t.Fatal(err)
	}
	dead := func(id int) bool { return id%3 == 1 || (id >= 256 && id < 512) } // a whole chunk too
	for id := range n {
		if dead(id) {
			if err := ix.Delete(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ix.Delete(1); err != nil { // again: nothing happens
		t.Fatal(err)
	}
	if err := ix.Delete(n); err == nil {
		t.Fatal("deleting an id the index does not hold succeeded")
	}
	want := 0
	for id := range n {
		if !dead(id) {
			want++
		}
		if ix.Deleted(id) != dead(id) {
			t.Fatalf("Deleted(%d) = %v", id, ix.Deleted(id))
		}
	}
	if ix.Live() != want || ix.Len() != n {
		t.Fatalf("Live %d Len %d, want %d and %d", ix.Live(), ix.Len(), want, n)
	}
	// Items added after deletes land in a partly deleted chunk and stay
	// searchable; the deleted ones stay deleted.
	more, moreLabels := randomData(r, 40, dim, false)
	if _, err := ix.Add(more, moreLabels); err != nil {
		t.Fatal(err)
	}
	vecs, labels = append(vecs, more...), append(labels, moreLabels...)
	live := func(id int) bool { return id >= n || !dead(id) }
	even := func(id int) bool { return live(id) && labels[id]%2 == 0 }
	f := NewFilter(len(labels), func(id int) bool { return labels[id]%2 == 0 })

	qs := make([]float32, 0, 20*dim)
	for range 20 {
		for range dim {
			qs = append(qs, float32(r.NormFloat64()))
		}
	}
	batch, err := ix.SearchBatch(qs, k)
	if err != nil {
		t.Fatal(err)
	}
	filtered, err := ix.ClassifyFilterContext(context.Background(), qs, k, f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		q := qs[i*dim : (i+1)*dim]
		one, err := ix.Search(q, k)
		if err != nil {
			t.Fatal(err)
		}
		sameNeighbors(t, "Search after deletes", one, subsetBrute(vecs, labels, dim, q, k, live))
		sameNeighbors(t, "SearchBatch after deletes", batch[i], subsetBrute(vecs, labels, dim, q, k, live))
		sameNeighbors(t, "filtered", filtered[i].Neighbors, subsetBrute(vecs, labels, dim, q, k, even))
		for _, nb := range filtered[i].Neighbors {
			if nb.Label%2 != 0 || !live(nb.ID) {
				t.Fatalf("filtered search returned item %d (label %d, deleted %v)", nb.ID, nb.Label, !live(nb.ID))
			}
		}
	}
	// A filter that keeps nothing finds nothing, without error.
	none, err := ix.SearchFilter(qs[:dim], k, NewFilter(len(labels), func(int) bool { return false }))
	if err != nil || len(none) != 0 {
		t.Fatalf("empty filter: %v, %v", none, err)
	}
}
