package api

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"github.com/cebm/cebm/api/wire"
)

// TestItemLifecycle: tags on added items, the /classify-knn filters,
// GET /index/items pages and DELETE /index/items/{id}; do validates every
// request and answer against openapi.yaml.
func TestItemLifecycle(t *testing.T) {
	setup(t)
	const nRef = 300
	s, _ := newTestServer(t, fixture.cebm, nRef, DefaultConfig())
	b64 := base64.StdEncoding.EncodeToString
	png0, png1, png2 := digitPNG(t, 0), digitPNG(t, 1), digitPNG(t, 2) // a 7, a 2, a 1

	// Three added items: JSON with tags, multipart with a tags field per
	// image, and a raw body with the tags query parameter.
	body := jsonBodyOf(t, map[string]any{"items": []map[string]any{
		{"image": b64(png0), "label": 7, "tags": []string{"batch-1", "checked"}},
		{"image": b64(png1), "label": "2", "tags": []string{"batch-1"}},
	}})
	w := do(t, s, req("POST", "/index/items", "application/json", body))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	added := decode[wire.AddItemsResponse](t, w).IndexIDs
	mp, mct := multipartBody(t, [][]byte{png2}, map[string][]string{"label": {"1"}, "tags": {"batch-2,checked"}})
	w = do(t, s, req("POST", "/index/items", mct, mp))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	added = append(added, decode[wire.AddItemsResponse](t, w).IndexIDs...)
	w = do(t, s, req("POST", "/index/items?label=7&tags=", "image/png", png0))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	added = append(added, decode[wire.AddItemsResponse](t, w).IndexIDs...)
	if want := []int{nRef, nRef + 1, nRef + 2, nRef + 3}; !slices.Equal(added, want) {
		t.Fatalf("added ids %v, want %v", added, want)
	}
	for _, bad := range []map[string]any{
		{"image": b64(png0), "label": 7, "tags": []string{""}},
		{"image": b64(png0), "label": 7, "tags": []string{"a,b"}},
	} {
		if w := do(t, s, req("POST", "/index/items", "application/json", jsonBodyOf(t, bad))); w.Code != 400 {
			t.Errorf("tags %v: %d, want 400", bad["tags"], w.Code)
		}
	}
	mp, mct = multipartBody(t, [][]byte{png0, png1}, map[string][]string{"label": {"7", "2"}, "tags": {"x"}})
	if w := do(t, s, req("POST", "/index/items", mct, mp)); w.Code != 400 {
		t.Errorf("tags for one of two images: %d, want 400", w.Code)
	}
	if it := decode[wire.IndexItem](t, do(t, s, req("GET", fmt.Sprintf("/index/items/%d", nRef), "", nil))); !slices.Equal(it.Tags, []string{"batch-1", "checked"}) {
		t.Errorf("item %d's tags: %q", nRef, it.Tags)
	}

	// classify returns the neighbours' ids for a query and filter.
	classify := func(t *testing.T, k int, filter map[string]any, query string) []wire.Neighbor {
		t.Helper()
		q := map[string]any{"image": b64(png0), "k": k}
		if filter != nil {
			q["filter"] = filter
		}
		w := do(t, s, req("POST", "/classify-knn"+query, "application/json", jsonBodyOf(t, q)))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return decode[wire.ClassifyResponse](t, w).Results[0].Neighbors
	}
	ids := func(ns []wire.Neighbor) []int {
		var out []int
		for _, nb := range ns {
			out = append(out, nb.ID)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		name   string
		filter map[string]any
		query  string
		want   []int // exactly these ids (k = 10 is more than match), or nil: check below
	}{
		{"source added", map[string]any{"source": "added"}, "", added},
		{"tag", map[string]any{"tags": []string{"batch-1"}}, "", added[:2]},
		{"two tags", map[string]any{"tags": []string{"batch-1", "checked"}}, "", added[:1]},
		{"tag and label", map[string]any{"tags": []string{"checked"}, "labels": []any{1}}, "", added[2:3]},
		{"labels as names", map[string]any{"source": "added", "labels": []any{"2", "1"}}, "", added[1:3]},
		{"query parameters", nil, "?source=added&tag=checked", []int{added[0], added[2]}},
		{"no match", map[string]any{"tags": []string{"nowhere"}}, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ids(classify(t, 10, c.filter, c.query))
			if !slices.Equal(got, c.want) {
				t.Errorf("neighbours %v, want %v", got, c.want)
			}
		})
	}
	t.Run("reference with label", func(t *testing.T) {
		for _, nb := range classify(t, 20, map[string]any{"source": "reference", "labels": []any{3}}, "") {
			if nb.ID >= nRef || nb.Label != 3 {
				t.Errorf("neighbour %+v is not a reference 3", nb)
			}
		}
	})
	for _, bad := range []string{`{"image":"%s","filter":{"source":"elsewhere"}}`, `{"image":"%s","filter":{"labels":["cat"]}}`, `{"image":"%s","filter":{"colour":"red"}}`} {
		if w := do(t, s, req("POST", "/classify-knn", "application/json", fmt.Appendf(nil, bad, b64(png0)))); w.Code != 400 {
			t.Errorf("%s: %d, want 400", bad, w.Code)
		}
	}

	// Delete: the nearest neighbour of png0 is an added copy of it (distance
	// 0); after the delete the other copy is, and the deleted one is gone
	// from searches, GET and listings.
	first := classify(t, 2, nil, "")
	if first[0].Distance != 0 || first[1].Distance != 0 {
		t.Fatalf("png0's two added copies are not its nearest: %+v", first)
	}
	gone := first[0].ID
	w = do(t, s, req("DELETE", fmt.Sprintf("/index/items/%d", gone), "", nil))
	if res := decode[wire.DeleteItemResponse](t, w); w.Code != 200 || res.ID != gone || !res.Deleted || res.LiveItems != nRef+3 {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if w := do(t, s, req("DELETE", fmt.Sprintf("/index/items/%d", gone), "", nil)); w.Code != 200 {
		t.Errorf("second DELETE: %d %s", w.Code, w.Body)
	}
	for _, nb := range classify(t, 50, nil, "") {
		if nb.ID == gone {
			t.Fatalf("deleted item %d is still a neighbour", gone)
		}
	}
	if nb := classify(t, 1, nil, ""); nb[0].ID != first[1].ID || nb[0].Distance != 0 {
		t.Errorf("after the delete the nearest is %+v, want item %d", nb[0], first[1].ID)
	}
	for _, p := range []string{"/index/items/%d", "/index/items/%d/image"} {
		if w := do(t, s, req("GET", fmt.Sprintf(p, gone), "", nil)); w.Code != 404 {
			t.Errorf("GET %s of a deleted item: %d", fmt.Sprintf(p, gone), w.Code)
		}
	}
	for path, code := range map[string]int{"/index/items/99999": 404, "/index/items/-1": 400, "/index/items/x": 400} {
		if w := do(t, s, req("DELETE", path, "", nil)); w.Code != code {
			t.Errorf("DELETE %s: %d, want %d", path, w.Code, code)
		}
	}
	// A reference item can be deleted too.
	if w := do(t, s, req("DELETE", "/index/items/5", "", nil)); w.Code != 200 {
		t.Fatalf("DELETE reference item: %d %s", w.Code, w.Body)
	}

	// Listing: pages of 7 walk every live item once, in id order.
	var all []int
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > nRef {
			t.Fatal("the pages do not end")
		}
		path := "/index/items?limit=7"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		w := do(t, s, req("GET", path, "", nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		page := decode[wire.ItemsPage](t, w)
		if len(page.Items) > 7 {
			t.Fatalf("a page of %d items", len(page.Items))
		}
		for _, it := range page.Items {
			all = append(all, it.ID)
			if want := it.ID >= nRef; (it.Source == "added") != want {
				t.Errorf("item %d's source %q", it.ID, it.Source)
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	var want []int
	for id := range nRef + 4 {
		if id != 5 && id != gone {
			want = append(want, id)
		}
	}
	if !slices.Equal(all, want) {
		t.Errorf("listing: %d items, want %d (every live id once, in order)", len(all), len(want))
	}
	w = do(t, s, req("GET", "/index/items?tag=checked", "", nil))
	page := decode[wire.ItemsPage](t, w)
	var tagged []int
	for _, it := range page.Items {
		tagged = append(tagged, it.ID)
		if !slices.Contains(it.Tags, "checked") {
			t.Errorf("listed item %d lacks the tag: %q", it.ID, it.Tags)
		}
	}
	if wantTagged := slices.DeleteFunc([]int{added[0], added[2]}, func(id int) bool { return id == gone }); !slices.Equal(tagged, wantTagged) || page.NextCursor != "" {
		t.Errorf("listing tag=checked: %v (next %q), want %v", tagged, page.NextCursor, wantTagged)
	}
	for _, bad := range []string{"?limit=0", "?limit=1001", "?cursor=x", "?source=x", "?colour=red", "?label=cat"} {
		if w := do(t, s, req("GET", "/index/items"+bad, "", nil)); w.Code != 400 {
			t.Errorf("GET /index/items%s: %d, want 400", bad, w.Code)
		}
	}
}
