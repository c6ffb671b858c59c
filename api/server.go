// Package api is the HTTP service: it turns uploaded images into CEBM
// posteriors with package encoder, answers nearest-neighbour queries from
// package index, and reports errors as RFC 9457 problem details. Every
// route is registered in routes.go; openapi.yaml describes them.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/store"
	"golang.org/x/sync/semaphore"
)

// Config holds the service's limits and options.
type Config struct {
	APIKey         string        // bearer key required on all but health and metrics; "" for none
	MaxBodyBytes   int64         // request body limit
	MaxParts       int           // multipart parts, and images per request
	MaxPixels      int           // width × height of one image
	MaxSide        int           // longer side of one image, in pixels
	MaxAspect      float64       // longer side over shorter of one image
	DecodeBytes    int64         // memory that the images being decoded may take at once
	RequestTimeout time.Duration // whole-request deadline
	StoreSize      int           // posteriors kept in process for GET /posterior/{id}
	MaxK           int           // largest k of /classify-knn
	OODPercentile  float64       // energies above this percentile of the reference set's are flagged out of distribution
	WebDir         string        // where the set-up installed Swagger UI (WebDir/swagger-ui) for /docs; "": none
	Batch          encoder.BatchOptions

	// AllowedHosts are the host names (Host header, port aside) the server
	// answers to; empty: any. CORSOrigins are the origins (scheme://host
	// [:port]) whose pages may call the API; pages of any other origin may
	// not send it unsafe requests.
	AllowedHosts []string
	CORSOrigins  []string

	// Posteriors keeps computed posteriors; nil: an in-process LRU of
	// StoreSize. StoreMetrics are the stores' metrics, served at /metrics
	// (nil: new ones, which the LRU uses).
	Posteriors   store.Posteriors
	StoreMetrics *store.Metrics
}

// DefaultConfig returns the defaults of cebm serve.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:   16 << 20,
		MaxParts:       256,
		MaxPixels:      encoder.DefaultLimits.MaxPixels,
		MaxSide:        encoder.DefaultLimits.MaxSide,
		MaxAspect:      encoder.DefaultLimits.MaxAspect,
		DecodeBytes:    192 << 20,
		RequestTimeout: 30 * time.Second,
		StoreSize:      100000,
		MaxK:           100,
		OODPercentile:  99.5,
		Batch:          encoder.BatchOptions{MaxBatch: 64, MaxWait: time.Millisecond, Queue: 1024},
	}
}

// Server is the HTTP service. It answers /healthz at once; the model and
// the reference index arrive later through SetModel and SetIndex, and
// /readyz reports ready once both are there (and the stores answer).
type Server struct {
	cfg     Config
	log     *slog.Logger
	batcher atomic.Pointer[encoder.Batcher]
	state   atomic.Pointer[indexState]
	store   store.Posteriors
	metrics *metrics
	handler http.Handler
	// decoding holds the bytes the images being decoded take (their
	// encoder.Header.DecodeBytes); decodingBytes mirrors it for /metrics.
	decoding      *semaphore.Weighted
	decodingBytes atomic.Int64
}

// indexState is the index, the store that adds items to it, and what is
// known of the reference set behind its first items.
type indexState struct {
	ix    *index.Index
	items store.Items
	ref   Reference
}

// Reference is what the server shows of the reference set: the index's
// items below Items.Base().
type Reference struct {
	// Energies are the reference images' energies, sorted ascending: the
	// out-of-distribution score ranks an image's energy among them. nil:
	// no score.
	Energies []float32
	// Pixels returns reference image id as 8-bit values in the model's
	// input shape (C×H×W), for GET /index/items/{id}/image. nil: none.
	Pixels func(id int) []uint8
}

