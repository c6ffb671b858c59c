package encoder

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

// TestBatcherWorkersMatchDirectRuns: concurrent requests through a batcher
// with several workers get the posteriors that direct runs give, each its
// own, whatever batch it landed in.
func TestBatcherWorkersMatchDirectRuns(t *testing.T) {
	m, err := Load("../models/mnist-cebm.onnx", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := testDigits(t)
	const n = 40
	want, err := m.Run(s.Images[:n*784], n)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatcher(m, BatchOptions{MaxBatch: 8, MaxWait: time.Millisecond, Workers: 3})
	defer b.Close()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.Encode(context.Background(), []Input{{X: s.Image(i)}})
			if err != nil {
				errs <- err
				return
			}
			if got, w := res[0].Energy, float64(want.Energy[i]); math.Abs(got-w) > 1e-4*math.Max(1, math.Abs(w)) {
				t.Errorf("image %d: energy %v through the batcher, %v directly", i, got, w)
			}
			if res[0].ID != ContentID(m.Digest, s.Image(i)) {
				t.Errorf("image %d: wrong id", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
