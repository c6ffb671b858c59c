package index

import (
	"context"
	"fmt"
	"math"
)

// Delete removes item id from every later search: its slot's norm becomes
// +Inf, as an unused slot's, so no kernel ranks it. Its id is never reused
// and its vector and label stay readable (Vector, Label) for snapshots and
// logs; Deleted reports it. Deleting a deleted item does nothing.
func (ix *Index) Delete(id int) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	old := ix.cur.Load()
	if id < 0 || id >= old.n {
		return fmt.Errorf("%w: %d (index holds %d)", ErrID, id, old.n)
	}
	c, j := old.item(id)
	if c.gone[j/64]&(1<<(j%64)) != 0 {
		return nil
	}
	// A published chunk is never written: the new state gets a copy.
	c = c.clone()
	c.gone[j/64] |= 1 << (j % 64)
	c.norms[j] = float32(math.Inf(1))
	chunks := append([]*chunk(nil), old.chunks...)
	chunks[id/chunkItems] = c
	ix.cur.Store(&state{n: old.n, chunks: chunks, deleted: old.deleted + 1})
	return nil
}

// Deleted reports whether item id was deleted (false for an id the index
// does not hold).
func (ix *Index) Deleted(id int) bool {
	s := ix.cur.Load()
	if id < 0 || id >= s.n {
		return false
	}
	c, j := s.item(id)
	return c.gone[j/64]&(1<<(j%64)) != 0
}

// Live is the number of items not deleted.
func (ix *Index) Live() int {
	s := ix.cur.Load()
	return s.n - s.deleted
}

// Filter is a set of item ids a search may return, one bit per id (bit
// id%64 of word id/64); ids beyond it are excluded. NewFilter makes one.
type Filter []uint64

// NewFilter is the set of ids in [0, n) for which keep is true.
func NewFilter(n int, keep func(id int) bool) Filter {
	f := make(Filter, (n+63)/64)
	for id := range n {
		if keep(id) {
			f[id/64] |= 1 << (id % 64)
		}
	}
	return f
}

// has reports whether id is in the set.
func (f Filter) has(id int) bool {
	return id/64 < len(f) && f[id/64]&(1<<(id%64)) != 0
}

// SearchFilter is Search among the items of f only.
func (ix *Index) SearchFilter(q []float32, k int, f Filter) ([]Neighbor, error) {
	s, err := ix.searchable(q, k)
	if err != nil {
		return nil, err
	}
	t := newTopk(k + Rerank)
	out := make([]float32, chunkItems)
	inf := float32(math.Inf(1))
	for ci, c := range s.chunks {
		base := ci * chunkItems
		// Skip a chunk the filter excludes whole.
		w0 := base / 64
		if w0 >= len(f) {
			break
		}
		var any uint64
		for _, w := range f[w0:min(w0+chunkItems/64, len(f))] {
			any |= w
		}
		if any == 0 {
			continue
		}
		kernel1(q, c.vecs, c.norms, out, ix.dim, chunkPanel)
		for j := range out {
			if !f.has(base + j) {
				out[j] = inf
			}
		}
		t.scan(out, base)
	}
	if len(t.id) == 0 {
		return []Neighbor{}, nil
	}
	return ix.rerank(s, q, t.id, k, make([]float32, ix.dim)), nil
}

// ClassifyFilterContext is ClassifyBatchContext among the items of f only,
// one query at a time; it stops with ctx's error once ctx ends.
func (ix *Index) ClassifyFilterContext(ctx context.Context, qs []float32, k int, f Filter) ([]Result, error) {
	if err := ix.checkQuery(qs, k); err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	res := make([]Result, 0, len(qs)/ix.dim)
	for ; len(qs) > 0; qs = qs[ix.dim:] {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ns, err := ix.SearchFilter(qs[:ix.dim], k, f)
		if err != nil {
			return nil, fmt.Errorf("classify: %w", err)
		}
		l, v := Vote(ns)
		res = append(res, Result{Label: l, Votes: v, Neighbors: ns})
	}
	return res, nil
}
