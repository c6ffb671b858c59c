package api

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cebm/cebm/api/wire"
)

// TestItemPosterior: GET /posterior/{id} of an index item's id answers its
// posterior, in the shape of a stored one (do validates it against
// openapi.yaml): a reference item's mean is its vector in the index, and a
// reference or added item's posterior is the one /encode gives its image.
// A number beyond the index is a 404 that says so; 32 digits are a content
// address, looked up in the store.
func TestItemPosterior(t *testing.T) {
	setup(t)
	s, _ := newTestServer(t, fixture.cebm, 1000, DefaultConfig())
	get := func(t *testing.T, id string) wire.Posterior {
		t.Helper()
		w := do(t, s, req("GET", "/posterior/"+id, "", nil))
		if w.Code != 200 {
			t.Fatalf("GET /posterior/%s: %d %s", id, w.Code, w.Body)
		}
		return decode[wire.Posterior](t, w)
	}
	encode := func(t *testing.T, img []byte) wire.Posterior {
		t.Helper()
		w := do(t, s, req("POST", "/encode", "image/png", img))
		if w.Code != 200 {
			t.Fatalf("POST /encode: %d %s", w.Code, w.Body)
		}
		return decode[wire.EncodeResponse](t, w).Results[0]
	}
	same := func(t *testing.T, what string, got, want []float32, tol float64) {
		t.Helper()
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
		}
		for i := range got {
			if d := math.Abs(float64(got[i] - want[i])); d > tol*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
			}
		}
	}

	t.Run("reference", func(t *testing.T) {
		p := get(t, "7")
		if p.ID != "7" || p.NaturalParams == nil || len(p.Variance) != 128 || p.OOD == nil {
			t.Fatalf("item 7's posterior: id %q, natural params %v, %d variances, ood %v", p.ID, p.NaturalParams != nil, len(p.Variance), p.OOD)
		}
		item := decode[wire.IndexItem](t, do(t, s, req("GET", "/index/items/7", "", nil)))
		same(t, "mean against the index's vector", p.Mean, item.Mean, 1e-4)
		w := do(t, s, req("GET", "/index/items/7/image", "", nil))
		if w.Code != 200 {
			t.Fatalf("item 7's image: %d", w.Code)
		}
		e := encode(t, w.Body.Bytes())
		same(t, "η1 against /encode of its image", p.NaturalParams.Eta1, e.NaturalParams.Eta1, 1e-5)
		same(t, "η2 against /encode of its image", p.NaturalParams.Eta2, e.NaturalParams.Eta2, 1e-5)
		if math.Abs(p.Energy-e.Energy) > 1e-4*(1+math.Abs(e.Energy)) {
			t.Errorf("energy %v, /encode of its image %v", p.Energy, e.Energy)
		}
		if q := get(t, "8"); q.Energy == p.Energy {
			t.Error("items 7 and 8 have the same energy")
		}
	})

	t.Run("added", func(t *testing.T) {
		img := digitPNG(t, 3)
		w := do(t, s, req("POST", "/index/items?label=5", "image/png", img))
		if w.Code != 200 {
			t.Fatalf("POST /index/items: %d %s", w.Code, w.Body)
		}
		id := decode[wire.AddItemsResponse](t, w).IndexIDs[0]
		p := get(t, fmt.Sprint(id))
		e := encode(t, img)
		if p.ID != fmt.Sprint(id) {
			t.Errorf("id %q, want %d", p.ID, id)
		}
		same(t, "added item's mean against /encode of its image", p.Mean, e.Mean, 1e-5)
	})

	t.Run("not items", func(t *testing.T) {
		for id, want := range map[string]string{
			"1000000":                          "There is no index item 1000000",
			"01234567890123456789012345678901": "unknown-id", // 32 digits: a content address
			"-1":                               "unknown-id",
			"1234567890123456789":              "unknown-id", // 19 digits: not an item id
		} {
			w := do(t, s, req("GET", "/posterior/"+id, "", nil))
			if w.Code != 404 || !strings.Contains(w.Body.String(), want) {
				t.Errorf("GET /posterior/%s: %d %s, want 404 with %q", id, w.Code, w.Body, want)
			}
		}
	})

	t.Run("gmm-cebm", func(t *testing.T) {
		g, _ := newTestServer(t, fixture.gmm, 50, DefaultConfig())
		w := do(t, g, req("GET", "/posterior/3", "", nil))
		if p := decode[wire.Posterior](t, w); w.Code != 200 || len(p.Components) == 0 || len(p.Responsibilities) != len(p.Components) {
			t.Errorf("GMM-CEBM item 3: %d, %d components", w.Code, len(p.Components))
		}
	})
}
