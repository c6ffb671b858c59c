package index

import (
	"fmt"
	"sync"
)

// Concurrent single queries share scans. A query that arrives while
// another single query is scanning the items does not start a scan of its
// own: it waits, with every other query that arrives meanwhile, and when
// the running scan ends its goroutine searches all of them as one batch
// (SearchBatch: one pass over the items per 96 queries, on every core). A
// server answering one image per request, each with its nearest item (the
// out-of-distribution distance), thus reads the 30 MB of a 60,000-item
// index once per batch instead of once per request; a query that finds no
// scan running is searched at once, as before.

// sharer holds the single queries waiting for the running scan to end.
type sharer struct {
	mu      sync.Mutex
	running bool
	waiting []*sharedQuery
}

// sharedQuery is one waiting query and, once done is closed, its answer.
type sharedQuery struct {
	q    []float32
	k    int
	res  []Neighbor
	err  error
	done chan struct{}
}

// searchShared is Search, sharing a scan with concurrent single queries.
func (ix *Index) searchShared(q []float32, k int) ([]Neighbor, error) {
	if _, err := ix.searchable(q, k); err != nil {
		return nil, err // the caller's own mistake fails it alone
	}
	sh := &ix.share
	sh.mu.Lock()
	if sh.running {
		w := &sharedQuery{q: q, k: k, done: make(chan struct{})}
		sh.waiting = append(sh.waiting, w)
		sh.mu.Unlock()
		<-w.done
		return w.res, w.err
	}
	sh.running = true
	sh.mu.Unlock()
	defer ix.handOff() // even if Search panics, for the next queries
	return ix.Search(q, k)
}

// handOff ends a scan: with queries waiting, a new goroutine searches them
// (and then whatever waits after them), so the scan's own caller is
// answered now; else the next query scans at once.
func (ix *Index) handOff() {
	sh := &ix.share
	sh.mu.Lock()
	batch := sh.waiting
	sh.waiting = nil
	if len(batch) == 0 {
		sh.running = false
		sh.mu.Unlock()
		return
	}
	sh.mu.Unlock()
	go func() {
		ix.searchWaiting(batch)
		ix.handOff()
	}()
}

// searchWaiting answers the waiting queries, one SearchBatch per k.
func (ix *Index) searchWaiting(batch []*sharedQuery) {
	for len(batch) > 0 {
		k := batch[0].k
		var same, rest []*sharedQuery
		qs := make([]float32, 0, len(batch)*ix.dim)
		for _, w := range batch {
			if w.k == k {
				same = append(same, w)
				qs = append(qs, w.q...)
			} else {
				rest = append(rest, w)
			}
		}
		found, err := ix.searchGroup(qs, k)
		for i, w := range same {
			if err != nil {
				w.err = err
			} else {
				w.res = found[i]
			}
			close(w.done)
		}
		batch = rest
	}
}

// searchGroup searches the queries of one k; a panic is its error, since
// no handler's recovery covers the hand-off's goroutine.
func (ix *Index) searchGroup(qs []float32, k int) (found [][]Neighbor, err error) {
	defer func() {
		if r := recover(); r != nil {
			found, err = nil, fmt.Errorf("index: shared search: %v", r)
		}
	}()
	if len(qs) == ix.dim {
		r, err := ix.Search(qs, k)
		return [][]Neighbor{r}, err
	}
	return ix.searchBatch(qs, k)
}
