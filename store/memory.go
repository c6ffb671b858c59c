package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	lru "github.com/hashicorp/golang-lru/v2"
)

// MemoryPosteriors is an in-process LRU of posteriors.
type MemoryPosteriors struct {
	cache   *lru.Cache[string, *encoder.Result]
	metrics *Metrics
}

// NewMemoryPosteriors returns an LRU holding up to size posteriors (size ≥ 1).
func NewMemoryPosteriors(size int, m *Metrics) *MemoryPosteriors {
	c, err := lru.New[string, *encoder.Result](max(size, 1))
	if err != nil {
		panic(err) // only for size < 1
	}
	return &MemoryPosteriors{cache: c, metrics: m}
}

// Put stores copies of the results.
func (s *MemoryPosteriors) Put(_ context.Context, rs []encoder.Result) error {
	for i := range rs {
		r := rs[i]
		s.cache.Add(r.ID, &r)
	}
	return nil
}

// Get returns the posterior under id, or ErrNotFound.
func (s *MemoryPosteriors) Get(_ context.Context, id string) (*encoder.Result, error) {
	if r, ok := s.cache.Get(id); ok {
		s.metrics.lookup("near_hit")
		return r, nil
	}
	s.metrics.lookup("miss")
	return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
}

// Len is the number of posteriors held.
func (s *MemoryPosteriors) Len() int { return s.cache.Len() }

// MemoryItems adds items to the index and keeps their images in memory, and
// nowhere else: they are lost when the process stops.
type MemoryItems struct {
	ix     *index.Index
	base   int
	mu     sync.Mutex
	images images
}

// NewMemoryItems adds to ix, whose present items are the reference set.
func NewMemoryItems(ix *index.Index) *MemoryItems { return &MemoryItems{ix: ix, base: ix.Len()} }

// Append adds the items to the index.
func (s *MemoryItems) Append(_ context.Context, b Batch) (int, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	s.mu.Lock() // ids and images in the same order
	defer s.mu.Unlock()
	first, err := s.ix.Add(b.Vecs, b.Labels)
	if err == nil {
		s.images.add(first-s.base, b)
	}
	return first, err
}

// Base is the index id of the first added item.
func (s *MemoryItems) Base() int { return s.base }

// Pixels is added item id's image, if it was added with one.
func (s *MemoryItems) Pixels(id int) ([]uint8, bool) { return s.images.get(id - s.base) }

// Tags is added item id's tags.
func (s *MemoryItems) Tags(id int) []string { return s.images.tagsOf(id - s.base) }

// Delete removes item id from the index.
func (s *MemoryItems) Delete(_ context.Context, id int) error { return s.ix.Delete(id) }
