package api

import (
	_ "embed"
	"net/http"

	"github.com/cebm/cebm/api/wire"
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
	writeJSON(w, http.StatusOK, wire.Health{Status: "ok", Model: s.batcher.Load() != nil, Index: s.state.Load() != nil})
}

// handleReadyz is GET /readyz: 200 once the model and the index are
// loaded and the stores answer, 503 before and while a store is down.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.notReady(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.Health{Status: "ready", Model: true, Index: true})
	return nil
}

// handleModels is GET /models: the served model's metadata.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) error {
	b, err := s.model()
	if err != nil {
		return err
	}
	m := b.Model()
	info := wire.ModelInfo{Name: modelName(m), Meta: m.Meta.Meta, Digest: m.Digest, PriorComponents: len(m.Prior)}
	if st := s.state.Load(); st != nil {
		info.IndexItems = st.ix.Len()
	}
	writeJSON(w, http.StatusOK, wire.ModelsResponse{Models: []wire.ModelInfo{info}})
	return nil
}

// handleOpenAPI is GET /openapi.yaml.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
