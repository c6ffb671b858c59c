package api

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
)

// modelName is the name clients give the served model: its file's name
// without the .onnx extension (e.g. mnist-cebm).
func modelName(m *encoder.Model) string {
	return strings.TrimSuffix(filepath.Base(m.Path), ".onnx")
}

// modelNamed is the served model that name (a model's name or digest)
// names, or name itself when none is (pin answers 404 for it).
func (s *Server) modelNamed(name string) string {
	set := s.models.Load()
	if name == "" || set.byName[name] != nil {
		return name
	}
	for _, n := range set.names {
		if set.byName[n].b.Model().Digest == name {
			return n
		}
	}
	return name
}

// handleEmbeddings is POST /v1/embeddings, OpenAI's embeddings protocol:
// each input image's posterior mean as its embedding. Its problems carry
// OpenAI's error object too (writeProblem), so OpenAI clients show them.
func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) error {
	if len(s.models.Load().names) == 0 {
		return retryable(kindNotReady, "The model is still loading.", 5)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return problem(kindMediaType, "POST /v1/embeddings takes a JSON body (Content-Type: application/json).")
	}
	// Unknown fields (user, and whatever else OpenAI clients send) are
	// ignored, as OpenAI-compatible servers do.
	var q wire.EmbeddingsRequest
	dec := json.NewDecoder(r.Body)
	if err := decodeJSON(dec, &q); err != nil {
		return err
	}
	if dec.More() {
		return problem(kindInvalid, "The JSON body holds more than one value.")
	}
	p, err := s.pin(s.modelNamed(q.Model))
	if err != nil {
		return err
	}
	defer p.unpin()
	b := p.b
	m := b.Model()
	if q.EncodingFormat != "" && q.EncodingFormat != "float" && q.EncodingFormat != "base64" {
		return problem(kindInvalid, "encoding_format must be float or base64.")
	}
	if q.Dimensions != nil && *q.Dimensions != m.LatentDim {
		return problem(kindInvalid, fmt.Sprintf("This model's embeddings have %d dimensions; dimensions cannot change that.", m.LatentDim))
	}
	inputs, err := embeddingInputs(q.Input)
	if err != nil {
		return err
	}
	var in upload
	if err := in.setInvert(""); err != nil {
		return err
	}
	if err := s.addBase64(&in, inputs); err != nil {
		return err
	}
	res, _, err := s.encode(r.Context(), b, in)
	if err != nil {
		return err
	}
	out := wire.EmbeddingsResponse{Object: "list", Model: p.name, Data: make([]wire.Embedding, len(res))}
	for i := range res {
		out.Data[i] = wire.Embedding{Object: "embedding", Index: i, Embedding: res[i].Latent}
		if q.EncodingFormat == "base64" {
			out.Data[i].Embedding = float32Base64(res[i].Latent)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// embeddingInputs reads input: one string or a list of strings, each an
// image data URI (data:image/png;base64,…) or bare base64; it returns the
// base64 of each.
func embeddingInputs(raw json.RawMessage) ([]string, error) {
	var all []string
	if err := json.Unmarshal(raw, &all); err != nil {
		var one string
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, problem(kindInvalid, "input must be an image as a data URI (data:image/png;base64,…) or base64, or a list of them; this server embeds images, not text or tokens.")
		}
		all = []string{one}
	}
	if len(all) == 0 {
		return nil, errNoImage
	}
	for i, v := range all {
		if !strings.HasPrefix(v, "data:") {
			continue
		}
		meta, data, ok := strings.Cut(v[len("data:"):], ",")
		if !ok || !strings.HasSuffix(meta, ";base64") || !strings.HasPrefix(meta, "image/") {
			return nil, problem(kindInvalid, fmt.Sprintf("Input %d is a data URI but not data:image/…;base64,….", i))
		}
		all[i] = data
	}
	return all, nil
}

// float32Base64 is v as little-endian float32 bytes in base64, OpenAI's
// encoding_format base64.
func float32Base64(v []float32) string {
	var b bytes.Buffer
	for _, x := range v {
		_ = binary.Write(&b, binary.LittleEndian, math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}
