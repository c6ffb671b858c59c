package api

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "keys")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := LoadKeys(write("# team keys\nreader-0001 read\n\n  writer-0001   write  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != (Key{"reader-0001", ScopeRead}) || keys[1] != (Key{"writer-0001", ScopeWrite}) {
		t.Fatalf("keys %+v", keys)
	}
	for body, want := range map[string]string{
		"reader-0001 admin\n":                   "neither read nor write",
		"reader-0001\n":                         "want \"KEY SCOPE\"",
		"reader-0001 read extra\n":              "want \"KEY SCOPE\"",
		"short read\n":                          "at least 8 characters",
		"reader-0001 read\nreader-0001 write\n": "line 2: the key appears twice",
		"# nothing\n":                           "holds no key",
	} {
		if _, err := LoadKeys(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", body, err, want)
		}
	}
	if _, err := LoadKeys(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing key file was accepted")
	}
}

// readRoutes are the protected routes that a read key may call besides
// every GET. Any other route of the router is a write route: the test
// finds it by walking the router, so a new one cannot be left open to
// read keys by mistake.
var readRoutes = map[string]bool{
	"POST /encode":        true,
	"POST /classify-knn":  true,
	"POST /v1/embeddings": true,
}

// TestScopedKeys: with a read key, a write key and the single --api-key
// (a write key), every protected route answers 401 without a key; every
// write route answers 403 read-only-key to the read key and not to the
// write keys; read routes answer the read key.
func TestScopedKeys(t *testing.T) {
	setup(t)
	cfg := DefaultConfig()
	cfg.APIKey = "legacy-write-key"
	cfg.Keys = []Key{{"reader-key-0001", ScopeRead}, {"writer-key-0001", ScopeWrite}}
	s, _ := newTestServer(t, fixture.cebm, 300, cfg)
	send := func(method, path, key string) *http.Request {
		r := req(method, path, "image/png", digitPNG(t, 0))
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		return r
	}
	writes, reads := 0, 0
	err := chi.Walk(s.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := strings.NewReplacer("{id}", "1", "{file}", "x").Replace(route)
		probe := httptest.NewRecorder() // not do: the page is not in openapi.yaml
		s.ServeHTTP(probe, send(method, path, ""))
		if probe.Code != http.StatusUnauthorized {
			return nil // public: health, metrics, the page, the documents
		}
		name := method + " " + route
		if method == http.MethodGet || readRoutes[name] {
			reads++
			for _, key := range []string{"reader-key-0001", "writer-key-0001", "legacy-write-key"} {
				if w := do(t, s, send(method, path, key)); w.Code == 401 || w.Code == 403 {
					t.Errorf("%s with key %s: %d %s", name, key, w.Code, w.Body)
				}
			}
			return nil
		}
		writes++
		checkProblem(t, do(t, s, send(method, path, "reader-key-0001")), 403, "read-only-key")
		for _, key := range []string{"writer-key-0001", "legacy-write-key"} {
			if w := do(t, s, send(method, path, key)); w.Code == 401 || w.Code == 403 {
				t.Errorf("%s with write key %s: %d %s", name, key, w.Code, w.Body)
			}
		}
		checkProblem(t, do(t, s, send(method, path, "wrong-key-0001")), 401, "unauthorized")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if writes < 2 || reads < 5 {
		t.Fatalf("walked %d write and %d read routes: the walk missed routes", writes, reads)
	}
	t.Logf("%d write routes refuse the read key; %d read routes accept it", writes, reads)
}
