package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cebm/cebm/encoder"
)

// BenchmarkEncodeHTTP reports, in one run: raw ONNX Runtime throughput at
// batch 128 (ort_images/s), /encode throughput over HTTP with 32 clients
// each sending one PNG at a time (http_images/s), their ratio, and the
// p50/p99 latency of /classify-knn under the same load against the
// MNIST training split (up to 60,000 items).
func BenchmarkEncodeHTTP(b *testing.B) {
	setup(b)
	const clients, perClient = 32, 60
	// The serving defaults of cebm serve; BENCH_WORKERS and BENCH_WAIT
	// override them for tuning.
	cfg := DefaultConfig()
	w, _ := strconv.Atoi(os.Getenv("BENCH_WORKERS"))
	cfg.Batch.Workers, testThreads = encoder.ServingDefaults(w, 0)
	defer func() { testThreads = 0 }()
	if d, err := time.ParseDuration(os.Getenv("BENCH_WAIT")); err == nil {
		cfg.Batch.MaxWait = d
	}
	s, _ := newTestServer(b, fixture.cebm, 60000, cfg)
	// The reference: ONNX Runtime on all cores at batch 128.
	m, err := encoder.Load(fixture.cebm, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()

	x := fixture.test.Images[:128*784]
	pngs := make([][]byte, 256)
	for i := range pngs {
		pngs[i] = digitPNG(b, i)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr}

	load := func(path string, lat *[]time.Duration) float64 {
		var mu sync.Mutex
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < perClient; j++ {
					img := pngs[next.Add(1)%int64(len(pngs))]
					t0 := time.Now()
					resp, err := client.Post(srv.URL+path, "image/png", bytes.NewReader(img))
					if err != nil {
						b.Error(err)
						return
					}
					var buf bytes.Buffer
					buf.ReadFrom(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("%s: %d %s", path, resp.StatusCode, buf.String())
						return
					}
					if lat != nil {
						mu.Lock()
						*lat = append(*lat, time.Since(t0))
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return float64(clients*perClient) / time.Since(start).Seconds()
	}
	var ort, web, p50, p99 float64
	for i := 0; i < b.N; i++ {
		start := time.Now()
		const runs = 20
		for r := 0; r < runs; r++ {
			if _, err := m.Run(x, 128); err != nil {
				b.Fatal(err)
			}
		}
		ort = 128 * runs / time.Since(start).Seconds()
		load("/encode", nil) // warm up connections
		web = load("/encode", nil)
		var lat []time.Duration
		load("/classify-knn", &lat)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50 = float64(lat[len(lat)/2].Microseconds()) / 1000
		p99 = float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(ort, "ort_images/s")
	b.ReportMetric(web, "http_images/s")
	b.ReportMetric(web/ort, "ratio")
	b.ReportMetric(p50, "knn_p50_ms")
	b.ReportMetric(p99, "knn_p99_ms")
}
