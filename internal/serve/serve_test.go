package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cebm/cebm/api"
	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/internal/redistest"
)

const shippedModel = "../../models/mnist-cebm.onnx"

// config is a Config as a test builds it, without flags: the shipped
// model, one encoder worker, no reference set and the given store.
func config(t *testing.T, storeURL, stateDir string) Config {
	t.Helper()
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	a := api.DefaultConfig()
	a.Batch.Workers = 1
	return Config{Model: shippedModel, Reference: "none", Store: storeURL, StateDir: stateDir,
		StoreTTL: time.Hour, Threads: 1, ShutdownTimeout: 5 * time.Second, API: a}
}

// start builds and loads a service whose end the test's end is.
func start(t *testing.T, cfg Config) *Service {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, path string, out any) int {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if out != nil && w.Code == 200 {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatal(err)
		}
	}
	return w.Code
}

// addDigit posts MNIST test image i with its label and returns its index id.
func addDigit(t *testing.T, h http.Handler, test *data.Set, i int) int {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, &image.Gray{Pix: test.Pixel(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)}); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", fmt.Sprintf("/index/items?label=%d", test.Labels[i]), &b)
	r.Header.Set("Content-Type", "image/png")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out wire.AddItemsResponse
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil || out.Added != 1 {
		t.Fatalf("adding test image %d: %d %s", i, w.Code, w.Body)
	}
	return out.IndexIDs[0]
}

// TestNewEmbedded: the embedded store keeps the state folder to one
// service, and a service built again on the folder has the items the
// first acknowledged; the reference set is the first ReferenceLimit
// training images.
func TestNewEmbedded(t *testing.T) {
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := config(t, "", dir)
	cfg.Reference, cfg.ReferenceSplit, cfg.ReferenceLimit, cfg.CacheDir = "mnist", "train", 300, t.TempDir()

	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code := get(t, s.Handler(), "/healthz", nil); code != 200 {
		t.Errorf("/healthz before Load: %d", code)
	}
	if code := get(t, s.Handler(), "/readyz", nil); code != 503 {
		t.Errorf("/readyz before Load: %d", code)
	}
	if err := s.Load(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	if code := get(t, s.Handler(), "/readyz", nil); code != 200 {
		t.Errorf("/readyz after Load: %d", code)
	}
	id := addDigit(t, s.Handler(), test, 0)
	if id != 300 {
		t.Errorf("the first added item has id %d, want 300", id)
	}

	_, err = New(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a second service on the state folder: %v", err)
	}
	s.Close()

	s = start(t, cfg)
	defer s.Close()
	var it wire.IndexItem
	if code := get(t, s.Handler(), fmt.Sprintf("/index/items/%d", id), &it); code != 200 || it.Label != test.Labels[0] || it.Source != "added" {
		t.Errorf("item %d after a restart: %d %+v", id, code, it)
	}
	var models wire.ModelsResponse
	if code := get(t, s.Handler(), "/models", &models); code != 200 || models.Models[0].IndexItems != 301 {
		t.Errorf("/models: %d %+v", code, models)
	}
}

// TestNewMemory: the memory store needs no state folder, and a service
// without a reference set starts with an empty index.
func TestNewMemory(t *testing.T) {
	s := start(t, config(t, "memory", ""))
	defer s.Close()
	var models wire.ModelsResponse
	if code := get(t, s.Handler(), "/models", &models); code != 200 || models.Models[0].IndexItems != 0 {
		t.Errorf("/models: %d %+v", code, models)
	}
}

// TestNewRedis: two services on one Redis share the items either adds.
func TestNewRedis(t *testing.T) {
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	redis := redistest.Start(t)
	a := start(t, config(t, redis.URL(), ""))
	defer a.Close()
	b := start(t, config(t, redis.URL(), ""))
	defer b.Close()
	id := addDigit(t, a.Handler(), test, 3)
	var it wire.IndexItem
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if get(t, b.Handler(), fmt.Sprintf("/index/items/%d", id), &it) == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other service never had item %d", id)
		}
	}
	if it.Label != test.Labels[3] {
		t.Errorf("item %d: label %d, want %d", id, it.Label, test.Labels[3])
	}
}

// TestConfigRefused: settings the service cannot run with are refused
// before anything is opened.
func TestConfigRefused(t *testing.T) {
	for _, c := range []Config{
		{Store: "postgres://x"},
		{Store: ""}, // the embedded store without a state folder
	} {
		if _, err := New(c, nil); err == nil {
			t.Errorf("store %q, state folder %q: accepted", c.Store, c.StateDir)
		}
	}
	cfg := config(t, "memory", "")
	cfg.Model = "no-such.onnx"
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Load(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("a missing model loaded: %v", err)
	}
}
