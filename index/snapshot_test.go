package index

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func savedIndex(t *testing.T) (*Index, string, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(6, 6))
	const n, dim = 700, 9
	vecs, labels := randomData(r, n, dim, false)
	ix := New(dim, "sha256:abc")
	if _, err := ix.Add(vecs, labels); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "idx.snap")
	if err := ix.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ix, path, b
}

func TestSnapshotRoundTrip(t *testing.T) {
	ix, path, _ := savedIndex(t)
	got, err := Load(path, "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != ix.Len() || got.Dim() != ix.Dim() || got.ModelDigest() != "sha256:abc" {
		t.Fatalf("loaded %d×%d %q", got.Len(), got.Dim(), got.ModelDigest())
	}
	for id := 0; id < ix.Len(); id++ {
		a, _ := ix.Vector(id)
		b, _ := got.Vector(id)
		la, _ := ix.Label(id)
		lb, _ := got.Label(id)
		if la != lb {
			t.Fatalf("label %d: %d vs %d", id, la, lb)
		}
		for p := range a {
			if a[p] != b[p] {
				t.Fatalf("vector %d differs", id)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// An empty index round-trips too.
	empty := New(4, "")
	p2 := filepath.Join(t.TempDir(), "empty")
	if err := empty.Save(p2); err != nil {
		t.Fatal(err)
	}
	if e, err := Load(p2, ""); err != nil || e.Len() != 0 || e.Dim() != 4 {
		t.Fatalf("empty: %v", err)
	}
}

func TestSnapshotRefused(t *testing.T) {
	_, _, good := savedIndex(t)
	dir := t.TempDir()
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 0x10
		return b
	}
	hugeCount := append([]byte(nil), good...)
	hugeCount[16], hugeCount[17], hugeCount[18], hugeCount[19] = 0xff, 0xff, 0xff, 0x7f
	for _, tc := range []struct {
		name, digest, msg string
		data              []byte
	}{
		{"truncated", "sha256:abc", "truncated", good[:len(good)-100]},
		{"truncated header", "sha256:abc", "truncated header", good[:10]},
		{"empty file", "sha256:abc", "truncated header", nil},
		{"flipped vector bit", "sha256:abc", "checksum", flip(len(good) / 2)},
		{"flipped checksum", "sha256:abc", "checksum", flip(len(good) - 1)},
		{"flipped digest", "sha256:abc", "checksum", flip(headerFixed + 2)},
		{"bad magic", "sha256:abc", "not an index snapshot", flip(0)},
		{"other version", "sha256:abc", "version", flip(8)},
		{"huge count", "sha256:abc", "size", hugeCount},
		{"wrong model", "sha256:def", `built by model "sha256:abc"`, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			ix, err := Load(path, tc.digest)
			if err == nil || ix != nil {
				t.Fatalf("Load accepted it")
			}
			if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q, want ErrSnapshot mentioning %q", err, tc.msg)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSaveLeavesOldFileOnFailure(t *testing.T) {
	ix, path, good := savedIndex(t)
	// Saving into a missing directory fails without touching anything.
	if err := ix.Save(filepath.Join(path+".d", "x")); err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
	b, _ := os.ReadFile(path)
	if string(b) != string(good) {
		t.Fatal("snapshot changed")
	}
}

// FuzzLoad: Load never panics and never accepts a damaged snapshot.
func FuzzLoad(f *testing.F) {
	ix := New(2, "m")
	if _, err := ix.Add([]float32{1, 2, 3, 4}, []int{0, -1}); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "seed")
	if err := ix.Save(path); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add(seed[:20])
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "in")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := Load(p, "m")
		if err == nil && got.Len() > 0 {
			if _, err := got.Search(make([]float32, got.Dim()), 1); err != nil {
				t.Fatal(err)
			}
		}
	})
}
