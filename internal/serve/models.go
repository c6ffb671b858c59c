package serve

// Several models, and swapping one live: which files are served under which
// names, and how a new file replaces a served model (PUT /models/{name},
// a rescan on SIGHUP) while the old one keeps answering.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cebm/cebm/api"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/store"
)

// modelFile is one model to serve: its name and its file.
type modelFile struct{ name, path string }

// ModelName is the name a model file is served under: its file name
// without .onnx.
func ModelName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".onnx")
}

// modelFiles lists the models to serve: Model, then Models, then the
// *.onnx files of ModelsDir in name order. Two files of one name are an
// error (the same file twice is served once).
func (c *Config) modelFiles() ([]modelFile, error) {
	var paths []string
	if c.Model != "" {
		paths = append(paths, c.Model)
	}
	paths = append(paths, c.Models...)
	if c.ModelsDir != "" {
		found, err := filepath.Glob(filepath.Join(c.ModelsDir, "*.onnx"))
		if err != nil {
			return nil, fmt.Errorf("serve: --models: %w", err)
		}
		paths = append(paths, found...)
	}
	seen := map[string]string{}
	var out []modelFile
	for _, p := range paths {
		n := ModelName(p)
		if q, ok := seen[n]; ok {
			if filepath.Clean(q) == filepath.Clean(p) {
				continue
			}
			return nil, fmt.Errorf("serve: two models named %q: %s and %s", n, q, p)
		}
		seen[n] = p
		out = append(out, modelFile{n, p})
	}
	if len(out) == 0 {
		return nil, errors.New("serve: no model to serve: give --model, or a --models folder holding .onnx files")
	}
	if c.DefaultModel != "" && seen[c.DefaultModel] == "" {
		return nil, fmt.Errorf("serve: --default-model %q is none of the models served", c.DefaultModel)
	}
	return out, nil
}

// put is PUT /models/{name}: onnx, written to a temporary file (in the
// models folder, when there is one), replaces model name; once it serves,
// the file is renamed into the folder as name.onnx, so that a restart
// serves it too.
func (s *Service) put(ctx context.Context, name string, onnx []byte) error {
	dir := s.cfg.ModelsDir
	if _, _, _, ok := s.api.Serving(name); !ok && dir == "" {
		return api.ErrUnknownModel
	}
	tmpDir := dir
	if tmpDir == "" {
		tmpDir = os.TempDir()
	}
	f, err := os.CreateTemp(tmpDir, "."+name+".*.onnx.tmp") // not *.onnx: a rescan skips it
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone already once renamed
	_, err = f.Write(onnx)
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return err
	}
	install := func() error { return nil }
	if dir != "" {
		install = func() error {
			if err := os.Rename(tmp, filepath.Join(dir, name+".onnx")); err != nil {
				return err
			}
			return syncDir(dir)
		}
	}
	return s.replace(ctx, name, tmp, install, false)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Rescan loads every model file whose bytes differ from the model served
// under its name, and every new file of the models folder, and swaps them
// in (SIGHUP). A file that fails is logged and its model stays.
func (s *Service) Rescan(ctx context.Context) {
	files, err := s.cfg.modelFiles()
	if err != nil {
		s.log.Error("rescanning the models", "err", err)
		return
	}
	for _, f := range files {
		if m, _, _, ok := s.api.Serving(f.name); ok {
			b, err := os.ReadFile(f.path)
			if err != nil {
				s.log.Error("rescanning the models", "model", f.name, "err", err)
				continue
			}
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == m.Digest {
				continue
			}
		}
		if err := s.replace(ctx, f.name, f.path, nil, false); err != nil {
			s.log.Error("model not swapped; the served one stays", "model", f.name, "path", f.path, "err", err)
		}
	}
}

// followModels swaps in the models that other replicas publish in the
// shared Redis, polling every interval until ctx ends.
func (s *Service) followModels(ctx context.Context, interval time.Duration) {
	seen := map[string]int64{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, name := range s.api.Models() {
			pub, err := s.shared.Model(ctx, name)
			if err != nil || pub.Version == 0 || pub.Version == seen[name] {
				continue
			}
			if m, _, _, _ := s.api.Serving(name); m != nil && m.Digest == pub.Digest {
				seen[name] = pub.Version
				continue
			}
			if err := s.takePublished(ctx, name); err != nil {
				s.log.Error("a model published by another replica was not swapped in", "model", name, "err", err)
				var r *api.RefusedError
				if !errors.As(err, &r) {
					continue // try again
				}
			}
			seen[name] = pub.Version
		}
	}
}

