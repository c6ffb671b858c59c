package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
)

// Each POST endpoint has its own request type. A body is a raw image, a
// multipart form or JSON (the request types of package wire);
// readRequest reads any of the three into any request type.

// upload is what every POST endpoint takes: the uploaded images and
// whether to invert their grey levels.
type upload struct {
	images [][]byte
	invert encoder.Invert
}

// encodeRequest is POST /encode.
type encodeRequest struct {
	upload
}

// classifyRequest is POST /classify-knn: images, the id of a stored
// posterior, or a posterior mean; and k.
type classifyRequest struct {
	upload
	k      int // 0 when not given
	id     string
	mean   []float32
	filter itemFilter
}

// addItemsRequest is POST /index/items: images with a label each, and
// tags (none, or a list per image).
type addItemsRequest struct {
	upload
	labels []string
	tags   [][]string
}

// request is implemented by the request types.
type request interface {
	input() *upload
	// field sets a query parameter or a multipart field other than invert
	// and the images, or refuses it.
	field(name, value string) error
	// decodeJSON reads a JSON body into the request; dec refuses unknown
	// fields.
	decodeJSON(dec *json.Decoder, s *Server) error
}

func (q *upload) input() *upload { return q }

func (q *encodeRequest) field(name, _ string) error {
	return problem(kindInvalid, fmt.Sprintf("POST /encode takes images and invert only, not %q.", name))
}

func (q *classifyRequest) field(name, v string) error {
	if ok, err := q.filter.set(name, v); ok {
		return err
	}
	if name != "k" {
		return problem(kindInvalid, fmt.Sprintf("POST /classify-knn takes no %q.", name))
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 {
		return errBadK
	}
	q.k = k
	return nil
}

func (q *addItemsRequest) field(name, v string) error {
	if name == "tags" {
		q.tags = append(q.tags, splitTags(v))
		return nil
	}
	if name != "label" {
		return problem(kindInvalid, fmt.Sprintf("POST /index/items takes labelled images only, not %q.", name))
	}
	q.labels = append(q.labels, v)
	return nil
}

func (q *encodeRequest) decodeJSON(dec *json.Decoder, s *Server) error {
	var j wire.EncodeRequest
	if err := decodeJSON(dec, &j); err != nil {
		return err
	}
	if err := q.setJSONInvert(j.Invert); err != nil {
		return err
	}
	return s.addBase64(&q.upload, append(optional(j.Image), j.Images...))
}

func (q *classifyRequest) decodeJSON(dec *json.Decoder, s *Server) error {
	var j wire.ClassifyRequest
	if err := decodeJSON(dec, &j); err != nil {
		return err
	}
	if err := q.setJSONInvert(j.Invert); err != nil {
		return err
	}
	if j.K != nil {
		if *j.K < 1 {
			return errBadK
		}
		q.k = *j.K
	}
	q.id, q.mean = j.ID, j.Mean
	if f := j.Filter; f != nil {
		for _, l := range f.Labels {
			q.filter.labels = append(q.filter.labels, string(l))
		}
		q.filter.source, q.filter.tags = f.Source, f.Tags
	}
	return s.addBase64(&q.upload, append(optional(j.Image), j.Images...))
}

func (q *addItemsRequest) decodeJSON(dec *json.Decoder, s *Server) error {
	var j wire.AddItemsRequest
	if err := decodeJSON(dec, &j); err != nil {
		return err
	}
	if err := q.setJSONInvert(j.Invert); err != nil {
		return err
	}
	all := j.Items
	if j.Image != "" || j.Label != nil || j.Tags != nil {
		all = append([]wire.Item{{Image: j.Image, Label: j.Label, Tags: j.Tags}}, all...)
	}
	var imgs []string
	tagged := false
	for _, it := range all {
		if it.Label == nil {
			return errBadLabel
		}
		q.labels = append(q.labels, string(*it.Label))
		q.tags = append(q.tags, it.Tags)
		tagged = tagged || len(it.Tags) > 0
		imgs = append(imgs, it.Image)
	}
	if !tagged {
		q.tags = nil
	}
	return s.addBase64(&q.upload, imgs)
}

var (
	errBadK      = problem(kindInvalid, "k must be a positive integer.")
	errBadInvert = problem(kindInvalid, "invert must be auto, true or false.")
	errBadLabel  = problem(kindInvalid, "A label must be a class index or a class name.")
)

// maxFieldBytes bounds a multipart form field that is not an image.
const maxFieldBytes = 1 << 10

// readRequest reads r into q: the query parameters invert, k and label,
// then the body by its Content-Type.
func (s *Server) readRequest(r *http.Request, q request) error {
	in := q.input()
	if err := in.setInvert(r.URL.Query().Get("invert")); err != nil {
		return err
	}
	for _, name := range []string{"k", "label", "source", "tag", "tags"} {
		for _, v := range r.URL.Query()[name] {
			if v == "" && name != "tags" {
				continue
			}
			if err := q.field(name, v); err != nil {
				return err
			}
		}
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return problem(kindMediaType, "Set Content-Type: image/png, image/jpeg, multipart/form-data or application/json.")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return problem(kindMediaType, "The Content-Type header cannot be parsed.")
	}
	switch mt {
	case "image/png", "image/jpeg":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return bodyError(err)
		}
		return s.addImage(in, b)
	case "multipart/form-data":
		return s.readMultipart(r.Body, params["boundary"], q)
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := q.decodeJSON(dec, s); err != nil {
			return err
		}
		if dec.More() {
			return problem(kindInvalid, "The JSON body holds more than one value.")
		}
		return nil
	}
	return problem(kindMediaType, "Send image/png, image/jpeg, multipart/form-data or application/json, not "+mt+".")
}

