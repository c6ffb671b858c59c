package store

import (
	"context"
	"fmt"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Memory is an in-process LRU of posteriors.
type Memory struct {
	cache   *lru.Cache[string, *encoder.Result]
	metrics *Metrics
}

// NewMemory returns an LRU holding up to size posteriors (size ≥ 1).
func NewMemory(size int, m *Metrics) *Memory {
	c, err := lru.New[string, *encoder.Result](max(size, 1))
	if err != nil {
		panic(err) // only for size < 1
	}
	return &Memory{cache: c, metrics: m}
}

// Put stores copies of the results.
func (s *Memory) Put(_ context.Context, rs []encoder.Result) error {
	for i := range rs {
		r := rs[i]
		s.cache.Add(r.ID, &r)
	}
	return nil
}

// Get returns the posterior under id, or ErrNotFound.
func (s *Memory) Get(_ context.Context, id string) (*encoder.Result, error) {
	if r, ok := s.cache.Get(id); ok {
		s.metrics.lookup("near_hit")
		return r, nil
	}
	s.metrics.lookup("miss")
	return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
}

// Len is the number of posteriors held.
func (s *Memory) Len() int { return s.cache.Len() }

// IndexOnly adds items to the index and nowhere else: they are lost when
// the process stops.
type IndexOnly struct{ Index *index.Index }

// Append adds the items to the index.
func (s IndexOnly) Append(_ context.Context, vecs []float32, labels []int) (int, error) {
	return s.Index.Add(vecs, labels)
}
