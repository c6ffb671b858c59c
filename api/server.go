// Package api is the HTTP service: it turns uploaded images into CEBM
// posteriors with package encoder, answers nearest-neighbour queries from
// package index, and reports errors as RFC 9457 problem details. Every
// route is registered in routes.go; openapi.yaml describes them.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Config holds the service's limits and options.
type Config struct {
	APIKey         string        // bearer key required on all but health and metrics; "" for none
	MaxBodyBytes   int64         // request body limit
	MaxParts       int           // multipart parts, and images per request
	MaxPixels      int           // width × height of one image
	RequestTimeout time.Duration // whole-request deadline
	StoreSize      int           // posteriors kept for GET /posterior/{id}
	MaxK           int           // largest k of /classify-knn
	Batch          encoder.BatchOptions
}

// DefaultConfig returns the defaults of cebm serve.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:   16 << 20,
		MaxParts:       256,
		MaxPixels:      16 << 20,
		RequestTimeout: 30 * time.Second,
		StoreSize:      100000,
		MaxK:           100,
		Batch:          encoder.BatchOptions{MaxBatch: 64, MaxWait: time.Millisecond, Queue: 1024},
	}
}

// Server is the HTTP service. It answers /healthz at once; the model and
// the reference index arrive later through SetModel and SetIndex, and
// /readyz reports ready once both are there.
type Server struct {
	cfg     Config
	log     *slog.Logger
	batcher atomic.Pointer[encoder.Batcher]
	index   atomic.Pointer[index.Index]
	store   *lru.Cache[string, *encoder.Result]
	metrics *metrics
	handler http.Handler
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
	if cfg.MaxParts < 1 {
		cfg.MaxParts = def.MaxParts
	}
	if cfg.MaxBodyBytes < 1 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, _ := lru.New[string, *encoder.Result](cfg.StoreSize)
	s := &Server{cfg: cfg, log: log, store: store}
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

// SetIndex sets the reference index. It refuses an index whose model
// digest is not the served model's (its vectors would be another model's
// latents), and any index before SetModel.
func (s *Server) SetIndex(ix *index.Index) error {
	b := s.batcher.Load()
	if b == nil {
		return errors.New("api: SetIndex before SetModel")
	}
	if got, want := ix.ModelDigest(), b.Model().Digest; got != want {
		return fmt.Errorf("api: the index was built with model %q, the server serves %q", got, want)
	}
	s.index.Store(ix)
	return nil
}

// Ready reports whether the model and the index are loaded.
func (s *Server) Ready() bool { return s.batcher.Load() != nil && s.index.Load() != nil }

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

// reference returns the index, or a 503 problem while it is built.
func (s *Server) reference() (*index.Index, error) {
	if ix := s.index.Load(); ix != nil {
		return ix, nil
	}
	return nil, retryable(kindNotReady, "The reference index is still being built.", 5)
}

// readWithIndex returns the batcher and the index, or the 503 problem of
// whichever is missing, and then reads r into q.
func (s *Server) readWithIndex(r *http.Request, q request) (*encoder.Batcher, *index.Index, error) {
	b, err := s.model()
	if err != nil {
		return nil, nil, err
	}
	ix, err := s.reference()
	if err != nil {
		return nil, nil, err
	}
	return b, ix, s.readRequest(r, q)
}
