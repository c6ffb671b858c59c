package api

import (
	"embed"
	"net/http"
	"os"
	"path/filepath"
)

// web holds the demo page (GET /) and its assets: plain HTML, CSS and
// JavaScript, no build step.
//
//go:embed web
var web embed.FS

// pageCSP keeps the page to its own scripts, styles and images (blob: for
// the neighbour thumbnails it fetches with the API key).
const pageCSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// handlePage is GET /: the demo page.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", pageCSP)
	s.serveWeb(w, r, "web/index.html")
}

// handleStatic is GET /static/{file}: the page's assets.
func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	switch f := r.PathValue("file"); f {
	case "app.js", "style.css", "docs.js":
		s.serveWeb(w, r, "web/"+f)
	default:
		s.writeProblem(w, r, problem(kindNotFound, "There is no such asset."))
	}
}

// swaggerFiles are the files of Swagger UI that /docs uses.
var swaggerFiles = map[string]string{"swagger-ui.css": "text/css; charset=utf-8", "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}

// swaggerDir is where the set-up installs Swagger UI, under WebDir.
func (s *Server) swaggerDir() string {
	if s.cfg.WebDir == "" {
		return ""
	}
	return filepath.Join(s.cfg.WebDir, "swagger-ui")
}

// handleDocs is GET /docs: Swagger UI on /openapi.yaml, or a page that
// says how to install it.
func (s *Server) handleDocs(w http.ResponseWriter, r *http.Request) {
	if d := s.swaggerDir(); d != "" {
		if _, err := os.Stat(filepath.Join(d, "swagger-ui-bundle.js")); err == nil {
			s.serveWeb(w, r, "web/docs.html")
			return
		}
	}
	s.serveWeb(w, r, "web/nodocs.html")
}

// handleDocsAsset is GET /docs/{file}: Swagger UI's files from WebDir.
func (s *Server) handleDocsAsset(w http.ResponseWriter, r *http.Request) {
	f := r.PathValue("file")
	ctype, ok := swaggerFiles[f]
	if !ok || s.swaggerDir() == "" {
		s.writeProblem(w, r, problem(kindNotFound, "There is no such asset."))
		return
	}
	b, err := os.ReadFile(filepath.Join(s.swaggerDir(), f))
	if err != nil {
		s.writeProblem(w, r, problem(kindNotFound, "Swagger UI is not installed; make setup installs it."))
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// serveWeb answers with an embedded file.
func (s *Server) serveWeb(w http.ResponseWriter, r *http.Request, name string) {
	b, err := web.ReadFile(name)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ctype := "text/html; charset=utf-8"
	switch filepath.Ext(name) {
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
