package main

import (
	"bytes"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeExamples returns the shell blocks of the README's examples section
// (from the comment naming this test to "end of examples"), joined.
func readmeExamples(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	from := strings.Index(s, "are run by TestREADMEExamples")
	to := strings.Index(s, "<!-- end of examples -->")
	if from < 0 || to < from {
		t.Fatal("README.md has no examples section marked for TestREADMEExamples")
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(s[from:to], -1)
	if len(blocks) < 2 {
		t.Fatalf("%d shell blocks in the README's examples, want the curl and the bin/cebm ones", len(blocks))
	}
	var all strings.Builder
	for _, b := range blocks {
		all.WriteString(b[1])
	}
	return all.String()
}

// TestREADMEExamples runs the README's example commands, as written, from
// a copy of the repository's layout (examples/, and bin/cebm: this test
// binary acting as cebm) against a live server with the shipped model; only
// the server's address is replaced. Each command must succeed and answer
// what the README says: a seven is a 7, the /encode id is served by
// GET /posterior/{id}, reference item 0 is MNIST's first training image (a
// 5) and GET /posterior/0 its posterior, a blank page is flagged for its
// low energy.
func TestREADMEExamples(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	script := readmeExamples(t)
	for _, c := range []string{"curl", "bin/cebm classify", "bin/cebm encode", "examples/seven.png", "/posterior/$id"} {
		if !strings.Contains(script, c) {
			t.Errorf("the README's examples never use %q", c)
		}
	}
	base := serveInProcess(t, "--model", shippedModel, "--reference-limit", "10000",
		"--cache-dir", t.TempDir(), "--state-dir", t.TempDir())
	addr := strings.TrimPrefix(base, "http://")
	script = strings.NewReplacer("localhost:8080", addr, "127.0.0.1:8080", addr).Replace(script)

	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"bin/cebm": self, "examples": examples} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	// The client's default server is 127.0.0.1:8080; CEBM_SERVER is how the
	// README's first bin/cebm line reaches this one.
	cmd.Env = append(os.Environ(), asCEBM+"=1", "CEBM_SERVER="+base)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's examples failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("the README's examples printed:\n%.3000s", out)
	for what, re := range map[string]string{
		"seven.png's /classify-knn label 7, in distribution": `"label":7,[^\n]*"out_of_distribution":false`,
		"a posterior from /encode and GET /posterior/{id}":   `(?s)"natural_params".*"natural_params"`,
		"reference item 0, a 5":                              `"id":0,"label":5`,
		"reference item 0's posterior from GET /posterior/0": `"id":"0","energy":[^\n]*"natural_params"`,
		"the blank page flagged for its low energy":          `"out_of_distribution":true,"reason":"energy too low"`,
		"the CLI's table: seven.png labelled 7":              `examples/seven.png\s+7\s`,
		"the CLI's table: two.png labelled 2":                `examples/two.png\s+2\s`,
		"the CLI's table: one.png labelled 1":                `examples/one.png\s+1\s`,
		"the CLI's table: blank.png flagged":                 `examples/blank.png\s.*yes: energy too low`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no %s in the output (%s)", what, re)
		}
	}
	f, err := os.Open(filepath.Join(dir, "item0.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dx() != 28 {
		t.Errorf("item0.png: %v", err)
	}
}
