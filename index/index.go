// Package index is an exact nearest-neighbour index over posterior means.
//
// It holds float32 vectors of one dimension with an integer label each
// (-1 for unlabelled) and answers exact k-nearest-neighbour queries by
// squared Euclidean distance, for one query or for a batch. Ids are the
// insertion order and never change. Items may be added while queries run;
// a query sees the index as it was when the query started.
//
// Distances are found in two steps. A float32 kernel scores every item as
// ‖x‖² − 2q·x (the ‖q‖² term is the same for every item), in register-blocked
// tiles of queries × items for batches as FAISS does; it keeps the best
// k+Rerank candidates, which are then re-scored exactly, in float64, against
// the stored vectors. The float32 cancellation in ‖q‖² − 2q·x + ‖x‖² thus
// never decides between near ties. Ties in exact distance go to the lowest id.
//
// On amd64 the kernels are hand-written assembly (kernel_amd64.s): AVX2+FMA,
// and for batches AVX-512 where the CPU has it, which also tests each
// 32-item segment against the current k-th best so the Go side skips most
// scores (CPU features from golang.org/x/sys/cpu); elsewhere, and when built
// with -tags purego, they are plain Go with the same results up to float32
// rounding. The batch kernel runs at the FMA peak of the core (about 140
// GFLOP/s per core on the project's Xeons).
package index

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

const (
	panelItems = 16                      // items per panel: one kernel tile is 16 items wide
	chunkItems = 256                     // items per chunk (16 panels)
	chunkPanel = chunkItems / panelItems // panels per chunk

	// Rerank is how many candidates beyond k the float32 pass keeps for the
	// exact float64 re-ranking.
	Rerank = 16
)

// Errors returned for invalid input; wrapped with details.
var (
	ErrDim       = errors.New("index: dimension mismatch")
	ErrK         = errors.New("index: k must be at least 1")
	ErrNotFinite = errors.New("index: vector is not finite")
	ErrLabel     = errors.New("index: label out of range")
	ErrID        = errors.New("index: no such id")
	ErrEmpty     = errors.New("index: index is empty")
)

// Neighbor is one search result.
type Neighbor struct {
	ID       int     // insertion order, from 0
	Label    int     // -1 if unlabelled
	Distance float32 // squared Euclidean distance, computed in float64
}

// chunk holds chunkItems items. Vectors are stored in panels of panelItems
// items, each panel dimension-major: element p of the panel's item j is at
// panel[p*panelItems+j]. A published chunk is never written again; unused
// slots have zero vectors and norm +Inf, so they never rank.
type chunk struct {
	vecs   []float32 // chunkPanel panels of dim*panelItems floats
	norms  []float32 // ‖x‖² in float32, +Inf for unused and deleted slots
	labels []int32
	gone   [chunkItems / 64]uint64 // deleted slots, one bit each
}

// state is an immutable view of the index; Add publishes a new one.
type state struct {
	n       int
	chunks  []*chunk
	deleted int // items deleted
}

// Index is an exact k-NN index. It is safe for concurrent use: any number
// of queries may run while Add is called.
type Index struct {
	dim    int
	digest string
	mu     sync.Mutex // serialises writers
	cur    atomic.Pointer[state]
	share  sharer // concurrent single queries of SearchBatch (shared.go)
}

// New returns an empty index of vectors of dimension dim (dim ≥ 1), built
// with the model whose digest is modelDigest (stored in snapshots and
// checked by Load).
func New(dim int, modelDigest string) *Index {
	if dim < 1 {
		panic(fmt.Sprintf("index.New: dim %d < 1", dim))
	}
	ix := &Index{dim: dim, digest: modelDigest}
	ix.cur.Store(&state{})
	return ix
}

// Dim returns the vector dimension.
func (ix *Index) Dim() int { return ix.dim }

// ModelDigest returns the digest of the model the vectors came from.
func (ix *Index) ModelDigest() string { return ix.digest }

// Len returns the number of items.
func (ix *Index) Len() int { return ix.cur.Load().n }

func (ix *Index) newChunk() *chunk {
	c := &chunk{
		vecs:   make([]float32, chunkItems*ix.dim),
		norms:  make([]float32, chunkItems),
		labels: make([]int32, chunkItems),
	}
	inf := float32(math.Inf(1))
	for i := range c.norms {
		c.norms[i] = inf
		c.labels[i] = -1
	}
	return c
}

func (c *chunk) clone() *chunk {
	return &chunk{
		vecs:   append([]float32(nil), c.vecs...),
		norms:  append([]float32(nil), c.norms...),
		labels: append([]int32(nil), c.labels...),
		gone:   c.gone,
	}
}

