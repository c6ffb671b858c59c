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

// Search returns the k nearest items to q (fewer if the index holds fewer),
// nearest first. It runs on the calling goroutine.
func (ix *Index) Search(q []float32, k int) ([]Neighbor, error) {
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
func (ix *Index) SearchBatch(qs []float32, k int) ([][]Neighbor, error) {
	if err := ix.checkQuery(qs, k); err != nil {
		return nil, err
	}
	s := ix.cur.Load()
	if s.n == 0 {
		return nil, ErrEmpty
	}
	dim := ix.dim
	nq := len(qs) / dim
	res := make([][]Neighbor, nq)
	if nq == 1 {
		r, err := ix.Search(qs, k)
		res[0] = r
		return res, err
	}

	// Pack queries into tiles: tile t holds queries 6t…6t+5, dimension-major.
	ntiles := (nq + tileQueries - 1) / tileQueries
	packed := make([]float32, ntiles*tileQueries*dim)
	for qi := 0; qi < nq; qi++ {
		tile := packed[(qi/tileQueries)*tileQueries*dim:]
		for p, x := range qs[qi*dim : (qi+1)*dim] {
			tile[p*tileQueries+qi%tileQueries] = x
		}
	}

	// Work items: (query block, range of chunks). Split the chunks only when
	// there are fewer query blocks than goroutines.
	workers := runtime.GOMAXPROCS(0)
	nblocks := (ntiles + blockTiles - 1) / blockTiles
	nsplit := 1
	if nblocks < workers {
		nsplit = min((workers+nblocks-1)/nblocks, len(s.chunks))
	}
	ntasks := nblocks * nsplit
	workers = min(workers, ntasks)
	cands := make([]topk, nq*nsplit) // cands[qi*nsplit+split]
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, tileQueries*chunkItems)
			thr := make([]float32, tileQueries)
			flags := make([]bool, chunkPanel/segPanels*tileQueries)
			for {
				task := int(next.Add(1)) - 1
				if task >= ntasks {
					return
				}
				b, sp := task/nsplit, task%nsplit
				t0, t1 := b*blockTiles, min((b+1)*blockTiles, ntiles)
				c0, c1 := sp*len(s.chunks)/nsplit, (sp+1)*len(s.chunks)/nsplit
				for qi := t0 * tileQueries; qi < min(t1*tileQueries, nq); qi++ {
					cands[qi*nsplit+sp] = newTopk(k + Rerank)
				}
				for ci := c0; ci < c1; ci++ {
					c := s.chunks[ci]
					for t := t0; t < t1; t++ {
						for r := range thr {
							if qi := t*tileQueries + r; qi < nq {
								thr[r] = cands[qi*nsplit+sp].worst()
							}
						}
						kernel6(packed[t*tileQueries*dim:(t+1)*tileQueries*dim], c.vecs, c.norms, out, dim, chunkPanel, chunkItems, thr, flags)
						for r := 0; r < tileQueries; r++ {
							qi := t*tileQueries + r
							if qi >= nq {
								break
							}
							tk := &cands[qi*nsplit+sp]
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
		}()
	}
	wg.Wait()

	// Merge the splits and re-rank each query, in parallel.
	var wg2 sync.WaitGroup
	per := (nq + workers - 1) / workers
	for w := 0; w < workers; w++ {
		wg2.Add(1)
		go func(q0, q1 int) {
			defer wg2.Done()
			buf := make([]float32, dim)
			var ids []int32
			for qi := q0; qi < q1; qi++ {
				ids = ids[:0]
				for sp := 0; sp < nsplit; sp++ {
					ids = append(ids, cands[qi*nsplit+sp].id...)
				}
				res[qi] = ix.rerank(s, qs[qi*dim:(qi+1)*dim], ids, k, buf)
			}
		}(min(w*per, nq), min((w+1)*per, nq))
	}
	wg2.Wait()
	return res, nil
}
