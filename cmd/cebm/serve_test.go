package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// TestServeAPIKeys: `cebm serve --api-keys FILE` takes a read and a write
// key, with --api-key as another write key; a read key may encode but gets
// 403 on POST /index/items, a write key may add; a bad file stops the
// start with its line named.
func TestServeAPIKeys(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("# readers\nreader-key-0001 read\nwriter-key-0001 write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("reader-key-0001 read\nwriter-key-0001 admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseServeFlags([]string{"--api-keys", bad}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad key file: %v", err)
	}
	base := serveInProcess(t, "--model", shippedModel, "--reference-limit", "300", "--cache-dir", t.TempDir(),
		"--state-dir", t.TempDir(), "--api-keys", keys, "--api-key", "legacy-write-key")
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, key string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(digitPNG(t, test, 0)))
		req.Header.Set("Content-Type", "image/png")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, key string
		want              int
	}{
		{"POST", "/encode", "", 401},
		{"POST", "/encode", "reader-key-0001", 200},
		{"POST", "/index/items?label=7", "reader-key-0001", 403},
		{"DELETE", "/index/items/3", "reader-key-0001", 403},
		{"POST", "/index/items?label=7", "writer-key-0001", 200},
		{"DELETE", "/index/items/3", "legacy-write-key", 200},
	} {
		if got := do(c.method, c.path, c.key); got != c.want {
			t.Errorf("%s %s with key %q: %d, want %d", c.method, c.path, c.key, got, c.want)
		}
	}
}
