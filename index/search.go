package index

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// topk keeps the best (smallest distance, then lowest id) candidates seen,
// sorted, up to a fixed capacity.
type topk struct {
	d   []float32
	id  []int32
	max int
}

func newTopk(max int) topk {
	return topk{d: make([]float32, 0, max), id: make([]int32, 0, max), max: max}
}

// worst is the distance a candidate must beat to enter (+Inf while not full).
func (t *topk) worst() float32 {
	if len(t.d) < t.max {
		return float32(math.Inf(1))
	}
	return t.d[len(t.d)-1]
}

// push inserts (d, id) if it ranks among the best and returns the new worst.
// Ties in d keep the lower id.
func (t *topk) push(d float32, id int32) float32 {
	i := len(t.d)
	if i == t.max {
		if d > t.d[i-1] || (d == t.d[i-1] && id > t.id[i-1]) {
			return t.d[i-1]
		}
		i--
	} else {
		t.d = append(t.d, 0)
		t.id = append(t.id, 0)
	}
	for i > 0 && (t.d[i-1] > d || (t.d[i-1] == d && t.id[i-1] > id)) {
		t.d[i], t.id[i] = t.d[i-1], t.id[i-1]
		i--
	}
	t.d[i], t.id[i] = d, id
	return t.worst()
}

// scan pushes every score in row (items base, base+1, …) that beats the
// current worst.
func (t *topk) scan(row []float32, base int) {
	w := t.worst()
	for j, d := range row {
		if d < w {
			w = t.push(d, int32(base+j))
		}
	}
}

func (ix *Index) checkQuery(qs []float32, k int) error {
	if k < 1 {
		return fmt.Errorf("%w (got %d)", ErrK, k)
	}
	if len(qs) == 0 || len(qs)%ix.dim != 0 {
		return fmt.Errorf("%w: query has %d values, index dim is %d", ErrDim, len(qs), ix.dim)
	}
	return checkVectors(qs, ix.dim, "query")
}

// searchable checks a query of k neighbours and returns the index's
// current state to search.
func (ix *Index) searchable(q []float32, k int) (*state, error) {
	if err := ix.checkQuery(q, k); err != nil {
		return nil, err
	}
	if len(q) != ix.dim {
		return nil, fmt.Errorf("%w: query has %d values, index dim is %d", ErrDim, len(q), ix.dim)
	}
	s := ix.cur.Load()
	if s.n == 0 {
		return nil, ErrEmpty
	}
	return s, nil
}

// Search returns the k nearest items to q (fewer if the index holds fewer),
// nearest first. It runs on the calling goroutine.
func (ix *Index) Search(q []float32, k int) ([]Neighbor, error) {
	s, err := ix.searchable(q, k)
	if err != nil {
		return nil, err
	}
	t := newTopk(k + Rerank)
	out := make([]float32, chunkItems)
	for ci, c := range s.chunks {
		kernel1(q, c.vecs, c.norms, out, ix.dim, chunkPanel)
		t.scan(out, ci*chunkItems)
	}
	return ix.rerank(s, q, t.id, k, make([]float32, ix.dim)), nil
}

// rerank scores candidates exactly in float64 and returns the best k.
func (ix *Index) rerank(s *state, q []float32, cand []int32, k int, buf []float32) []Neighbor {
	type scored struct {
		d  float64
		id int
	}
	sc := make([]scored, len(cand))
	for i, id := range cand {
		c, j := s.item(int(id))
		c.get(ix.dim, j, buf)
		var d float64
		for p, x := range buf {
			e := float64(q[p]) - float64(x)
			d += e * e
		}
		sc[i] = scored{d, int(id)}
	}
	sort.Slice(sc, func(a, b int) bool {
		if sc[a].d != sc[b].d {
			return sc[a].d < sc[b].d
		}
		return sc[a].id < sc[b].id
	})
	if len(sc) > k {
		sc = sc[:k]
	}
	res := make([]Neighbor, len(sc))
	for i, x := range sc {
		c, j := s.item(x.id)
		res[i] = Neighbor{ID: x.id, Label: int(c.labels[j]), Distance: float32(x.d)}
	}
	return res
}

const (
	tileQueries = 6  // queries per kernel tile
	blockTiles  = 16 // tiles per query block (96 queries) sharing one pass over the items
)

// SearchBatch searches every query in qs (len(qs)/Dim() queries, row after
// row) and returns their results in order. It computes the scores as one
// blocked matrix product, in parallel on runtime.GOMAXPROCS(0) goroutines.
// A single query shares its scan with single queries of other goroutines
// that arrive while one runs (shared.go).
func (ix *Index) SearchBatch(qs []float32, k int) ([][]Neighbor, error) {
	if err := ix.checkQuery(qs, k); err != nil {
		return nil, err
	}
	if len(qs) == ix.dim {
		r, err := ix.searchShared(qs, k)
		if err != nil {
			return nil, err
		}
		return [][]Neighbor{r}, nil
	}
	return ix.searchBatch(qs, k)
}

