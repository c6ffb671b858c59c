package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
)

// Redis keys; every key starts with "cebm:".
const (
	posteriorKey = "cebm:posterior:" // + content id: the posterior as JSON, with a TTL
	itemsKey     = "cebm:items:"     // + index key: the stream of added items; + ":n" their count
)

// appendScript numbers a record and appends it to the stream in one atomic
// step, so the stream's order is the numbering's and every replica applies
// the records in the same order under the same ids.
// A stream whose seal key (KEYS[3]) exists takes no more records: its
// model is being replaced (models.go).
var appendScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return redis.error_reply('SEALED') end
local n = tonumber(ARGV[1])
local seq = redis.call('INCRBY', KEYS[2], n) - n
local id = redis.call('XADD', KEYS[1], '*', 'seq', seq, 'rec', ARGV[2])
return {seq, id}`)

// quietRedis replaces go-redis' own logger, which prints every failed dial
// to stderr: the store logs the outage once, and its recovery, itself.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

var setRedisLogger sync.Once

// RedisOptions configure OpenRedis.
type RedisOptions struct {
	TTL       time.Duration // how long Redis keeps a posterior (0: 24 h)
	NearCache int           // posteriors kept in process in front of Redis (0: 10,000)
	Metrics   *Metrics
	Log       *slog.Logger
}

// Redis is the shared store: posteriors under their content ids and a
// stream of added items, in one Redis server that several replicas use.
// A background check pings Redis every half second; while it does not
// answer, Check reports ErrUnavailable.
type Redis struct {
	client  *redis.Client
	near    *lru.Cache[string, *encoder.Result]
	ttl     time.Duration
	metrics *Metrics
	log     *slog.Logger
	down    atomic.Pointer[error] // nil while Redis answers

	items []*RedisItems // the tailers, for the lag metric
	mu    sync.Mutex

	stop chan struct{}
	wg   sync.WaitGroup
}

// OpenRedis connects to the Redis server at url (redis://host:port/db,
// rediss:// for TLS). It does not wait for the server: calls fail with
// ErrUnavailable until it answers, and recover by themselves.
func OpenRedis(url string, opt RedisOptions) (*Redis, error) {
	setRedisLogger.Do(func() { redis.SetLogger(quietRedis{}) })
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	o.DialTimeout = time.Second
	o.ReadTimeout = 2 * time.Second
	o.WriteTimeout = 2 * time.Second
	o.MaxRetries = 1
	if opt.TTL <= 0 {
		opt.TTL = 24 * time.Hour
	}
	if opt.NearCache <= 0 {
		opt.NearCache = 10000
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	near, _ := lru.New[string, *encoder.Result](opt.NearCache)
	r := &Redis{client: redis.NewClient(o), near: near, ttl: opt.TTL, metrics: opt.Metrics, log: opt.Log, stop: make(chan struct{})}
	r.ping()
	r.wg.Add(1)
	go r.watch()
	return r, nil
}

// Client is the go-redis client (for tests and tools).
func (r *Redis) Client() *redis.Client { return r.client }

func (r *Redis) watch() {
	defer r.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.ping()
		}
	}
}

// ping checks Redis and updates the lag of every tailer.
func (r *Redis) ping() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := r.client.Ping(ctx).Err()
	was := r.down.Load()
	if err != nil {
		err = fmt.Errorf("%w: redis: %v", ErrUnavailable, err)
		r.down.Store(&err)
		if was == nil {
			r.log.Warn("redis unreachable", "err", err)
		}
		return
	}
	r.down.Store(nil)
	if was != nil {
		r.log.Info("redis reachable again")
	}
	r.mu.Lock()
	items := append([]*RedisItems(nil), r.items...)
	r.mu.Unlock()
	for _, it := range items {
		it.updateLag(ctx)
	}
}

// Check reports ErrUnavailable while Redis does not answer.
func (r *Redis) Check() error {
	if err := r.down.Load(); err != nil {
		return *err
	}
	return nil
}

// unavailable counts a failed operation and wraps err.
func (r *Redis) unavailable(op string, err error) error {
	r.metrics.failed(op)
	return fmt.Errorf("%w: redis %s: %v", ErrUnavailable, op, err)
}

// Put stores the posteriors in Redis (with the TTL) and in the near cache.
func (r *Redis) Put(ctx context.Context, rs []encoder.Result) error {
	pipe := r.client.Pipeline()
	for i := range rs {
		b, err := json.Marshal(&rs[i])
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		pipe.Set(ctx, posteriorKey+rs[i].ID, b, r.ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return r.unavailable("put", err)
	}
	for i := range rs {
		x := rs[i]
		r.near.Add(x.ID, &x)
	}
	return nil
}

// Get returns the posterior under id: from the near cache, else from Redis.
func (r *Redis) Get(ctx context.Context, id string) (*encoder.Result, error) {
	if x, ok := r.near.Get(id); ok {
		r.metrics.lookup("near_hit")
		return x, nil
	}
	b, err := r.client.Get(ctx, posteriorKey+id).Bytes()
	if errors.Is(err, redis.Nil) {
		r.metrics.lookup("miss")
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		r.metrics.lookup("error")
		return nil, r.unavailable("get", err)
	}
	var x encoder.Result
	if err := json.Unmarshal(b, &x); err != nil {
		r.metrics.lookup("error")
		return nil, fmt.Errorf("store: posterior %q in redis: %w", id, err)
	}
	r.metrics.lookup("hit")
	r.near.Add(id, &x)
	return &x, nil
}

// Len is the number of posteriors in the near cache.
func (r *Redis) Len() int { return r.near.Len() }

// Close stops the tailers and the health check and closes the client.
func (r *Redis) Close() error {
	close(r.stop)
	r.wg.Wait()
	return r.client.Close()
}

// RedisItems keeps the items added to one index in a Redis stream. Every
// replica tails the stream into its own index, in stream order, so that
// item ids agree everywhere: the reference set's size plus the item's
// number in the stream.
type RedisItems struct {
	r      *Redis
	ix     *index.Index
	base   int
	stream string
	count  string
	images images

	mu       sync.Mutex
	applied  int           // added items applied to ix
	last     streamID      // the last entry applied
	progress chan struct{} // closed and replaced at every apply
	caughtUp bool          // applied everything the stream held at start
	target   int           // the stream's count when the tailer started
	tail     streamID      // the stream's last entry when the tailer started
	broken   error
}

// Items starts tailing the stream of items added to ix (whose present items
// are the reference set) under key into ix. Check reports ErrUnavailable
// until the items the stream held are applied.
func (r *Redis) Items(ix *index.Index, key string) *RedisItems {
	it := &RedisItems{r: r, ix: ix, base: ix.Len(), stream: itemsKey + key, count: itemsKey + key + ":n",
		progress: make(chan struct{}), target: -1}
	r.mu.Lock()
	r.items = append(r.items, it)
	r.mu.Unlock()
	r.wg.Add(1)
	go it.follow()
	return it
}

// follow applies the stream's records as they arrive, from the start.
func (it *RedisItems) follow() {
	defer it.r.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-it.r.stop; cancel() }()
	last, backoff := "0", 50*time.Millisecond
	for ctx.Err() == nil {
		if it.target < 0 {
			n, err := it.r.client.Get(ctx, it.count).Int()
			if err != nil && !errors.Is(err, redis.Nil) {
				it.wait(ctx, &backoff)
				continue
			}
			// The last entry too: tombstones after the last added item
			// must be applied before this replica answers.
			lastEntry, err := it.r.client.XRevRangeN(ctx, it.stream, "+", "-", 1).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				it.wait(ctx, &backoff)
				continue
			}
			var tail streamID
			if len(lastEntry) > 0 {
				if tail, err = parseStreamID(lastEntry[0].ID); err != nil {
					it.wait(ctx, &backoff)
					continue
				}
			}
			it.mu.Lock()
			it.target, it.tail = n, tail
			it.mu.Unlock()
			it.markCaughtUp()
		}
		res, err := it.r.client.XRead(ctx, &redis.XReadArgs{Streams: []string{it.stream, last}, Count: 512, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				it.r.metrics.failed("tail")
				it.wait(ctx, &backoff)
			}
			continue
		}
		backoff = 50 * time.Millisecond
		for _, s := range res {
			for _, m := range s.Messages {
				if err := it.apply(m); err != nil {
					it.mu.Lock()
					it.broken = err
					it.mu.Unlock()
					it.r.log.Error("added items cannot be applied; this replica stops following them", "stream", it.stream, "err", err)
					return
				}
				last = m.ID
			}
		}
		it.markCaughtUp()
	}
}

func (it *RedisItems) wait(ctx context.Context, backoff *time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, time.Second)
}

func (it *RedisItems) markCaughtUp() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.caughtUp && it.target >= 0 && it.applied >= it.target && !it.last.less(it.tail) {
		it.caughtUp = true
		it.r.log.Info("added items replayed from redis", "stream", it.stream, "items", it.applied)
	}
}

// apply adds one stream entry's items to the index, or deletes a
// tombstone's.
func (it *RedisItems) apply(m redis.XMessage) error {
	if raw, ok := m.Values["del"].(string); ok {
		return it.applyTombstone(m.ID, raw)
	}
	seq, err := strconv.Atoi(fmt.Sprint(m.Values["seq"]))
	if err != nil {
		return fmt.Errorf("entry %s: seq %v", m.ID, m.Values["seq"])
	}
	raw, _ := m.Values["rec"].(string)
	rec, err := decodeRecord([]byte(raw), it.ix.Dim())
	if err != nil {
		return fmt.Errorf("entry %s: %w", m.ID, err)
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	// XREAD never repeats an entry: one that does not start where the last
	// ended means the stream was lost or rewritten (a Redis restarted
	// without its data).
	if seq != it.applied {
		return fmt.Errorf("entry %s starts at added item %d, but %d are applied: the stream was lost or rewritten (is Redis persisting its data?); restart the replicas", m.ID, seq, it.applied)
	}
	id, err := parseStreamID(m.ID)
	if err != nil {
		return err
	}
	if _, err := it.ix.Add(rec.Vecs, rec.Labels); err != nil {
		return fmt.Errorf("entry %s: %w", m.ID, err)
	}
	it.images.add(seq, rec.Batch)
	it.applied += len(rec.Labels)
	it.last = id
	close(it.progress)
	it.progress = make(chan struct{})
	return nil
}

// applyTombstone deletes the items of a tombstone entry.
func (it *RedisItems) applyTombstone(entry, raw string) error {
	rec, err := decodeRecord([]byte(raw), it.ix.Dim())
	if err == nil && rec.deleted == nil {
		err = errors.New("a del field that holds no tombstone")
	}
	if err != nil {
		return fmt.Errorf("entry %s: %w", entry, err)
	}
	id, err := parseStreamID(entry)
	if err != nil {
		return err
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	for _, x := range rec.deleted {
		if err := it.ix.Delete(x); err != nil {
			return fmt.Errorf("entry %s deletes an item not yet added (was the stream rewritten?): %w", entry, err)
		}
	}
	it.last = id
	close(it.progress)
	it.progress = make(chan struct{})
	return nil
}

// updateLag sets the lag metric: items in the stream not yet applied.
func (it *RedisItems) updateLag(ctx context.Context) {
	n, err := it.r.client.Get(ctx, it.count).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return
	}
	it.mu.Lock()
	lag := n - it.applied
	it.mu.Unlock()
	if it.r.metrics != nil {
		it.r.metrics.StreamLag.Set(float64(lag))
	}
}

// Base is the index id of the first added item.
func (it *RedisItems) Base() int { return it.base }

// Pixels is added item id's image, if it was stored with one.
func (it *RedisItems) Pixels(id int) ([]uint8, bool) { return it.images.get(id - it.base) }

// Tags is added item id's tags.
func (it *RedisItems) Tags(id int) []string { return it.images.tagsOf(id - it.base) }

// Delete appends a tombstone for index item id to the stream and returns
// once this replica's index has applied it; every replica applies it in
// stream order.
func (it *RedisItems) Delete(ctx context.Context, id int) error {
	if id < 0 || id >= it.ix.Len() {
		return fmt.Errorf("%w: %d", index.ErrID, id)
	}
	if it.ix.Deleted(id) {
		return nil
	}
	if err := it.Check(); err != nil {
		return err
	}
	sid, err := deleteScript.Run(ctx, it.r.client, []string{it.stream, it.stream + sealSuffix}, tombstone([]int{id}).encode(it.ix.Dim())).Text()
	if isSealed(err) {
		return ErrSealed
	}
	if err != nil {
		return it.r.unavailable("delete", err)
	}
	entry, err := parseStreamID(sid)
	if err != nil {
		return err
	}
	return it.waitFor(ctx, entry)
}

// waitFor returns once this replica has applied stream entry id.
func (it *RedisItems) waitFor(ctx context.Context, id streamID) error {
	for {
		it.mu.Lock()
		done, ch, broken := !it.last.less(id), it.progress, it.broken
		it.mu.Unlock()
		if broken != nil {
			return broken
		}
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: the change is stored in redis but not yet seen by this replica: %v", ErrUnavailable, ctx.Err())
		}
	}
}

// Check reports ErrUnavailable while Redis does not answer or the stream is
// still being replayed, and the error that stopped the tailer if one did.
func (it *RedisItems) Check() error {
	if err := it.r.Check(); err != nil {
		return err
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.broken != nil {
		return it.broken
	}
	if !it.caughtUp {
		return fmt.Errorf("%w: replaying added items from redis (%d of %d)", ErrUnavailable, it.applied, it.target)
	}
	return nil
}

// Append numbers the items, appends them to the stream, and returns once
// this replica's index holds them (so a client reads its own writes).
func (it *RedisItems) Append(ctx context.Context, b Batch) (int, error) {
	if err := it.ix.Check(b.Vecs, b.Labels); err != nil {
		return 0, err
	}
	if err := b.check(); err != nil {
		return 0, err
	}
	if err := it.Check(); err != nil {
		return 0, err
	}
	rec := (&record{Batch: b}).encode(it.ix.Dim())
	res, err := appendScript.Run(ctx, it.r.client, []string{it.stream, it.count, it.stream + sealSuffix}, len(b.Labels), rec).Slice()
	if isSealed(err) {
		return 0, ErrSealed
	}
	if err != nil {
		return 0, it.r.unavailable("append", err)
	}
	var (
		seq int64
		sid string
		ok  = len(res) == 2
	)
	if ok {
		seq, ok = res[0].(int64)
	}
	if ok {
		sid, ok = res[1].(string)
	}
	id, err := parseStreamID(sid)
	if !ok || err != nil {
		return 0, fmt.Errorf("store: unexpected answer from the append script: %v", res)
	}
	if err := it.waitFor(ctx, id); err != nil {
		return 0, err
	}
	return it.base + int(seq), nil
}

// streamID is a Redis stream entry id, milliseconds-sequence.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	var id streamID
	if _, err := fmt.Sscanf(s, "%d-%d", &id.ms, &id.seq); err != nil {
		return id, fmt.Errorf("store: stream entry id %q: %w", s, err)
	}
	return id, nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}
