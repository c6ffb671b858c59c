package openapitest

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestRequest: requests the document describes pass, and ones it does
// not (an unknown field, a wrong type, k below 1, an undescribed path)
// fail, for each kind of body.
func TestRequest(t *testing.T) {
	doc, err := os.ReadFile("../../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("image", "0.png")
	fw.Write([]byte("\x89PNG"))
	mw.WriteField("k", "3")
	mw.Close()
	for _, c := range []struct {
		method, path, ct, body string
		ok                     bool
	}{
		{"POST", "/encode", "application/json", `{"images":["aGk="],"invert":true}`, true},
		{"POST", "/encode", "application/json", `{"images":["aGk="],"colour":true}`, false},
		{"POST", "/encode", "application/json", `{"images":"aGk="}`, false},
		{"POST", "/classify-knn", "application/json", `{"id":"f00","k":3}`, true},
		{"POST", "/classify-knn", "application/json", `{"id":"f00","k":0}`, false},
		{"POST", "/index/items", "application/json", `{"items":[{"image":"aGk=","label":7}]}`, true},
		{"POST", "/index/items", "application/json", `{"items":[{"image":"aGk="}]}`, false},
		{"POST", "/classify-knn?k=2", "image/png", "\x89PNG", true},
		{"POST", "/classify-knn", mw.FormDataContentType(), mp.String(), true},
		{"GET", "/models", "", "", true},
	} {
		r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		if c.ct != "" {
			r.Header.Set("Content-Type", c.ct)
		}
		if err := s.Request(r, []byte(c.body)); (err == nil) != c.ok {
			t.Errorf("%s %s %.60q: %v, want ok %v", c.method, c.path, c.body, err, c.ok)
		}
	}
	if err := s.Request(httptest.NewRequest("GET", "/nowhere", nil), nil); !errors.Is(err, ErrUndescribed) {
		t.Errorf("an undescribed path: %v", err)
	}
	if err := s.Response(httptest.NewRequest("GET", "/healthz", nil), 200, http.Header{"Content-Type": {"application/json"}}, []byte(`{"status":1}`)); err == nil {
		t.Error("a /healthz answer of the wrong type passed")
	}
}
