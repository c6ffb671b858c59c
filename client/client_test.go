package client

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cebm/cebm/api"
	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/internal/openapitest"
	"github.com/cebm/cebm/reference"
)

const shipped = "../models/mnist-cebm.onnx"

// server is a real api.Server on the shipped model with the first 1,000
// MNIST training images as its reference set; index false leaves it
// without an index (not ready). Every request the client sends it must
// match openapi.yaml.
func server(t *testing.T, key string, index bool) (*httptest.Server, *data.Set) {
	t.Helper()
	if _, err := os.Stat(shipped); err != nil {
		t.Skip("no shipped model")
	}
	m, err := encoder.Load(shipped, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.APIKey = key
	s := api.New(cfg, nil)
	s.SetModel(m)
	train, err := data.Load("mnist", "train")
	if err != nil {
		t.Fatal(err)
	}
	if index {
		const n = 1000
		ix, energies, err := reference.Build(context.Background(), m, reference.Set{Name: "test", Images: train.Images[:n*784], Labels: train.Labels[:n]}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetIndex(ix, nil, api.Reference{Energies: energies, Pixels: train.Pixel}); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := openapitest.Load(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(spec.Handler(t, s))
	t.Cleanup(func() { srv.Close(); s.Close(); m.Close() })
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	return srv, test
}

func digit(t *testing.T, set *data.Set, i int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, &image.Gray{Pix: set.Pixel(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// problem checks that err is the service's problem of the given status and
// type suffix.
func problem(t *testing.T, err error, status int, kind string) *wire.Problem {
	t.Helper()
	var p *wire.Problem
	if !errors.As(err, &p) || p.Status != status || !strings.HasSuffix(p.Type, "#problem-"+kind) {
		t.Fatalf("got %v (%#v), want a %d %s problem", err, p, status, kind)
	}
	return p
}

func TestClient(t *testing.T) {
	srv, test := server(t, "", true)
	c, err := New(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	enc, err := c.Encode(ctx, digit(t, test, 0), digit(t, test, 1))
	if err != nil || len(enc.Results) != 2 || enc.Results[0].OOD == nil {
		t.Fatalf("Encode: %+v, %v", enc, err)
	}
	p, err := c.Posterior(ctx, enc.Results[1].ID)
	if err != nil || p.Energy != enc.Results[1].Energy || len(p.Mean) != 128 {
		t.Fatalf("Posterior: %+v, %v", p, err)
	}
	right := 0
	var imgs [][]byte
	for i := range 20 {
		imgs = append(imgs, digit(t, test, i))
	}
	cls, err := c.Classify(ctx, 3, imgs...)
	if err != nil || len(cls.Results) != 20 || cls.K != 3 {
		t.Fatalf("Classify: %+v, %v", cls, err)
	}
	for i, r := range cls.Results {
		if r.Label == test.Labels[i] {
			right++
		}
		if len(r.Neighbors) != 3 {
			t.Fatalf("result %d: %d neighbours", i, len(r.Neighbors))
		}
	}
	if right < 15 {
		t.Errorf("%d of 20 right", right)
	}
	byID, err := c.ClassifyID(ctx, enc.Results[0].ID, 1)
	if err != nil || byID.Results[0].Neighbors[0] != cls.Results[0].Neighbors[0] {
		t.Errorf("ClassifyID: %+v, %v", byID, err)
	}
	byMean, err := c.ClassifyMean(ctx, enc.Results[0].Mean, 1)
	if err != nil || byMean.Results[0].Neighbors[0].ID != cls.Results[0].Neighbors[0].ID {
		t.Errorf("ClassifyMean: %+v, %v", byMean, err)
	}

	added, err := c.AddItems(ctx, Item{Image: digit(t, test, 5), Label: "1", Tags: []string{"scan-7"}}, Item{Image: digit(t, test, 6), Label: "4"})
	if err != nil || added.Added != 2 || added.IndexIDs[0] != 1000 {
		t.Fatalf("AddItems: %+v, %v", added, err)
	}
	it, err := c.IndexItem(ctx, added.IndexIDs[1])
	if err != nil || it.Label != 4 || it.Source != "added" || !it.Image {
		t.Errorf("IndexItem: %+v, %v", it, err)
	}
	// Filters, pages and deletes.
	only, err := c.ClassifyFilter(ctx, 5, wire.Filter{Tags: []string{"scan-7"}}, digit(t, test, 6))
	if err != nil || len(only.Results[0].Neighbors) != 1 || only.Results[0].Neighbors[0].ID != added.IndexIDs[0] {
		t.Errorf("ClassifyFilter: %+v, %v", only, err)
	}
	page, err := c.Items(ctx, "", 0, wire.Filter{Source: "added"})
	if err != nil || len(page.Items) != 2 || page.Items[0].ID != 1000 || page.Items[0].Tags[0] != "scan-7" || page.NextCursor != "" {
		t.Errorf("Items: %+v, %v", page, err)
	}
	page, err = c.Items(ctx, "998", 1, wire.Filter{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != 998 || page.NextCursor != "999" {
		t.Errorf("Items from a cursor: %+v, %v", page, err)
	}
	del, err := c.DeleteItem(ctx, added.IndexIDs[0])
	if err != nil || !del.Deleted || del.LiveItems != 1001 {
		t.Errorf("DeleteItem: %+v, %v", del, err)
	}
	_, err = c.IndexItem(ctx, added.IndexIDs[0])
	problem(t, err, 404, "not-found")
	if page, err := c.Items(ctx, "", 0, wire.Filter{Source: "added"}); err != nil || len(page.Items) != 1 {
		t.Errorf("Items after the delete: %+v, %v", page, err)
	}

	b, err := c.IndexItemImage(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(b)); err != nil || img.Bounds().Dx() != 28 {
		t.Errorf("IndexItemImage: %v", err)
	}
	m, err := c.Models(ctx)
	if err != nil || len(m.Models) != 1 || m.Models[0].IndexItems != 1001 || m.Models[0].Digest == "" || m.Models[0].LatentDim != 128 {
		t.Errorf("Models: %+v, %v", m, err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Errorf("Health: %+v, %v", h, err)
	}
	if h, err := c.Ready(ctx); err != nil || h.Status != "ready" {
		t.Errorf("Ready: %+v, %v", h, err)
	}
	if doc, err := c.OpenAPI(ctx); err != nil || !bytes.HasPrefix(doc, []byte("openapi: 3.1")) {
		t.Errorf("OpenAPI: %.20q, %v", doc, err)
	}

	// Errors are the service's problems.
	_, err = c.Posterior(ctx, "0123456789abcdef")
	problem(t, err, 404, "unknown-id")
	_, err = c.Encode(ctx, []byte("not an image"))
	problem(t, err, 415, "unsupported-media-type")
	_, err = c.Classify(ctx, 1000, digit(t, test, 0))
	problem(t, err, 400, "invalid-request")
	_, err = c.AddItems(ctx, Item{Image: digit(t, test, 0), Label: "eleven"})
	problem(t, err, 400, "invalid-request")
	_, err = c.IndexItem(ctx, 99999)
	problem(t, err, 404, "not-found")
}

// TestClientEmbeddings: Embeddings answers each image's /encode posterior
// mean, the same numbers whether they came as floats or base64, with the
// model named or found through GET /models; an unknown model is the
// server's 404 problem.
func TestClientEmbeddings(t *testing.T) {
	srv, test := server(t, "", true)
	c, _ := New(srv.URL)
	ctx := context.Background()
	imgs := [][]byte{digit(t, test, 0), digit(t, test, 1), digit(t, test, 2)}
	enc, err := c.Encode(ctx, imgs...)
	if err != nil {
		t.Fatal(err)
	}
	models, err := c.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := models.Models[0].Name
	for _, opts := range []EmbeddingsOptions{{}, {Base64: true}, {Model: name}, {Model: models.Models[0].Digest, Base64: true}} {
		e, err := c.Embeddings(ctx, opts, imgs...)
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		if e.Model != name || len(e.Vectors) != len(imgs) {
			t.Fatalf("%+v: model %q, %d vectors", opts, e.Model, len(e.Vectors))
		}
		for i, v := range e.Vectors {
			if !slices.Equal(v, enc.Results[i].Mean) {
				t.Errorf("%+v: embedding %d is not /encode's posterior mean: %v vs %v", opts, i, v[:3], enc.Results[i].Mean[:3])
			}
		}
	}
	_, err = c.Embeddings(ctx, EmbeddingsOptions{Model: "no-such-model"}, imgs[0])
	problem(t, err, 404, "model-not-found")
	_, err = c.Embeddings(ctx, EmbeddingsOptions{}, []byte("not an image"))
	problem(t, err, 415, "unsupported-media-type")
}

func TestClientKeyAndNotReady(t *testing.T) {
	srv, test := server(t, "k3y", false)
	ctx := context.Background()
	anon, _ := New(srv.URL)
	_, err := anon.Encode(ctx, digit(t, test, 0))
	problem(t, err, 401, "unauthorized")
	c, _ := New(srv.URL, WithAPIKey("k3y"))
	if _, err := c.Encode(ctx, digit(t, test, 0)); err != nil {
		t.Errorf("with the key: %v", err)
	}
	_, err = c.Ready(ctx)
	if p := problem(t, err, 503, "not-ready"); p.RetryAfter < 1 {
		t.Errorf("Retry-After %d", p.RetryAfter)
	}
	if _, err := New("ftp://x"); err == nil {
		t.Error("an ftp URL was accepted")
	}
}