// tooManyImages is the problem of a request over the image limit.
func (s *Server) tooManyImages() error {
	return problem(kindTooLarge, fmt.Sprintf("At most %d images per request.", s.cfg.MaxParts))
}

// addImage appends one image, or refuses it past the limit.
func (s *Server) addImage(in *upload, b []byte) error {
	if len(in.images) >= s.cfg.MaxParts {
		return s.tooManyImages()
	}
	in.images = append(in.images, b)
	return nil
}

// addBase64 appends the base64 images of a JSON body.
func (s *Server) addBase64(in *upload, all []string) error {
	if len(all) > s.cfg.MaxParts {
		return s.tooManyImages()
	}
	for i, e := range all {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e))
		if err != nil || len(b) == 0 {
			return problem(kindInvalid, fmt.Sprintf("Image %d is not valid base64.", i))
		}
		if err := s.addImage(in, b); err != nil {
			return err
		}
	}
	return nil
}

// setJSONInvert sets invert from a JSON body, when given.
func (in *upload) setJSONInvert(v wire.Invert) error {
	if v == "" {
		return nil
	}
	return in.setInvert(string(v))
}

func (in *upload) setInvert(v string) error {
	inv, err := encoder.ParseInvert(v)
	if err != nil {
		return errBadInvert
	}
	in.invert = inv
	return nil
}

// bodyError maps a body read error: too large → 413, past the server's
// read deadline → the timeout problem, else 400.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return problem(kindTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", mbe.Limit))
	case errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	}
	return problem(kindInvalid, "The request body could not be read.")
}

// readMultipart reads the parts of a form: files (or parts named image or
// images, or typed image/*) are images, the rest are fields.
func (s *Server) readMultipart(body io.Reader, boundary string, q request) error {
	if boundary == "" {
		return problem(kindInvalid, "The multipart Content-Type has no boundary.")
	}
	in := q.input()
	mr := multipart.NewReader(body, boundary)
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return multipartError(err)
		}
		if parts >= s.cfg.MaxParts+8 {
			return s.tooManyImages()
		}
		name := p.FormName()
		if p.FileName() != "" || strings.HasPrefix(p.Header.Get("Content-Type"), "image/") || name == "image" || name == "images" {
			b, err := io.ReadAll(p)
			if err != nil {
				return multipartError(err)
			}
			if err := s.addImage(in, b); err != nil {
				return err
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return multipartError(err)
		}
		if len(b) > maxFieldBytes {
			return problem(kindInvalid, fmt.Sprintf("Form field %q is too long.", name))
		}
		switch name {
		case "invert":
			err = in.setInvert(string(b))
		case "k", "label", "source", "tag", "tags":
			err = q.field(name, string(b))
		default:
			err = problem(kindInvalid, fmt.Sprintf("Unknown form field %q.", name))
		}
		if err != nil {
			return err
		}
	}
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	if errors.As(err, &mbe) || errors.As(err, &ne) {
		return bodyError(err)
	}
	return problem(kindInvalid, "The multipart body is malformed.")
}

// decodeJSON decodes one JSON value into v; a problem from a field's
// UnmarshalJSON is answered as it is.
func decodeJSON(dec *json.Decoder, v any) error {
	err := dec.Decode(v)
	var p *Problem
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &p):
		return p
	case errors.Is(err, wire.ErrInvert):
		return errBadInvert
	case errors.Is(err, wire.ErrLabel):
		return errBadLabel
	case errors.As(err, &mbe), errors.As(err, &ne):
		return bodyError(err)
	}
	return problem(kindInvalid, "The JSON body is malformed or has unknown fields.")
}

// optional is s as a list: none when empty.
func optional(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
