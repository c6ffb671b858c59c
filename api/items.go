package api

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/store"
)

// itemFilter restricts the items a search or a listing sees (wire.Filter):
// labels (any of), source, tags (all of); zero fields do not restrict.
type itemFilter struct {
	labels []string
	source string
	tags   []string
}

func (f *itemFilter) empty() bool {
	return len(f.labels) == 0 && f.source == "" && len(f.tags) == 0
}

// set reads one filter field of a query string or form: label, source or
// tag. It reports whether name is one.
func (f *itemFilter) set(name, v string) (bool, error) {
	switch name {
	case "label":
		f.labels = append(f.labels, v)
	case "source":
		f.source = v
	case "tag":
		f.tags = append(f.tags, v)
	default:
		return false, nil
	}
	return true, nil
}

// keep turns the filter into a predicate on index ids of st, or the
// problem of a bad label or source.
func (s *Server) keep(st *indexState, f *itemFilter) (func(id int) bool, error) {
	classes := st.classes
	labels := map[int]bool{}
	for _, l := range f.labels {
		n, err := parseLabel(l, classes)
		if err != nil {
			return nil, err
		}
		labels[n] = true
	}
	if f.source != "" && f.source != "reference" && f.source != "added" {
		return nil, problem(kindInvalid, "source must be reference or added.")
	}
	if err := checkTags(f.tags); err != nil {
		return nil, err
	}
	base := st.items.Base()
	return func(id int) bool {
		if st.ix.Deleted(id) {
			return false
		}
		switch {
		case f.source == "reference" && id >= base, f.source == "added" && id < base:
			return false
		}
		if len(labels) > 0 {
			if l, _ := st.ix.Label(id); !labels[l] {
				return false
			}
		}
		if len(f.tags) > 0 {
			if id < base {
				return false
			}
			have := st.items.Tags(id)
			for _, t := range f.tags {
				if !slices.Contains(have, t) {
					return false
				}
			}
		}
		return true
	}, nil
}

// indexFilter is the filter as the index's set of ids.
func (s *Server) indexFilter(st *indexState, f *itemFilter) (index.Filter, error) {
	keep, err := s.keep(st, f)
	if err != nil {
		return nil, err
	}
	return index.NewFilter(st.ix.Len(), keep), nil
}

// checkTags refuses tags the store cannot keep.
func checkTags(tags []string) error {
	if len(tags) > store.MaxTags {
		return problem(kindInvalid, fmt.Sprintf("At most %d tags per item.", store.MaxTags))
	}
	for _, t := range tags {
		if t == "" || len(t) > store.MaxTagBytes || strings.ContainsAny(t, ",\x00") {
			return problem(kindInvalid, fmt.Sprintf("A tag is 1 to %d bytes, without commas.", store.MaxTagBytes))
		}
	}
	return nil
}

// splitTags reads a form or query field's comma-separated tags ("" for
// none).
func splitTags(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

// maxPage is the most items one GET /index/items answers.
const maxPage = 1000

// handleListItems is GET /index/items: the items that are not deleted
// (and match the filter of the label, source and tag parameters), in id
// order, from the cursor on, limit at a time.
func (s *Server) handleListItems(w http.ResponseWriter, r *http.Request) error {
	st, err := s.reference(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, from := 100, 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxPage {
			return problem(kindInvalid, fmt.Sprintf("limit must be an integer from 1 to %d.", maxPage))
		}
	}
	if v := q.Get("cursor"); v != "" {
		if from, err = strconv.Atoi(v); err != nil || from < 0 {
			return problem(kindInvalid, "cursor must be a next_cursor of an earlier answer.")
		}
	}
	var f itemFilter
	for name, vs := range q {
		for _, v := range vs {
			ok, _ := f.set(name, v)
			if !ok && name != "limit" && name != "cursor" && name != "model" {
				return problem(kindInvalid, fmt.Sprintf("GET /index/items takes model, cursor, limit, label, source and tag, not %q.", name))
			}
		}
	}
	keep, err := s.keep(st, &f)
	if err != nil {
		return err
	}
	classes := st.classes
	out := wire.ItemsPage{Items: []wire.ItemSummary{}}
	n := st.ix.Len()
	id := from
	for ; id < n && len(out.Items) < limit; id++ {
		if !keep(id) {
			continue
		}
		l, _ := st.ix.Label(id)
		out.Items = append(out.Items, wire.ItemSummary{ID: id, Label: l, Class: className(classes, l), Source: source(st, id), Tags: st.items.Tags(id)})
	}
	if id < n {
		out.NextCursor = strconv.Itoa(id)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// source is "reference" or "added".
func source(st *indexState, id int) string {
	if id >= st.items.Base() {
		return "added"
	}
	return "reference"
}

// handleDeleteItem is DELETE /index/items/{id}: the item leaves the index
// durably (and on every replica). Deleting a deleted item answers the same.
func (s *Server) handleDeleteItem(w http.ResponseWriter, r *http.Request) error {
	st, err := s.reference(r)
	if err != nil {
		return err
	}
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 {
		return problem(kindInvalid, "An index id is a non-negative integer.")
	}
	if id >= st.ix.Len() {
		return problem(kindNotFound, fmt.Sprintf("There is no index item %d; the index holds %d.", id, st.ix.Len()))
	}
	ctx, span := s.startSpan(r.Context(), "store delete")
	err = st.items.Delete(ctx, id)
	endSpan(span, err)
	if err != nil {
		return storeProblem(err)
	}
	writeJSON(w, http.StatusOK, wire.DeleteItemResponse{ID: id, Deleted: true, LiveItems: st.ix.Live()})
	return nil
}
