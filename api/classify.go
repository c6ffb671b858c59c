package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"sort"
	"strconv"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/store"
)

// handleClassify is POST /classify-knn: the k nearest reference items of
// each image (or of a stored posterior's mean, or of a given mean) and
// their majority label.
func (s *Server) handleClassify(w http.ResponseWriter, r *http.Request) error {
	var q classifyRequest
	b, st, err := s.readWithIndex(r, &q)
	if err != nil {
		return err
	}
	ix := st.ix
	k := max(q.k, 1)
	if k > s.cfg.MaxK {
		return problem(kindInvalid, fmt.Sprintf("k must be at most %d.", s.cfg.MaxK))
	}
	qs, err := s.queries(r.Context(), b, ix.Dim(), &q)
	if err != nil {
		return err
	}
	var found []index.Result
	ctx, span := s.startSpan(r.Context(), "index search")
	if q.filter.empty() {
		found, err = ix.ClassifyBatchContext(ctx, qs.vecs, k)
	} else {
		var f index.Filter
		if f, err = s.indexFilter(st, &q.filter); err != nil {
			endSpan(span, err)
			return err
		}
		found, err = ix.ClassifyFilterContext(ctx, qs.vecs, k, f)
	}
	endSpan(span, err)
	// The out-of-distribution distance is to the nearest item of the
	// whole index, whatever the filter.
	var nearestAll []float64
	if !q.filter.empty() && err == nil {
		nearestAll = s.nearest(st, qs.vecs, len(found))
	}
	switch {
	case errors.Is(err, index.ErrEmpty):
		return retryable(kindNotReady, "The reference index is empty; add items with POST /index/items.", 5)
	case errors.Is(err, index.ErrNotFinite):
		return problem(kindInvalid, "The query vector is not finite.")
	case err != nil:
		return err
	}
	classes := b.Model().Classes
	out := wire.ClassifyResponse{Model: b.Model().Digest, K: k, Results: make([]wire.Classification, len(found))}
	for i, f := range found {
		out.Results[i] = classification(f, classes, qs.ids[i], qs.inverted[i])
		nearest := math.NaN()
		switch {
		case nearestAll != nil:
			nearest = nearestAll[i]
		case len(f.Neighbors) > 0:
			nearest = float64(f.Neighbors[0].Distance)
		}
		out.Results[i].OOD = s.ood(st, qs.energies[i], nearest)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// queryVectors are what /classify-knn searches for, with the id and the
// inversion each answer reports.
type queryVectors struct {
	vecs     []float32 // one posterior mean after another
	ids      []string
	inverted []bool
	energies []float64 // NaN for a given mean
}

// queries turns the one query form q holds into vectors of dimension dim.
func (s *Server) queries(ctx context.Context, b *encoder.Batcher, dim int, q *classifyRequest) (queryVectors, error) {
	given := 0
	for _, v := range []bool{len(q.images) > 0, q.id != "", q.mean != nil} {
		if v {
			given++
		}
	}
	switch {
	case given != 1:
		return queryVectors{}, problem(kindInvalid, "Give exactly one of: images, id, mean.")
	case q.id != "":
		sctx, span := s.startSpan(ctx, "store get")
		res, err := s.getPosterior(sctx, b.Model().Digest, q.id)
		endSpan(span, err)
		if err != nil {
			return queryVectors{}, storeProblem(err)
		}
		if len(res.Latent) != dim {
			return queryVectors{}, problem(kindInvalid, "The posterior with this id was computed by another model; give that model, or the image.")
		}
		return queryVectors{res.Latent, []string{res.ID}, []bool{res.Inverted}, []float64{res.Energy}}, nil
	case q.mean != nil:
		return meanQuery(q.mean, dim)
	}
	res, _, err := s.encode(ctx, b, q.upload)
	if err != nil {
		return queryVectors{}, err
	}
	var qv queryVectors
	for _, x := range res {
		qv.vecs = append(qv.vecs, x.Latent...)
		qv.ids = append(qv.ids, x.ID)
		qv.inverted = append(qv.inverted, x.Inverted)
		qv.energies = append(qv.energies, x.Energy)
	}
	return qv, nil
}

// meanQuery checks a posterior mean given in the request.
func meanQuery(mean []float32, dim int) (queryVectors, error) {
	if len(mean) != dim {
		return queryVectors{}, problem(kindInvalid, fmt.Sprintf("mean must have %d values.", dim))
	}
	for _, v := range mean {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e15 {
			return queryVectors{}, problem(kindInvalid, "mean must hold finite values of moderate size.")
		}
	}
	return queryVectors{mean, []string{""}, []bool{false}, []float64{math.NaN()}}, nil
}

func className(classes []string, l int) string {
	if l >= 0 && l < len(classes) {
		return classes[l]
	}
	return ""
}

func classification(f index.Result, classes []string, id string, inverted bool) wire.Classification {
	c := wire.Classification{ID: id, Label: f.Label, Class: className(classes, f.Label), Inverted: inverted,
		Votes: []wire.Vote{}, Neighbors: make([]wire.Neighbor, len(f.Neighbors))}
	count := map[int]int{}
	for i, nb := range f.Neighbors {
		c.Neighbors[i] = wire.Neighbor{ID: nb.ID, Label: nb.Label, Class: className(classes, nb.Label), Distance: nb.Distance}
		if nb.Label >= 0 {
			count[nb.Label]++
		}
	}
	for l, n := range count {
		c.Votes = append(c.Votes, wire.Vote{Label: l, Class: className(classes, l), Count: n})
	}
	sort.Slice(c.Votes, func(i, j int) bool {
		a, b := c.Votes[i], c.Votes[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Label < b.Label)
	})
	return c
}

// handleAddItems is POST /index/items: encode labelled images and add their
// posterior means to the reference index. Labels are class indices or
// class names, one per image.
func (s *Server) handleAddItems(w http.ResponseWriter, r *http.Request) error {
	var q addItemsRequest
	b, st, err := s.readWithIndex(r, &q)
	if err != nil {
		return err
	}
	ix := st.ix
	n := len(q.images)
	if n == 0 {
		return errNoImage
	}
	if len(q.labels) != n {
		return problem(kindInvalid, fmt.Sprintf("Give one label per image: %d images, %d labels.", n, len(q.labels)))
	}
	if q.tags != nil && len(q.tags) != n {
		return problem(kindInvalid, fmt.Sprintf("Give tags for every image or for none: %d images, %d tag lists.", n, len(q.tags)))
	}
	for _, ts := range q.tags {
		if err := checkTags(ts); err != nil {
			return err
		}
	}
	classes := b.Model().Classes
	labels := make([]int, len(q.labels))
	for i, l := range q.labels {
		if labels[i], err = parseLabel(l, classes); err != nil {
			return err
		}
	}
	res, inputs, err := s.encode(r.Context(), b, q.upload)
	if err != nil {
		return err
	}
	vecs := make([]float32, 0, len(res)*ix.Dim())
	var pixels []uint8
	for _, in := range inputs {
		pixels = append(pixels, toBytes(in.X)...)
	}
	out := wire.AddItemsResponse{Added: len(res), IDs: make([]string, len(res)), IndexIDs: make([]int, len(res))}
	for i, x := range res {
		vecs = append(vecs, x.Latent...)
		out.IDs[i] = x.ID
	}
	// Past its deadline the request adds nothing: its client has been told
	// (or will be) that it failed.
	if err := r.Context().Err(); err != nil {
		return err
	}
	ctx, span := s.startSpan(r.Context(), "store append")
	first, err := st.items.Append(ctx, store.Batch{Vecs: vecs, Labels: labels, Pixels: pixels, Tags: q.tags})
	endSpan(span, err)
	if errors.Is(err, index.ErrNotFinite) {
		return problem(kindInvalid, "An image's posterior mean is not finite.")
	}
	if err != nil {
		return storeProblem(err)
	}
	for i := range out.IndexIDs {
		out.IndexIDs[i] = first + i
	}
	out.IndexSize = ix.Len()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseLabel reads a class name, or a class index, against the model's
// classes (any index ≥ 0 if the model names none).
func parseLabel(s string, classes []string) (int, error) {
	for i, c := range classes {
		if c == s {
			return i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err == nil && n >= 0 && (len(classes) == 0 || n < len(classes)) && n < math.MaxInt32 {
		return n, nil
	}
	return 0, problem(kindInvalid, fmt.Sprintf("Label %q is not one of the model's classes.", s))
}

// item reads the {id} of an /index/items path: the index and the id of an
// item it holds, or the problem.
func (s *Server) item(r *http.Request) (*indexState, int, error) {
	st, err := s.reference(r)
	if err != nil {
		return nil, 0, err
	}
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 {
		return nil, 0, problem(kindInvalid, "An index id is a non-negative integer.")
	}
	if id >= st.ix.Len() {
		return nil, 0, problem(kindNotFound, fmt.Sprintf("There is no index item %d; the index holds %d.", id, st.ix.Len()))
	}
	if st.ix.Deleted(id) {
		return nil, 0, problem(kindNotFound, fmt.Sprintf("Index item %d was deleted.", id))
	}
	return st, id, nil
}

// handleItem is GET /index/items/{id}: one index item's label and vector.
func (s *Server) handleItem(w http.ResponseWriter, r *http.Request) error {
	st, id, err := s.item(r)
	if err != nil {
		return err
	}
	v, err := st.ix.Vector(id)
	if err != nil {
		return err
	}
	l, _ := st.ix.Label(id)
	classes := st.classes
	_, hasImage := s.itemPixels(st, id)
	source := "reference"
	if id >= st.items.Base() {
		source = "added"
	}
	writeJSON(w, http.StatusOK, wire.IndexItem{ID: id, Label: l, Class: className(classes, l), Source: source, Image: hasImage, Mean: v, Tags: st.items.Tags(id)})
	return nil
}

// itemPixels is index item id's image: a reference image or the model
// input of an added one.
func (s *Server) itemPixels(st *indexState, id int) ([]uint8, bool) {
	if id < st.items.Base() {
		if st.ref.Pixels == nil || id < 0 {
			return nil, false
		}
		return st.ref.Pixels(id), true
	}
	return st.items.Pixels(id)
}

// handleItemImage is GET /index/items/{id}/image: the item's image as a
// PNG, as the model sees it.
func (s *Server) handleItemImage(w http.ResponseWriter, r *http.Request) error {
	b, _, pix, err := s.itemImage(r)
	if err != nil {
		return err
	}
	img, err := pixelImage(pix, b.Model().InputShape)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=86400, immutable") // an id's image never changes
	_, err = w.Write(buf.Bytes())
	return err
}

// toBytes maps model inputs in [-1, 1] to 8-bit values.
func toBytes(x []float32) []uint8 {
	out := make([]uint8, len(x))
	for i, v := range x {
		out[i] = uint8(math.Round(float64(min(max((v+1)*127.5, 0), 255))))
	}
	return out
}

// pixelImage is C×H×W 8-bit values (C = 1 or 3) as an image.
func pixelImage(pix []uint8, shape [3]int) (image.Image, error) {
	c, h, w := shape[0], shape[1], shape[2]
	if len(pix) != c*h*w {
		return nil, fmt.Errorf("api: image of %d values for shape %v", len(pix), shape)
	}
	switch c {
	case 1:
		return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	case 3:
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				i := y*w + x
				img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = pix[i], pix[h*w+i], pix[2*h*w+i], 255
			}
		}
		return img, nil
	}
	return nil, fmt.Errorf("api: images of %d channels cannot be shown", c)
}
