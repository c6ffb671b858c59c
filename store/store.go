// Package store keeps the service's state beyond one request: the
// posteriors that /encode computed, kept under their content ids for
// GET /posterior/{id}, and the items that POST /index/items added to the
// index.
//
// Three back ends; a store is named by its back end and the interface it
// implements (Posteriors or Items):
//
//   - Memory: MemoryPosteriors, an in-process LRU of posteriors, and
//     MemoryItems, items that live only in the index (lost on restart). For
//     tests and throw-away servers.
//   - File: FileItems (the embedded default), an append-only, checksummed
//     log of added items beside a snapshot of them, fsynced before the
//     server answers, replayed on start, folded into the snapshot as it
//     grows.
//   - Redis: one connection (Redis) that is the Posteriors, under their ids
//     with a TTL, and opens RedisItems, added items in a Redis Stream that
//     every replica tails into its own in-memory index, so that several
//     replicas share one state. An in-process LRU stays in front of Redis
//     as a near cache.
//
// Errors that mean "the back end cannot be reached now" wrap
// ErrUnavailable; the service answers them with 503 and Retry-After.
package store

import (
	"context"
	"errors"

	"github.com/cebm/cebm/encoder"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors of every store.
var (
	ErrNotFound    = errors.New("store: no such posterior")
	ErrUnavailable = errors.New("store: back end unavailable")
)

// Posteriors keeps computed posteriors under their content ids.
type Posteriors interface {
	// Put stores rs; when it returns nil, Get finds them (until evicted).
	Put(ctx context.Context, rs []encoder.Result) error
	// Get returns the posterior stored under id, or an error wrapping
	// ErrNotFound or ErrUnavailable.
	Get(ctx context.Context, id string) (*encoder.Result, error)
	// Len is the number of posteriors held in this process.
	Len() int
}

// Items adds items to the index durably: when Append returns nil, the items
// are in the index, under the ids it reports, and survive a restart (except
// for MemoryItems).
type Items interface {
	// Append adds the batch's items and returns the index id of the
	// first; the others follow in order.
	Append(ctx context.Context, b Batch) (first int, err error)
	// Base is the index id of the first added item (the reference set's
	// size).
	Base() int
	// Pixels is added item id's image, if it was added with one.
	Pixels(id int) ([]uint8, bool)
	// Tags is added item id's tags (nil: none; reference items have none).
	Tags(id int) []string
	// Delete removes index item id (a reference or an added item) from
	// the index durably: when it returns nil, searches no longer find it,
	// and will not after a restart (except for MemoryItems). Deleting a
	// deleted item succeeds.
	Delete(ctx context.Context, id int) error
}

// Checker is implemented by stores whose back end can be down; Check
// returns an error wrapping ErrUnavailable while it is. /readyz uses it.
type Checker interface {
	Check() error
}

// Metrics are the stores' Prometheus metrics.
type Metrics struct {
	// Lookups counts Get calls by result: near_hit (in-process cache),
	// hit (back end), miss, error.
	Lookups *prometheus.CounterVec
	// Errors counts failed back-end operations by operation.
	Errors *prometheus.CounterVec
	// StreamLag is how many added items this replica has not applied yet.
	StreamLag prometheus.Gauge
}

// NewMetrics returns the metrics, registered with reg unless reg is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cebm_store_lookups_total", Help: "Posterior look-ups by result (near_hit, hit, miss, error).",
		}, []string{"result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cebm_store_errors_total", Help: "Failed store operations by operation.",
		}, []string{"op"}),
		StreamLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cebm_store_stream_lag_items", Help: "Added items in the shared log that this replica has not applied yet.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Lookups, m.Errors, m.StreamLag)
	}
	return m
}

func (m *Metrics) lookup(result string) {
	if m != nil {
		m.Lookups.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) failed(op string) {
	if m != nil {
		m.Errors.WithLabelValues(op).Inc()
	}
}
