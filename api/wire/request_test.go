package wire

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestRequestFields: invert and label read every form the service takes,
// refuse the others with their errors (null included), and a request
// sends only the fields set.
func TestRequestFields(t *testing.T) {
	for body, want := range map[string]Invert{
		`{"invert":"auto"}`: "auto", `{"invert":""}`: "auto", `{"invert":true}`: "true",
		`{"invert":false}`: "false", `{"invert":"no"}`: "no", `{}`: "",
	} {
		var r EncodeRequest
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Invert != want {
			t.Errorf("%s: invert %q, %v; want %q", body, r.Invert, err, want)
		}
	}
	for _, body := range []string{`{"invert":null}`, `{"invert":1}`, `{"invert":["auto"]}`} {
		var r EncodeRequest
		if err := json.Unmarshal([]byte(body), &r); !errors.Is(err, ErrInvert) {
			t.Errorf("%s: %v, want ErrInvert", body, err)
		}
	}
	for body, want := range map[string]Label{`{"label":7}`: "7", `{"label":"seven"}`: "seven", `{"label":1e2}`: "1e2"} {
		var r AddItemsRequest
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Label == nil || *r.Label != want {
			t.Errorf("%s: label %v, %v; want %q", body, r.Label, err, want)
		}
	}
	for _, body := range []string{`{"items":[{"image":"x","label":true}]}`, `{"label":{}}`} {
		var r AddItemsRequest
		if err := json.Unmarshal([]byte(body), &r); !errors.Is(err, ErrLabel) {
			t.Errorf("%s: %v, want ErrLabel", body, err)
		}
	}
	var r AddItemsRequest
	if err := json.Unmarshal([]byte(`{"items":[{"image":"x","label":null}]}`), &r); err != nil || r.Items[0].Label != nil {
		t.Errorf("a null label: %+v, %v", r.Items, err)
	}

	k, seven := 3, Label("7")
	for v, want := range map[any]string{
		&EncodeRequest{Upload{Images: []string{"a", "b"}}}:           `{"images":["a","b"]}`,
		&ClassifyRequest{ID: "f00", K: &k}:                           `{"id":"f00","k":3}`,
		&ClassifyRequest{Upload: Upload{Image: "a", Invert: "true"}}: `{"image":"a","invert":"true"}`,
		&AddItemsRequest{Items: []Item{{Image: "a", Label: &seven}}}: `{"items":[{"image":"a","label":"7"}]}`,
		&AddItemsRequest{Image: "a", Label: &seven, Invert: "false"}: `{"image":"a","label":"7","invert":"false"}`,
	} {
		b, err := json.Marshal(v)
		if err != nil || string(b) != want {
			t.Errorf("%+v: %s, %v; want %s", v, b, err, want)
		}
	}
}
