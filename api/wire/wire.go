// Package wire is the service's JSON contract: the request bodies and the answers of every
// endpoint and the problem type of its errors. The server (package api)
// writes them and the Go client (package client) reads them; this package
// depends on neither, so a client does not pull in ONNX Runtime.
package wire

import (
	"encoding/json"

	"github.com/cebm/cebm/internal/modelfile"
)

// Problem is an RFC 9457 problem detail: the only error shape a client
// sees. Its fields never hold internal error text.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RetryAfter is the Retry-After header of a 429 or 503, in seconds.
	RetryAfter int `json:"-"`
}

// Error makes a Problem an error.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// EncodeResponse answers POST /encode: one posterior per image, in order.
type EncodeResponse struct {
	Model   string      `json:"model"`
	Results []Posterior `json:"results"`
}

// Posterior is one image's posterior p(z | x): natural parameters
// λ + t_θ(x), mean, variance and energy E_θ(x). For GMM-CEBM the top-level
// fields are those of the most probable component.
type Posterior struct {
	ID               string         `json:"id"`
	Energy           float64        `json:"energy"`
	NaturalParams    *NaturalParams `json:"natural_params,omitempty"`
	Mean             []float32      `json:"mean"`                       // IGEBM: its feature
	Variance         []float32      `json:"variance,omitempty"`         // not for IGEBM
	Responsibilities []float64      `json:"responsibilities,omitempty"` // GMM-CEBM: p(y = k | x)
	Components       []Component    `json:"components,omitempty"`       // GMM-CEBM
	Inverted         bool           `json:"inverted"`                   // whether the grey levels were flipped
	OOD              *OOD           `json:"ood,omitempty"`              // the energy against the reference set's
}

// OOD ranks an image's energy among the reference images' energies (a
// percentile near 100: less likely than almost every reference image; near
// 0: more likely than all, as blank pages are) and its latent distance to
// the nearest index item among the reference items' own.
type OOD struct {
	EnergyPercentile            float64  `json:"energy_percentile"`
	ThresholdPercentile         float64  `json:"threshold_percentile"`
	DistancePercentile          *float64 `json:"distance_percentile,omitempty"`
	DistanceThresholdPercentile float64  `json:"distance_threshold_percentile"`
	OutOfDistribution           bool     `json:"out_of_distribution"`
	Reason                      string   `json:"reason,omitempty"` // why it is flagged
}

// Component is one mixture component's posterior p(z | x, y = k).
type Component struct {
	Responsibility float64       `json:"responsibility"`
	NaturalParams  NaturalParams `json:"natural_params"`
	Mean           []float32     `json:"mean"`
	Variance       []float32     `json:"variance"`
}

// NaturalParams are a Gaussian's natural parameters (η1, η2) per dimension.
type NaturalParams struct {
	Eta1 []float32 `json:"eta1"`
	Eta2 []float32 `json:"eta2"`
}

// ClassifyResponse answers POST /classify-knn.
type ClassifyResponse struct {
	Model   string           `json:"model"` // the digest of the model that encoded the queries and built the index searched
	K       int              `json:"k"`
	Results []Classification `json:"results"`
}

// Classification is the k-NN answer for one query.
type Classification struct {
	ID        string     `json:"id,omitempty"`
	Label     int        `json:"label"`
	Class     string     `json:"class,omitempty"`
	Votes     []Vote     `json:"votes"`     // most first
	Neighbors []Neighbor `json:"neighbors"` // nearest first
	Inverted  bool       `json:"inverted"`
	OOD       *OOD       `json:"ood,omitempty"` // the query image's (not for a mean)
}

// Vote is how many of the k neighbours carry one label.
type Vote struct {
	Label int    `json:"label"`
	Class string `json:"class,omitempty"`
	Count int    `json:"count"`
}

// Neighbor is one reference item near the query.
type Neighbor struct {
	ID       int     `json:"id"`
	Label    int     `json:"label"`
	Class    string  `json:"class,omitempty"`
	Distance float32 `json:"distance"`
}

// AddItemsResponse answers POST /index/items.
type AddItemsResponse struct {
	Added     int      `json:"added"`
	IndexIDs  []int    `json:"index_ids"`
	IDs       []string `json:"ids"`
	IndexSize int      `json:"index_size"`
}

// IndexItem answers GET /index/items/{id}.
type IndexItem struct {
	ID     int       `json:"id"`
	Label  int       `json:"label"` // -1 for unlabelled
	Class  string    `json:"class,omitempty"`
	Source string    `json:"source"` // reference or added
	Image  bool      `json:"image"`  // whether GET /index/items/{id}/image has it
	Mean   []float32 `json:"mean"`
	Tags   []string  `json:"tags,omitempty"`
}

// ItemSummary is one item of GET /index/items.
type ItemSummary struct {
	ID     int      `json:"id"`
	Label  int      `json:"label"` // -1 for unlabelled
	Class  string   `json:"class,omitempty"`
	Source string   `json:"source"` // reference or added
	Tags   []string `json:"tags,omitempty"`
}

// ItemsPage answers GET /index/items: the items (not deleted, matching
// the filter) with ids from the cursor on, in id order; NextCursor, when
// set, is the cursor of the next page.
type ItemsPage struct {
	Items      []ItemSummary `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// DeleteItemResponse answers DELETE /index/items/{id}.
type DeleteItemResponse struct {
	ID        int  `json:"id"`
	Deleted   bool `json:"deleted"`    // always true: the item is gone, now or before
	LiveItems int  `json:"live_items"` // items the index still searches
}

// ModelsResponse lists the served models (one).
type ModelsResponse struct {
	Models []ModelInfo `json:"models"`
}

// ModelInfo answers GET /models: the model file's own description, its
// digest, and the index's size.
type ModelInfo struct {
	Name string `json:"name"` // the model file's name without .onnx: POST /v1/embeddings' model
	modelfile.Meta
	Digest          string `json:"digest"` // sha256 of the .onnx file
	PriorComponents int    `json:"prior_components"`
	IndexItems      int    `json:"index_items"` // live (not deleted) items
	IndexSize       int    `json:"index_size"`  // ids given so far: live and deleted items
	Ready           bool   `json:"ready"`       // its index is loaded
	Default         bool   `json:"default"`     // routes without a model parameter serve it
}

// Health answers /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
	Model  bool   `json:"model_loaded"`
	Index  bool   `json:"index_loaded"`
}

// EmbeddingsRequest is the body of POST /v1/embeddings (OpenAI's
// embeddings protocol): Input is one string or a list, each an image data
// URI (data:image/png;base64,…) or bare base64; Model the served model's
// name (or digest); EncodingFormat float (default) or base64.
type EmbeddingsRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
	Dimensions     *int            `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`
}

// EmbeddingsResponse answers POST /v1/embeddings in OpenAI's shape.
type EmbeddingsResponse struct {
	Object string          `json:"object"` // "list"
	Data   []Embedding     `json:"data"`
	Model  string          `json:"model"`
	Usage  EmbeddingsUsage `json:"usage"`
}

// Embedding is one input's embedding: its posterior mean, as numbers or
// (encoding_format base64) as base64 of little-endian float32s.
type Embedding struct {
	Object    string `json:"object"` // "embedding"
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32 or string
}

// EmbeddingsUsage is OpenAI's token count; images have no tokens: 0.
type EmbeddingsUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}
