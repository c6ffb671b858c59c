package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/cebm/cebm/api/wire"
)

// ProblemBase prefixes every problem type; the rest of the URI names the
// problem and never changes.
const ProblemBase = "https://github.com/cebm/cebm/blob/main/openapi.yaml#problem-"

// Problem is an RFC 9457 problem detail (package wire).
type Problem = wire.Problem

// Problem kinds: the type suffix, title and status of each.

// The request is wrong: the client must change it.
var (
	kindInvalid      = kind{"invalid-request", "Invalid request", http.StatusBadRequest}
	kindBadImage     = kind{"undecodable-image", "Image cannot be decoded", http.StatusBadRequest}
	kindUnauthorized = kind{"unauthorized", "Missing or wrong API key", http.StatusUnauthorized}
	kindCrossSite    = kind{"cross-site", "Cross-site request refused", http.StatusForbidden}
	kindReadOnlyKey  = kind{"read-only-key", "The API key may only read", http.StatusForbidden}
	kindUnknownHost  = kind{"unknown-host", "Unknown host", http.StatusForbidden}
	kindTooLarge     = kind{"too-large", "Request or image too large", http.StatusRequestEntityTooLarge}
	kindMediaType    = kind{"unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType}
)

// There is nothing at the path, with that method or with that id.
var (
	kindNotFound  = kind{"not-found", "No such resource", http.StatusNotFound}
	kindUnknownID = kind{"unknown-id", "Unknown or evicted posterior id", http.StatusNotFound}
	kindMethod    = kind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	// kindModelNotFound: a model parameter (or /v1/embeddings' model) names a
	// model the server does not serve.
	kindModelNotFound = kind{"model-not-found", "No such model", http.StatusNotFound}
	// kindModelRefused: PUT /models/{name} sent a model that cannot replace
	// the served one.
	kindModelRefused = kind{"model-refused", "Model refused", http.StatusUnprocessableEntity}
)

// The server cannot answer now; the same request may work later.
var (
	kindOverloaded  = kind{"overloaded", "Too many requests queued", http.StatusTooManyRequests}
	kindNotReady    = kind{"not-ready", "Service not ready", http.StatusServiceUnavailable}
	kindTimeout     = kind{"timeout", "Request took too long", http.StatusServiceUnavailable}
	kindDecodeBusy  = kind{"decode-busy", "Too many large images being decoded", http.StatusServiceUnavailable}
	kindUnavailable = kind{"store-unavailable", "Store unavailable", http.StatusServiceUnavailable}
)

// The server failed.
var kindInternal = kind{"internal", "Internal error", http.StatusInternalServerError}

type kind struct {
	slug, title string
	status      int
}

// problem builds a client-visible error of kind k with a detail written for
// the client.
func problem(k kind, detail string) *Problem {
	return &Problem{Type: ProblemBase + k.slug, Title: k.title, Status: k.status, Detail: detail}
}

// retryable is a problem (429 or 503) that the client may retry after the
// given number of seconds; the answer carries Retry-After.
func retryable(k kind, detail string, seconds int) *Problem {
	p := problem(k, detail)
	p.RetryAfter = seconds
	return p
}

// errTimeout is the problem of a request past its deadline (or whose
// client has gone): the work it needed has been stopped.
var errTimeout = retryable(kindTimeout, "The request did not finish within the server's time limit; its work was stopped and nothing was stored. Retry after the indicated delay, or with fewer or smaller images.", 1)

// writeProblem answers with err: a *Problem as it is, the end of the
// request's context as the timeout problem, anything else as a plain 500
// whose detail says nothing about the cause (the cause goes to the log).
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = errTimeout
	}
	if !errors.As(err, &p) {
		s.log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		p = problem(kindInternal, "The server could not handle the request.")
	}
	q := *p
	q.Instance = r.URL.Path
	if q.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(q.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(q.Status)
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		_ = json.NewEncoder(w).Encode(openAIProblem{q, openAIError(q)})
		return
	}
	_ = json.NewEncoder(w).Encode(q)
}

// openAIProblem is a problem with OpenAI's error object as an extension
// member (RFC 9457 §3.2), so that OpenAI clients of /v1/ routes show its
// message and code.
type openAIProblem struct {
	Problem
	Error openAIErr `json:"error"`
}

type openAIErr struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// openAIError is p as OpenAI's error object: code is the problem's name
// (the type URI's end), type OpenAI's class of it.
func openAIError(p Problem) openAIErr {
	e := openAIErr{Message: p.Detail, Code: strings.TrimPrefix(p.Type, ProblemBase), Type: "invalid_request_error"}
	switch {
	case p.Status == http.StatusUnauthorized:
		e.Type = "authentication_error"
	case p.Status == http.StatusForbidden:
		e.Type = "permission_error"
	case p.Status == http.StatusNotFound:
		e.Type = "not_found_error"
	case p.Status == http.StatusTooManyRequests:
		e.Type = "rate_limit_error"
	case p.Status >= 500:
		e.Type = "server_error"
	}
	if e.Code == "model-not-found" {
		param := "model"
		e.Param, e.Code = &param, "model_not_found"
	}
	return e
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
