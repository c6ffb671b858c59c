package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/cebm/cebm/api"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/internal/serve"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// serveConfig is every setting of `cebm serve`: each a flag, each also an
// environment variable (CEBM_ plus the flag name in capitals, - as _).
// The service's own settings are serve.Config; the rest are read into it.
type serveConfig struct {
	serve.Config
	LogFormat    string
	AllowedHosts string // comma-separated; "" for the default (see allowedHosts)
	CORSOrigins  string // comma-separated
	APIKeysFile  string // --api-keys: a file of "KEY SCOPE" lines
	OTLPEndpoint string // --otlp-endpoint: where traces go; "" for none
	modelFlag    listFlag
}

// defaultModel is the model served when neither --model nor --models is
// given.
const defaultModel = "models/mnist-cebm.onnx"

// listFlag is a flag that may be repeated, each value a comma-separated
// list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	d := api.DefaultConfig()
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.Var(&c.modelFlag, "model", "exported .onnx model to serve (default models/mnist-cebm.onnx unless --models is given); repeat it, or separate files by commas, to serve several, each under its file name without .onnx (the model parameter of the routes)")
	fs.StringVar(&c.ModelsDir, "models", "", "serve every .onnx file of this folder too; PUT /models/{name} writes a new model there (so that a restart serves it) and may add one, and SIGHUP rescans it")
	fs.StringVar(&c.DefaultModel, "default-model", "", "name of the model that routes without a model parameter serve (default: the first --model, else the folder's first)")
	fs.StringVar(&c.Reference, "reference", "mnist", "labelled reference data set for /classify-knn (see cebm data list); none for an empty index")
	fs.StringVar(&c.ReferenceSplit, "reference-split", "train", "split of the reference data set")
	fs.IntVar(&c.ReferenceLimit, "reference-limit", 0, "use only the first N reference images (0: all)")
	fs.StringVar(&c.CacheDir, "cache-dir", ".cache", "folder for index snapshots (empty: no cache)")
	fs.StringVar(&c.Store, "store", "", "where added items and posteriors are kept: empty for the embedded log in --state-dir, memory for nowhere durable, or redis://host:port/db to share them between replicas")
	fs.StringVar(&c.StateDir, "state-dir", ".state", "folder of the embedded store: the log and snapshot of added items")
	fs.DurationVar(&c.StoreTTL, "store-ttl", 24*time.Hour, "how long Redis keeps a posterior (with --store redis://…)")
	fs.IntVar(&c.Threads, "threads", 0, "ONNX Runtime intra-op threads per run (0: cores / workers, at least 1)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.AllowedHosts, "allowed-hosts", "", "comma-separated host names the server answers to (Host header, any port); * for any (default: localhost, 127.0.0.1 and ::1 when --addr is a loopback address, any otherwise)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated origins (scheme://host[:port]) whose web pages may call the API; pages of other origins may not POST to it")
	fs.StringVar(&c.API.APIKey, "api-key", "", "bearer API key required on the API (not on /healthz, /readyz, /metrics, the page /, /docs and /openapi.yaml; empty: none); a write key")
	fs.StringVar(&c.APIKeysFile, "api-keys", "", "file of API keys, one \"KEY SCOPE\" a line, SCOPE read (encode, classify, look up) or write (also add and delete index items); with --api-key, both are accepted")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "send OpenTelemetry traces (OTLP over HTTP) to this URL, e.g. http://127.0.0.1:4318 (/v1/traces is added when the URL has no path); empty: no tracing")
	fs.StringVar(&c.API.WebDir, "web-dir", ".web", "folder where the set-up installs Swagger UI for /docs")
	fs.Int64Var(&c.API.MaxBodyBytes, "max-body-bytes", d.MaxBodyBytes, "largest request body")
	fs.IntVar(&c.API.MaxParts, "max-images", d.MaxParts, "most images (multipart parts) per request")
	fs.IntVar(&c.API.MaxPixels, "max-pixels", d.MaxPixels, "most pixels (width × height) of one image")
	fs.IntVar(&c.API.MaxSide, "max-side", d.MaxSide, "longest side of one image, in pixels")
	fs.Float64Var(&c.API.MaxAspect, "max-aspect", d.MaxAspect, "largest ratio of an image's longer side to its shorter")
	fs.Int64Var(&c.API.DecodeBytes, "decode-memory", d.DecodeBytes, "bytes that the images being decoded may take at once (a 16-bit RGBA PNG takes 8 a pixel); an image that needs more is refused with 413, and while others hold it requests get 503 with Retry-After")
	fs.DurationVar(&c.API.RequestTimeout, "request-timeout", d.RequestTimeout, "longest a request may take; past it the answer is 503 with Retry-After and its work stops")
	fs.IntVar(&c.API.StoreSize, "store-size", d.StoreSize, "posteriors kept for GET /posterior/{id} (LRU)")
	fs.IntVar(&c.API.MaxK, "max-k", d.MaxK, "largest k of /classify-knn")
	fs.Float64Var(&c.API.OODPercentile, "ood-percentile", d.OODPercentile, "flag an image out of distribution when its energy lies above this percentile of the reference images' energies or below 100 minus it")
	fs.IntVar(&c.API.Batch.MaxBatch, "max-batch", d.Batch.MaxBatch, "most images per ONNX Runtime run")
	fs.DurationVar(&c.API.Batch.MaxWait, "max-wait", d.Batch.MaxWait, "longest a request waits for others to batch with")
	fs.IntVar(&c.API.Batch.Queue, "queue", d.Batch.Queue, "requests that may wait for the encoder; more get 429")
	fs.IntVar(&c.API.Batch.Workers, "workers", d.Batch.Workers, "batches that may run at once (0: cores + 1)")
}

