package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replicas that share a Redis swap a model together (PUT /models/{name} on
// one of them): the replica that swaps seals the old model's stream of
// added items (every replica's adds and deletes on it are refused with
// ErrSealed from then on), carries its items into the new model's stream,
// and then publishes the new model's file under the model's name with a
// version number that the other replicas poll; each of them loads the
// file, replays the new stream and swaps.

const (
	modelKey   = "cebm:model:" // + name: a hash of digest, onnx (the file) and version
	sealSuffix = ":sealed"     // + on an items stream: it takes no more records
)

// ErrSealed is the error of an add or a delete on a model being replaced:
// the client retries, and the new model takes it.
var ErrSealed = fmt.Errorf("%w: the model is being replaced; its items are being carried over to the new one", ErrUnavailable)

// deleteScript appends a tombstone to a stream that is not sealed.
var deleteScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('SEALED') end
return redis.call('XADD', KEYS[1], '*', 'del', ARGV[1])`)

func isSealed(err error) bool { return err != nil && strings.Contains(err.Error(), "SEALED") }

// Seal makes the stream take no more records (on any replica) and returns
// once this replica has applied every record it holds.
func (it *RedisItems) Seal(ctx context.Context) error {
	if err := it.r.client.Set(ctx, it.stream+sealSuffix, 1, 0).Err(); err != nil {
		return it.r.unavailable("seal", err)
	}
	last, err := it.r.client.XRevRangeN(ctx, it.stream, "+", "-", 1).Result()
	if err != nil {
		return it.r.unavailable("seal", err)
	}
	if len(last) == 0 {
		return nil
	}
	id, err := parseStreamID(last[0].ID)
	if err != nil {
		return err
	}
	return it.waitFor(ctx, id)
}

// Caught reports whether the tailer has applied what the stream held when
// it started.
func (it *RedisItems) Caught() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.caughtUp
}

// SharedModel is a model file published for the replicas.
type SharedModel struct {
	Digest  string
	Version int64
	ONNX    []byte // only from ModelFile
}

// LockModelSwap takes the right to swap model name for ttl: false when
// another replica holds it.
func (r *Redis) LockModelSwap(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ok, err := r.client.SetNX(ctx, modelKey+name+":swap", 1, ttl).Result()
	if err != nil {
		return false, r.unavailable("lock model", err)
	}
	return ok, nil
}

// UnlockModelSwap gives the right to swap model name back.
func (r *Redis) UnlockModelSwap(ctx context.Context, name string) {
	r.client.Del(ctx, modelKey+name+":swap")
}

// PublishModel stores model name's new file and digest and raises its
// version, in one transaction.
func (r *Redis) PublishModel(ctx context.Context, name, digest string, onnx []byte) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, modelKey+name, "digest", digest, "onnx", onnx)
		p.HIncrBy(ctx, modelKey+name, "version", 1)
		return nil
	})
	if err != nil {
		return r.unavailable("publish model", err)
	}
	return nil
}

// Model is model name's published digest and version (zero: none).
func (r *Redis) Model(ctx context.Context, name string) (SharedModel, error) {
	v, err := r.client.HMGet(ctx, modelKey+name, "digest", "version").Result()
	if err != nil {
		return SharedModel{}, r.unavailable("model", err)
	}
	var m SharedModel
	if s, ok := v[0].(string); ok {
		m.Digest = s
	}
	if s, ok := v[1].(string); ok {
		fmt.Sscan(s, &m.Version)
	}
	return m, nil
}

// ModelFile is model name's published file with its digest and version.
func (r *Redis) ModelFile(ctx context.Context, name string) (SharedModel, error) {
	v, err := r.client.HMGet(ctx, modelKey+name, "digest", "version", "onnx").Result()
	if err != nil {
		return SharedModel{}, r.unavailable("model", err)
	}
	d, ok1 := v[0].(string)
	ver, ok2 := v[1].(string)
	b, ok3 := v[2].(string)
	if !ok1 || !ok2 || !ok3 {
		return SharedModel{}, errors.New("store: no model published under " + name)
	}
	m := SharedModel{Digest: d, ONNX: []byte(b)}
	fmt.Sscan(ver, &m.Version)
	return m, nil
}

// Unseal lets the stream take records again: its model is swapped in once
// more.
func (it *RedisItems) Unseal(ctx context.Context) error {
	if err := it.r.client.Del(ctx, it.stream+sealSuffix).Err(); err != nil {
		return it.r.unavailable("unseal", err)
	}
	return nil
}
