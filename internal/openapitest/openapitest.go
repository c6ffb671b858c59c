// Package openapitest checks requests and answers against the service's
// OpenAPI document (openapi.yaml) in tests: those the api package's tests
// send its server, and those the Go client sends.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// ErrUndescribed is the error of a request whose path and method the
// document does not describe.
var ErrUndescribed = errors.New("openapitest: the document does not describe this path and method")

// Spec is a loaded, valid document.
type Spec struct {
	router routers.Router
}

var registerImages sync.Once

// Load reads and validates the document.
func Load(doc []byte) (*Spec, error) {
	// Raw image bodies are binary strings, as application/octet-stream is.
	registerImages.Do(func() {
		openapi3filter.RegisterBodyDecoder("image/png", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("image/jpeg", openapi3filter.FileBodyDecoder)
	})
	d, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(context.Background()); err != nil {
		return nil, err
	}
	router, err := legacy.NewRouter(d)
	if err != nil {
		return nil, err
	}
	return &Spec{router}, nil
}

// input finds r's operation: r as a request to the documented server,
// with body as its body.
func (s *Spec) input(r *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	vr := r.Clone(context.Background())
	vr.URL.Scheme, vr.URL.Host = "", "" // the document's server is relative ("/"): any host
	vr.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(vr)
	if err != nil {
		return nil, ErrUndescribed
	}
	return &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}, nil
}

// Request checks r, whose body is body, against the document: its
// parameters and body. The API key is not checked.
func (s *Spec) Request(r *http.Request, body []byte) error {
	in, err := s.input(r, body)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), in)
}

// Response checks the answer (status, header, body) to r against the
// document.
func (s *Spec) Response(r *http.Request, status int, header http.Header, body []byte) error {
	in, err := s.input(r, nil)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	})
}

// Handler is h behind a check of every request it gets: the test fails on
// a request the document does not describe or that does not match it.
func (s *Spec) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s %s: reading the request: %v", r.Method, r.URL.Path, err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := s.Request(r, body); err != nil {
			t.Errorf("%s %s: the request does not match openapi.yaml: %v\nbody: %.300q", r.Method, r.URL.Path, err, body)
		}
		h.ServeHTTP(w, r)
	})
}
