package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
)

// soakSample is what the soak reads from the server at one moment.
type soakSample struct {
	heapMiB, rssMiB float64
	goroutines      float64
	decodingMiB     float64 // reserved by the images being decoded
}

// scrape reads the Go runtime's and the process's gauges from /metrics.
func scrape(t *testing.T, base string) soakSample {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s soakSample
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			s.heapMiB = v / (1 << 20)
		case "process_resident_memory_bytes":
			s.rssMiB = v / (1 << 20)
		case "go_goroutines":
			s.goroutines = v
		case "cebm_decode_bytes":
			s.decodingMiB = v / (1 << 20)
		}
	}
	return s
}

// scrapeIdle scrapes at a moment when no image is being decoded (a worst-
// case one holds up to 130 MiB while it is), or after a few seconds.
func scrapeIdle(t *testing.T, base string) soakSample {
	s := scrape(t, base)
	for i := 0; i < 50 && s.decodingMiB > 0; i++ {
		time.Sleep(100 * time.Millisecond)
		s = scrape(t, base)
	}
	return s
}

// TestSoak puts a steady mixed load on one `cebm serve` process (a child,
// with the embedded store): /encode, /classify-knn by image and by id,
// GET /posterior/{id}, POST /index/items, and now and then a worst-case
// image: within the limits (a 4096×4096 or 8192×128 16-bit PNG, answered
// 200 or 503 with Retry-After: decode-busy while another holds the decoding
// memory, timeout on a machine too slow to decode it in time) or beyond
// them (16777216×1, answered 413). It reports the process's heap,
// resident memory and goroutines, and the requests' p99 latency, over the
// first and the last 10 seconds after a warm-up, and fails if memory or
// goroutines grow. CEBM_SOAK sets the duration (default 60s; `make soak`
// runs it for longer).
func TestSoak(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	dur := 60 * time.Second
	if s := os.Getenv("CEBM_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CEBM_SOAK: %v", err)
		}
		dur = d
	}
	const window, warmup, clients = 10 * time.Second, 5 * time.Second, 8
	if dur < warmup+2*window {
		t.Fatalf("CEBM_SOAK %v is shorter than a warm-up and two windows (%v)", dur, warmup+2*window)
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	pngs := make([][]byte, 300)
	for i := range pngs {
		pngs[i] = digitPNG(t, test, i)
	}
	worst := [][]byte{worstPNG(t, 4096, 4096), worstPNG(t, 8192, 128)}
	beyond := worstPNG(t, 1<<24, 1)
	addr := freeAddr(t)
	base := "http://" + addr
	var logs lockedBuffer
	cmd := child(t, &logs, "serve", "--addr", addr, "--model", shippedModel, "--reference-limit", "5000",
		"--cache-dir", t.TempDir(), "--state-dir", t.TempDir())
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	waitStatus(t, base+"/readyz", 200, 5*time.Minute)

	type latency struct {
		at time.Duration
		d  time.Duration
	}
	var (
		mu     sync.Mutex
		lats   []latency
		ids    []string
		failed atomic.Int64
		total  atomic.Int64
		heavy  [3]atomic.Int64 // worst-case images answered 200, 503 (busy or past the timeout) and 413
		added  atomic.Int64    // items added: the index and their images grow with them
	)
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			client := &http.Client{Timeout: 30 * time.Second}
			// The server answers a worst-case image within its request
			// timeout (30 s), with 503 if need be.
			heavyClient := &http.Client{Timeout: 2 * time.Minute}
			for {
				select {
				case <-stop:
					return
				default:
				}
				img := rng.IntN(len(pngs))
				var (
					code int
					err  error
				)
				t0 := time.Now()
				if rng.IntN(200) == 0 {
					body, want := beyond, 413
					if rng.IntN(4) > 0 {
						body, want = worst[rng.IntN(len(worst))], 200
					}
					code, hdr, err := call(heavyClient, "POST", base+"/encode", "image/png", body, nil)
					switch {
					case err == nil && code == 413 && want == 413:
						heavy[2].Add(1)
					case err == nil && code == 200 && want == 200:
						heavy[0].Add(1)
					case err == nil && code == 503 && want == 200 && hdr.Get("Retry-After") != "":
						heavy[1].Add(1) // decode-busy, or timeout on a slow machine
					default:
						t.Errorf("a worst-case image: %d %v, want %d", code, err, want)
					}
					continue
				}
				switch p := rng.IntN(100); {
				case p < 45:
					var out struct {
						Results []struct {
							ID string `json:"id"`
						} `json:"results"`
					}
					if code, _, err = call(client, "POST", base+"/encode", "image/png", pngs[img], &out); code == 200 {
						mu.Lock()
						if len(ids) < 1000 {
							ids = append(ids, out.Results[0].ID)
						}
						mu.Unlock()
					}
				case p < 75:
					code, _, err = call(client, "POST", base+"/classify-knn?k=5", "image/png", pngs[img], nil)
				case p < 95:
					mu.Lock()
					id := ""
					if len(ids) > 0 {
						id = ids[rng.IntN(len(ids))]
					}
					mu.Unlock()
					if id == "" {
						continue
					}
					if p < 85 {
						code, _, err = call(client, "GET", base+"/posterior/"+id, "", nil, nil)
					} else {
						body, _ := json.Marshal(map[string]any{"id": id, "k": 3})
						code, _, err = call(client, "POST", base+"/classify-knn", "application/json", body, nil)
					}
				default:
					if code, _, err = call(client, "POST", fmt.Sprintf("%s/index/items?label=%d", base, test.Labels[img]), "image/png", pngs[img], nil); code == 200 {
						added.Add(1)
					}
				}
				total.Add(1)
				if err != nil || code != 200 {
					failed.Add(1)
					continue
				}
				mu.Lock()
				lats = append(lats, latency{time.Since(start), time.Since(t0)})
				mu.Unlock()
			}
		}()
	}
	p99 := func(from, to time.Duration) (float64, int) {
		mu.Lock()
		defer mu.Unlock()
		var ds []time.Duration
		for _, l := range lats {
			if l.at >= from && l.at < to {
				ds = append(ds, l.d)
			}
		}
		if len(ds) == 0 {
			return 0, 0
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return float64(ds[len(ds)*99/100].Microseconds()) / 1000, len(ds)
	}
	time.Sleep(warmup + window)
	first := scrapeIdle(t, base)
	time.Sleep(dur - warmup - 2*window)
	time.Sleep(window)
	last := scrapeIdle(t, base)
	close(stop)
	wg.Wait()
	p99a, na := p99(warmup, warmup+window)
	p99b, nb := p99(dur-window, dur)
	// An added item holds its 128-d mean (512 bytes) and its 28×28 image:
	// state the server must keep, not a leak.
	const perItem = 512 + 784
	kept := float64(added.Load()*perItem) / (1 << 20)
	t.Logf("soak %v, %d clients, %d requests (%d failed), %d items added (%.1f MiB of state)",
		dur, clients, total.Load(), failed.Load(), added.Load(), kept)
	t.Logf("worst-case images: %d encoded, %d answered 503 (decode-busy or timeout), %d refused as beyond the limits", heavy[0].Load(), heavy[1].Load(), heavy[2].Load())
	t.Logf("start: heap %.1f MiB (%.0f MiB decoding), RSS %.1f MiB, %.0f goroutines, p99 %.1f ms over %d requests",
		first.heapMiB, first.decodingMiB, first.rssMiB, first.goroutines, p99a, na)
	t.Logf("end:   heap %.1f MiB (%.0f MiB decoding), RSS %.1f MiB, %.0f goroutines, p99 %.1f ms over %d requests",
		last.heapMiB, last.decodingMiB, last.rssMiB, last.goroutines, p99b, nb)
	if failed.Load() > 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	if na == 0 || nb == 0 {
		t.Fatal("no requests answered in a window")
	}
	// Flat: a leak of a goroutine or a few KiB per request would show here.
	if last.goroutines > first.goroutines+clients {
		t.Errorf("goroutines grew from %.0f to %.0f", first.goroutines, last.goroutines)
	}
	if last.heapMiB > 1.5*first.heapMiB+2*kept+16 {
		t.Errorf("heap grew from %.1f to %.1f MiB; the added items account for %.1f", first.heapMiB, last.heapMiB, kept)
	}
}
