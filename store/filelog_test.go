package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cebm/cebm/index"
)

const testDim = 4

// refIndex is a reference index of n items, as the server builds before
// it opens the store.
func refIndex(t *testing.T, n int) *index.Index {
	t.Helper()
	ix := index.New(testDim, "model-a")
	vecs := make([]float32, n*testDim)
	for i := range vecs {
		vecs[i] = float32(i)
	}
	if _, err := ix.Add(vecs, make([]int, n)); err != nil {
		t.Fatal(err)
	}
	return ix
}

// item is added item number i: its vector and label tell it apart.
func item(i int) ([]float32, int) {
	return []float32{float32(i), -float32(i), 0.5, 1000 + float32(i)}, i % 10
}

// appendBatch appends added items from..from+n-1 to s.
func appendBatch(s Items, from, n int) (int, error) {
	return s.Append(context.Background(), batch(from, n))
}

// pixels is added item i's 3-byte image.
func pixels(i int) []uint8 { return []uint8{uint8(i), 7, uint8(i >> 8)} }

func batch(from, n int) Batch {
	var b Batch
	for i := from; i < from+n; i++ {
		v, l := item(i)
		b.Vecs = append(b.Vecs, v...)
		b.Labels = append(b.Labels, l)
		b.Pixels = append(b.Pixels, pixels(i)...)
	}
	return b
}

