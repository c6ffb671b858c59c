package api

import (
	_ "embed"
	"net/http"
)

//go:generate cp ../openapi.yaml openapi.yaml

// OpenAPI is the service description served at /openapi.yaml: a copy of
// the repository's openapi.yaml (go generate ./api refreshes it; a test
// checks they are equal).
//
//go:embed openapi.yaml
var OpenAPI []byte

// handleHealthz is GET /healthz: the process is alive. Never blocked by
// loading.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok", Model: s.batcher.Load() != nil, Index: s.index.Load() != nil})
}

// handleReadyz is GET /readyz: 200 once the model and the index are
// loaded, 503 before.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	h := Health{Status: "ready", Model: s.batcher.Load() != nil, Index: s.index.Load() != nil}
	if !h.Model || !h.Index {
		return retryable(kindNotReady, "The model or the reference index is still loading.", 1)
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// handleModels is GET /models: the served model's metadata.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) error {
	b, err := s.model()
	if err != nil {
		return err
	}
	m := b.Model()
	info := ModelInfo{Meta: m.Meta, PriorComponents: len(m.Prior)}
	if ix := s.index.Load(); ix != nil {
		info.IndexItems = ix.Len()
	}
	writeJSON(w, http.StatusOK, ModelsResponse{Models: []ModelInfo{info}})
	return nil
}

// handleOpenAPI is GET /openapi.yaml.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
