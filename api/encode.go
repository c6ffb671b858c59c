package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
)

// handleEncode is POST /encode: each image's id and posterior.
func (s *Server) handleEncode(w http.ResponseWriter, r *http.Request) error {
	b, err := s.model(r)
	if err != nil {
		return err
	}
	st := pinned(r).st
	var q encodeRequest
	if err := s.readRequest(r, &q); err != nil {
		return err
	}
	res, _, err := s.encode(r.Context(), b, q.upload)
	if err != nil {
		return err
	}
	out := wire.EncodeResponse{Model: b.Model().Digest, Results: make([]wire.Posterior, len(res))}
	var latents []float32
	for i := range res {
		latents = append(latents, res[i].Latent...)
	}
	nearest := s.nearest(st, latents, len(res))
	for i := range res {
		out.Results[i] = posteriorJSON(&res[i])
		out.Results[i].OOD = s.ood(st, res[i].Energy, nearest[i])
	}
	writeEncodeJSON(w, &out)
	return nil
}

// handlePosterior is GET /posterior/{id}: a stored posterior, or an index
// item's (itemposterior.go).
func (s *Server) handlePosterior(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if isItemID(id) {
		return s.handleItemPosterior(w, r)
	}
	sctx, span := s.startSpan(r.Context(), "store get")
	res, err := s.getPosterior(sctx, pinned(r).b.Model().Digest, id)
	endSpan(span, err)
	if err != nil {
		return storeProblem(err)
	}
	p := posteriorJSON(res)
	if st := pinned(r).st; st != nil && len(res.Latent) == st.ix.Dim() {
		p.OOD = s.ood(st, res.Energy, s.nearest(st, res.Latent, 1)[0])
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// batcherProblem is the answer to an error of the batcher.
func batcherProblem(err error) error {
	switch {
	case errors.Is(err, encoder.ErrQueueFull):
		return retryable(kindOverloaded, "The encoder queue is full; retry after the indicated delay.", 1)
	case errors.Is(err, encoder.ErrClosed):
		return retryable(kindNotReady, "The server is shutting down.", 5)
	}
	return err
}

var errNoImage = problem(kindInvalid, "The request holds no image.")

// encode preprocesses the images, runs them through the batcher and stores
// their posteriors. It returns the posteriors and the model inputs.
func (s *Server) encode(ctx context.Context, b *encoder.Batcher, in upload) ([]encoder.Result, []encoder.Input, error) {
	if len(in.images) == 0 {
		return nil, nil, errNoImage
	}
	inputs := make([]encoder.Input, len(in.images))
	dctx, span := s.startSpan(ctx, "decode")
	for i, img := range in.images {
		x, err := s.preprocess(dctx, b.Model(), img, in.invert)
		if err != nil {
			endSpan(span, err)
			return nil, nil, imageError(i, len(in.images), err)
		}
		inputs[i] = x
	}
	endSpan(span, nil)
	res, timing, err := b.EncodeTimed(ctx, inputs)
	if err != nil {
		return nil, nil, batcherProblem(err)
	}
	s.traceBatch(ctx, timing, len(inputs))
	sctx, span := s.startSpan(ctx, "store put")
	err = s.putPosteriors(sctx, b.Model().Digest, res)
	endSpan(span, err)
	if err != nil {
		return nil, nil, storeProblem(err)
	}
	return res, inputs, nil
}

// collectBytes is the decoding cost past which the server collects the
// decoded pixels as soon as the image is encoded (and gives the memory
// back to the system) before another image may take its share of
// DecodeBytes: the Go collector would otherwise let the heap grow to twice
// what is live, and large decodes would stack up on each other's garbage.
const collectBytes = 32 << 20

// errDecodeBusy is answered when the images being decoded hold all of
// DecodeBytes.
var errDecodeBusy = retryable(kindDecodeBusy, "The server is decoding as many large images as its memory allows; retry after the indicated delay.", 1)

// preprocess turns one upload into the model's input within the limits:
// its header is checked, and the memory decoding it takes is reserved out
// of DecodeBytes for as long as it is decoded (503 when not that much is
// free now, 413 when the image would need more than all of it).
func (s *Server) preprocess(ctx context.Context, m *encoder.Model, b []byte, inv encoder.Invert) (encoder.Input, error) {
	lim := encoder.Limits{MaxPixels: s.cfg.MaxPixels, MaxSide: s.cfg.MaxSide, MaxAspect: s.cfg.MaxAspect}
	h, err := encoder.Inspect(b, lim)
	if err != nil {
		return encoder.Input{}, err
	}
	if h.DecodeBytes > s.cfg.DecodeBytes {
		return encoder.Input{}, &encoder.SizeError{Reason: fmt.Sprintf("would take %d MiB to decode, more than the server's %d MiB for decoding",
			h.DecodeBytes>>20, s.cfg.DecodeBytes>>20)}
	}
	if !s.decoding.TryAcquire(h.DecodeBytes) {
		return encoder.Input{}, errDecodeBusy
	}
	s.decodingBytes.Add(h.DecodeBytes)
	defer func() {
		if h.DecodeBytes >= collectBytes {
			debug.FreeOSMemory()
		}
		s.decodingBytes.Add(-h.DecodeBytes)
		s.decoding.Release(h.DecodeBytes)
	}()
	return m.Preprocess(ctx, b, lim, inv)
}

// imageError maps a preprocessing error of image i of n to its problem.
func imageError(i, n int, err error) error {
	which := "The image"
	if n > 1 {
		which = fmt.Sprintf("Image %d", i)
	}
	var size *encoder.SizeError
	switch {
	case errors.Is(err, encoder.ErrUnsupported):
		return problem(kindMediaType, which+" is not a PNG or JPEG image.")
	case errors.As(err, &size):
		return problem(kindTooLarge, which+" "+size.Reason+".")
	case errors.Is(err, encoder.ErrUndecodable):
		return problem(kindBadImage, which+" cannot be decoded.")
	}
	return err
}

// posteriorJSON is the answer for one encoded image.
func posteriorJSON(r *encoder.Result) wire.Posterior {
	p := wire.Posterior{ID: r.ID, Energy: r.Energy, Mean: r.Latent, Inverted: r.Inverted}
	if r.Posterior.Eta1 != nil {
		p.NaturalParams = &wire.NaturalParams{Eta1: r.Posterior.Eta1, Eta2: r.Posterior.Eta2}
		p.Variance = r.Posterior.Variance
	}
	if len(r.Components) > 0 {
		p.Responsibilities = r.Responsibilities
		for k, c := range r.Components {
			p.Components = append(p.Components, wire.Component{
				Responsibility: r.Responsibilities[k],
				NaturalParams:  wire.NaturalParams{Eta1: c.Eta1, Eta2: c.Eta2},
				Mean:           c.Mean, Variance: c.Variance,
			})
		}
	}
	return p
}
