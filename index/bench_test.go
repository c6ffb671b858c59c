package index

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

const benchN, benchDim = 60000, 128 // MNIST's training set × the latent size

var bench = sync.OnceValues(func() (*Index, []float32) {
	r := rand.New(rand.NewPCG(7, 7))
	vecs, labels := randomData(r, benchN, benchDim, false)
	ix := New(benchDim, "bench")
	if _, err := ix.Add(vecs, labels); err != nil {
		panic(err)
	}
	return ix, vecs
})

// copyTime measures one copy of the benchN×benchDim float32 matrix
// (30.7 MB) with the built-in copy: the memory-speed reference.
func copyTime(src []float32) time.Duration {
	dst := make([]float32, len(src))
	best := time.Duration(1 << 62)
	for range 20 {
		t0 := time.Now()
		copy(dst, src)
		best = min(best, time.Since(t0))
	}
	return best
}

// BenchmarkSearch reports ms/query for batches of 1, 64 and 10,000 queries
// over 60,000 × 128 items, and x_copy: the time per batch divided by one
// copy of the 30.7 MB item matrix measured in the same run (best of 20).
func BenchmarkSearch(b *testing.B) {
	ix, vecs := bench()
	b.Run("copy=30.7MB", func(b *testing.B) {
		dst := make([]float32, len(vecs))
		b.SetBytes(int64(4 * len(vecs)))
		for b.Loop() {
			copy(dst, vecs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/copy")
	})
	r := rand.New(rand.NewPCG(8, 8))
	for _, nq := range []int{1, 64, 10000} {
		qs, _ := randomData(r, nq, benchDim, false)
		b.Run(fmt.Sprintf("batch=%d", nq), func(b *testing.B) {
			ref := copyTime(vecs)
			b.ResetTimer()
			for b.Loop() {
				if _, err := ix.SearchBatch(qs, 1); err != nil {
					b.Fatal(err)
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(per.Nanoseconds())/float64(nq)/1e6, "ms/query")
			b.ReportMetric(float64(per)/float64(ref), "x_copy")
			b.ReportMetric(float64(ref.Nanoseconds())/1e6, "ms/copy")
			b.ReportMetric(2*float64(nq)*benchN*benchDim/per.Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAdd measures adding the 60,000 vectors.
func BenchmarkAdd(b *testing.B) {
	_, vecs := bench()
	labels := make([]int, benchN)
	for b.Loop() {
		ix := New(benchDim, "bench")
		if _, err := ix.Add(vecs, labels); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSharedSearch: 32 goroutines each searching one query at a time
// (as a server's requests do), through SearchBatch (single queries share
// scans) and through Search (each its own scan): ms/query of each, and
// their ratio.
func BenchmarkSharedSearch(b *testing.B) {
	ix, _ := bench()
	r := rand.New(rand.NewPCG(9, 9))
	const clients, each = 32, 8
	qs, _ := randomData(r, clients*each, benchDim, false)
	run := func(search func(q []float32) error) time.Duration {
		var wg sync.WaitGroup
		t0 := time.Now()
		for c := range clients {
			wg.Go(func() {
				for j := range each {
					i := c*each + j
					if err := search(qs[i*benchDim : (i+1)*benchDim]); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t0)
	}
	var shared, alone time.Duration
	for b.Loop() {
		shared += run(func(q []float32) error { _, err := ix.SearchBatch(q, 1); return err })
		alone += run(func(q []float32) error { _, err := ix.Search(q, 1); return err })
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*clients*each) / 1e6 }
	b.ReportMetric(per(shared), "shared_ms/query")
	b.ReportMetric(per(alone), "alone_ms/query")
	b.ReportMetric(float64(alone)/float64(shared), "speedup")
}