// set stores item slot j (0 ≤ j < chunkItems) of c.
func (c *chunk) set(dim, j int, v []float32, norm float32, label int32) {
	panel := c.vecs[(j/panelItems)*dim*panelItems:]
	lane := j % panelItems
	for p, x := range v {
		panel[p*panelItems+lane] = x
	}
	c.norms[j] = norm
	c.labels[j] = label
}

// get copies item slot j of c into dst.
func (c *chunk) get(dim, j int, dst []float32) {
	panel := c.vecs[(j/panelItems)*dim*panelItems:]
	lane := j % panelItems
	for p := range dst[:dim] {
		dst[p] = panel[p*panelItems+lane]
	}
}

// checkVectors reports an error if vs (a whole number of rows of dim) holds
// a NaN or Inf, or a row whose squared norm overflows float32.
func checkVectors(vs []float32, dim int, what string) error {
	if len(vs)%dim != 0 {
		return fmt.Errorf("%w: %s has %d values, not a multiple of dim %d", ErrDim, what, len(vs), dim)
	}
	for r := 0; r < len(vs)/dim; r++ {
		var s float64
		for _, x := range vs[r*dim : (r+1)*dim] {
			f := float64(x)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%w: %s row %d holds %v", ErrNotFinite, what, r, x)
			}
			s += f * f
		}
		if s > math.MaxFloat32/4 {
			return fmt.Errorf("%w: %s row %d has squared norm %g, too large for float32", ErrNotFinite, what, r, s)
		}
	}
	return nil
}

// Check reports the error Add would return for these items' values (not
// for the index's size), without adding them.
func (ix *Index) Check(vecs []float32, labels []int) error {
	dim := ix.dim
	if len(vecs) != len(labels)*dim {
		return fmt.Errorf("%w: %d values for %d labels of dim %d", ErrDim, len(vecs), len(labels), dim)
	}
	if err := checkVectors(vecs, dim, "vector"); err != nil {
		return err
	}
	for i, l := range labels {
		if l < -1 || l > math.MaxInt32 {
			return fmt.Errorf("%w: label %d of item %d", ErrLabel, l, i)
		}
	}
	return nil
}

// Add appends len(labels) vectors, given row after row in vecs, and returns
// the id of the first; the others follow in order. Labels are ≥ -1 (-1 for
// unlabelled). Nothing is added if any input is invalid.
func (ix *Index) Add(vecs []float32, labels []int) (firstID int, err error) {
	if err := ix.Check(vecs, labels); err != nil {
		return 0, err
	}
	dim := ix.dim
	ix.mu.Lock()
	defer ix.mu.Unlock()
	old := ix.cur.Load()
	if old.n+len(labels) > math.MaxInt32 {
		return 0, fmt.Errorf("index: too many items (%d + %d)", old.n, len(labels))
	}
	// Appending to old.chunks writes only beyond the length readers see.
	// The last chunk, if partly filled, is copied before it is written.
	chunks := old.chunks
	n := old.n
	if n%chunkItems != 0 && len(labels) > 0 {
		chunks = append(chunks[:len(chunks)-1:len(chunks)-1], chunks[len(chunks)-1].clone())
	}
	for i, l := range labels {
		j := n % chunkItems
		if j == 0 {
			chunks = append(chunks, ix.newChunk())
		}
		v := vecs[i*dim : (i+1)*dim]
		chunks[len(chunks)-1].set(dim, j, v, sqNorm32(v), int32(l))
		n++
	}
	ix.cur.Store(&state{n: n, chunks: chunks, deleted: old.deleted})
	return old.n, nil
}

// sqNorm32 is ‖v‖² rounded to float32.
func sqNorm32(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return float32(s)
}

func (s *state) item(id int) (*chunk, int) {
	return s.chunks[id/chunkItems], id % chunkItems
}

// Label returns the label of item id.
func (ix *Index) Label(id int) (int, error) {
	s := ix.cur.Load()
	if id < 0 || id >= s.n {
		return 0, fmt.Errorf("%w: %d (index holds %d)", ErrID, id, s.n)
	}
	c, j := s.item(id)
	return int(c.labels[j]), nil
}

// Vector returns a copy of the vector of item id.
func (ix *Index) Vector(id int) ([]float32, error) {
	s := ix.cur.Load()
	if id < 0 || id >= s.n {
		return nil, fmt.Errorf("%w: %d (index holds %d)", ErrID, id, s.n)
	}
	c, j := s.item(id)
	v := make([]float32, ix.dim)
	c.get(ix.dim, j, v)
	return v, nil
}
