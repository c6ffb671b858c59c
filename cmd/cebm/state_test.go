package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
)

type indexItem struct {
	ID    int       `json:"id"`
	Label int       `json:"label"`
	Mean  []float32 `json:"mean"`
}

type addAnswer struct {
	IndexIDs  []int `json:"index_ids"`
	IndexSize int   `json:"index_size"`
}

// addItems posts MNIST test images imgs with their labels to /index/items.
func addItems(client *http.Client, base string, test *data.Set, imgs []int, t *testing.T) (addAnswer, int, error) {
	type item struct {
		Image string `json:"image"`
		Label int    `json:"label"`
	}
	var body struct {
		Items []item `json:"items"`
	}
	for _, i := range imgs {
		body.Items = append(body.Items, item{base64.StdEncoding.EncodeToString(digitPNG(t, test, i)), test.Labels[i]})
	}
	b, _ := json.Marshal(body)
	var out addAnswer
	code, _, err := call(client, "POST", base+"/index/items", "application/json", b, &out)
	return out, code, err
}

// meanOf is the posterior mean /encode gives MNIST test image i.
func meanOf(t *testing.T, base string, test *data.Set, i int) []float32 {
	t.Helper()
	var out struct {
		Results []struct {
			Mean []float32 `json:"mean"`
		} `json:"results"`
	}
	if code, _, err := call(http.DefaultClient, "POST", base+"/encode", "image/png", digitPNG(t, test, i), &out); err != nil || code != 200 {
		t.Fatalf("/encode: %d %v", code, err)
	}
	return out.Results[0].Mean
}

func close32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-4*(1+math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

// TestCrashDurability kills a `cebm serve` process with SIGKILL at random
// moments while two clients add items and a third deletes some, 20 times.
// After every restart each item that got a 200 is there, under its id,
// with its label and its image's posterior mean, unless a delete of it got
// a 200: then it is gone (404, and not listed); no record is applied twice
// (every image is posted once, so a repeated record would show as two
// equal means); and the index never holds more items than were posted.
func TestCrashDurability(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	args := []string{"serve", "--addr", addr, "--model", shippedModel, "--reference", "none",
		"--state-dir", t.TempDir(), "--cache-dir", "", "--threads", "1", "--workers", "1"}
	var (
		mu     sync.Mutex
		acked  = map[int]int{} // index id → test image
		posted int             // images posted so far: image i is posted at most once
		means  = map[int][]float32{}
		// deleting: ids a DELETE was sent for; deleted: those answered 200.
		deleting = map[int]bool{}
		deleted  = map[int]bool{}
		logs     lockedBuffer
	)
	rng := rand.New(rand.NewPCG(1, 2))
	const rounds = 20
	for round := 0; round <= rounds; round++ {
		cmd := child(t, &logs, args...)
		waitStatus(t, base+"/readyz", 200, 2*time.Minute)

		// Every acknowledged item is there, with its label and mean.
		var n int
		{
			var models struct {
				Models []struct {
					IndexSize int `json:"index_size"` // ids given, deleted items too
				} `json:"models"`
			}
			if code, _, err := call(http.DefaultClient, "GET", base+"/models", "", nil, &models); err != nil || code != 200 {
				t.Fatalf("/models: %d %v", code, err)
			}
			n = models.Models[0].IndexSize
		}
		mu.Lock()
		if n < len(acked) || n > posted {
			t.Fatalf("round %d: the index holds %d items; %d were acknowledged, %d posted", round, n, len(acked), posted)
		}
		seen := map[string]int{}
		for id := range n {
			var it indexItem
			code, _, err := call(http.DefaultClient, "GET", fmt.Sprintf("%s/index/items/%d", base, id), "", nil, &it)
			switch {
			case err == nil && code == 404 && deleting[id]:
				continue // deleted, or its delete was written before the kill
			case err == nil && code == 200 && deleted[id]:
				t.Fatalf("round %d: item %d was deleted (answered 200) but is back after the restart", round, id)
			case err != nil || code != 200:
				t.Fatalf("round %d: item %d: %d %v", round, id, code, err)
			}
			key := fmt.Sprint(it.Mean)
			if other, dup := seen[key]; dup {
				t.Fatalf("round %d: items %d and %d are the same record applied twice", round, other, id)
			}
			seen[key] = id
			img, ok := acked[id]
			if !ok {
				continue // written, but the process died before it answered
			}
			if _, ok := means[img]; !ok {
				means[img] = meanOf(t, base, test, img)
			}
			if it.Label != test.Labels[img] || !close32(it.Mean, means[img]) {
				t.Fatalf("round %d: item %d has label %d, mean[0] %v; image %d has label %d, mean[0] %v",
					round, id, it.Label, it.Mean[0], img, test.Labels[img], means[img][0])
			}
		}
		mu.Unlock()
		// The listing leaves out every deleted item.
		for cursor := "0"; cursor != ""; {
			var page struct {
				Items []struct {
					ID int `json:"id"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			if code, _, err := call(http.DefaultClient, "GET", base+"/index/items?limit=1000&cursor="+cursor, "", nil, &page); err != nil || code != 200 {
				t.Fatalf("round %d: GET /index/items: %d %v", round, code, err)
			}
			for _, it := range page.Items {
				if deleted[it.ID] {
					t.Fatalf("round %d: deleted item %d is listed after the restart", round, it.ID)
				}
			}
			cursor = page.NextCursor
		}
		if round == rounds {
			cmd.Process.Kill()
			cmd.Wait()
			t.Logf("%d kills: %d items acknowledged, %d deletes acknowledged, all as answered after every restart; %d posted, %d in the index at the end",
				rounds, len(acked), len(deleted), posted, n)
			break
		}

		// Two clients add one to three images at a time until the kill.
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 10 * time.Second}
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					k := 1 + posted%3
					if posted+k > test.N {
						mu.Unlock()
						return
					}
					imgs := make([]int, k)
					for j := range imgs {
						imgs[j] = posted + j
					}
					posted += k
					mu.Unlock()
					out, code, err := addItems(client, base, test, imgs, t)
					if err != nil || code != 200 {
						return // killed
					}
					mu.Lock()
					for j, id := range out.IndexIDs {
						acked[id] = imgs[j]
					}
					mu.Unlock()
				}
			}()
		}
		// A third deletes acknowledged items, one at a time.
		killed := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				mu.Lock()
				id := -1
				for cand := range acked {
					if !deleting[cand] && cand%3 == i%3 {
						id = cand
						break
					}
				}
				if id >= 0 {
					deleting[id] = true
				}
				mu.Unlock()
				if id < 0 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				code, _, err := call(client, "DELETE", fmt.Sprintf("%s/index/items/%d", base, id), "", nil, nil)
				if err != nil || code != 200 {
					return // killed
				}
				mu.Lock()
				deleted[id] = true
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(20+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		close(killed)
		wg.Wait()
	}
	if t.Failed() {
		t.Log(logs.String())
	}
}
