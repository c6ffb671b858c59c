package encoder

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// ErrQueueFull is returned by [Batcher.Encode] when its queue is full: the
// caller should try again later.
var ErrQueueFull = errors.New("encoder: queue full")

// ErrClosed is returned by [Batcher.Encode] after [Batcher.Close].
var ErrClosed = errors.New("encoder: batcher closed")

// BatchOptions bound a [Batcher].
type BatchOptions struct {
	MaxBatch int           // images per run (default 64)
	MaxWait  time.Duration // longest a request waits for others to join its batch (default 2 ms)
	Queue    int           // requests that may wait; more get ErrQueueFull (default 1024)
	// Workers is how many batches may run at once (default 1). With W
	// workers, load the model with cores/W intra-op threads: concurrent
	// single-threaded runs of small batches use the cores better than one
	// multi-threaded run.
	Workers int
	// OnBatch, if set, is called after each run with its number of images
	// and its duration.
	OnBatch func(images int, d time.Duration)
}

// ServingDefaults resolves a worker count and a per-run thread count for
// serving: 0 workers means cores + 1 (measured best on 2 cores: one run
// per core plus one forming while the others compute), 0 threads means
// cores / workers, at least 1.
func ServingDefaults(workers, threads int) (int, int) {
	cores := runtime.GOMAXPROCS(0)
	if workers < 1 {
		workers = cores + 1
	}
	if threads < 1 {
		threads = max(1, cores/workers)
	}
	return workers, threads
}

// Batcher coalesces concurrent requests into single model runs: dynamic
// micro-batching. A run starts when MaxBatch images are waiting or when
// the oldest has waited MaxWait, whichever comes first.
type Batcher struct {
	m     *Model
	opt   BatchOptions
	queue chan *job

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}
}

type job struct {
	ctx context.Context // the caller's: a job whose caller has gone is not run
	x   []float32       // n images
	n   int
	enq time.Time
	res chan jobResult // buffered: the worker never blocks on it
}

type jobResult struct {
	out        Output
	off        int // first image of this job in out
	err        error
	start, end time.Time // of the run
	images     int       // in the run
}

// Timing is when one Encode call's images waited and ran: queued at
// Enqueued, their batch (of BatchImages images, theirs and others')
// run from Started to Finished.
type Timing struct {
	Enqueued, Started, Finished time.Time
	BatchImages                 int
}

// NewBatcher starts a batcher on m. Close stops it.
func NewBatcher(m *Model, opt BatchOptions) *Batcher {
	if opt.MaxBatch < 1 {
		opt.MaxBatch = 64
	}
	if opt.MaxWait <= 0 {
		opt.MaxWait = 2 * time.Millisecond
	}
	if opt.Queue < 1 {
		opt.Queue = 1024
	}
	if opt.Workers < 1 {
		opt.Workers = 1
	}
	b := &Batcher{m: m, opt: opt, queue: make(chan *job, opt.Queue), done: make(chan struct{})}
	var wg sync.WaitGroup
	for range opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.loop()
		}()
	}
	go func() {
		wg.Wait()
		close(b.done)
	}()
	return b
}

// Model returns the model the batcher runs.
func (b *Batcher) Model() *Model { return b.m }

// QueueLen is the number of requests waiting.
func (b *Batcher) QueueLen() int { return len(b.queue) }

// Close stops accepting requests, finishes those queued and returns when
// the worker has stopped.
func (b *Batcher) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	<-b.done
}

// Encode runs the model on inputs (each C·H·W values) together with other
// callers' and returns each input's posterior, IDs included. It returns
// ErrQueueFull at once if the queue is full, and ctx's error if ctx ends
// first; a request whose ctx has ended before its batch starts is left
// out of the batch.
func (b *Batcher) Encode(ctx context.Context, inputs []Input) ([]Result, error) {
	res, _, err := b.EncodeTimed(ctx, inputs)
	return res, err
}

