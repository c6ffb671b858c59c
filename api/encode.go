package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cebm/cebm/encoder"
)

// handleEncode is POST /encode: each image's id and posterior.
func (s *Server) handleEncode(w http.ResponseWriter, r *http.Request) error {
	b, err := s.model()
	if err != nil {
		return err
	}
	var q encodeRequest
	if err := s.readRequest(r, &q); err != nil {
		return err
	}
	res, _, err := s.encode(r.Context(), b, q.upload)
	if err != nil {
		return err
	}
	out := EncodeResponse{Model: b.Model().Digest, Results: make([]Posterior, len(res))}
	for i := range res {
		out.Results[i] = posteriorJSON(&res[i])
		out.Results[i].OOD = s.ood(res[i].Energy)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handlePosterior is GET /posterior/{id}: a stored posterior.
func (s *Server) handlePosterior(w http.ResponseWriter, r *http.Request) error {
	res, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return storeProblem(err)
	}
	p := posteriorJSON(res)
	p.OOD = s.ood(res.Energy)
	writeJSON(w, http.StatusOK, p)
	return nil
}

var errNoImage = problem(kindInvalid, "The request holds no image.")

// encode preprocesses the images, runs them through the batcher and stores
// their posteriors. It returns the posteriors and the model inputs.
func (s *Server) encode(ctx context.Context, b *encoder.Batcher, in upload) ([]encoder.Result, []encoder.Input, error) {
	if len(in.images) == 0 {
		return nil, nil, errNoImage
	}
	m := b.Model()
	inputs := make([]encoder.Input, len(in.images))
	for i, img := range in.images {
		x, err := m.Preprocess(img, s.cfg.MaxPixels, in.invert)
		if err != nil {
			return nil, nil, imageError(i, len(in.images), err)
		}
		inputs[i] = x
	}
	res, err := b.Encode(ctx, inputs)
	switch {
	case errors.Is(err, encoder.ErrQueueFull):
		return nil, nil, retryable(kindOverloaded, "The encoder queue is full; retry after the indicated delay.", 1)
	case errors.Is(err, encoder.ErrClosed):
		return nil, nil, retryable(kindNotReady, "The server is shutting down.", 5)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, nil, problem(kindTimeout, "The request did not finish within the server's time limit.")
	case err != nil:
		return nil, nil, err
	}
	if err := s.store.Put(ctx, res); err != nil {
		return nil, nil, storeProblem(err)
	}
	return res, inputs, nil
}

// imageError maps a preprocessing error of image i of n to its problem.
func imageError(i, n int, err error) error {
	which := "The image"
	if n > 1 {
		which = fmt.Sprintf("Image %d", i)
	}
	switch {
	case errors.Is(err, encoder.ErrUnsupported):
		return problem(kindMediaType, which+" is not a PNG or JPEG image.")
	case errors.Is(err, encoder.ErrTooLarge):
		return problem(kindTooLarge, which+" has more pixels than the server accepts.")
	case errors.Is(err, encoder.ErrUndecodable):
		return problem(kindBadImage, which+" cannot be decoded.")
	}
	return err
}