// searchBatch is SearchBatch of checked queries, always as one batch.
func (ix *Index) searchBatch(qs []float32, k int) ([][]Neighbor, error) {
	s := ix.cur.Load()
	if s.n == 0 {
		return nil, ErrEmpty
	}
	b := newBatch(s, qs, ix.dim, k)
	b.score()
	return b.rerank(ix), nil
}

// batch is one SearchBatch: the queries packed into tiles, and the work
// items (a block of query tiles × a share of the chunks) with the
// candidates each keeps.
type batch struct {
	s              *state
	qs, packed     []float32
	dim, nq, k     int
	ntiles, nsplit int
	ntasks         int
	workers        int
	cands          []topk // cands[qi*nsplit+split]
}

func newBatch(s *state, qs []float32, dim, k int) *batch {
	b := &batch{s: s, qs: qs, dim: dim, nq: len(qs) / dim, k: k}
	// Pack queries into tiles: tile t holds queries 6t…6t+5, dimension-major.
	b.ntiles = (b.nq + tileQueries - 1) / tileQueries
	b.packed = make([]float32, b.ntiles*tileQueries*dim)
	for qi := 0; qi < b.nq; qi++ {
		tile := b.packed[(qi/tileQueries)*tileQueries*dim:]
		for p, x := range qs[qi*dim : (qi+1)*dim] {
			tile[p*tileQueries+qi%tileQueries] = x
		}
	}
	// Split the chunks only when there are fewer query blocks than
	// goroutines.
	workers := runtime.GOMAXPROCS(0)
	nblocks := (b.ntiles + blockTiles - 1) / blockTiles
	b.nsplit = 1
	if nblocks < workers {
		b.nsplit = min((workers+nblocks-1)/nblocks, len(s.chunks))
	}
	b.ntasks = nblocks * b.nsplit
	b.workers = min(workers, b.ntasks)
	b.cands = make([]topk, b.nq*b.nsplit)
	return b
}

// score runs every work item, on b.workers goroutines.
func (b *batch) score() {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range b.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, tileQueries*chunkItems)
			thr := make([]float32, tileQueries)
			flags := make([]bool, chunkPanel/segPanels*tileQueries)
			for task := int(next.Add(1)) - 1; task < b.ntasks; task = int(next.Add(1)) - 1 {
				b.task(task, out, thr, flags)
			}
		}()
	}
	wg.Wait()
}

// task scores query block task/nsplit against chunk share task%nsplit,
// keeping each query's best k+Rerank in its topk. out, thr and flags are
// the worker's buffers.
func (b *batch) task(task int, out, thr []float32, flags []bool) {
	blk, sp := task/b.nsplit, task%b.nsplit
	t0, t1 := blk*blockTiles, min((blk+1)*blockTiles, b.ntiles)
	c0, c1 := sp*len(b.s.chunks)/b.nsplit, (sp+1)*len(b.s.chunks)/b.nsplit
	for qi := t0 * tileQueries; qi < min(t1*tileQueries, b.nq); qi++ {
		b.cands[qi*b.nsplit+sp] = newTopk(b.k + Rerank)
	}
	dim := b.dim
	for ci := c0; ci < c1; ci++ {
		c := b.s.chunks[ci]
		for t := t0; t < t1; t++ {
			for r := range thr {
				if qi := t*tileQueries + r; qi < b.nq {
					thr[r] = b.cands[qi*b.nsplit+sp].worst()
				}
			}
			kernel6(b.packed[t*tileQueries*dim:(t+1)*tileQueries*dim], c.vecs, c.norms, out, dim, chunkPanel, chunkItems, thr, flags)
			for r := 0; r < tileQueries && t*tileQueries+r < b.nq; r++ {
				tk := &b.cands[(t*tileQueries+r)*b.nsplit+sp]
				row := out[r*chunkItems : (r+1)*chunkItems]
				for sg := 0; sg < chunkPanel/segPanels; sg++ {
					if flags[sg*tileQueries+r] {
						tk.scan(row[sg*segItems:(sg+1)*segItems], ci*chunkItems+sg*segItems)
					}
				}
			}
		}
	}
}

// rerank merges each query's candidates from the chunk shares and re-ranks
// them exactly, in parallel.
func (b *batch) rerank(ix *Index) [][]Neighbor {
	res := make([][]Neighbor, b.nq)
	var wg sync.WaitGroup
	per := (b.nq + b.workers - 1) / b.workers
	for w := 0; w < b.workers; w++ {
		wg.Add(1)
		go func(q0, q1 int) {
			defer wg.Done()
			buf := make([]float32, b.dim)
			var ids []int32
			for qi := q0; qi < q1; qi++ {
				ids = ids[:0]
				for sp := 0; sp < b.nsplit; sp++ {
					ids = append(ids, b.cands[qi*b.nsplit+sp].id...)
				}
				res[qi] = ix.rerank(b.s, b.qs[qi*b.dim:(qi+1)*b.dim], ids, b.k, buf)
			}
		}(min(w*per, b.nq), min((w+1)*per, b.nq))
	}
	wg.Wait()
	return res
}
