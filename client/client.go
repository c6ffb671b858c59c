// Package client is the typed Go client of the cebm service: one method per
// route, requests and answers as the types of package wire, and every error the service
// answers as a *wire.Problem (with its Retry-After, if any):
//
//	c, _ := client.New("http://127.0.0.1:8080")
//	res, err := c.Classify(ctx, 5, png)
//	var p *wire.Problem
//	if errors.As(err, &p) && p.Status == 503 { /* retry after p.RetryAfter s */ }
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cebm/cebm/api/wire"
)

// Client talks to one cebm server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	key  string
	http *http.Client
}

// Option configures New.
type Option func(*Client)

// WithAPIKey sends the server's API key as a bearer token.
func WithAPIKey(key string) Option { return func(c *Client) { c.key = key } }

// WithHTTPClient uses h instead of a client with a one-minute timeout.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client of the server at baseURL (e.g. http://host:8080).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, http: &http.Client{Timeout: time.Minute}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Item is a labelled image to add to the index: PNG or JPEG bytes, a
// class name or index, and optional tags.
type Item struct {
	Image []byte
	Label string
	Tags  []string
}

func encodeImages(images [][]byte) []string {
	out := make([]string, len(images))
	for i, b := range images {
		out[i] = base64.StdEncoding.EncodeToString(b)
	}
	return out
}

// Encode is POST /encode: each image's posterior, in order.
func (c *Client) Encode(ctx context.Context, images ...[]byte) (*wire.EncodeResponse, error) {
	var out wire.EncodeResponse
	return &out, c.do(ctx, http.MethodPost, "/encode", wire.EncodeRequest{Upload: wire.Upload{Images: encodeImages(images)}}, &out)
}

// Posterior is GET /posterior/{id}: a posterior the server computed.
func (c *Client) Posterior(ctx context.Context, id string) (*wire.Posterior, error) {
	var out wire.Posterior
	return &out, c.do(ctx, http.MethodGet, "/posterior/"+url.PathEscape(id), nil, &out)
}

// Classify is POST /classify-knn on images: each one's k nearest
// reference items and their majority label.
func (c *Client) Classify(ctx context.Context, k int, images ...[]byte) (*wire.ClassifyResponse, error) {
	var out wire.ClassifyResponse
	return &out, c.do(ctx, http.MethodPost, "/classify-knn", wire.ClassifyRequest{Upload: wire.Upload{Images: encodeImages(images)}, K: &k}, &out)
}

// ClassifyID is POST /classify-knn on a stored posterior's mean.
func (c *Client) ClassifyID(ctx context.Context, id string, k int) (*wire.ClassifyResponse, error) {
	var out wire.ClassifyResponse
	return &out, c.do(ctx, http.MethodPost, "/classify-knn", wire.ClassifyRequest{ID: id, K: &k}, &out)
}

// ClassifyMean is POST /classify-knn on a given posterior mean.
func (c *Client) ClassifyMean(ctx context.Context, mean []float32, k int) (*wire.ClassifyResponse, error) {
	var out wire.ClassifyResponse
	return &out, c.do(ctx, http.MethodPost, "/classify-knn", wire.ClassifyRequest{Mean: mean, K: &k}, &out)
}

// AddItems is POST /index/items: the items are durable, under the index
// ids the answer gives, once it returns nil.
func (c *Client) AddItems(ctx context.Context, items ...Item) (*wire.AddItemsResponse, error) {
	var body wire.AddItemsRequest
	for _, it := range items {
		l := wire.Label(it.Label)
		body.Items = append(body.Items, wire.Item{Image: base64.StdEncoding.EncodeToString(it.Image), Label: &l, Tags: it.Tags})
	}
	var out wire.AddItemsResponse
	return &out, c.do(ctx, http.MethodPost, "/index/items", body, &out)
}

// ClassifyFilter is POST /classify-knn among the items f admits only.
func (c *Client) ClassifyFilter(ctx context.Context, k int, f wire.Filter, images ...[]byte) (*wire.ClassifyResponse, error) {
	var out wire.ClassifyResponse
	return &out, c.do(ctx, http.MethodPost, "/classify-knn", wire.ClassifyRequest{Upload: wire.Upload{Images: encodeImages(images)}, K: &k, Filter: &f}, &out)
}

// DeleteItem is DELETE /index/items/{id}: the item is gone, durably,
// once it returns nil.
func (c *Client) DeleteItem(ctx context.Context, id int) (*wire.DeleteItemResponse, error) {
	var out wire.DeleteItemResponse
	return &out, c.do(ctx, http.MethodDelete, "/index/items/"+strconv.Itoa(id), nil, &out)
}

