package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"

	"github.com/cebm/cebm/internal/atomicfile"
)

// Snapshot file layout, all little-endian:
//
//	magic    [8]byte "CEBMIDX1"
//	version  uint32  (snapshotVersion)
//	dim      uint32
//	count    uint64
//	digestN  uint32, then digestN bytes: the model digest
//	vectors  count×dim float32, row after row, in id order
//	labels   count int32
//	crc      uint32  CRC-32C (Castagnoli) of every byte before it
const (
	snapshotMagic   = "CEBMIDX1"
	snapshotVersion = 1
	maxDigestLen    = 4096
	headerFixed     = 8 + 4 + 4 + 8 + 4
)

// ErrSnapshot is wrapped by every error about a snapshot's content.
var ErrSnapshot = errors.New("index: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Save writes the index to path atomically: to a temporary file in the same
// directory, synced, then renamed over path, and the directory synced. The
// snapshot holds the items present when Save starts.
func (ix *Index) Save(path string) error {
	s := ix.cur.Load()
	err := atomicfile.Write(path, func(f io.Writer) error {
		crc := crc32.New(castagnoli)
		w := io.MultiWriter(f, crc)
		hdr := make([]byte, 0, headerFixed+len(ix.digest))
		hdr = append(hdr, snapshotMagic...)
		hdr = binary.LittleEndian.AppendUint32(hdr, snapshotVersion)
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(ix.dim))
		hdr = binary.LittleEndian.AppendUint64(hdr, uint64(s.n))
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(ix.digest)))
		hdr = append(hdr, ix.digest...)
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		v := make([]float32, ix.dim)
		b := make([]byte, 4*ix.dim)
		for id := 0; id < s.n; id++ {
			c, j := s.item(id)
			c.get(ix.dim, j, v)
			for p, x := range v {
				binary.LittleEndian.PutUint32(b[4*p:], math.Float32bits(x))
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		for id := 0; id < s.n; id++ {
			c, j := s.item(id)
			if _, err := w.Write(binary.LittleEndian.AppendUint32(b[:0], uint32(c.labels[j]))); err != nil {
				return err
			}
		}
		_, err := f.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
		return err
	})
	if err != nil {
		return fmt.Errorf("index: save: %w", err)
	}
	return nil
}

// Load reads a snapshot written by Save. It refuses, with an error wrapping
// ErrSnapshot, a file that is truncated, corrupt (checksum), of another
// format version, or built by a model other than wantModelDigest.
func Load(path, wantModelDigest string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("index: load: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("index: load: %w", err)
	}
	size := st.Size()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %s: "+format, append([]any{ErrSnapshot, path}, a...)...)
	}
	hdr := make([]byte, headerFixed)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, bad("truncated header (%d bytes)", size)
	}
	if string(hdr[:8]) != snapshotMagic {
		return nil, bad("not an index snapshot (magic %q)", hdr[:8])
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != snapshotVersion {
		return nil, bad("format version %d, this program reads version %d", v, snapshotVersion)
	}
	dim := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	count := binary.LittleEndian.Uint64(hdr[16:])
	digestN := uint64(binary.LittleEndian.Uint32(hdr[24:]))
	if dim < 1 || dim > 1<<20 || digestN > maxDigestLen || count > math.MaxInt32 {
		return nil, bad("implausible header (dim %d, count %d, digest length %d)", dim, count, digestN)
	}
	// The size must match exactly before anything is allocated for the body.
	want := uint64(headerFixed) + digestN + count*dim*4 + count*4 + 4
	if uint64(size) != want {
		return nil, bad("size %d bytes, header implies %d (truncated or corrupt)", size, want)
	}
	body := make([]byte, size)
	copy(body, hdr)
	if _, err := io.ReadFull(f, body[headerFixed:]); err != nil {
		return nil, bad("read: %v", err)
	}
	n := size - 4
	if got, sum := crc32.Checksum(body[:n], castagnoli), binary.LittleEndian.Uint32(body[n:]); got != sum {
		return nil, bad("checksum mismatch (stored %08x, computed %08x): file is corrupt", sum, got)
	}
	digest := string(body[headerFixed : headerFixed+digestN])
	if digest != wantModelDigest {
		return nil, bad("built by model %q, want model %q", digest, wantModelDigest)
	}
	off := headerFixed + digestN
	vecs := make([]float32, count*dim)
	for i := range vecs {
		vecs[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[off+4*uint64(i):]))
	}
	off += count * dim * 4
	labels := make([]int, count)
	for i := range labels {
		labels[i] = int(int32(binary.LittleEndian.Uint32(body[off+4*uint64(i):])))
	}
	ix := New(int(dim), digest)
	if _, err := ix.Add(vecs, labels); err != nil {
		return nil, bad("%v", err)
	}
	return ix, nil
}
