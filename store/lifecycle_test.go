package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/internal/redistest"
)

// tagged is batch(from, n) with tags: item i carries "t<i%3>", and every
// even item "even" too.
func tagged(from, n int) Batch {
	b := batch(from, n)
	for i := from; i < from+n; i++ {
		ts := []string{fmt.Sprintf("t%d", i%3)}
		if i%2 == 0 {
			ts = append(ts, "even")
		}
		b.Tags = append(b.Tags, ts)
	}
	return b
}

// checkLifecycle checks that s's index holds ref reference and n added
// items of tagged(0, n), with exactly the ids in dead deleted.
func checkLifecycle(t *testing.T, ix *index.Index, s Items, ref, n int, dead ...int) {
	t.Helper()
	if ix.Len() != ref+n {
		t.Fatalf("index holds %d items, want %d", ix.Len(), ref+n)
	}
	want := tagged(0, n).Tags
	for id := range ref + n {
		if got := ix.Deleted(id); got != slices.Contains(dead, id) {
			t.Fatalf("item %d deleted: %v, want %v", id, got, !got)
		}
		if id >= ref && !slices.Equal(s.Tags(id), want[id-ref]) {
			t.Fatalf("item %d's tags %q, want %q", id, s.Tags(id), want[id-ref])
		}
	}
	if s.Tags(ref-1) != nil || s.Tags(ref+n) != nil {
		t.Fatal("tags on a reference item or beyond the index")
	}
}

// TestFileItemsLifecycle: tags and deletes (of added and reference items)
// are in the log, survive a reopen, and survive a fold into the snapshot.
func TestFileItemsLifecycle(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, ix := open(t, dir, 3, FileOptions{})
	if _, err := s.Append(ctx, tagged(0, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, batch(4, 2)); err != nil { // untagged, old format
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, tagged(6, 2)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{4, 1, 4} {
		if err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, 11); !errors.Is(err, index.ErrID) {
		t.Fatalf("deleting an id not in the index: %v", err)
	}
	bad := tagged(8, 1)
	bad.Tags[0] = []string{""}
	if _, err := s.Append(ctx, bad); err == nil {
		t.Fatal("an empty tag was accepted")
	}
	// batch(4, 2) has no tags: compare against what tagged would give
	// only for the tagged items.
	check := func(ix *index.Index, s Items) {
		t.Helper()
		for id, want := range map[int][]string{3: {"t0", "even"}, 5: {"t2", "even"}, 6: {"t0"}, 7: nil, 8: nil, 9: {"t0", "even"}, 10: {"t1"}} {
			if got := s.Tags(id); !slices.Equal(got, want) {
				t.Fatalf("item %d's tags %q, want %q", id, got, want)
			}
		}
		for id := range 11 {
			if ix.Deleted(id) != (id == 1 || id == 4) {
				t.Fatalf("item %d deleted: %v", id, ix.Deleted(id))
			}
		}
		if ix.Len() != 11 || ix.Live() != 9 {
			t.Fatalf("Len %d Live %d", ix.Len(), ix.Live())
		}
		ns, err := ix.Search([]float32{1, -1, 0.5, 1001}, 11)
		if err != nil {
			t.Fatal(err)
		}
		for _, nb := range ns {
			if nb.ID == 1 || nb.ID == 4 {
				t.Fatalf("search found deleted item %d", nb.ID)
			}
		}
	}
	check(ix, s)
	s.Close()
	s, ix = open(t, dir, 3, FileOptions{})
	check(ix, s)
	if err := s.Fold(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, 9); err != nil { // after the fold: in the log
		t.Fatal(err)
	}
	s.Close()
	snap, _ := FilePaths(dir, "k")
	if _, err := os.Stat(snap); err != nil {
		t.Fatal(err)
	}
	s, ix = open(t, dir, 3, FileOptions{})
	defer s.Close()
	if !ix.Deleted(9) {
		t.Fatal("a delete after a fold was lost")
	}
	if err := s.Delete(ctx, 9); err != nil {
		t.Fatal(err)
	}
	for id := range 11 {
		if want := id == 1 || id == 4 || id == 9; ix.Deleted(id) != want {
			t.Fatalf("after fold and reopen, item %d deleted: %v", id, ix.Deleted(id))
		}
	}
	if got := s.Tags(10); !slices.Equal(got, []string{"t1"}) {
		t.Fatalf("after fold, item 10's tags %q", got)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []*record{
		{seq: 5, Batch: tagged(0, 3)},
		{seq: 7, Batch: batch(0, 2)},
		tombstone([]int{0, 9, 1 << 30}),
	} {
		got, err := decodeRecord(r.encode(testDim), testDim)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(*r) {
			t.Fatalf("round trip: %v, want %v", got, *r)
		}
		b := r.encode(testDim)
		for cut := 1; cut < len(b); cut += 3 {
			if _, err := decodeRecord(b[:len(b)-cut], testDim); err == nil {
				t.Fatalf("a record cut by %d bytes decoded", cut)
			}
		}
	}
}

// TestRedisItemsLifecycle: a delete through replica A reaches replica B,
// and a replica that joins later applies it (and the tags) before it is
// ready.
func TestRedisItemsLifecycle(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	ixA, ixB := refIndex(t, 3), refIndex(t, 3)
	a := openRedis(t, srv.URL()).Items(ixA, "k")
	b := openRedis(t, srv.URL()).Items(ixB, "k")
	eventually(t, "replicas ready", func() error { return errors.Join(a.Check(), b.Check()) })
	if _, err := a.Append(ctx, tagged(0, 4)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{5, 0} {
		if err := a.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if !ixA.Deleted(5) || !ixA.Deleted(0) {
		t.Fatal("Delete returned before this replica applied it")
	}
	eventually(t, "replica B", func() error {
		if !ixB.Deleted(5) || !ixB.Deleted(0) || ixB.Deleted(4) {
			return fmt.Errorf("B's deletes: 0 %v, 4 %v, 5 %v", ixB.Deleted(0), ixB.Deleted(4), ixB.Deleted(5))
		}
		return nil
	})
	checkLifecycle(t, ixB, b, 3, 4, 0, 5)
	if err := b.Delete(ctx, 99); !errors.Is(err, index.ErrID) {
		t.Fatalf("deleting an id not in the index: %v", err)
	}
	ixC := refIndex(t, 3)
	c := openRedis(t, srv.URL()).Items(ixC, "k")
	eventually(t, "late replica", c.Check)
	// Ready means caught up with the deletes too, which follow the last
	// added items in the stream.
	checkLifecycle(t, ixC, c, 3, 4, 0, 5)
}
