// Package reference builds the latent index of a labelled reference set
// (the images the service's k-NN answers come from), with the images'
// energies for the out-of-distribution score, and caches both keyed by the
// model and the set.
package reference

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/internal/atomicfile"
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

// EnergiesPath is where the sorted energies of the set refName under model
// digest are cached in dir, beside its index snapshot.
func EnergiesPath(dir, digest, refName string) string {
	return filepath.Join(dir, "energies-"+Key(digest, refName)+".bin")
}

// LoadOrBuild loads the cached index of ref under m, and its images'
// energies sorted ascending (the out-of-distribution score's reference),
// from cacheDir, or encodes ref (logging its progress), builds both and
// caches them. A stale or corrupt cache is rebuilt. cacheDir "" disables
// the cache.
func LoadOrBuild(ctx context.Context, m *encoder.Model, ref Set, cacheDir string, log *slog.Logger) (*index.Index, []float32, error) {
	var path, epath string
	if cacheDir != "" {
		path, epath = SnapshotPath(cacheDir, m.Digest, ref.Name), EnergiesPath(cacheDir, m.Digest, ref.Name)
		ix, err := index.Load(path, m.Digest)
		var energies []float32
		if err == nil {
			energies, err = loadEnergies(epath, ix.Len())
		}
		switch {
		case err == nil:
			log.Info("index snapshot loaded", "path", path, "items", ix.Len())
			return ix, energies, nil
		case errors.Is(err, os.ErrNotExist):
		default:
			log.Warn("index snapshot unusable, rebuilding", "path", path, "err", err)
		}
	}
	ix, energies, err := Build(ctx, m, ref, log)
	if err != nil {
		return nil, nil, err
	}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			log.Warn("index snapshot not saved", "err", err)
		} else if err := errors.Join(ix.Save(path), saveEnergies(epath, energies)); err != nil {
			log.Warn("index snapshot not saved", "err", err)
		} else {
			log.Info("index snapshot saved", "path", path)
		}
	}
	return ix, energies, nil
}

// Build encodes the reference images with m and indexes their posterior
// means with their labels, logging progress every tenth. It also returns
// the images' energies, sorted ascending.
func Build(ctx context.Context, m *encoder.Model, ref Set, log *slog.Logger) (*index.Index, []float32, error) {
	per, d := m.InputSize(), m.LatentDim
	n := len(ref.Labels)
	if len(ref.Images) != n*per {
		return nil, nil, fmt.Errorf("reference %s: %d values for %d images of %d", ref.Name, len(ref.Images), n, per)
	}
	ix := index.New(d, m.Digest)
	energies := make([]float32, 0, n)
	const chunk = 1024
	start, next := time.Now(), n/10
	log.Info("building index", "reference", ref.Name, "images", n)
	for s := 0; s < n; s += chunk {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		e := min(n, s+chunk)
		lat, en, err := m.LatentsEnergies(ctx, ref.Images[s*per:e*per], e-s, 128)
		if err != nil {
			return nil, nil, err
		}
		if _, err := ix.Add(lat, ref.Labels[s:e]); err != nil {
			return nil, nil, err
		}
		energies = append(energies, en...)
		if e >= next || e == n {
			log.Info("building index", "done", e, "of", n, "elapsed", time.Since(start).Round(time.Millisecond))
			next = e + n/10
		}
	}
	slices.Sort(energies)
	return ix, energies, nil
}

// The energies file: "CEBMENE1", count uint64, count float32, CRC-32C of
// everything before it; little-endian.
const energiesMagic = "CEBMENE1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func saveEnergies(path string, e []float32) error {
	b := []byte(energiesMagic)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(e)))
	for _, v := range e {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return atomicfile.WriteBytes(path, b)
}

// loadEnergies reads an energies file of n values.
func loadEnergies(path string, n int) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) != 8+8+4*n+4 || string(b[:8]) != energiesMagic || binary.LittleEndian.Uint64(b[8:]) != uint64(n) {
		return nil, fmt.Errorf("%s: not the energies of %d images", path, n)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%s: checksum mismatch", path)
	}
	e := make([]float32, n)
	for i := range e {
		e[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[16+4*i:]))
	}
	return e, nil
}