// New returns a server with no model or index yet. A nil log discards.
func New(cfg Config, log *slog.Logger) *Server {
	def := DefaultConfig()
	if cfg.StoreSize < 1 {
		cfg.StoreSize = def.StoreSize
	}
	if cfg.MaxK < 1 {
		cfg.MaxK = def.MaxK
	}
	if cfg.OODPercentile <= 0 || cfg.OODPercentile > 100 {
		cfg.OODPercentile = def.OODPercentile
	}
	if cfg.MaxParts < 1 {
		cfg.MaxParts = def.MaxParts
	}
	if cfg.MaxBodyBytes < 1 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.DecodeBytes < 1 {
		cfg.DecodeBytes = def.DecodeBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.StoreMetrics == nil {
		cfg.StoreMetrics = store.NewMetrics(nil)
	}
	if cfg.Posteriors == nil {
		cfg.Posteriors = store.NewMemoryPosteriors(cfg.StoreSize, cfg.StoreMetrics)
	}
	s := &Server{cfg: cfg, log: log, store: cfg.Posteriors, decoding: semaphore.NewWeighted(cfg.DecodeBytes)}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SetModel starts serving model m through a micro-batcher.
func (s *Server) SetModel(m *encoder.Model) {
	opt := s.cfg.Batch
	hook := opt.OnBatch
	opt.OnBatch = func(n int, d time.Duration) {
		s.metrics.observeBatch(n, d)
		if hook != nil {
			hook(n, d)
		}
	}
	if old := s.batcher.Swap(encoder.NewBatcher(m, opt)); old != nil {
		old.Close()
	}
}

// SetIndex sets the index, the store through which POST /index/items adds
// to it (nil: added items go to the index only, and are lost when the
// process stops) and what is known of its reference set. It refuses an
// index whose model digest is not the served model's (its vectors would be
// another model's latents), and any index before SetModel.
func (s *Server) SetIndex(ix *index.Index, items store.Items, ref Reference) error {
	b := s.batcher.Load()
	if b == nil {
		return errors.New("api: SetIndex before SetModel")
	}
	if got, want := ix.ModelDigest(), b.Model().Digest; got != want {
		return fmt.Errorf("api: the index was built with model %q, the server serves %q", got, want)
	}
	if items == nil {
		items = store.NewMemoryItems(ix)
	}
	s.state.Store(&indexState{ix, items, ref})
	return nil
}

// Ready reports whether the model and the index are loaded and the stores
// answer.
func (s *Server) Ready() bool { return s.notReady() == nil }

// notReady says why the server is not ready, or nil.
func (s *Server) notReady() error {
	if s.batcher.Load() == nil || s.state.Load() == nil {
		return retryable(kindNotReady, "The model or the reference index is still loading.", 1)
	}
	checks := []any{s.store, s.state.Load().items}
	for _, c := range checks {
		if c, ok := c.(store.Checker); ok {
			if err := c.Check(); err != nil {
				return storeProblem(err)
			}
		}
	}
	return nil
}

// Close stops the batcher after the requests it holds are answered. Call it
// after http.Server.Shutdown.
func (s *Server) Close() {
	if b := s.batcher.Load(); b != nil {
		b.Close()
	}
}

// model returns the batcher, or a 503 problem while the model loads.
func (s *Server) model() (*encoder.Batcher, error) {
	if b := s.batcher.Load(); b != nil {
		return b, nil
	}
	return nil, retryable(kindNotReady, "The model is still loading.", 5)
}

// reference returns the index and its item store, or a 503 problem while
// the index is built.
func (s *Server) reference() (*indexState, error) {
	if st := s.state.Load(); st != nil {
		return st, nil
	}
	return nil, retryable(kindNotReady, "The reference index is still being built.", 5)
}

// readWithIndex returns the batcher and the index, or the 503 problem of
// whichever is missing, and then reads r into q.
func (s *Server) readWithIndex(r *http.Request, q request) (*encoder.Batcher, *indexState, error) {
	b, err := s.model()
	if err != nil {
		return nil, nil, err
	}
	st, err := s.reference()
	if err != nil {
		return nil, nil, err
	}
	return b, st, s.readRequest(r, q)
}

// storeProblem maps a store's error to its problem: 404 for an unknown
// posterior, 503 with Retry-After while the back end is unreachable.
func storeProblem(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(kindUnknownID, "No posterior with this id is stored: it was never computed or has been evicted. POST the image to /encode again.")
	case errors.Is(err, store.ErrUnavailable):
		return retryable(kindUnavailable, "The shared store cannot be reached; nothing was lost. Retry after the indicated delay.", 2)
	}
	return err
}

// ood scores an energy against the reference set's: its percentile, and
// whether it lies above the configured one. nil without reference
// energies or for a non-finite energy.
func (s *Server) ood(energy float64) *wire.OOD {
	st := s.state.Load()
	if st == nil || len(st.ref.Energies) == 0 || math.IsNaN(energy) || math.IsInf(energy, 0) {
		return nil
	}
	e := st.ref.Energies
	below := sort.Search(len(e), func(i int) bool { return float64(e[i]) >= energy })
	p := 100 * float64(below) / float64(len(e))
	return &wire.OOD{EnergyPercentile: p, ThresholdPercentile: s.cfg.OODPercentile, OutOfDistribution: p > s.cfg.OODPercentile}
}