// checkItems checks that ix holds ref reference items and then exactly
// added items 0..n-1, and that s (if not nil) has their images.
func checkItems(t *testing.T, ix *index.Index, ref, n int, s ...Items) {
	t.Helper()
	for _, s := range s {
		for i := range n {
			if p, ok := s.Pixels(ref + i); !ok || !bytes.Equal(p, pixels(i)) {
				t.Fatalf("item %d's image: %v, %v; want %v", ref+i, p, ok, pixels(i))
			}
		}
		if _, ok := s.Pixels(ref + n); ok {
			t.Fatalf("an image for item %d, which is not there", ref+n)
		}
	}
	if ix.Len() != ref+n {
		t.Fatalf("index holds %d items, want %d reference + %d added", ix.Len(), ref, n)
	}
	for i := range n {
		v, _ := ix.Vector(ref + i)
		l, _ := ix.Label(ref + i)
		want, wl := item(i)
		if fmt.Sprint(v) != fmt.Sprint(want) || l != wl {
			t.Fatalf("item %d: %v label %d, want %v label %d", ref+i, v, l, want, wl)
		}
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func open(t *testing.T, dir string, ref int, opt FileOptions) (*FileItems, *index.Index) {
	t.Helper()
	ix := refIndex(t, ref)
	snap, log := FilePaths(dir, "k")
	s, err := OpenFileItems(ix, snap, log, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, ix
}

func TestFileItemsReplay(t *testing.T) {
	dir := t.TempDir()
	s, ix := open(t, dir, 3, FileOptions{})
	for _, b := range [][2]int{{0, 2}, {2, 1}, {3, 5}} {
		first, err := appendBatch(s, b[0], b[1])
		if err != nil {
			t.Fatal(err)
		}
		if first != 3+b[0] {
			t.Fatalf("first id %d, want %d", first, 3+b[0])
		}
	}
	checkItems(t, ix, 3, 8, s)
	s.Close()
	if _, err := appendBatch(s, 8, 1); err == nil {
		t.Fatal("Append after Close succeeded")
	}
	s, ix = open(t, dir, 3, FileOptions{})
	checkItems(t, ix, 3, 8, s)
	if first, err := appendBatch(s, 8, 1); err != nil || first != 11 {
		t.Fatalf("Append after reopen: %d, %v", first, err)
	}
	s.Close()
	_, ix = open(t, dir, 3, FileOptions{})
	checkItems(t, ix, 3, 9)
}

func TestFileItemsRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	s, ix := open(t, dir, 1, FileOptions{})
	defer s.Close()
	_, log := FilePaths(dir, "k")
	before, _ := os.ReadFile(log)
	for _, c := range []struct {
		vecs   []float32
		labels []int
	}{
		{[]float32{1, 2, 3}, []int{0}},                                     // short vector
		{[]float32{1, 2, 3, float32(math.NaN())}, []int{0}},                // not finite
		{[]float32{1, 2, 3, 4}, []int{-2}},                                 // bad label
		{[]float32{1, 2, 3, 4, 5, 6, 7, 8}, []int{0}},                      // too many values
		{[]float32{1, 2, 3, float32(math.Inf(1))}, []int{3}},               // infinite
		{[]float32{1, 2, 3, 4, 1, 2, 3, float32(math.NaN())}, []int{1, 2}}, // one bad row
	} {
		if _, err := s.Append(context.Background(), Batch{Vecs: c.vecs, Labels: c.labels}); err == nil {
			t.Errorf("Append(%v, %v) succeeded", c.vecs, c.labels)
		}
	}
	if _, err := s.Append(context.Background(), Batch{Vecs: []float32{1, 2, 3, 4}, Labels: []int{1}, Pixels: []uint8{1, 2}}); err != nil {
		t.Errorf("one image of two bytes: %v", err)
	}
	if _, err := s.Append(context.Background(), Batch{Vecs: make([]float32, 8), Labels: []int{1, 2}, Pixels: []uint8{1, 2, 3}}); err == nil {
		t.Error("three pixel values for two images were accepted")
	}
	ix2 := ix.Len()
	s.Close()
	s2, ix := open(t, dir, 1, FileOptions{})
	defer s2.Close()
	if ix.Len() != ix2 {
		t.Fatalf("reopened: %d items, want %d", ix.Len(), ix2)
	}
	after, _ := os.ReadFile(log)
	after = after[:len(before)]
	if !bytes.Equal(before, after) || ix.Len() != 2 {
		t.Fatalf("bad input changed the log (%d → %d bytes) or the index (%d items)", len(before), len(after), ix.Len())
	}
}

// TestFileItemsTornTail cuts the log inside its last record, and then
// corrupts a byte of it: either way the record is dropped with a warning
// and the earlier ones stay.
func TestFileItemsTornTail(t *testing.T) {
	for _, damage := range []string{"cut", "flip", "garbage"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir, 2, FileOptions{})
			for i := range 4 {
				if _, err := appendBatch(s, i, 1); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			_, logPath := FilePaths(dir, "k")
			b, _ := os.ReadFile(logPath)
			switch damage {
			case "cut":
				b = b[:len(b)-5]
			case "flip":
				b[len(b)-3] ^= 0x40
			case "garbage":
				b = append(b, 7, 0, 0, 0, 1, 2) // a frame header cut short
			}
			if err := os.WriteFile(logPath, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			s, ix := open(t, dir, 2, FileOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
			want := 3
			if damage == "garbage" {
				want = 4
			}
			checkItems(t, ix, 2, want, s)
			if !bytes.Contains([]byte(logs.String()), []byte("torn tail")) {
				t.Errorf("no warning logged:\n%s", logs.String())
			}
			// New records follow the last good one, and replay again.
			if first, err := appendBatch(s, want, 1); err != nil || first != 2+want {
				t.Fatalf("Append after the cut: %d, %v", first, err)
			}
			s.Close()
			_, ix = open(t, dir, 2, FileOptions{})
			checkItems(t, ix, 2, want+1)
		})
	}
}

func TestFileItemsFold(t *testing.T) {
	dir := t.TempDir()
	s, ix := open(t, dir, 5, FileOptions{FoldBytes: 300})
	snapPath, logPath := FilePaths(dir, "k")
	// Queries and appends run while the log folds in the background.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		q := []float32{1, 2, 3, 4}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := ix.Search(q, 3); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 60; i += 3 {
		if _, err := appendBatch(s, i, 3); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	// Fold does nothing while a background fold runs, and that one may
	// have begun before the last appends: wait for it, then fold them all.
	s.folds.Wait()
	if err := s.Fold(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	checkItems(t, ix, 5, 60)
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 300 {
		t.Errorf("log is %d bytes after the fold", st.Size())
	}
	if st, err := os.Stat(snapPath); err != nil || st.Size() < 60*(16+4+3) {
		t.Fatalf("snapshot: %v, %v", st, err)
	}
	s, ix = open(t, dir, 5, FileOptions{})
	checkItems(t, ix, 5, 60, s)
}

// TestFileItemsCrashDuringFold: a crash after the new snapshot is renamed
// into place but before the log is rewritten leaves records that the
// snapshot already holds; they are applied once, not twice.
func TestFileItemsCrashDuringFold(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 1, FileOptions{})
	for i := 0; i < 6; i += 2 {
		if _, err := appendBatch(s, i, 2); err != nil {
			t.Fatal(err)
		}
	}
	_, logPath := FilePaths(dir, "k")
	old, _ := os.ReadFile(logPath)
	if err := s.Fold(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(logPath, old, 0o644); err != nil { // the log as before the rewrite
		t.Fatal(err)
	}
	s, ix := open(t, dir, 1, FileOptions{})
	checkItems(t, ix, 1, 6, s)
	if _, err := appendBatch(s, 6, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, ix = open(t, dir, 1, FileOptions{})
	checkItems(t, ix, 1, 7)
}

func TestFileItemsRefusesOthers(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 1, FileOptions{})
	if _, err := appendBatch(s, 0, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	snap, logPath := FilePaths(dir, "k")
	// Another model's index must not replay this log.
	other := index.New(testDim, "model-b")
	if _, err := OpenFileItems(other, snap, logPath, FileOptions{}); err == nil {
		t.Fatal("a log of model-a opened for model-b")
	}
	// A log whose snapshot went missing after a fold is refused, not
	// half-applied.
	s, _ = open(t, dir, 1, FileOptions{})
	if err := s.Fold(); err != nil {
		t.Fatal(err)
	}
	if _, err := appendBatch(s, 1, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Remove(snap); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileItems(refIndex(t, 1), snap, logPath, FileOptions{}); err == nil {
		t.Fatal("a log without its snapshot opened")
	}
	// A corrupt snapshot stops the start with the path in the error.
	if err := os.WriteFile(snap, []byte("CEBMLOG1 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFileItems(refIndex(t, 1), snap, logPath, FileOptions{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(filepath.Base(snap))) {
		t.Fatalf("corrupt snapshot: %v", err)
	}
}
