package main

import (
	"net/http"
	"os"
	"testing"

	"github.com/cebm/cebm/data"
)

// TestServe drives `cebm serve` end to end: it reaches ready, classifies
// real MNIST test digits posted as PNG, and shuts down cleanly when the
// test ends (serveInProcess checks that).
func TestServe(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	base := serveInProcess(t, "--model", shippedModel, "--reference-limit", "2000",
		"--cache-dir", t.TempDir(), "--state-dir", t.TempDir())
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	right := 0
	for i := 0; i < n; i++ {
		var out classifyAnswer
		code, _, err := call(http.DefaultClient, "POST", base+"/classify-knn", "image/png", digitPNG(t, test, i), &out)
		if err != nil || code != 200 || len(out.Results) != 1 {
			t.Fatalf("status %d, %v", code, err)
		}
		if out.Results[0].Label == test.Labels[i] {
			right++
		}
	}
	if right < n*6/10 {
		t.Errorf("%d of %d digits right", right, n)
	}
}
