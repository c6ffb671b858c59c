package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/internal/redistest"
)

type posteriorAnswer struct {
	ID     string    `json:"id"`
	Energy float64   `json:"energy"`
	Mean   []float32 `json:"mean"`
}

type classifyAnswer struct {
	Results []struct {
		Label     int `json:"label"`
		Neighbors []struct {
			ID       int     `json:"id"`
			Distance float32 `json:"distance"`
		} `json:"neighbors"`
	} `json:"results"`
}

// TestReplicas runs two `cebm serve` replicas on one real Redis: a
// posterior computed on A is served by B, items added on A are found by
// B's /classify-knn within a second, a Redis crash turns the calls that
// need it into 503s (and /readyz, not /healthz), and after Redis restarts
// from its append-only file both recover with nothing acknowledged lost.
func TestReplicas(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	redis := redistest.Start(t)
	cache := t.TempDir()
	replica := func() string {
		return serveInProcess(t, "--model", shippedModel, "--reference-limit", "500", "--cache-dir", cache,
			"--store", redis.URL(), "--threads", "1", "--workers", "1")
	}
	a, b := replica(), replica()
	c := http.DefaultClient

	// A posterior encoded on A is served by B, the same numbers.
	var enc struct {
		Results []posteriorAnswer `json:"results"`
	}
	if code, _, err := call(c, "POST", a+"/encode", "image/png", digitPNG(t, test, 0), &enc); err != nil || code != 200 {
		t.Fatalf("encode on A: %d %v", code, err)
	}
	var got posteriorAnswer
	if code, _, err := call(c, "GET", b+"/posterior/"+enc.Results[0].ID, "", nil, &got); err != nil || code != 200 {
		t.Fatalf("GET /posterior on B: %d %v", code, err)
	}
	if want := enc.Results[0]; got.Energy != want.Energy || fmt.Sprint(got.Mean) != fmt.Sprint(want.Mean) {
		t.Fatalf("B's posterior differs: energy %v mean[0] %v, A's %v %v", got.Energy, got.Mean[0], want.Energy, want.Mean[0])
	}
	body, _ := json.Marshal(map[string]any{"id": enc.Results[0].ID, "k": 3})
	if code, _, err := call(c, "POST", b+"/classify-knn", "application/json", body, nil); err != nil || code != 200 {
		t.Fatalf("classify by id on B: %d %v", code, err)
	}

	// Items added on A: B's k-NN finds them within a second.
	var lags []time.Duration
	for _, img := range []int{1, 2, 3} {
		added, code, err := addItems(c, a, test, []int{img}, t)
		if err != nil || code != 200 {
			t.Fatalf("add on A: %d %v", code, err)
		}
		start := time.Now()
		for {
			var cl classifyAnswer
			if code, _, err := call(c, "POST", b+"/classify-knn?k=1", "image/png", digitPNG(t, test, img), &cl); err != nil || code != 200 {
				t.Fatalf("classify on B: %d %v", code, err)
			}
			if nb := cl.Results[0].Neighbors[0]; nb.ID == added.IndexIDs[0] && nb.Distance == 0 {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("B did not find item %d within 1 s", added.IndexIDs[0])
			}
			time.Sleep(2 * time.Millisecond)
		}
		lags = append(lags, time.Since(start))
	}
	t.Logf("replica B found items added on A after %v", lags)

	// An item deleted on A is gone from B within a second: neither a
	// neighbour nor served.
	if code, _, err := call(c, "DELETE", a+"/index/items/501", "", nil, nil); err != nil || code != 200 {
		t.Fatalf("delete on A: %d %v", code, err)
	}
	start := time.Now()
	for {
		var cl classifyAnswer
		if code, _, err := call(c, "POST", b+"/classify-knn?k=5", "image/png", digitPNG(t, test, 2), &cl); err != nil || code != 200 {
			t.Fatalf("classify on B: %d %v", code, err)
		}
		found := false
		for _, nb := range cl.Results[0].Neighbors {
			found = found || nb.ID == 501
		}
		if !found {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("B still finds item 501 a second after A deleted it")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("replica B lost the item deleted on A after %v", time.Since(start))
	if code, _, err := call(c, "GET", b+"/index/items/501", "", nil, nil); err != nil || code != 404 {
		t.Errorf("B serves the deleted item: %d %v", code, err)
	}

	// Redis dies: the calls that need it answer 503 with Retry-After.
	redis.Kill()
	waitStatus(t, a+"/readyz", 503, 10*time.Second)
	waitStatus(t, b+"/readyz", 503, 10*time.Second)
	for _, r := range []struct{ method, url, ctype string }{
		{"POST", a + "/encode", "image/png"},
		{"POST", b + "/index/items?label=4", "image/png"},
		{"GET", b + "/posterior/0123456789abcdef0123456789abcdef", ""},
	} {
		var body []byte
		if r.method == "POST" {
			body = digitPNG(t, test, 4)
		}
		code, h, err := call(c, r.method, r.url, r.ctype, body, nil)
		if err != nil || code != 503 || h.Get("Retry-After") == "" || !strings.Contains(h.Get("Content-Type"), "problem+json") {
			t.Errorf("%s %s with Redis down: %d, Retry-After %q, %v", r.method, r.url, code, h.Get("Retry-After"), err)
		}
	}
	if code, _, err := call(c, "GET", a+"/healthz", "", nil, nil); err != nil || code != 200 {
		t.Errorf("/healthz with Redis down: %d %v", code, err)
	}

	// Redis comes back from its append-only file: both recover by
	// themselves, and a replica started now replays every item.
	redis.Restart()
	waitStatus(t, a+"/readyz", 200, 20*time.Second)
	waitStatus(t, b+"/readyz", 200, 20*time.Second)
	added, code, err := addItems(c, b, test, []int{5, 6}, t)
	if err != nil || code != 200 || added.IndexSize != 505 {
		t.Fatalf("add on B after the restart: %d %v %+v", code, err, added)
	}
	late := replica()
	if code, _, err := call(c, "GET", late+"/index/items/501", "", nil, nil); err != nil || code != 404 {
		t.Errorf("late replica serves the item deleted before it started: %d %v", code, err)
	}
	for id, img := range map[int]int{500: 1, 502: 3, 503: 5, 504: 6} {
		var it indexItem
		if code, _, err := call(c, "GET", fmt.Sprintf("%s/index/items/%d", late, id), "", nil, &it); err != nil || code != 200 || it.Label != test.Labels[img] {
			t.Errorf("late replica, item %d: %d %v label %d, want %d", id, code, err, it.Label, test.Labels[img])
		}
	}
	if code, _, err := call(c, "GET", late+"/posterior/"+enc.Results[0].ID, "", nil, nil); err != nil || code != 200 {
		t.Errorf("late replica, posterior from before the crash: %d %v", code, err)
	}
}
