package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cebm/cebm/internal/redistest"
)

// TestRedisSeal: a sealed stream refuses adds and deletes from every
// replica with ErrSealed (a 503 for the client); unsealed, it takes them
// again. A published model is read back with its version.
func TestRedisSeal(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	ixA, ixB := refIndex(t, 3), refIndex(t, 3)
	a := openRedis(t, srv.URL()).Items(ixA, "k")
	r := openRedis(t, srv.URL())
	b := r.Items(ixB, "k")
	eventually(t, "replicas ready", func() error { return errors.Join(a.Check(), b.Check()) })
	add := func(it *RedisItems) error {
		_, err := it.Append(ctx, Batch{Vecs: []float32{1, 2, 3, 4}, Labels: []int{1}})
		return err
	}
	if err := add(a); err != nil {
		t.Fatal(err)
	}
	if err := a.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if ixA.Len() != 4 {
		t.Errorf("after Seal A's index holds %d items, want 4", ixA.Len())
	}
	if err := add(b); !errors.Is(err, ErrSealed) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("append to a sealed stream: %v", err)
	}
	if err := b.Delete(ctx, 0); !errors.Is(err, ErrSealed) {
		t.Errorf("delete on a sealed stream: %v", err)
	}
	if err := b.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := add(b); err != nil {
		t.Errorf("append after Unseal: %v", err)
	}

	if ok, err := r.LockModelSwap(ctx, "m", time.Minute); !ok || err != nil {
		t.Fatalf("LockModelSwap: %v %v", ok, err)
	}
	if ok, _ := r.LockModelSwap(ctx, "m", time.Minute); ok {
		t.Error("a second LockModelSwap succeeded")
	}
	r.UnlockModelSwap(ctx, "m")
	for v := int64(1); v <= 2; v++ {
		if err := r.PublishModel(ctx, "m", "digest", []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		m, err := r.ModelFile(ctx, "m")
		if err != nil || m.Version != v || m.Digest != "digest" || string(m.ONNX) != "\x00\x01\x02" {
			t.Errorf("published model: %+v %v", m, err)
		}
	}
	if m, err := r.Model(ctx, "other"); err != nil || m.Version != 0 {
		t.Errorf("a model never published: %+v %v", m, err)
	}
}