// takePublished swaps in model name as published in the shared Redis, and
// writes it into the models folder when there is one.
func (s *Service) takePublished(ctx context.Context, name string) error {
	pub, err := s.shared.ModelFile(ctx, name)
	if err != nil {
		return err
	}
	dir := s.cfg.ModelsDir
	tmpDir := dir
	if tmpDir == "" {
		tmpDir = os.TempDir()
	}
	f, err := os.CreateTemp(tmpDir, "."+name+".*.onnx.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(pub.ONNX)
	if err := errors.Join(err, f.Close()); err != nil {
		return err
	}
	var install func() error
	if dir != "" {
		install = func() error { return os.Rename(tmp, filepath.Join(dir, name+".onnx")) }
	}
	s.log.Info("swapping in a model another replica published", "model", name, "digest", pub.Digest, "version", pub.Version)
	return s.replace(ctx, name, tmp, install, true)
}

// refused is a model that may not replace the served one.
func refused(format string, a ...any) error {
	return &api.RefusedError{Reason: fmt.Sprintf(format, a...)}
}

// replace loads the model file at path, builds its index, carries the
// served model's added items over to its store, and swaps it in for model
// name (or adds it) — the served model answering until then. install, if
// not nil, runs just before the swap; its error cancels it.
//
// With a shared Redis, a swap started here (published false) seals the
// old model's stream, carries its items into the new one and publishes
// the file for the other replicas (redismodels.go in package store); a
// swap to a published model (published true) finds the items carried
// already, in the new model's stream.
func (s *Service) replace(ctx context.Context, name, path string, install func() error, published bool) error {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	var onnx []byte
	if s.shared != nil && !published {
		ok, err := s.shared.LockModelSwap(ctx, name, 10*time.Minute)
		if err != nil {
			return err
		}
		if !ok {
			return refused("another replica is swapping model %s now", name)
		}
		defer s.shared.UnlockModelSwap(context.WithoutCancel(ctx), name)
		if onnx, err = os.ReadFile(path); err != nil {
			return err
		}
	}
	oldM, oldIx, oldItems, served := s.api.Serving(name)
	if served && oldIx == nil {
		return refused("model %s is still loading its index; try again once GET /models says it is ready", name)
	}
	m, err := encoder.Load(path, s.cfg.Threads)
	if err != nil {
		return refused("it does not load: %s", strings.ReplaceAll(err.Error(), path+": ", ""))
	}
	keep := false
	defer func() {
		if !keep {
			m.Close()
		}
	}()
	if served && m.InputShape != oldM.InputShape {
		return refused("its input shape %v differs from the served model's %v", m.InputShape, oldM.InputShape)
	}
	if served && m.Digest == oldM.Digest {
		if install != nil {
			return install()
		}
		return nil
	}
	s.log.Info("loading a model to swap in", "model", name, "digest", m.Digest)
	ix, ref, items, closeItems, err := s.openIndex(ctx, m)
	if errors.Is(err, index.ErrNotFinite) {
		return refused("a reference image's posterior is not finite")
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return refused("its index cannot be built: %v", err)
	}
	ok := false
	defer func() {
		if !ok {
			closeItems()
		}
	}()
	for _, e := range ref.Energies {
		if math.IsNaN(float64(e)) || math.IsInf(float64(e), 0) {
			return refused("a reference image's energy is %v", e)
		}
	}
	// The bulk of the added items is carried over while the old model
	// answers; the few added meanwhile, under the swap's hold on writes.
	// A shared stream is replayed first: with a published model it holds
	// the items that the replica which published it carried over.
	if it, ok := items.(*store.RedisItems); ok {
		for !it.Caught() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	catchUp := install
	switch {
	case published:
	case served:
		if it, ok := items.(*store.RedisItems); ok {
			// The new model may have been served before, and its
			// stream sealed when it was swapped out.
			if err := it.Unseal(ctx); err != nil {
				return err
			}
		}
		if err := carryItems(ctx, oldIx, oldItems, m, ix, items, false); err != nil {
			return err
		}
		catchUp = func() error {
			if old, ok := oldItems.(*store.RedisItems); ok {
				// No replica adds to the old model from here on.
				if err := old.Seal(ctx); err != nil {
					return err
				}
			}
			if err := carryItems(ctx, oldIx, oldItems, m, ix, items, true); err != nil {
				return err
			}
			if s.shared != nil {
				if err := s.shared.PublishModel(ctx, name, m.Digest, onnx); err != nil {
					return err
				}
			}
			if install != nil {
				return install()
			}
			return nil
		}
	}
	release := func() {
		m.Close()
		closeItems()
	}
	if err := s.api.Swap(name, m, ix, items, ref, release, catchUp); err != nil {
		return err
	}
	keep, ok = true, true
	s.log.Info("model swapped", "model", name, "digest", m.Digest, "was", digestOf(oldM), "index_items", ix.Len())
	return nil
}

func digestOf(m *encoder.Model) string {
	if m == nil {
		return ""
	}
	return m.Digest
}

// carryChunk is how many items carryItems encodes and appends at once.
const carryChunk = 256

// carryItems gives the new store the old store's added items that it
// lacks, under the same ids: each encoded again by model m from the 8-bit
// image the old store keeps (a deleted item, whose image need not be
// kept, is appended as a zero vector). Then every item deleted in the old
// index is deleted in the new. A new store that already holds items (a
// model served before) must hold a prefix of the old one's.
//
// While requests may still add items (final false), an item whose image
// is not stored yet ends the pass (a store adds the item to its index an
// instant before its image); the final pass, under the swap's hold on
// writes, refuses it.
func carryItems(ctx context.Context, oldIx *index.Index, oldItems store.Items, m *encoder.Model, newIx *index.Index, newItems store.Items, final bool) error {
	if oldItems.Base() != newItems.Base() {
		return refused("its reference set has %d items, the served one's %d", newItems.Base(), oldItems.Base())
	}
	if newIx.Len() > oldIx.Len() {
		return refused("its store already holds %d items, more than the served model's %d", newIx.Len(), oldIx.Len())
	}
	per, d := m.InputSize(), m.LatentDim
	for first := newIx.Len(); first < oldIx.Len(); first += carryChunk {
		n := min(carryChunk, oldIx.Len()-first)
		more := true
		x := make([]float32, n*per)
		b := store.Batch{Labels: make([]int, n), Pixels: make([]uint8, n*per), Tags: make([][]string, n)}
		var deleted []int
		for i := range n {
			id := first + i
			b.Labels[i], _ = oldIx.Label(id)
			b.Tags[i] = oldItems.Tags(id)
			pix, ok := oldItems.Pixels(id)
			if oldIx.Deleted(id) {
				deleted = append(deleted, i)
				continue
			}
			if (!ok || len(pix) != per) && final {
				return refused("added item %d has no stored image to encode again", id)
			}
			if !ok || len(pix) != per {
				n, more = i, false
				break
			}
			copy(b.Pixels[i*per:], pix)
			for j, p := range pix {
				x[i*per+j] = float32(p)/127.5 - 1
			}
		}
		if n == 0 {
			break
		}
		b.Labels, b.Pixels, b.Tags, x = b.Labels[:n], b.Pixels[:n*per], b.Tags[:n], x[:n*per]
		lat, _, err := m.LatentsEnergies(ctx, x, n, 64)
		if err != nil {
			return err
		}
		for _, i := range deleted {
			clear(lat[i*d : (i+1)*d])
		}
		b.Vecs = lat
		got, err := newItems.Append(ctx, b)
		if errors.Is(err, index.ErrNotFinite) {
			return refused("an added item's posterior is not finite")
		}
		if err != nil {
			return err
		}
		if got != first {
			return fmt.Errorf("serve: carrying items over: appended at %d, not %d", got, first)
		}
		if !more {
			break
		}
	}
	for id := range min(oldIx.Len(), newIx.Len()) {
		if oldIx.Deleted(id) && !newIx.Deleted(id) {
			if err := newItems.Delete(ctx, id); err != nil {
				return err
			}
		}
	}
	return nil
}
