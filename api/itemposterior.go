package api

import (
	"fmt"
	"net/http"

	"github.com/cebm/cebm/encoder"
)

// maxItemIDDigits bounds an index item's id as GET /posterior/{id} reads
// it. Ids of two kinds share the route and are told apart by their form:
// a stored posterior's id is a content address, 32 hexadecimal digits
// (encoder.ContentID); an index item's is a decimal number, as in
// /classify-knn's neighbours and POST /index/items' index_ids, of at most
// 18 digits. A 32-digit number is therefore always a content address.
const maxItemIDDigits = 18

// isItemID reports whether id names an index item: 1 to maxItemIDDigits
// decimal digits.
func isItemID(id string) bool {
	if id == "" || len(id) > maxItemIDDigits {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// handleItemPosterior is GET /posterior/{id} for an index item's id: its
// posterior, computed again from the 8-bit model input the server keeps
// of it (a reference image, or an added item's input), in the shape of a
// stored posterior with the item's id as its id. A reference item's mean
// is the vector the index holds; an added item's differs from it by the
// rounding of its input to 8 bits.
func (s *Server) handleItemPosterior(w http.ResponseWriter, r *http.Request) error {
	b, id, pix, err := s.itemImage(r)
	if err != nil {
		return err
	}
	m := b.Model()
	if len(pix) != m.InputSize() {
		return fmt.Errorf("api: index item %d has %d values, the model takes %d", id, len(pix), m.InputSize())
	}
	x := make([]float32, len(pix))
	for i, v := range pix {
		x[i] = float32(v)/127.5 - 1 // as the training data and the reference set were scaled
	}
	res, err := b.Encode(r.Context(), []encoder.Input{{X: x}})
	if err != nil {
		return batcherProblem(err)
	}
	p := posteriorJSON(&res[0])
	p.ID = r.PathValue("id")
	st := pinned(r).st
	p.OOD = s.ood(st, res[0].Energy, s.nearest(st, res[0].Latent, 1)[0])
	writeJSON(w, http.StatusOK, p)
	return nil
}

// itemImage is the model and the stored 8-bit image (the model's input) of
// the index item that r's {id} names, or the problem: not ready, no such
// item, or an item without a stored image.
func (s *Server) itemImage(r *http.Request) (*encoder.Batcher, int, []uint8, error) {
	b, err := s.model(r)
	if err != nil {
		return nil, 0, nil, err
	}
	st, id, err := s.item(r)
	if err != nil {
		return nil, 0, nil, err
	}
	pix, ok := s.itemPixels(st, id)
	if !ok {
		return nil, 0, nil, problem(kindNotFound, fmt.Sprintf("Index item %d has no stored image; GET /index/items/%d has its posterior mean.", id, id))
	}
	return b, id, pix, nil
}
