package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// The JSON request bodies of the POST endpoints (openapi.yaml: ImagesJSON,
// ClassifyJSON, ItemsJSON). Images are base64 PNG or JPEG; a field left
// out is the server's default. The endpoints take the same images as raw
// image bodies and multipart forms, which need no type here.

// Upload is the images of a JSON body: image, images or both (image
// first), and whether to invert their grey levels.
type Upload struct {
	Image  string   `json:"image,omitempty"`
	Images []string `json:"images,omitempty"`
	Invert Invert   `json:"invert,omitempty"`
}

// EncodeRequest is the body of POST /encode.
type EncodeRequest struct {
	Upload
}

// ClassifyRequest is the body of POST /classify-knn: images, the id of a
// stored posterior, or a posterior mean; and k (nil: the server's).
type ClassifyRequest struct {
	Upload
	ID     string    `json:"id,omitempty"`
	Mean   []float32 `json:"mean,omitempty"`
	K      *int      `json:"k,omitempty"`
	Filter *Filter   `json:"filter,omitempty"`
}

// Filter restricts the items /classify-knn searches: to those with one of
// Labels (class names or indices), from Source ("reference" or "added"),
// carrying every one of Tags. A field left out does not restrict.
type Filter struct {
	Labels []Label  `json:"labels,omitempty"`
	Source string   `json:"source,omitempty"`
	Tags   []string `json:"tags,omitempty"`
}

// AddItemsRequest is the body of POST /index/items: one item (image and
// label), a list of items, or both (the single one first).
type AddItemsRequest struct {
	Image  string   `json:"image,omitempty"`
	Label  *Label   `json:"label,omitempty"`
	Tags   []string `json:"tags,omitempty"` // the single item's
	Items  []Item   `json:"items,omitempty"`
	Invert Invert   `json:"invert,omitempty"`
}

// Item is a labelled image to add to the index, with optional tags
// (metadata strings the /classify-knn filter and GET /index/items match).
type Item struct {
	Image string   `json:"image"`
	Label *Label   `json:"label"`
	Tags  []string `json:"tags,omitempty"`
}

// Errors of the request fields' decoding.
var (
	ErrInvert = errors.New("invert must be a string or a boolean")
	ErrLabel  = errors.New("a label must be a class index or a class name")
)

// Invert is invert: "auto", "true" or "false"; a JSON boolean reads as
// its text, an empty string as "auto". The server refuses other text. The
// zero value is not sent: the server's default.
type Invert string

// UnmarshalJSON reads a string or a boolean, or fails with ErrInvert (null
// included).
func (v *Invert) UnmarshalJSON(b []byte) error {
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return ErrInvert
	}
	switch x := x.(type) {
	case string:
		if x == "" {
			x = "auto"
		}
		*v = Invert(x)
	case bool:
		*v = Invert(strconv.FormatBool(x))
	default:
		return ErrInvert
	}
	return nil
}

// Label is a label: a class name or a class index, as text; a JSON number
// reads as its text. It is sent as a string.
type Label string

// UnmarshalJSON reads a string or a number, or fails with ErrLabel.
func (l *Label) UnmarshalJSON(b []byte) error {
	var x any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&x); err == nil {
		switch x := x.(type) {
		case string:
			*l = Label(x)
			return nil
		case json.Number:
			*l = Label(x.String())
			return nil
		}
	}
	return ErrLabel
}
