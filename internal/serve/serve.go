// Package serve composes the service that `cebm serve` runs: it selects the
// store (the embedded log in a state folder, memory, or a shared Redis),
// loads the model, loads or builds the reference index, and builds the
// api.Server on them. The command only parses its flags into a Config;
// tests build a Config directly.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cebm/cebm/api"
	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/internal/dirlock"
	"github.com/cebm/cebm/internal/ort"
	"github.com/cebm/cebm/reference"
	"github.com/cebm/cebm/store"
)

// Config is everything the service needs, as `cebm serve` has it after
// its flags are read.
type Config struct {
	Addr            string // listen address (Run only)
	Model           string // exported .onnx model (the first served; see models.go)
	Models          []string
	ModelsDir       string // a folder whose *.onnx files are served; PUT /models/{name} writes there
	DefaultModel    string // the name of the model plain routes serve ("": the first)
	Reference       string // data set name; "" or "none" for an empty index
	ReferenceSplit  string
	ReferenceLimit  int    // the first N reference images (0: all)
	CacheDir        string // index snapshots ("": no cache)
	Store           string // "" (the embedded log in StateDir), "memory", or a redis:// URL
	StateDir        string
	StoreTTL        time.Duration
	Threads         int           // ONNX Runtime intra-op threads per run
	ShutdownTimeout time.Duration // how long Run waits for requests in flight
	API             api.Config
	// Env reads the environment (the ONNX Runtime library, data set
	// folders); nil for os.Getenv.
	Env func(string) string
}

// Validate checks the store settings.
func (c *Config) Validate() error {
	switch {
	case c.Store == "", c.Store == "memory", c.redisStore():
	default:
		return fmt.Errorf("serve: --store %q: want empty, memory, or a redis:// URL", c.Store)
	}
	if c.Store == "" && c.StateDir == "" {
		return errors.New("serve: the embedded store needs --state-dir (or --store memory)")
	}
	return nil
}

// redisStore reports whether the store is Redis.
func (c *Config) redisStore() bool {
	return strings.HasPrefix(c.Store, "redis://") || strings.HasPrefix(c.Store, "rediss://")
}

func (c *Config) env(k string) string {
	if c.Env == nil {
		return os.Getenv(k)
	}
	return c.Env(k)
}

// Service is the composed service: an api.Server on its store, whose model
// and index Load supplies.
type Service struct {
	cfg    Config
	log    *slog.Logger
	api    *api.Server
	lock   *dirlock.Lock
	shared *store.Redis
	// swapMu lets one model swap (PUT /models/{name}, a rescan) run at a
	// time.
	swapMu sync.Mutex
	// stop ends the goroutine that follows the models other replicas
	// publish (followModels); following is done when it has returned.
	stop      context.CancelFunc
	following sync.WaitGroup
}

// New takes the state folder (for the embedded store: one server per
// folder), opens the store and builds the API server, which answers
// /healthz at once and queries once Load has run. Close releases all.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: log}
	// One server per state folder: two would give different items the
	// same ids, and one's acknowledged items would be lost. (The snapshot
	// cache needs no lock: its files are written whole, by rename, and two
	// servers write the same bytes.)
	if cfg.Store == "" {
		lock, err := dirlock.Acquire(cfg.StateDir)
		var held *dirlock.HeldError
		if errors.As(err, &held) {
			return nil, fmt.Errorf("serve: --state-dir: the state folder %w; stop that cebm serve, or give this one another --state-dir", held)
		}
		if err != nil {
			return nil, fmt.Errorf("serve: --state-dir: %w", err)
		}
		s.lock = lock
	}
	if s.cfg.API.StoreMetrics == nil {
		s.cfg.API.StoreMetrics = store.NewMetrics(nil)
	}
	if cfg.redisStore() {
		shared, err := store.OpenRedis(cfg.Store, store.RedisOptions{TTL: cfg.StoreTTL, NearCache: cfg.API.StoreSize, Metrics: s.cfg.API.StoreMetrics, Log: log})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("serve: %w", err)
		}
		s.shared = shared
		s.cfg.API.Posteriors = shared
	}
	s.api = api.New(s.cfg.API, log)
	return s, nil
}

// Handler is the service's HTTP handler.
func (s *Service) Handler() http.Handler { return s.api }

