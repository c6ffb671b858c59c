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
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/store"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"
)

// Config holds the service's limits and options.
type Config struct {
	APIKey         string        // bearer key required on all but health and metrics, a write key; "" for none
	Keys           []Key         // more keys, each read or write (LoadKeys)
	MaxBodyBytes   int64         // request body limit
	MaxParts       int           // multipart parts, and images per request
	MaxPixels      int           // width × height of one image
	MaxSide        int           // longer side of one image, in pixels
	MaxAspect      float64       // longer side over shorter of one image
	DecodeBytes    int64         // memory that the images being decoded may take at once
	RequestTimeout time.Duration // whole-request deadline
	StoreSize      int           // posteriors kept in process for GET /posterior/{id}
	MaxK           int           // largest k of /classify-knn
	OODPercentile  float64       // energies above this percentile of the reference set's, or below 100 minus it, are flagged out of distribution
	// OODDistancePercentile: an image whose latent distance to its nearest
	// index item lies above this percentile of the reference items' own
	// nearest-neighbour distances is flagged out of distribution.
	OODDistancePercentile float64
	WebDir                string // where the set-up installed Swagger UI (WebDir/swagger-ui) for /docs; "": none
	Batch                 encoder.BatchOptions

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

	// TracerProvider, when set, traces every request (trace.go); nil:
	// no tracing, at no cost.
	TracerProvider trace.TracerProvider
}

// DefaultConfig returns the defaults of cebm serve.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:          16 << 20,
		MaxParts:              256,
		MaxPixels:             encoder.DefaultLimits.MaxPixels,
		MaxSide:               encoder.DefaultLimits.MaxSide,
		MaxAspect:             encoder.DefaultLimits.MaxAspect,
		DecodeBytes:           192 << 20,
		RequestTimeout:        30 * time.Second,
		StoreSize:             100000,
		MaxK:                  100,
		OODPercentile:         99.5,
		OODDistancePercentile: 99,
		Batch:                 encoder.BatchOptions{MaxBatch: 64, MaxWait: time.Millisecond, Queue: 1024},
	}
}

// Server is the HTTP service. It answers /healthz at once; its models and
// their reference indexes arrive later (AddModel and SetModelIndex, or
// SetModel and SetIndex for one model), and /readyz reports ready once
// every model has its index (and the stores answer). Swap replaces a model
// and its index while the server runs (models.go).
type Server struct {
	cfg    Config
	log    *slog.Logger
	models atomic.Pointer[modelSet]
	// swapMu orders the changes to models; writes is held (read) by every
	// request that adds or deletes items and (write) by a swap's catch-up.
	swapMu   sync.Mutex
	writes   sync.RWMutex
	retiring sync.WaitGroup // swapped-out pairs not closed yet
	loader   atomic.Pointer[Loader]
	store    store.Posteriors
	metrics  *metrics
	keys     *keyring
	tracer   trace.Tracer // nil: tracing off
	handler  http.Handler
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
	// classes are the model's class names (labels of filters and answers).
	classes []string
	// tables are the out-of-distribution distances and the map of the
	// reference items not deleted; refreshing is set while they are
	// computed again after a delete (refTables).
	tables     atomic.Pointer[refTables]
	refreshing atomic.Bool
}

// refTables is what the server computes from the live reference items.
type refTables struct {
	// nnDist are the squared latent distances of a sample of reference
	// items to their nearest other index item, sorted ascending: the
	// out-of-distribution score ranks a query's nearest distance among them.
	nnDist  []float32
	refMap  *RefMap // GET /index/map; nil without a reference set
	deleted int     // the index's deleted items when they were computed
}

// computeTables computes the tables of the live items among ix's first n.
func computeTables(ix *index.Index, n int) (*refTables, error) {
	deleted := ix.Len() - ix.Live()
	var live []int
	for id := range n {
		if !ix.Deleted(id) {
			live = append(live, id)
		}
	}
	t := &refTables{deleted: deleted}
	var err error
	if t.nnDist, err = nearestDistances(ix, live); err != nil {
		return nil, err
	}
	if t.refMap, err = referenceMap(ix, live); err != nil {
		return nil, err
	}
	return t, nil
}

