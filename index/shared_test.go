package index

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestSharedScans: single queries of SearchBatch from many goroutines at
// once, with two k mixed (so waiting queries of different k share the
// hand-off), answer what Search answers each alone; an invalid query fails
// alone, and an empty index answers ErrEmpty.
func TestSharedScans(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const n, dim, clients, each = 5000, 32, 16, 40
	for _, ties := range []bool{false, true} {
		vecs, labels := randomData(r, n, dim, ties)
		ix := New(dim, "t")
		if _, err := ix.Add(vecs, labels); err != nil {
			t.Fatal(err)
		}
		qs, _ := randomData(r, clients*each, dim, ties)
		got := make([][]Neighbor, clients*each)
		errs := make([]error, clients*each)
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for j := range each {
					i := c*each + j
					found, err := ix.SearchBatch(qs[i*dim:(i+1)*dim], 1+2*(i%2))
					if err == nil {
						got[i] = found[0]
					}
					errs[i] = err
				}
			})
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			want, err := ix.Search(qs[i*dim:(i+1)*dim], 1+2*(i%2))
			if err != nil {
				t.Fatal(err)
			}
			sameNeighbors(t, "shared query", got[i], want)
		}
		// The last hand-off's goroutine ends soon after its answers.
		for try := 0; ; try++ {
			ix.share.mu.Lock()
			running, waiting := ix.share.running, len(ix.share.waiting)
			ix.share.mu.Unlock()
			if !running && waiting == 0 {
				break
			}
			if try == 1000 {
				t.Fatalf("after the queries: running %v, %d waiting", running, waiting)
			}
			time.Sleep(time.Millisecond)
		}
	}

	ix := New(4, "t")
	if _, err := ix.SearchBatch([]float32{0, 0, 0, 0}, 1); err != ErrEmpty {
		t.Errorf("an empty index: %v", err)
	}
	if _, err := ix.Add([]float32{1, 2, 3, 4}, []int{1}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			q := []float32{1, 2, 3, float32(i)}
			if i%2 == 1 {
				q[0] = float32(math.NaN())
			}
			_, err := ix.SearchBatch(q, 1)
			if (err != nil) != (i%2 == 1) {
				t.Errorf("query %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}
