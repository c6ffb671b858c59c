package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	batchSize prometheus.Histogram
	batchTime prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cebm_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cebm_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cebm_batch_size", Help: "Images per ONNX Runtime run.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cebm_batch_duration_seconds", Help: "Duration of one ONNX Runtime run.",
			Buckets: prometheus.ExponentialBuckets(.0005, 2, 12),
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.batchSize, m.batchTime,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("cebm_queue_depth", "Requests waiting for the encoder.", s.queueDepth),
		gauge("cebm_index_items", "Live (not deleted) items in the models' indexes.", s.indexItems),
		gauge("cebm_decode_bytes", "Memory reserved by the images being decoded (of --decode-memory).", func() float64 { return float64(s.decodingBytes.Load()) }),
		gauge("cebm_posterior_store_items", "Posteriors kept in this process for GET /posterior/{id}.", func() float64 { return float64(s.store.Len()) }),
		s.cfg.StoreMetrics.Lookups, s.cfg.StoreMetrics.Errors, s.cfg.StoreMetrics.StreamLag,
		gauge("cebm_ready", "1 once the model and the index are loaded.", func() float64 { return boolGauge(s.Ready()) }),
	)
	return m
}

// gauge is a gauge whose value f reads at each scrape.
func gauge(name, help string, f func() float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}

func boolGauge(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// queueDepth is the batchers' queue lengths together (0 before a model
// loads).
func (s *Server) queueDepth() float64 {
	var n int
	set := s.models.Load()
	for _, p := range set.byName {
		n += p.b.QueueLen()
	}
	return float64(n)
}

// indexItems is the live items of every model's index (0 before they are
// built).
func (s *Server) indexItems() float64 {
	var n int
	set := s.models.Load()
	for _, p := range set.byName {
		if p.st != nil {
			n += p.st.ix.Live()
		}
	}
	return float64(n)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observeBatch(n int, d time.Duration) {
	m.batchSize.Observe(float64(n))
	m.batchTime.Observe(d.Seconds())
}

// instrument counts requests and times them by route pattern and status.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		code := strconv.Itoa(status)
		s.metrics.requests.WithLabelValues(route, code).Inc()
		s.metrics.latency.WithLabelValues(route, code).Observe(time.Since(start).Seconds())
	})
}