// refTables returns the reference tables (nil without a reference set).
// After a delete they are computed again in the background, the old ones
// answering meanwhile.
func (st *indexState) refTables() *refTables {
	t := st.tables.Load()
	if t == nil || t.deleted == st.ix.Len()-st.ix.Live() || !st.refreshing.CompareAndSwap(false, true) {
		return t
	}
	go func() {
		defer st.refreshing.Store(false)
		if nt, err := computeTables(st.ix, min(len(st.ref.Energies), st.ix.Len())); err == nil {
			st.tables.Store(nt)
		}
	}()
	return t
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
	if cfg.OODPercentile <= 50 || cfg.OODPercentile > 100 {
		cfg.OODPercentile = def.OODPercentile
	}
	if cfg.OODDistancePercentile <= 0 || cfg.OODDistancePercentile > 100 {
		cfg.OODDistancePercentile = def.OODDistancePercentile
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
	s := &Server{cfg: cfg, log: log, store: cfg.Posteriors, keys: newKeyring(cfg), decoding: semaphore.NewWeighted(cfg.DecodeBytes)}
	s.models.Store(&modelSet{byName: map[string]*served{}})
	s.metrics = newMetrics(s)
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	s.handler = s.routes()
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SetModel starts serving model m, under its file's name, as the default
// model: the one-model form of AddModel.
func (s *Server) SetModel(m *encoder.Model) {
	s.AddModel(modelName(m), m, nil)
}

// SetIndex sets the default model's index, the store through which
// POST /index/items adds to it (nil: added items go to the index only, and
// are lost when the process stops) and what is known of its reference
// set. It refuses an index whose model digest is not the served model's
// (its vectors would be another model's latents), and any index before
// SetModel.
func (s *Server) SetIndex(ix *index.Index, items store.Items, ref Reference) error {
	def := s.models.Load().def
	if def == "" {
		return errors.New("api: SetIndex before SetModel")
	}
	return s.SetModelIndex(def, ix, items, ref, nil)
}

// newIndexState is what the server keeps of model m's index: the index
// itself, its store, and the reference set's out-of-distribution table
// and map.
func newIndexState(m *encoder.Model, ix *index.Index, items store.Items, ref Reference) (*indexState, error) {
	if got, want := ix.ModelDigest(), m.Digest; got != want {
		return nil, fmt.Errorf("api: the index was built with model %q, the server serves %q", got, want)
	}
	if items == nil {
		items = store.NewMemoryItems(ix)
	}
	st := &indexState{ix: ix, items: items, ref: ref, classes: m.Classes}
	if len(ref.Energies) > 0 {
		t, err := computeTables(ix, min(len(ref.Energies), ix.Len()))
		if err != nil {
			return nil, err
		}
		st.tables.Store(t)
	}
	return st, nil
}

// oodSample is how many reference items nearestDistances measures: enough
// for the 99th percentile to move by well under a point between samples,
// few enough to take about a second on a 60,000-item index.
const oodSample = 1000

// nearestDistances returns, sorted, the squared distance of up to
// oodSample of the reference items live (evenly spaced) to their nearest
// other item of ix.
func nearestDistances(ix *index.Index, live []int) ([]float32, error) {
	n := len(live)
	if n < 2 {
		return nil, nil
	}
	m := min(n, oodSample)
	ids := make([]int, m)
	qs := make([]float32, 0, m*ix.Dim())
	for i := range ids {
		ids[i] = live[int64(i)*int64(n)/int64(m)]
		v, err := ix.Vector(ids[i])
		if err != nil {
			return nil, err
		}
		qs = append(qs, v...)
	}
	found, err := ix.SearchBatch(qs, 2)
	if err != nil {
		return nil, err
	}
	d := make([]float32, 0, m)
	for i, nb := range found {
		for _, x := range nb {
			if x.ID != ids[i] {
				d = append(d, x.Distance)
				break
			}
		}
	}
	slices.Sort(d)
	return d, nil
}

// Ready reports whether every model and its index are loaded and the
// stores answer.
func (s *Server) Ready() bool { return s.notReady() == nil }

// notReady says why the server is not ready, or nil.
func (s *Server) notReady() error {
	set := s.models.Load()
	if len(set.names) == 0 {
		return retryable(kindNotReady, "The model or the reference index is still loading.", 1)
	}
	if n := set.notReadyModels(); len(n) > 0 {
		return retryable(kindNotReady, "The reference index of these models is still loading: "+strings.Join(n, ", ")+".", 1)
	}
	checks := []any{s.store}
	for _, n := range set.names {
		checks = append(checks, set.byName[n].st.items)
	}
	for _, c := range checks {
		if c, ok := c.(store.Checker); ok {
			if err := c.Check(); err != nil {
				return storeProblem(err)
			}
		}
	}
	return nil
}

// Close stops the batchers after the requests they hold are answered, and
// releases every model. Call it after http.Server.Shutdown.
func (s *Server) Close() {
	s.swapMu.Lock()
	set := s.models.Swap(&modelSet{byName: map[string]*served{}})
	for _, n := range set.names {
		s.retire(set.byName[n])
	}
	s.swapMu.Unlock()
	s.retiring.Wait()
}

// model returns the batcher of the request's model (withModel).
func (s *Server) model(r *http.Request) (*encoder.Batcher, error) {
	p := pinned(r)
	if p == nil {
		return nil, retryable(kindNotReady, "The model is still loading.", 5)
	}
	return p.b, nil
}

// reference returns the index of the request's model and its item store,
// or a 503 problem while the index is built.
func (s *Server) reference(r *http.Request) (*indexState, error) {
	if p := pinned(r); p != nil && p.st != nil {
		return p.st, nil
	}
	return nil, retryable(kindNotReady, "The reference index is still being built.", 5)
}

// readWithIndex returns the batcher and the index, or the 503 problem of
// whichever is missing, and then reads r into q.
func (s *Server) readWithIndex(r *http.Request, q request) (*encoder.Batcher, *indexState, error) {
	b, err := s.model(r)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.reference(r)
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
	case errors.Is(err, store.ErrSealed):
		return retryable(kindUnavailable, "This model is being replaced by a new one; nothing was changed. Retry after the indicated delay.", 1)
	case errors.Is(err, store.ErrUnavailable):
		return retryable(kindUnavailable, "The shared store cannot be reached; nothing was lost. Retry after the indicated delay.", 2)
	}
	return err
}

// ood scores an image against the reference set: its energy's percentile
// among the reference images' (flagged when above the configured
// percentile, or below 100 minus it: energy-based models give simple
// images such as a blank page the lowest energies of all), and the
// percentile of nearest, the squared latent distance to its nearest index
// item, among the reference items' own (flagged when above
// OODDistancePercentile; NaN: not known). nil without reference energies
// or for a non-finite energy.
func (s *Server) ood(st *indexState, energy float64, nearest float64) *wire.OOD {
	if st == nil || len(st.ref.Energies) == 0 || math.IsNaN(energy) || math.IsInf(energy, 0) {
		return nil
	}
	e := st.ref.Energies
	below := sort.Search(len(e), func(i int) bool { return float64(e[i]) >= energy })
	p := 100 * float64(below) / float64(len(e))
	o := &wire.OOD{EnergyPercentile: p, ThresholdPercentile: s.cfg.OODPercentile, DistanceThresholdPercentile: s.cfg.OODDistancePercentile}
	switch {
	case p > s.cfg.OODPercentile:
		o.OutOfDistribution, o.Reason = true, "energy too high"
	case p < 100-s.cfg.OODPercentile:
		o.OutOfDistribution, o.Reason = true, "energy too low"
	}
	if t := st.refTables(); t != nil && len(t.nnDist) > 0 && !math.IsNaN(nearest) {
		d := t.nnDist
		below := sort.Search(len(d), func(i int) bool { return float64(d[i]) >= nearest })
		dp := 100 * float64(below) / float64(len(d))
		o.DistancePercentile = &dp
		if dp > s.cfg.OODDistancePercentile && !o.OutOfDistribution {
			o.OutOfDistribution, o.Reason = true, "far from every reference image"
		}
	}
	return o
}

// nearest returns the squared distance of each of the n latents (one
// after another) to its nearest item of st's index; NaN where it is not
// known.
func (s *Server) nearest(st *indexState, latents []float32, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	if st == nil || st.tables.Load() == nil || len(latents) != n*st.ix.Dim() {
		return out
	}
	found, err := st.ix.SearchBatch(latents, 1)
	if err != nil {
		return out
	}
	for i, nb := range found {
		if len(nb) > 0 {
			out[i] = float64(nb[0].Distance)
		}
	}
	return out
}