// parseServeFlags reads args, then the environment for every flag not
// given on the command line.
func parseServeFlags(args []string, env func(string) string, stderr io.Writer) (*serveConfig, error) {
	c := &serveConfig{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cebm serve [flags]\n\nEvery flag is also read from CEBM_<FLAG> (e.g. CEBM_ADDR, CEBM_API_KEY).")
		fs.PrintDefaults()
	}
	if _, err := parseFlags("serve", fs, args, env); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case len(c.modelFlag) > 0:
		c.Model, c.Models = c.modelFlag[0], c.modelFlag[1:]
	case c.ModelsDir == "":
		c.Model = defaultModel
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.API.Batch.Workers, c.Threads = encoder.ServingDefaults(c.API.Batch.Workers, c.Threads)
	c.API.AllowedHosts = allowedHosts(c.AllowedHosts, c.Addr)
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("serve: --otlp-endpoint: %q is not a URL such as http://127.0.0.1:4318", c.OTLPEndpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		c.OTLPEndpoint = u.String()
	}
	if c.APIKeysFile != "" {
		keys, err := api.LoadKeys(c.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("serve: --api-keys: %w", err)
		}
		c.API.Keys = keys
	}
	for _, o := range splitList(c.CORSOrigins) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("serve: --cors-origins: %q is not an origin such as https://example.com:8443", o)
		}
		c.API.CORSOrigins = append(c.API.CORSOrigins, u.Scheme+"://"+u.Host)
	}
	return c, nil
}

// allowedHosts are the host names the server answers to: the list given,
// or, when none is, the loopback names for a loopback address (a page that
// rebinds its own name to 127.0.0.1 must not reach the server) and any
// name otherwise (nil).
func allowedHosts(list, addr string) []string {
	if hs := splitList(list); len(hs) > 0 {
		return hs
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return []string{"localhost", "127.0.0.1", "::1"}
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// logAttrs are the settings as log attributes, the API key redacted.
func (c *serveConfig) logAttrs() []any {
	key := "none"
	if c.API.APIKey != "" {
		key = "set"
	}
	return []any{"addr", c.Addr, "model", c.Model, "models", c.Models, "models_dir", c.ModelsDir, "default_model", c.DefaultModel, "reference", c.Reference, "reference_split", c.ReferenceSplit,
		"reference_limit", c.ReferenceLimit, "cache_dir", c.CacheDir, "store", redactURL(c.Store),
		"state_dir", c.StateDir, "store_ttl", c.StoreTTL, "threads", c.Threads,
		"api_key", key, "api_keys", len(c.API.Keys), "otlp_endpoint", redactURL(c.OTLPEndpoint), "max_body_bytes", c.API.MaxBodyBytes, "max_images", c.API.MaxParts,
		"max_pixels", c.API.MaxPixels, "max_side", c.API.MaxSide, "max_aspect", c.API.MaxAspect,
		"decode_memory", c.API.DecodeBytes, "allowed_hosts", c.API.AllowedHosts, "cors_origins", c.API.CORSOrigins,
		"request_timeout", c.API.RequestTimeout, "store_size", c.API.StoreSize,
		"max_k", c.API.MaxK, "max_batch", c.API.Batch.MaxBatch, "max_wait", c.API.Batch.MaxWait,
		"queue", c.API.Batch.Queue, "workers", c.API.Batch.Workers, "shutdown_timeout", c.ShutdownTimeout}
}

// runServe is `cebm serve`: its flags read into a serve.Config, served
// until ctx ends (SIGTERM).
func runServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, env, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)
	log.Info("cebm serve", cfg.logAttrs()...)
	cfg.Env = env
	if cfg.OTLPEndpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint))
		if err != nil {
			return fmt.Errorf("serve: --otlp-endpoint: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "cebm"))))
		defer func() {
			// The spans still buffered are sent before the process ends.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn("traces not all sent", "err", err)
			}
		}()
		cfg.API.TracerProvider = tp
	}
	return serve.Run(ctx, cfg.Config, log)
}

// redactURL hides the password of a redis:// URL for the log.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
