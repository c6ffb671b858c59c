package api

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cebm/cebm/encoder"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// BenchmarkEncodeLoad measures /encode the way an open-loop load generator
// (vegeta) sees it: first its throughput at full speed (32 workers posting
// one 28×28 PNG at a time, as fast as answers come: http_images/s), then a
// steady attack at 80 % of that rate (attack_rate/s) for BENCH_ATTACK (10 s
// in all, split over -benchtime's Nx runs, at least 1 s each), reporting
// the attack's p50, p99 and max latency and the share of 200 answers
// (success). About 15 s plus the index's build. The server has the
// serving defaults and the 60,000-item MNIST training index, as in
// BenchmarkEncodeHTTP.
func BenchmarkEncodeLoad(b *testing.B) {
	setup(b)
	const workers = 32
	total := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BENCH_ATTACK")); err == nil && d > 0 {
		total = d
	}
	cfg := DefaultConfig()
	w, _ := strconv.Atoi(os.Getenv("BENCH_WORKERS"))
	cfg.Batch.Workers, testThreads = encoder.ServingDefaults(w, 0)
	defer func() { testThreads = 0 }()
	s, _ := newTestServer(b, fixture.cebm, 60000, cfg)
	srv := httptest.NewServer(s)
	defer srv.Close()

	targets := make([]vegeta.Target, 256)
	for i := range targets {
		targets[i] = vegeta.Target{Method: http.MethodPost, URL: srv.URL + "/encode", Body: digitPNG(b, i),
			Header: http.Header{"Content-Type": {"image/png"}}}
	}
	attack := func(rate vegeta.Rate, d time.Duration, m *vegeta.Metrics, maxWorkers uint64) {
		a := vegeta.NewAttacker(vegeta.Workers(workers), vegeta.MaxWorkers(maxWorkers),
			vegeta.Connections(workers), vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second))
		for res := range a.Attack(vegeta.NewStaticTargeter(targets...), rate, d, "encode") {
			m.Add(res)
		}
		m.Close()
	}
	// Full speed (rate 0: as fast as the workers get answers), after a
	// second to open the connections.
	var warm, full vegeta.Metrics
	attack(vegeta.Rate{}, time.Second, &warm, workers)
	attack(vegeta.Rate{}, 2*time.Second, &full, workers)
	if full.Success < 1 {
		b.Fatalf("at full speed %.1f %% of the answers were 200: %v %v", 100*full.Success, full.StatusCodes, full.Errors)
	}
	// Then a steady load at 80 % of it (the workers grow as answers lag),
	// the attack's time split over the runs -benchtime asks for. b.Loop
	// calls this function once, so the 60,000-item index is built once.
	rate := int(0.8 * full.Throughput)
	per := max(total/time.Duration(benchRuns()), time.Second)
	var steady vegeta.Metrics
	for b.Loop() {
		attack(vegeta.Rate{Freq: rate, Per: time.Second}, per, &steady, 1024)
	}
	b.ReportMetric(full.Throughput, "http_images/s")
	b.ReportMetric(float64(rate), "attack_rate/s")
	b.ReportMetric(steady.Throughput, "attack_images/s")
	b.ReportMetric(ms(steady.Latencies.P50), "p50_ms")
	b.ReportMetric(ms(steady.Latencies.P99), "p99_ms")
	b.ReportMetric(ms(steady.Latencies.Max), "max_ms")
	b.ReportMetric(steady.Success, "success")
	if steady.Success < 1 {
		b.Logf("answers of the steady attack: %v; errors: %v", steady.StatusCodes, steady.Errors)
	}
}

// benchRuns is the count of -benchtime Nx (3 for make bench), else 1.
func benchRuns() int {
	if f := flag.Lookup("test.benchtime"); f != nil {
		if v, ok := strings.CutSuffix(f.Value.String(), "x"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
