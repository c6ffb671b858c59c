package api

import (
	"context"
	"crypto/subtle"
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

// authenticate requires "Authorization: Bearer KEY" when an API key is set,
// comparing in constant time.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.APIKey == "" {
		return next
	}
	want := []byte(s.cfg.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cebm"`)
			s.writeProblem(w, r, problem(kindUnauthorized, "Send the API key as 'Authorization: Bearer KEY'."))
			return
		}
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