// Load loads the models into the server, then each one's reference index
// and the items added to it (from the embedded log or the shared Redis).
// Call it once; Close must wait for it to return.
func (s *Service) Load(ctx context.Context) error {
	if p := s.cfg.env(ort.EnvLibrary); p != "" {
		ort.SetLibraryPath(p)
	}
	files, err := s.cfg.modelFiles()
	if err != nil {
		return err
	}
	models := make([]*encoder.Model, len(files))
	for i, f := range files {
		start := time.Now()
		m, err := encoder.Load(f.path, s.cfg.Threads)
		if err != nil {
			return err
		}
		s.log.Info("model loaded", "name", f.name, "path", f.path, "kind", m.Kind, "latent_dim", m.LatentDim,
			"input_shape", m.InputShape, "digest", m.Digest, "took", time.Since(start).Round(time.Millisecond))
		s.api.AddModel(f.name, m, m.Close)
		models[i] = m
	}
	if s.cfg.DefaultModel != "" {
		if err := s.api.SetDefault(s.cfg.DefaultModel); err != nil {
			return fmt.Errorf("--default-model: %w", err)
		}
	}
	for i, f := range files {
		start := time.Now()
		ix, ref, items, closeItems, err := s.openIndex(ctx, models[i])
		if err != nil {
			return err
		}
		if err := s.api.SetModelIndex(f.name, ix, items, ref, closeItems); err != nil {
			closeItems()
			return err
		}
		s.log.Info("index loaded", "model", f.name, "index_items", ix.Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	s.api.SetLoader(s.put)
	if s.shared != nil {
		fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.stop = stop
		s.following.Add(1)
		go func() {
			defer s.following.Done()
			s.followModels(fctx, time.Second/2)
		}()
	}
	return nil
}

// openIndex loads or builds model m's reference index and opens the store
// of its added items (keyed by the model's digest and the reference set),
// whose items it applies to the index; closeItems closes that store.
func (s *Service) openIndex(ctx context.Context, m *encoder.Model) (ix *index.Index, ref api.Reference, items store.Items, closeItems func(), err error) {
	ix, ref, refName, err := s.referenceIndex(ctx, m)
	if err != nil {
		return nil, api.Reference{}, nil, nil, err
	}
	key := reference.Key(m.Digest, refName)
	closeItems = func() {}
	switch {
	case s.shared != nil:
		items = s.shared.Items(ix, key)
	case s.cfg.Store == "":
		snap, logPath := store.FilePaths(s.cfg.StateDir, key)
		file, err := store.OpenFileItems(ix, snap, logPath, store.FileOptions{Log: s.log})
		if err != nil {
			return nil, api.Reference{}, nil, nil, err
		}
		items = file
		closeItems = func() {
			if err := file.Close(); err != nil {
				s.log.Warn("closing the log of added items", "err", err)
			}
		}
	default:
		items = store.NewMemoryItems(ix)
	}
	return ix, ref, items, closeItems, nil
}

// referenceIndex loads or builds the reference set's index, with what the
// service shows of the set (its energies and images), and names the set.
func (s *Service) referenceIndex(ctx context.Context, m *encoder.Model) (*index.Index, api.Reference, string, error) {
	cfg := &s.cfg
	if cfg.Reference == "" || cfg.Reference == "none" {
		return index.New(m.LatentDim, m.Digest), api.Reference{}, "none", nil
	}
	set, err := data.LoadEnv(cfg.Reference, cfg.ReferenceSplit, cfg.env)
	if err != nil {
		return nil, api.Reference{}, "", err
	}
	if [3]int{set.C, set.H, set.W} != m.InputShape {
		return nil, api.Reference{}, "", fmt.Errorf("reference %s has %d×%d×%d images; the model expects %v", cfg.Reference, set.C, set.H, set.W, m.InputShape)
	}
	n := set.N
	if cfg.ReferenceLimit > 0 {
		n = min(n, cfg.ReferenceLimit)
	}
	ref := reference.Set{
		Name:   fmt.Sprintf("%s:%s:%d", cfg.Reference, cfg.ReferenceSplit, n),
		Images: set.Images[:n*set.Size()],
		Labels: set.Labels[:n],
	}
	ix, energies, err := reference.LoadOrBuild(ctx, m, ref, cfg.CacheDir, s.log)
	if err != nil {
		return nil, api.Reference{}, "", err
	}
	// The bytes are kept for GET /index/items/{id}/image; the set and its
	// float copy are not.
	per := set.Size()
	pixels := set.Pixels[:n*per]
	if n < set.N { // keep only the images in use, not the whole file's
		pixels = slices.Clone(pixels)
	}
	return ix, api.Reference{Energies: energies, Pixels: func(id int) []uint8 {
		if id < 0 || id >= n {
			return nil
		}
		return pixels[id*per : (id+1)*per]
	}}, ref.Name, nil
}

// Close stops the API server's work and closes the models and the logs of
// their added items, the Redis connection and the state folder's lock.
// Call it after the HTTP server has stopped and Load has returned.
func (s *Service) Close() {
	if s.stop != nil {
		s.stop()
		s.following.Wait()
	}
	if s.api != nil {
		s.swapMu.Lock() // a swap under way finishes first
		s.api.Close()
		s.swapMu.Unlock()
	}
	if s.shared != nil {
		s.shared.Close()
	}
	if s.lock != nil {
		s.lock.Release()
	}
}

// Run serves cfg at cfg.Addr: it listens at once (/healthz answers while
// the models and indexes load), loads them, rescans the model files on
// SIGHUP (Rescan), and on ctx's end (SIGTERM) stops
// accepting connections, finishes the requests in flight within
// cfg.ShutdownTimeout, closes the service and returns.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc, err := New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		svc.Close()
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.API.RequestTimeout,
		WriteTimeout:      cfg.API.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loadDone := make(chan error, 1)
	go func() { loadDone <- svc.Load(loadCtx) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var rescans sync.WaitGroup

	var (
		failure error
		loaded  bool
	)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err := <-serveErr:
			failure = fmt.Errorf("serve: %w", err)
			break wait
		case err := <-loadDone:
			loaded = true
			if err != nil {
				failure = fmt.Errorf("serve: %w", err)
				break wait
			}
			loadDone = nil // keep serving until ctx ends
		case <-hup:
			if !loaded {
				log.Warn("SIGHUP while the models load: not rescanned")
				continue
			}
			log.Info("SIGHUP: rescanning the model files")
			rescans.Add(1)
			go func() {
				defer rescans.Done()
				svc.Rescan(loadCtx)
			}()
		}
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	cancelLoad()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && failure == nil {
		failure = fmt.Errorf("serve: shutdown: %w", err)
	}
	if !loaded { // wait until the loader has stopped using the model
		<-loadDone
	}
	rescans.Wait()
	svc.Close()
	log.Info("stopped")
	return failure
}
