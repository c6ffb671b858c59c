package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/store"
)

// served is one model as the server serves it: its batcher and its index
// state, always replaced together. A swap builds a new served and never
// changes one, so a request that took a served at its start (withModel)
// finishes on that model and that index, whatever is swapped meanwhile.
type served struct {
	name string
	b    *encoder.Batcher
	st   *indexState // nil while the reference index is built
	// refs counts the requests using this pair; a retired pair's batcher
	// and model are closed once it drops to 0.
	refs atomic.Int64
	// release closes what this pair alone holds (the model's session, the
	// log of its added items); nil: nothing.
	release func()
}

// modelSet is every served model by name; the server holds it behind one
// atomic pointer and replaces it whole (copy on write).
type modelSet struct {
	byName map[string]*served
	names  []string // in the order they were added
	def    string   // the default model: the one plain routes serve
}

// with returns a copy of the set with p under p.name (added last when new).
func (set *modelSet) with(p *served) *modelSet {
	out := &modelSet{byName: map[string]*served{}, def: set.def}
	for k, v := range set.byName {
		out.byName[k] = v
	}
	out.names = slices.Clone(set.names)
	if _, ok := out.byName[p.name]; !ok {
		out.names = append(out.names, p.name)
	}
	out.byName[p.name] = p
	if out.def == "" {
		out.def = p.name
	}
	return out
}

// ErrUnknownModel is returned for a model name the server does not serve.
var ErrUnknownModel = errors.New("api: no such model")

// RefusedError is a model that a swap refused: it does not load, its input
// shape differs from the served one's, or its energies or posteriors on the
// reference set are not finite. The served model stays.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "api: model refused: " + e.Reason }

// Loader loads onnx (a model file's bytes) as model name, builds its
// index and swaps it in with Swap; PUT /models/{name} calls it.
type Loader func(ctx context.Context, name string, onnx []byte) error

// SetLoader lets PUT /models/{name} swap models through load.
func (s *Server) SetLoader(load Loader) { s.loader.Store(&load) }

// AddModel starts serving m under name, without an index yet (/encode
// answers, /classify-knn answers 503 until SetModelIndex). The first model
// added is the default unless SetDefault names another. release, if not
// nil, is called when the model is swapped out or the server closes.
// Adding a name that is served replaces it (the old pair is retired).
func (s *Server) AddModel(name string, m *encoder.Model, release func()) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	set := s.models.Load()
	s.models.Store(set.with(&served{name: name, b: s.newBatcher(m), release: release}))
	if old := set.byName[name]; old != nil {
		s.retire(old)
	}
}

// SetDefault makes name the model that routes without a model parameter
// serve.
func (s *Server) SetDefault(name string) error {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	set := s.models.Load()
	if set.byName[name] == nil {
		return fmt.Errorf("%w: %q", ErrUnknownModel, name)
	}
	out := set.with(set.byName[name])
	out.def = name
	s.models.Store(out)
	return nil
}

// newBatcher is m's micro-batcher, its batches counted in /metrics.
func (s *Server) newBatcher(m *encoder.Model) *encoder.Batcher {
	opt := s.cfg.Batch
	hook := opt.OnBatch
	opt.OnBatch = func(n int, d time.Duration) {
		s.metrics.observeBatch(n, d)
		if hook != nil {
			hook(n, d)
		}
	}
	return encoder.NewBatcher(m, opt)
}

// SetModelIndex gives model name (added with AddModel) its index, the store
// through which POST /index/items adds to it (nil: the index only) and what
// is known of its reference set; release, if not nil, is called (after
// AddModel's) when the model is swapped out or the server closes. It
// refuses an index of another model's latents.
func (s *Server) SetModelIndex(name string, ix *index.Index, items store.Items, ref Reference, release func()) error {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	p := s.models.Load().byName[name]
	if p == nil {
		return fmt.Errorf("%w: %q (SetModelIndex before AddModel)", ErrUnknownModel, name)
	}
	st, err := newIndexState(p.b.Model(), ix, items, ref)
	if err != nil {
		return err
	}
	// The batcher stays: the new pair takes it over, with its release; the
	// old one is not retired.
	both := p.release
	if release != nil {
		both = func() {
			if p.release != nil {
				p.release()
			}
			release()
		}
	}
	s.models.Store(s.models.Load().with(&served{name: name, b: p.b, st: st, release: both}))
	return nil
}

// Swap serves m and its index under name in place of the pair served now
// (or adds name): requests that took the old pair finish on it, its
// batcher closes when they have, and then its release runs. catchUp, if
// not nil, runs first while no request adds or deletes items (it carries
// the old store's last items into the new one); its error cancels the
// swap.
func (s *Server) Swap(name string, m *encoder.Model, ix *index.Index, items store.Items, ref Reference, release func(), catchUp func() error) error {
	st, err := newIndexState(m, ix, items, ref)
	if err != nil {
		return err
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	s.writes.Lock()
	defer s.writes.Unlock()
	if catchUp != nil {
		if err := catchUp(); err != nil {
			return err
		}
	}
	set := s.models.Load()
	old := set.byName[name]
	s.models.Store(set.with(&served{name: name, b: s.newBatcher(m), st: st, release: release}))
	if old != nil {
		s.retire(old)
	}
	return nil
}

// Serving is what is served under name: its model, index and item store
// (nil index and store while the index is built).
func (s *Server) Serving(name string) (*encoder.Model, *index.Index, store.Items, bool) {
	p := s.models.Load().byName[name]
	if p == nil {
		return nil, nil, nil, false
	}
	if p.st == nil {
		return p.b.Model(), nil, nil, true
	}
	return p.b.Model(), p.st.ix, p.st.items, true
}

// Models are the served models' names, in the order they were added.
func (s *Server) Models() []string { return slices.Clone(s.models.Load().names) }

// retire closes p once the requests using it are answered (it is no
// longer in the set, so no new one takes it).
func (s *Server) retire(p *served) {
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		for p.refs.Load() > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		p.b.Close()
		if p.release != nil {
			p.release()
		}
	}()
}

