package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/internal/redistest"
)

// TestReplicasSwap: two replicas on one real Redis, each serving its own
// copy of the model folder. PUT /models/mnist-cebm on A swaps it there and
// publishes it; B swaps to it by itself, and both then hold the items
// added before the swap under the same ids (the one deleted on B stays
// deleted), and an item added on B after the swap reaches A.
func TestReplicasSwap(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	model, err := os.ReadFile(shippedModel)
	if err != nil {
		t.Fatal(err)
	}
	gmm, err := os.ReadFile("../../models/mnist-gmm-cebm.onnx")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(gmm)
	gmmDigest := hex.EncodeToString(sum[:])
	redis := redistest.Start(t)
	cache := t.TempDir()
	replica := func() (string, string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mnist-cebm.onnx"), model, 0o644); err != nil {
			t.Fatal(err)
		}
		return serveInProcess(t, "--models", dir, "--reference-limit", "300", "--cache-dir", cache,
			"--store", redis.URL(), "--threads", "1", "--workers", "1"), dir
	}
	a, _ := replica()
	b, bDir := replica()
	c := http.DefaultClient

	added, code, err := addItems(c, a, test, []int{5, 6}, t)
	if err != nil || code != 200 {
		t.Fatalf("add on A: %d %v", code, err)
	}
	ids := added.IndexIDs
	if code, _, err := call(c, "DELETE", fmt.Sprintf("%s/index/items/%d", b, ids[0]), "", nil, nil); err != nil || code != 200 {
		t.Fatalf("delete on B: %d %v", code, err)
	}
	start := time.Now()
	if code, _, err := call(c, "PUT", a+"/models/mnist-cebm", "application/octet-stream", gmm, nil); err != nil || code != 200 {
		t.Fatalf("PUT on A: %d %v", code, err)
	}
	digest := func(base string) string {
		var out struct {
			Models []struct{ Name, Digest string }
		}
		if code, _, err := call(c, "GET", base+"/models", "", nil, &out); err != nil || code != 200 {
			t.Fatalf("/models: %d %v", code, err)
		}
		return out.Models[0].Digest
	}
	for digest(b) != gmmDigest {
		if time.Since(start) > 3*time.Minute {
			t.Fatal("B still serves the old model 3 minutes after the PUT on A")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("B serves the new model %v after the PUT on A began", time.Since(start).Round(time.Millisecond))
	if got, err := os.ReadFile(filepath.Join(bDir, "mnist-cebm.onnx")); err != nil || sha256.Sum256(got) != sum {
		t.Errorf("B's models folder does not hold the new model (%v)", err)
	}
	for _, base := range []string{a, b} {
		if code, _, _ := call(c, "GET", fmt.Sprintf("%s/index/items/%d", base, ids[0]), "", nil, nil); code != 404 {
			t.Errorf("%s: deleted item %d after the swap: %d", base, ids[0], code)
		}
		var cls struct {
			Model   string `json:"model"`
			Results []struct {
				Neighbors []struct {
					ID       int     `json:"id"`
					Label    int     `json:"label"`
					Distance float32 `json:"distance"`
				} `json:"neighbors"`
			} `json:"results"`
		}
		if code, _, err := call(c, "POST", base+"/classify-knn", "image/png", digitPNG(t, test, 6), &cls); err != nil || code != 200 {
			t.Fatalf("%s: classify: %d %v", base, code, err)
		}
		if nb := cls.Results[0].Neighbors[0]; cls.Model != gmmDigest || nb.ID != ids[1] || nb.Label != test.Labels[6] || nb.Distance > 1e-6 {
			t.Errorf("%s: the added digit after the swap: model %.8s, nearest %+v (want item %d)", base, cls.Model, nb, ids[1])
		}
	}
	// An item added on B after the swap reaches A.
	more, code, err := addItems(c, b, test, []int{7}, t)
	if err != nil || code != 200 || more.IndexIDs[0] != ids[1]+1 {
		t.Fatalf("add on B after the swap: %d %v %+v", code, err, more)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, _ := call(c, "GET", fmt.Sprintf("%s/index/items/%d", a, more.IndexIDs[0]), "", nil, nil); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the item added on B after the swap did not reach A")
		}
	}
}
