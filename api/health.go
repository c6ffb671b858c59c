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
	set := s.models.Load()
	def := set.byName[set.def]
	writeJSON(w, http.StatusOK, wire.Health{Status: "ok", Model: def != nil, Index: def != nil && def.st != nil})
}

// handleReadyz is GET /readyz: 200 once every model and its index are
// loaded and the stores answer, 503 (naming the models not ready) before
// and while a store is down.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.notReady(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.Health{Status: "ready", Model: true, Index: true})
	return nil
}

// handleOpenAPI is GET /openapi.yaml.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