// pin takes model name ("": the default) for one request; unpin when the
// request is done.
func (s *Server) pin(name string) (*served, error) {
	for {
		set := s.models.Load()
		if len(set.byName) == 0 {
			return nil, retryable(kindNotReady, "The model is still loading.", 5)
		}
		if name == "" {
			name = set.def
		}
		p := set.byName[name]
		if p == nil {
			return nil, problem(kindModelNotFound, fmt.Sprintf("The server serves no model %q; GET /models lists those it does.", name))
		}
		p.refs.Add(1)
		// Swapped meanwhile? Then the retiring pair may not count this
		// request: take the new one.
		if s.models.Load().byName[name] == p {
			return p, nil
		}
		p.refs.Add(-1)
	}
}

func (p *served) unpin() { p.refs.Add(-1) }

type servedKey struct{}

// withModel pins the model named by the request's model query parameter
// (the default without one) for the whole request.
func (s *Server) withModel(next http.Handler) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.pin(r.URL.Query().Get("model"))
		if err != nil {
			return err
		}
		defer p.unpin()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), servedKey{}, p)))
		return nil
	})
}

// holdWrites keeps a swap from catching up with the old store while the
// request adds or deletes items.
func (s *Server) holdWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writes.RLock()
		defer s.writes.RUnlock()
		next.ServeHTTP(w, r)
	})
}

// pinned is the model withModel pinned for r.
func pinned(r *http.Request) *served {
	p, _ := r.Context().Value(servedKey{}).(*served)
	return p
}

// notReadyModels are the names of the models whose index is not there yet.
func (set *modelSet) notReadyModels() []string {
	var out []string
	for _, n := range set.names {
		if set.byName[n].st == nil {
			out = append(out, n)
		}
	}
	return out
}

// handleModels is GET /models: every served model's metadata, its index's
// live items and whether it is ready.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) error {
	set := s.models.Load()
	if len(set.names) == 0 {
		return retryable(kindNotReady, "The model is still loading.", 5)
	}
	out := wire.ModelsResponse{Models: []wire.ModelInfo{}}
	for _, n := range set.names {
		p := set.byName[n]
		m := p.b.Model()
		info := wire.ModelInfo{Name: n, Meta: m.Meta.Meta, Digest: m.Digest, PriorComponents: len(m.Prior),
			Ready: p.st != nil, Default: n == set.def}
		if p.st != nil {
			info.IndexItems, info.IndexSize = p.st.ix.Live(), p.st.ix.Len()
		}
		out.Models = append(out.Models, info)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// maxModelBytes bounds the body of PUT /models/{name}: a shipped model is
// under 1 MB.
const maxModelBytes = 256 << 20

// handlePutModel is PUT /models/{name}: the body is an .onnx file that
// replaces model name (or adds it, when the server serves a folder). It
// answers once the new model and its index serve, with the models.
func (s *Server) handlePutModel(w http.ResponseWriter, r *http.Request) error {
	load := s.loader.Load()
	if load == nil {
		return problem(kindNotFound, "This server cannot swap models.")
	}
	name := r.PathValue("name")
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return problem(kindInvalid, "A model name is a file name without .onnx.")
	}
	// Building the index may outlast the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	if r.ContentLength > maxModelBytes {
		return problem(kindTooLarge, "The model file is larger than the server accepts.")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxModelBytes))
	if err != nil {
		return bodyError(err)
	}
	if len(b) == 0 {
		return problem(kindInvalid, "The body must be an .onnx model file.")
	}
	var refused *RefusedError
	switch err := (*load)(r.Context(), name, b); {
	case errors.Is(err, ErrUnknownModel):
		return problem(kindModelNotFound, fmt.Sprintf("The server serves no model %q, and serves no folder of models to add it to.", name))
	case errors.As(err, &refused):
		return problem(kindModelRefused, "The model was refused, and the one served stays: "+refused.Reason+".")
	case err != nil:
		return storeProblem(err)
	}
	return s.handleModels(w, r)
}

// Each model's posteriors are kept in a namespace of their own (keyed by
// the model's digest), so that a model never answers with another's
// posterior (another latent space) for an id.

// posteriorKey is the store key of model digest's posterior id.
func posteriorKey(digest, id string) string {
	return digest[:min(len(digest), 16)] + ":" + id
}

// putPosteriors stores model digest's posteriors rs under their ids.
func (s *Server) putPosteriors(ctx context.Context, digest string, rs []encoder.Result) error {
	keyed := make([]encoder.Result, len(rs))
	for i, r := range rs {
		keyed[i] = r
		keyed[i].ID = posteriorKey(digest, r.ID)
	}
	return s.store.Put(ctx, keyed)
}

// getPosterior is model digest's posterior id.
func (s *Server) getPosterior(ctx context.Context, digest, id string) (*encoder.Result, error) {
	res, err := s.store.Get(ctx, posteriorKey(digest, id))
	if err != nil {
		return nil, err
	}
	out := *res
	out.ID = id
	return &out, nil
}
