package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/internal/redistest"
)

func openRedis(t *testing.T, url string) *Redis {
	t.Helper()
	r, err := OpenRedis(url, RedisOptions{TTL: time.Hour, NearCache: 100, Metrics: NewMetrics(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// eventually waits up to 10 s for f to return nil.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisPosteriors(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openRedis(t, srv.URL()), openRedis(t, srv.URL())
	ctx := context.Background()
	res := []encoder.Result{
		{ID: "p1", Energy: -1.25, Latent: []float32{0.1, 1.0 / 3}, Posterior: encoder.Component{Eta1: []float32{1, 2}, Eta2: []float32{-0.5, -0.75}, Mean: []float32{0.1, 1.0 / 3}, Variance: []float32{1, 0.5}}},
		{ID: "p2", Inverted: true, Energy: 3, Latent: []float32{2, 3}, Components: []encoder.Component{{Mean: []float32{2, 3}}}, Responsibilities: []float64{1}},
	}
	if err := a.Put(ctx, res); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"p1", "p2"} {
		got, err := b.Get(ctx, id) // b's near cache is empty: from Redis
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, res[i]) {
			t.Errorf("%s: got %+v, want %+v", id, *got, res[i])
		}
	}
	if _, err := b.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if ttl := a.Client().TTL(ctx, posteriorKey+"p1").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL %v, want (0, 1h]", ttl)
	}
}

// TestRedisItemsReplicas: two replicas append concurrently and agree on
// every item's id; a third that starts late replays them all.
func TestRedisItemsReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ixA, ixB := refIndex(t, 3), refIndex(t, 3)
	a := openRedis(t, srv.URL()).Items(ixA, "k")
	b := openRedis(t, srv.URL()).Items(ixB, "k")
	eventually(t, "replicas ready", func() error { return errors.Join(a.Check(), b.Check()) })

	// Items 0..39 in batches of 2, half through each replica; ids are
	// whatever the stream's order makes them, but the same on both.
	var wg sync.WaitGroup
	ids := make([]int, 20)
	for j := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if j%2 == 1 {
				s = b
			}
			first, err := appendBatch(s, 2*j, 2)
			if err != nil {
				t.Error(err)
			}
			ids[j] = first
		}()
	}
	wg.Wait()
	same := func(ix *index.Index) error {
		if ix.Len() != 43 {
			return fmt.Errorf("%d items", ix.Len())
		}
		for j, first := range ids {
			for k := range 2 {
				v, _ := ix.Vector(first + k)
				want, _ := item(2*j + k)
				if fmt.Sprint(v) != fmt.Sprint(want) {
					return fmt.Errorf("id %d holds %v, want %v", first+k, v, want)
				}
			}
		}
		return nil
	}
	for name, ix := range map[string]*index.Index{"A": ixA, "B": ixB} {
		eventually(t, "replica "+name, func() error { return same(ix) })
	}
	ixC := refIndex(t, 3)
	c := openRedis(t, srv.URL()).Items(ixC, "k")
	eventually(t, "late replica", func() error { return errors.Join(c.Check(), same(ixC)) })
	// Another index key is another stream.
	ixD := refIndex(t, 3)
	d := openRedis(t, srv.URL()).Items(ixD, "other")
	eventually(t, "other key", d.Check)
	if ixD.Len() != 3 {
		t.Errorf("another key's replica holds %d items", ixD.Len())
	}
}

// TestRedisDown: while Redis is down every call fails with ErrUnavailable
// and Check says so; after a restart (with its append-only file) all
// recover by themselves and nothing acknowledged is lost.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL())
	ix := refIndex(t, 1)
	it := r.Items(ix, "k")
	eventually(t, "ready", it.Check)
	ctx := context.Background()
	if _, err := appendBatch(it, 0, 3); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, []encoder.Result{{ID: "x", Latent: []float32{1}}}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	eventually(t, "Check after the kill", func() error {
		if err := it.Check(); !errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("Check: %v", err)
		}
		return nil
	})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := appendBatch(it, 3, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append while down: %v", err)
	}
	if err := r.Put(cctx, []encoder.Result{{ID: "y"}}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put while down: %v", err)
	}
	if _, err := r.Get(cctx, "z"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get while down: %v", err)
	}
	srv.Restart()
	eventually(t, "recovery", it.Check)
	if first, err := appendBatch(it, 3, 1); err != nil || first != 4 {
		t.Fatalf("Append after the restart: %d, %v", first, err)
	}
	if _, err := openRedis(t, srv.URL()).Get(ctx, "x"); err != nil {
		t.Errorf("posterior stored before the kill: %v", err)
	}
	late := refIndex(t, 1)
	lit := openRedis(t, srv.URL()).Items(late, "k")
	eventually(t, "replay after the restart", func() error {
		if err := lit.Check(); err != nil {
			return err
		}
		if late.Len() != 5 {
			return fmt.Errorf("%d items", late.Len())
		}
		return nil
	})
	checkItems(t, late, 1, 4, lit)
}

// TestRedisLost: a Redis that comes back empty (no persistence) cannot be
// followed silently: the replica reports it instead of mixing up ids.
func TestRedisLost(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL())
	ix := refIndex(t, 1)
	it := r.Items(ix, "k")
	eventually(t, "ready", it.Check)
	if _, err := appendBatch(it, 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := it.Append(ctx, batch(2, 1)); err == nil {
		t.Fatal("Append on a lost stream succeeded")
	}
	if err := it.Check(); err == nil {
		t.Fatal("Check is fine on a lost stream")
	}
	if ix.Len() != 3 {
		t.Errorf("index holds %d items", ix.Len())
	}
}
