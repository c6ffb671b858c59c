package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/cebm/cebm/encoder"
)

// request is what a POST body (raw image, multipart or JSON) and the query
// string ask for.
type request struct {
	images [][]byte
	invert encoder.Invert
	k      int // 0 when not given
	labels []string
	// JSON only, /classify-knn
	id   string
	mean []float32
}

// jsonBody is the JSON form of /encode, /classify-knn and /index/items.
type jsonBody struct {
	Image  string          `json:"image"`
	Images []string        `json:"images"`
	Invert json.RawMessage `json:"invert"`
	K      *int            `json:"k"`
	ID     string          `json:"id"`
	Mean   []float32       `json:"mean"`
	Label  json.RawMessage `json:"label"`
	Items  []struct {
		Image string          `json:"image"`
		Label json.RawMessage `json:"label"`
	} `json:"items"`
}

// maxFieldBytes bounds a multipart form field that is not an image.
const maxFieldBytes = 1 << 10

// readRequest parses r's body by its Content-Type, and the query
// parameters invert, k and label.
func (s *Server) readRequest(r *http.Request) (*request, error) {
	q := &request{}
	if err := q.setField("invert", r.URL.Query().Get("invert")); err != nil {
		return nil, err
	}
	if v := r.URL.Query().Get("k"); v != "" {
		if err := q.setField("k", v); err != nil {
			return nil, err
		}
	}
	if v := r.URL.Query().Get("label"); v != "" {
		q.labels = append(q.labels, v)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, problem(kindMediaType, "Set Content-Type: image/png, image/jpeg, multipart/form-data or application/json.")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, problem(kindMediaType, "The Content-Type header cannot be parsed.")
	}
	switch mt {
	case "image/png", "image/jpeg":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyError(err)
		}
		q.images = append(q.images, b)
	case "multipart/form-data":
		if err := s.readMultipart(r.Body, params["boundary"], q); err != nil {
			return nil, err
		}
	case "application/json":
		if err := s.readJSON(r.Body, q); err != nil {
			return nil, err
		}
	default:
		return nil, problem(kindMediaType, "Send image/png, image/jpeg, multipart/form-data or application/json, not "+mt+".")
	}
	if len(q.images) > s.cfg.MaxParts {
		return nil, problem(kindTooLarge, fmt.Sprintf("At most %d images per request.", s.cfg.MaxParts))
	}
	return q, nil
}

// bodyError maps a body read error: too large → 413, else 400.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problem(kindTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", mbe.Limit))
	}
	return problem(kindInvalid, "The request body could not be read.")
}

func (q *request) setField(name, v string) error {
	switch name {
	case "invert":
		inv, err := encoder.ParseInvert(v)
		if err != nil {
			return problem(kindInvalid, "invert must be auto, true or false.")
		}
		q.invert = inv
	case "k":
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			return problem(kindInvalid, "k must be a positive integer.")
		}
		q.k = k
	case "label":
		q.labels = append(q.labels, v)
	default:
		return problem(kindInvalid, fmt.Sprintf("Unknown form field %q.", name))
	}
	return nil
}

func (s *Server) readMultipart(body io.Reader, boundary string, q *request) error {
	if boundary == "" {
		return problem(kindInvalid, "The multipart Content-Type has no boundary.")
	}
	mr := multipart.NewReader(body, boundary)
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return multipartError(err)
		}
		if parts >= s.cfg.MaxParts+8 {
			return problem(kindTooLarge, fmt.Sprintf("At most %d images per request.", s.cfg.MaxParts))
		}
		name := p.FormName()
		isImage := p.FileName() != "" || strings.HasPrefix(p.Header.Get("Content-Type"), "image/") || name == "image" || name == "images"
		if isImage {
			if len(q.images) >= s.cfg.MaxParts {
				return problem(kindTooLarge, fmt.Sprintf("At most %d images per request.", s.cfg.MaxParts))
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return multipartError(err)
			}
			q.images = append(q.images, b)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return multipartError(err)
		}
		if len(b) > maxFieldBytes {
			return problem(kindInvalid, fmt.Sprintf("Form field %q is too long.", name))
		}
		if err := q.setField(name, string(b)); err != nil {
			return err
		}
	}
	return nil
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err)
	}
	return problem(kindInvalid, "The multipart body is malformed.")
}

func (s *Server) readJSON(body io.Reader, q *request) error {
	var j jsonBody
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return bodyError(err)
		}
		return problem(kindInvalid, "The JSON body is malformed or has unknown fields.")
	}
	if dec.More() {
		return problem(kindInvalid, "The JSON body holds more than one value.")
	}
	if len(j.Invert) > 0 {
		var v any
		_ = json.Unmarshal(j.Invert, &v)
		switch v := v.(type) {
		case string:
			if err := q.setField("invert", v); err != nil {
				return err
			}
		case bool:
			if err := q.setField("invert", strconv.FormatBool(v)); err != nil {
				return err
			}
		default:
			return problem(kindInvalid, "invert must be auto, true or false.")
		}
	}
	if j.K != nil {
		if *j.K < 1 {
			return problem(kindInvalid, "k must be a positive integer.")
		}
		q.k = *j.K
	}
	q.id, q.mean = j.ID, j.Mean
	all := j.Images
	if j.Image != "" {
		all = append([]string{j.Image}, all...)
	}
	if len(j.Label) > 0 {
		l, err := jsonLabel(j.Label)
		if err != nil {
			return err
		}
		q.labels = append(q.labels, l)
	}
	for _, it := range j.Items {
		all = append(all, it.Image)
		l, err := jsonLabel(it.Label)
		if err != nil {
			return err
		}
		q.labels = append(q.labels, l)
	}
	if len(all) > s.cfg.MaxParts {
		return problem(kindTooLarge, fmt.Sprintf("At most %d images per request.", s.cfg.MaxParts))
	}
	for i, e := range all {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e))
		if err != nil || len(b) == 0 {
			return problem(kindInvalid, fmt.Sprintf("Image %d is not valid base64.", i))
		}
		q.images = append(q.images, b)
	}
	return nil
}

// jsonLabel reads a label given as a class index or a class name.
func jsonLabel(raw json.RawMessage) (string, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err == nil {
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		}
	}
	return "", problem(kindInvalid, "A label must be a class index or a class name.")
}