// Items is GET /index/items: one page of up to limit items (0: the
// server's default) from cursor ("" for the first page; then the page's
// NextCursor), filtered by f as /classify-knn filters.
func (c *Client) Items(ctx context.Context, cursor string, limit int, f wire.Filter) (*wire.ItemsPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	for _, l := range f.Labels {
		q.Add("label", string(l))
	}
	if f.Source != "" {
		q.Set("source", f.Source)
	}
	for _, t := range f.Tags {
		q.Add("tag", t)
	}
	path := "/index/items"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.ItemsPage
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// IndexItem is GET /index/items/{id}.
func (c *Client) IndexItem(ctx context.Context, id int) (*wire.IndexItem, error) {
	var out wire.IndexItem
	return &out, c.do(ctx, http.MethodGet, "/index/items/"+strconv.Itoa(id), nil, &out)
}

// IndexItemImage is GET /index/items/{id}/image: a PNG.
func (c *Client) IndexItemImage(ctx context.Context, id int) ([]byte, error) {
	var out []byte
	return out, c.do(ctx, http.MethodGet, "/index/items/"+strconv.Itoa(id)+"/image", nil, &out)
}

// EmbeddingsOptions are POST /v1/embeddings' optional fields.
type EmbeddingsOptions struct {
	// Model is the served model's name or digest; "" asks GET /models
	// for the first model's name first.
	Model string
	// Base64 asks for encoding_format base64 (little-endian float32s in
	// base64: a smaller answer, the same numbers) instead of float.
	Base64 bool
}

// Embeddings answers POST /v1/embeddings: the model that embedded the
// images and each image's embedding (its posterior mean), in order.
type Embeddings struct {
	Model   string
	Vectors [][]float32
}

// Embeddings is POST /v1/embeddings, OpenAI's embeddings protocol: each
// image (PNG or JPEG bytes, sent as a data URI) embedded as its posterior
// mean, whichever encoding_format carried it.
func (c *Client) Embeddings(ctx context.Context, opts EmbeddingsOptions, images ...[]byte) (*Embeddings, error) {
	model := opts.Model
	if model == "" {
		m, err := c.Models(ctx)
		if err != nil {
			return nil, err
		}
		if len(m.Models) == 0 {
			return nil, fmt.Errorf("client: GET /models lists no model to embed with")
		}
		model = m.Models[0].Name
	}
	input := make([]string, len(images))
	for i, b := range images {
		input[i] = dataURI(b)
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	q := wire.EmbeddingsRequest{Input: raw, Model: model, EncodingFormat: "float"}
	if opts.Base64 {
		q.EncodingFormat = "base64"
	}
	var out struct {
		Model string `json:"model"`
		Data  []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/embeddings", q, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != len(images) {
		return nil, fmt.Errorf("client: POST /v1/embeddings answered %d embeddings for %d images", len(out.Data), len(images))
	}
	res := &Embeddings{Model: out.Model, Vectors: make([][]float32, len(images))}
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(images) || res.Vectors[d.Index] != nil {
			return nil, fmt.Errorf("client: POST /v1/embeddings answered embedding index %d twice or out of range", d.Index)
		}
		v, err := embeddingVector(d.Embedding, opts.Base64)
		if err != nil {
			return nil, fmt.Errorf("client: POST /v1/embeddings: embedding %d: %w", d.Index, err)
		}
		res.Vectors[d.Index] = v
	}
	return res, nil
}

// dataURI is an image as a data URI of its sniffed type (image/png or
// image/jpeg); other bytes go as bare base64, for the server to refuse.
func dataURI(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	if ct := http.DetectContentType(b); strings.HasPrefix(ct, "image/") {
		return "data:" + ct + ";base64," + enc
	}
	return enc
}

// embeddingVector decodes one embedding: a JSON array of numbers, or (b64)
// a base64 string of little-endian float32s.
func embeddingVector(raw json.RawMessage, b64 bool) ([]float32, error) {
	if !b64 {
		var v []float32
		return v, json.Unmarshal(raw, &v)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%d bytes of base64 embedding, not whole float32s", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// Models is GET /models: the served model's card.
func (c *Client) Models(ctx context.Context) (*wire.ModelsResponse, error) {
	var out wire.ModelsResponse
	return &out, c.do(ctx, http.MethodGet, "/models", nil, &out)
}

// Health is GET /healthz: whether the process is alive.
func (c *Client) Health(ctx context.Context) (*wire.Health, error) {
	var out wire.Health
	return &out, c.do(ctx, http.MethodGet, "/healthz", nil, &out)
}

// Ready is GET /readyz: nil once the server can answer queries, else the
// 503 problem.
func (c *Client) Ready(ctx context.Context) (*wire.Health, error) {
	var out wire.Health
	return &out, c.do(ctx, http.MethodGet, "/readyz", nil, &out)
}

// OpenAPI is GET /openapi.yaml: the service's description.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var out []byte
	return out, c.do(ctx, http.MethodGet, "/openapi.yaml", nil, &out)
}

// do sends a request with a JSON body (if in is not nil) and decodes the
// answer into out: JSON, or the raw bytes for a *[]byte.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("client: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return problemOf(resp, b)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: %s %s: undecodable answer: %w", method, path, err)
	}
	return nil
}

// problemOf is the error of a non-2xx answer: its problem detail, or one
// made from the status when the body is not one (a proxy's error page).
func problemOf(resp *http.Response, body []byte) error {
	p := &wire.Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "application/problem+json" {
		if err := json.Unmarshal(body, p); err != nil {
			p.Detail = "undecodable problem detail"
		}
	} else {
		p.Detail = strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	p.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	return p
}
