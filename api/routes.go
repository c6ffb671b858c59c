package api

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// routes registers the whole HTTP surface.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.traceRequests, s.instrument, s.recoverer, s.checkHost, s.cors, s.sameOrigin)
	r.NotFound(s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return problem(kindNotFound, "There is no resource at this path.")
	}))
	r.MethodNotAllowed(s.handle(func(w http.ResponseWriter, req *http.Request) error {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, req.URL.Path) {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return problem(kindMethod, "This path does not accept the "+req.Method+" method; it accepts "+strings.Join(allow, " and ")+".")
	}))

	// Health and metrics: never behind the API key, never blocked by loading.
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handle(s.handleReadyz))
	r.Method(http.MethodGet, "/metrics", s.metrics.handler())

	// The demo page and the documentation: public, so that the page can
	// ask for the API key.
	r.Get("/", s.handlePage)
	r.Get("/static/{file}", s.handleStatic)
	r.Get("/docs", s.handleDocs)
	r.Get("/docs/{file}", s.handleDocsAsset)
	r.Get("/openapi.yaml", s.handleOpenAPI)

	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.limit)
		r.Get("/models", s.handle(s.handleModels))
		r.Post("/v1/embeddings", s.handle(s.handleEmbeddings)) // its model is in the body

		// Routes of one model: the model query parameter names it (none:
		// the default); the request keeps that model and its index to the
		// end, whatever is swapped meanwhile.
		r.Group(func(r chi.Router) {
			r.Use(s.withModel)
			r.Post("/encode", s.handle(s.handleEncode))
			r.Get("/posterior/{id}", s.handle(s.handlePosterior))
			r.Post("/classify-knn", s.handle(s.handleClassify))
			r.Get("/index/items", s.handle(s.handleListItems))
			r.Get("/index/items/{id}", s.handle(s.handleItem))
			r.Get("/index/items/{id}/image", s.handle(s.handleItemImage))
			r.Get("/index/map", s.handle(s.handleMap))
		})

		// Routes that change state: a read key gets 403.
		r.Group(func(r chi.Router) {
			r.Use(s.requireWrite, s.holdWrites, s.withModel)
			r.Post("/index/items", s.handle(s.handleAddItems))
			r.Delete("/index/items/{id}", s.handle(s.handleDeleteItem))
		})
	})
	// PUT /models/{name} takes as long as the new model's index takes to
	// build, and a body of a model's size: not the limits of the others.
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.requireWrite)
		r.Put("/models/{name}", s.handle(s.handlePutModel))
	})
	return r
}

// handle adapts a handler that returns an error; the error is answered as
// a problem.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeProblem(w, r, err)
		}
	}
}