// EncodeTimed is Encode, and says when the images waited and ran.
func (b *Batcher) EncodeTimed(ctx context.Context, inputs []Input) ([]Result, Timing, error) {
	if len(inputs) == 0 {
		return nil, Timing{}, nil
	}
	per := b.m.InputSize()
	x := make([]float32, 0, len(inputs)*per)
	for i, in := range inputs {
		if len(in.X) != per {
			return nil, Timing{}, fmt.Errorf("encoder: input %d has %d values, want %d", i, len(in.X), per)
		}
		x = append(x, in.X...)
	}
	j := &job{ctx: ctx, x: x, n: len(inputs), enq: time.Now(), res: make(chan jobResult, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, Timing{}, ErrClosed
	}
	select {
	case b.queue <- j:
	default:
		b.mu.RUnlock()
		return nil, Timing{}, ErrQueueFull
	}
	b.mu.RUnlock()
	var r jobResult
	select {
	case r = <-j.res:
	case <-ctx.Done():
		return nil, Timing{}, ctx.Err()
	}
	if r.err != nil {
		return nil, Timing{}, r.err
	}
	res := make([]Result, len(inputs))
	for i, in := range inputs {
		res[i] = b.m.Result(r.out, r.off+i)
		res[i].ID = ContentID(b.m.Digest, in.X)
		res[i].Inverted = in.Inverted
	}
	return res, Timing{Enqueued: j.enq, Started: r.start, Finished: r.end, BatchImages: r.images}, nil
}

// loop is one worker: it collects a batch from the shared queue, runs it,
// and starts over until the queue is closed.
func (b *Batcher) loop() {
	var carry *job // a job that did not fit in the previous batch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first := carry
		carry = nil
		for first == nil || b.gone(first) {
			var ok bool
			if first, ok = <-b.queue; !ok {
				return
			}
		}
		batch, n := []*job{first}, first.n
		wait := time.Until(first.enq.Add(b.opt.MaxWait))
		timer.Reset(max(wait, 0))
		// add takes j into the batch and reports whether to go on
		// collecting; a job that does not fit waits for the next batch.
		add := func(j *job, ok bool) bool {
			if !ok {
				return false
			}
			if b.gone(j) {
				return true
			}
			if n+j.n > b.opt.MaxBatch {
				carry = j
				return false
			}
			batch, n = append(batch, j), n+j.n
			return true
		}
	collect:
		for n < b.opt.MaxBatch {
			// Take what is already queued without waiting, so that a
			// fired timer never wins over waiting requests.
			select {
			case j, ok := <-b.queue:
				if !add(j, ok) {
					break collect
				}
				continue
			default:
			}
			select {
			case j, ok := <-b.queue:
				if !add(j, ok) {
					break collect
				}
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		b.run(batch, n)
	}
}

// gone reports whether j's caller has stopped waiting, and if so answers
// it with the reason: its images need not be encoded.
func (b *Batcher) gone(j *job) bool {
	err := j.ctx.Err()
	if err != nil {
		j.res <- jobResult{err: err}
	}
	return err != nil
}

// run encodes one batch and hands each job its share.
func (b *Batcher) run(batch []*job, n int) {
	x := batch[0].x
	if len(batch) > 1 {
		x = make([]float32, 0, n*b.m.InputSize())
		for _, j := range batch {
			x = append(x, j.x...)
		}
	}
	start := time.Now()
	out, err := b.safeRun(x, n)
	end := time.Now()
	if b.opt.OnBatch != nil {
		b.opt.OnBatch(n, end.Sub(start))
	}
	off := 0
	for _, j := range batch {
		j.res <- jobResult{out: out, off: off, err: err, start: start, end: end, images: n}
		off += j.n
	}
}

// safeRun turns a panic inside the runtime binding into an error.
func (b *Batcher) safeRun(x []float32, n int) (out Output, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("encoder: run panicked: %v", p)
		}
	}()
	return b.m.Run(x, n)
}
