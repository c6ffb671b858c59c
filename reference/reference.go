// Package reference builds the latent index of a labelled reference set
// (the images the service's k-NN answers come from) and caches it as an
// index snapshot keyed by the model and the set.
package reference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
)

// Set is a labelled reference set: n images, NCHW, scaled to [-1, 1] like
// the model's input.
type Set struct {
	Name   string // e.g. "mnist:train:60000", part of the snapshot's key
	Images []float32
	Labels []int
}

// Key names the index of the set refName under model digest: its snapshot
// and the stores of the items added to it are keyed by it.
func Key(digest, refName string) string {
	return encoder.ContentID(digest+"\x00"+refName, nil)
}

// SnapshotPath is where the index of the set refName under model digest is
// cached in dir.
func SnapshotPath(dir, digest, refName string) string {
	return filepath.Join(dir, "index-"+Key(digest, refName)+".idx")
}

// LoadOrBuild loads the cached index of ref under m from cacheDir, or
// encodes ref (logging its progress), builds the index and caches it. A
// stale or corrupt snapshot is rebuilt. cacheDir "" disables the cache.
func LoadOrBuild(ctx context.Context, m *encoder.Model, ref Set, cacheDir string, log *slog.Logger) (*index.Index, error) {
	var path string
	if cacheDir != "" {
		path = SnapshotPath(cacheDir, m.Digest, ref.Name)
		ix, err := index.Load(path, m.Digest)
		switch {
		case err == nil:
			log.Info("index snapshot loaded", "path", path, "items", ix.Len())
			return ix, nil
		case errors.Is(err, os.ErrNotExist):
		default:
			log.Warn("index snapshot unusable, rebuilding", "path", path, "err", err)
		}
	}
	ix, err := Build(ctx, m, ref, log)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			log.Warn("index snapshot not saved", "err", err)
		} else if err := ix.Save(path); err != nil {
			log.Warn("index snapshot not saved", "err", err)
		} else {
			log.Info("index snapshot saved", "path", path)
		}
	}
	return ix, nil
}

// Build encodes the reference images with m and indexes their posterior
// means with their labels, logging progress every tenth.
func Build(ctx context.Context, m *encoder.Model, ref Set, log *slog.Logger) (*index.Index, error) {
	per, d := m.InputSize(), m.LatentDim
	n := len(ref.Labels)
	if len(ref.Images) != n*per {
		return nil, fmt.Errorf("reference %s: %d values for %d images of %d", ref.Name, len(ref.Images), n, per)
	}
	ix := index.New(d, m.Digest)
	const chunk = 1024
	start, next := time.Now(), n/10
	log.Info("building index", "reference", ref.Name, "images", n)
	for s := 0; s < n; s += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := min(n, s+chunk)
		lat, err := m.Latents(ctx, ref.Images[s*per:e*per], e-s, 128)
		if err != nil {
			return nil, err
		}
		if _, err := ix.Add(lat, ref.Labels[s:e]); err != nil {
			return nil, err
		}
		if e >= next || e == n {
			log.Info("building index", "done", e, "of", n, "elapsed", time.Since(start).Round(time.Millisecond))
			next = e + n/10
		}
	}
	return ix, nil
}
