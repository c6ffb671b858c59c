package api

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cebm/cebm/api/wire"
)

// TestEmbeddings: POST /v1/embeddings answers OpenAI's shape with each
// image's posterior mean, as floats or base64 float32s, for data URIs and
// bare base64; bad requests are problems carrying OpenAI's error object.
func TestEmbeddings(t *testing.T) {
	setup(t)
	s, m := newTestServer(t, fixture.cebm, 300, DefaultConfig())
	png0, png1 := digitPNG(t, 0), digitPNG(t, 1)
	b64 := base64.StdEncoding.EncodeToString
	means := [][]float32{}
	for _, img := range [][]byte{png0, png1} {
		w := do(t, s, req("POST", "/encode", "image/png", img))
		means = append(means, decode[wire.EncodeResponse](t, w).Results[0].Mean)
	}
	name := modelName(m)
	if w := do(t, s, req("GET", "/models", "", nil)); decode[wire.ModelsResponse](t, w).Models[0].Name != name {
		t.Errorf("GET /models does not name the model %q: %s", name, w.Body)
	}
	type answer struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	for _, format := range []string{"", "float", "base64"} {
		body := map[string]any{"model": name, "input": []string{"data:image/png;base64," + b64(png0), b64(png1)}}
		if format != "" {
			body["encoding_format"] = format
		}
		w := do(t, s, req("POST", "/v1/embeddings", "application/json", jsonBodyOf(t, body)))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", format, w.Code, w.Body)
		}
		a := decode[answer](t, w)
		if a.Object != "list" || a.Model != name || len(a.Data) != 2 {
			t.Fatalf("%s: %s", format, w.Body)
		}
		for i, d := range a.Data {
			var got []float32
			if format == "base64" {
				var s string
				if err := json.Unmarshal(d.Embedding, &s); err != nil {
					t.Fatal(err)
				}
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil || len(raw) != 4*len(means[i]) {
					t.Fatalf("base64 embedding %d: %d bytes, %v", i, len(raw), err)
				}
				for j := 0; j < len(raw); j += 4 {
					got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(raw[j:])))
				}
			} else if err := json.Unmarshal(d.Embedding, &got); err != nil {
				t.Fatal(err)
			}
			if d.Object != "embedding" || d.Index != i || !equal32(got, means[i]) {
				t.Errorf("%s: embedding %d is not /encode's posterior mean: %v vs %v", format, i, got, means[i])
			}
		}
	}
	// One input as a string, the model by digest.
	w := do(t, s, req("POST", "/v1/embeddings", "application/json", jsonBodyOf(t, map[string]any{"model": m.Digest, "input": b64(png0)})))
	if a := decode[answer](t, w); w.Code != 200 || len(a.Data) != 1 {
		t.Errorf("one input: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"model": "gpt-4", "input": b64(png0)}, 404, "model_not_found"},
		{map[string]any{"model": name, "input": "hello world"}, 400, "invalid-request"},
		{map[string]any{"model": name, "input": []int{1, 2, 3}}, 400, "invalid-request"},
		{map[string]any{"model": name, "input": []string{}}, 400, "invalid-request"},
		{map[string]any{"model": name, "input": "data:text/plain;base64,aGk="}, 400, "invalid-request"},
		{map[string]any{"model": name, "input": b64(png0), "encoding_format": "int8"}, 400, "invalid-request"},
		{map[string]any{"model": name, "input": b64(png0), "dimensions": 3}, 400, "invalid-request"},
		{map[string]any{"model": name, "input": b64([]byte("not an image"))}, 415, "unsupported-media-type"},
	} {
		w := do(t, s, req("POST", "/v1/embeddings", "application/json", jsonBodyOf(t, c.body)))
		var p struct {
			Problem
			Error struct {
				Message, Code string
			} `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != c.status || w.Header().Get("Content-Type") != "application/problem+json" ||
			p.Error.Code != c.code || p.Error.Message == "" || p.Detail != p.Error.Message {
			t.Errorf("%v: %d %s", c.body, w.Code, w.Body)
		}
	}
	if w := do(t, s, req("POST", "/v1/embeddings", "image/png", png0)); w.Code != 415 {
		t.Errorf("a PNG body: %d", w.Code)
	}
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOpenAIClient calls POST /v1/embeddings of a running server through
// the official openai npm client (scripts/setup.sh installs it in
// .web/node_modules): its embeddings, asked for as floats and by default
// (base64, which the client decodes), are /encode's posterior means, and
// an unknown model is its NotFoundError with code model_not_found.
func TestOpenAIClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the openai client test needs it")
	}
	modules := filepath.Join("..", ".web", "node_modules")
	if d := os.Getenv("CEBM_WEB_DIR"); d != "" {
		modules = filepath.Join(d, "node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "openai", "package.json")); err != nil {
		t.Fatalf("the openai npm client is not installed in %s: run scripts/setup.sh (make test does)", modules)
	}
	modules, _ = filepath.Abs(modules)
	setup(t)
	cfg := DefaultConfig()
	cfg.Keys = []Key{{"reader-key-0001", ScopeRead}}
	s, m := newTestServer(t, fixture.cebm, 300, cfg)
	srv := httptest.NewServer(s)
	defer srv.Close()
	pngs := [][]byte{digitPNG(t, 0), digitPNG(t, 1), digitPNG(t, 2)}
	var inputs []string
	var means [][]float32
	for _, img := range pngs {
		inputs = append(inputs, "data:image/png;base64,"+base64.StdEncoding.EncodeToString(img))
		r := req("POST", "/encode", "image/png", img)
		r.Header.Set("Authorization", "Bearer reader-key-0001")
		means = append(means, decode[wire.EncodeResponse](t, do(t, s, r)).Results[0].Mean)
	}
	in, _ := json.Marshal(inputs)
	cmd := exec.Command(node, filepath.Join("testdata", "openai-embeddings.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "BASE_URL="+srv.URL+"/v1", "API_KEY=reader-key-0001",
		"MODEL="+modelName(m), "INPUTS="+string(in))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	type list struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	var got struct {
		Float, Default, One list
		Unknown             *struct {
			Status      int
			Code, Param string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for name, l := range map[string]list{"float": got.Float, "default (base64)": got.Default, "one input": got.One} {
		if l.Object != "list" || l.Model != modelName(m) || (len(l.Data) != 3 && name != "one input") || len(l.Data) == 0 {
			t.Fatalf("%s: %+v", name, l)
		}
		for i, d := range l.Data {
			if d.Object != "embedding" || d.Index != i || !equal32(d.Embedding, means[i]) {
				t.Errorf("%s: embedding %d is not /encode's posterior mean:\n%v\n%v", name, i, d.Embedding, means[i])
			}
		}
	}
	if u := got.Unknown; u == nil || u.Status != 404 || u.Code != "model_not_found" || u.Param != "model" {
		t.Errorf("unknown model through the client: %+v", u)
	}
	t.Logf("openai client: %d embeddings of %d dimensions, equal to /encode's means", len(got.Float.Data), len(got.Float.Data[0].Embedding))
}
