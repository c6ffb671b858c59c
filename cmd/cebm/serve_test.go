package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestServeModelFlags: --model may be repeated (or comma-separated), the
// default model file is served only without --model and --models, and
// --default-model must name a served model.
func TestServeModelFlags(t *testing.T) {
	env := func(string) string { return "" }
	for _, c := range []struct {
		args  []string
		model string
		more  int
	}{
		{nil, defaultModel, 0},
		{[]string{"--model", "a.onnx", "--model", "b.onnx,c.onnx"}, "a.onnx", 2},
		{[]string{"--models", t.TempDir()}, "", 0},
	} {
		cfg, err := parseServeFlags(append(c.args, "--store", "memory"), env, io.Discard)
		if err != nil || cfg.Model != c.model || len(cfg.Models) != c.more {
			t.Errorf("%q: model %q, more %q, %v", c.args, cfg.Model, cfg.Models, err)
		}
	}
	err := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0", "--store", "memory", "--model", shippedModel, "--default-model", "nope"}, os.Getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--default-model") {
		t.Errorf("--default-model nope: %v", err)
	}
}

// TestServeSIGHUP: `cebm serve --models DIR` serves the folder's models;
// after a file is replaced and another added, SIGHUP swaps the first and
// adds the second while the server keeps answering.
func TestServeSIGHUP(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+".tmp", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(to+".tmp", to); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(shippedModel, filepath.Join(dir, "digits.onnx"))
	base := serveInProcess(t, "--models", dir, "--reference-limit", "300", "--cache-dir", "", "--state-dir", t.TempDir())
	models := func() map[string]string {
		var out struct {
			Models []struct{ Name, Digest string }
		}
		if code, _, err := call(http.DefaultClient, "GET", base+"/models", "", nil, &out); code != 200 || err != nil {
			t.Fatalf("/models: %d %v", code, err)
		}
		m := map[string]string{}
		for _, x := range out.Models {
			m[x.Name] = x.Digest
		}
		return m
	}
	before := models()
	if len(before) != 1 || before["digits"] == "" {
		t.Fatalf("served %v", before)
	}
	copyFile("../../models/mnist-gmm-cebm.onnx", filepath.Join(dir, "digits.onnx"))
	copyFile("../../models/fashion-mnist-cebm.onnx", filepath.Join(dir, "fashion.onnx"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		now := models()
		if len(now) == 2 && now["digits"] != before["digits"] && now["fashion"] != "" {
			t.Logf("after SIGHUP: %v", now)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP still %v", now)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitStatus(t, base+"/readyz", 200, time.Minute)
}
