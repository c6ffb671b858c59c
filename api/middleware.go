package api

import (
	"context"
	"net"
	"net/http"
	"strings"
)

// recoverer turns a panic in a handler into a plain 500 problem, logged
// with its cause.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic in handler", "path", r.URL.Path, "panic", p)
				s.writeProblem(w, r, problem(kindInternal, "The server could not handle the request."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limit caps the body size and the time a request may take. The body of
// a GET or HEAD is never read, so its declared length does not matter.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			r.Body = http.NoBody
		} else if r.ContentLength > s.cfg.MaxBodyBytes {
			s.writeProblem(w, r, problem(kindTooLarge, "The request body is larger than the server accepts."))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		if s.cfg.RequestTimeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host header that is not one of AllowedHosts: a page
// whose own name an attacker points at this server's address (DNS
// rebinding) reaches it under that name.
func (s *Server) checkHost(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range s.cfg.AllowedHosts {
		if h == "*" {
			return next
		}
		allowed[hostName(h)] = true
	}
	if len(allowed) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[hostName(r.Host)] {
			s.writeProblem(w, r, problem(kindUnknownHost, "The server does not answer to this Host; its --allowed-hosts lists the names it does."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostName is a Host header's name, without port, brackets, trailing dot
// or capitals.
func hostName(h string) string {
	if name, _, err := net.SplitHostPort(h); err == nil {
		h = name
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// sameOrigin refuses an unsafe request (POST and the like) that a browser
// sends from a page of another origin, unless that origin is one of
// CORSOrigins: without it, any web page its user opens could write to the
// index. Requests that are not from a browser carry no Origin or
// Sec-Fetch-Site header and pass.
func (s *Server) sameOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	for _, o := range s.cfg.CORSOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			s.log.Warn("ignoring a CORS origin", "origin", o, "err", err)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			s.writeProblem(w, r, problem(kindCrossSite, "A page of another origin may not send this request; the server's --cors-origins lists the origins that may."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors lets the pages of CORSOrigins call the API: it answers their
// preflight requests and marks the answers to them as readable.
func (s *Server) cors(next http.Handler) http.Handler {
	origins := map[string]bool{}
	for _, o := range s.cfg.CORSOrigins {
		origins[o] = true
	}
	if len(origins) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		o := r.Header.Get("Origin")
		if !origins[o] {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", o)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
		next.ServeHTTP(w, r)
	})
}
