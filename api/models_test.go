package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/cebm/cebm/api/wire"
)

// TestRefTablesAfterDelete: deleted reference items leave the map and the
// out-of-distribution table (computed again after the delete), and
// GET /models counts only live items.
func TestRefTablesAfterDelete(t *testing.T) {
	s, _ := newTestServer(t, fixture.cebm, 100, DefaultConfig())
	for id := range 10 {
		if w := do(t, s, req("DELETE", fmt.Sprintf("/index/items/%d", id), "", nil)); w.Code != 200 {
			t.Fatalf("DELETE %d: %d %s", id, w.Code, w.Body)
		}
	}
	models := decode[wire.ModelsResponse](t, do(t, s, req("GET", "/models", "", nil)))
	if n := models.Models[0].IndexItems; n != 90 || !models.Models[0].Ready || !models.Models[0].Default {
		t.Errorf("/models after 10 deletes: %+v", models.Models[0])
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		m := decode[RefMap](t, do(t, s, req("GET", "/index/map", "", nil)))
		deleted := 0
		for _, p := range m.Points {
			if p.ID < 10 {
				deleted++
			}
		}
		tables := s.served().st.tables.Load()
		if deleted == 0 && len(m.Points) == 90 && len(tables.nnDist) == 90 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 deletes the map shows %d of them among %d points, the distance table has %d", deleted, len(m.Points), len(tables.nnDist))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestModelParameter: the model parameter names the served model (its
// name); another name is 404 model-not-found on every model route.
func TestModelParameter(t *testing.T) {
	s, m := newTestServer(t, fixture.cebm, 100, DefaultConfig())
	name := modelName(m)
	png0 := digitPNG(t, 0)
	if w := do(t, s, req("POST", "/encode?model="+name, "image/png", png0)); w.Code != 200 {
		t.Errorf("/encode?model=%s: %d %s", name, w.Code, w.Body)
	}
	for _, r := range [][2]string{{"POST", "/encode"}, {"POST", "/classify-knn"}, {"GET", "/index/items"}, {"GET", "/index/items/0"}, {"GET", "/index/map"}} {
		var w = do(t, s, req(r[0], r[1]+"?model=other", "image/png", png0))
		if r[0] == "GET" {
			w = do(t, s, req(r[0], r[1]+"?model=other", "", nil))
		}
		checkProblem(t, w, 404, "model-not-found")
	}
	cls := decode[wire.ClassifyResponse](t, do(t, s, req("POST", "/classify-knn", "image/png", png0)))
	if cls.Model != m.Digest {
		t.Errorf("/classify-knn answers model %q, want %q", cls.Model, m.Digest)
	}
	// Without a loader (a bare api.Server) PUT /models/{name} is 404.
	checkProblem(t, do(t, s, req("PUT", "/models/"+name, "application/octet-stream", []byte("x"))), 404, "not-found")
}
