package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/data"
)

// TestClientCommands runs `cebm encode` and `cebm classify` against a
// running server on MNIST test digits saved as files.
func TestClientCommands(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	base := serveInProcess(t, "--model", shippedModel, "--reference-limit", "2000",
		"--cache-dir", t.TempDir(), "--state-dir", t.TempDir(), "--api-key", "sekret")
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i := range 3 {
		f := filepath.Join(dir, []string{"a.png", "b.png", "c.png"}[i])
		if err := os.WriteFile(f, digitPNG(t, test, i), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	env := func(k string) string {
		if k == "CEBM_API_KEY" {
			return "sekret"
		}
		return ""
	}
	cebm := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, env, &out, &bytes.Buffer{})
		return out.String(), err
	}

	out, err := cebm(append([]string{"classify", "--server", base}, append(files, "--k", "3")...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "FILE") {
		t.Fatalf("classify table:\n%s", out)
	}
	right := 0
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if f[0] != files[i] {
			t.Errorf("row %d is %q", i, l)
		}
		if f[1] == test.Classes[test.Labels[i]] {
			right++
		}
	}
	if right < 2 {
		t.Errorf("%d of 3 right:\n%s", right, out)
	}

	out, err = cebm(append([]string{"classify", "--json", "--server", base}, files...)...)
	var res wire.ClassifyResponse
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res.Results) != 3 || res.K != 1 {
		t.Fatalf("classify --json (k defaults to 1, as the HTTP route's): %v\n%s", err, out)
	}

	out, err = cebm(append([]string{"encode", "--server", base}, files...)...)
	if err != nil || strings.Count(out, "\n") != 4 || !strings.Contains(out, "OOD PERCENTILE") {
		t.Fatalf("encode: %v\n%s", err, out)
	}

	// Errors: a missing file, a wrong key, no server.
	if _, err := cebm("encode", "--server", base, filepath.Join(dir, "none.png")); err == nil {
		t.Error("a missing file did not fail")
	}
	if _, err := cebm("encode", "--server", base, "--api-key", "wrong", files[0]); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong key: %v", err)
	}
	if _, err := cebm("classify", "--server", "http://"+freeAddr(t), files[0]); err == nil {
		t.Error("no server did not fail")
	}
	if _, err := cebm("classify", "--server", base); err == nil {
		t.Error("no files did not fail")
	}
}
