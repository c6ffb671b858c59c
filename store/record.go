package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// Batch is items to add: their vectors row after row, a label each, and
// optionally each item's image (the model input as 8-bit values, the same
// number of bytes per item) so that clients can be shown what was added.
type Batch struct {
	Vecs   []float32
	Labels []int
	Pixels []uint8 // nil, or len(Labels) images of equal size
}

func (b Batch) pixelsPer() (int, error) {
	n := len(b.Labels)
	if len(b.Pixels) == 0 || n == 0 {
		return 0, nil
	}
	if len(b.Pixels)%n != 0 {
		return 0, fmt.Errorf("store: %d pixel values for %d images", len(b.Pixels), n)
	}
	return len(b.Pixels) / n, nil
}

// A record is one Append: the items it added, in the same binary form in
// the embedded log, its snapshot and the Redis stream. Little-endian:
//
//	seq    uint64  number of added items before this record's first
//	count  uint32
//	dim    uint32
//	pix    uint32  bytes of each item's image (0: none)
//	labels count × int32
//	vecs   count × dim × float32, row after row
//	pixels count × pix bytes
type record struct {
	seq int
	Batch
}

const recordFixed = 8 + 4 + 4 + 4

func (r *record) encode(dim int) []byte {
	n := len(r.Labels)
	pix, _ := r.pixelsPer()
	b := make([]byte, 0, recordFixed+4*n+4*n*dim+len(r.Pixels))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.seq))
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(pix))
	for _, l := range r.Labels {
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(l)))
	}
	for _, v := range r.Vecs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return append(b, r.Pixels...)
}

// decodeRecord reads a record of vectors of dimension dim.
func decodeRecord(b []byte, dim int) (record, error) {
	if len(b) < recordFixed {
		return record{}, fmt.Errorf("record of %d bytes is shorter than its header", len(b))
	}
	seq := binary.LittleEndian.Uint64(b)
	n := uint64(binary.LittleEndian.Uint32(b[8:]))
	d := binary.LittleEndian.Uint32(b[12:])
	pix := uint64(binary.LittleEndian.Uint32(b[16:]))
	if int(d) != dim {
		return record{}, fmt.Errorf("record holds vectors of dimension %d, the index %d", d, dim)
	}
	if seq > math.MaxInt32 || uint64(len(b)) != recordFixed+4*n+4*n*uint64(d)+n*pix {
		return record{}, fmt.Errorf("record of %d bytes does not hold %d items of dimension %d with %d-byte images (seq %d)", len(b), n, d, pix, seq)
	}
	r := record{seq: int(seq), Batch: Batch{Labels: make([]int, n), Vecs: make([]float32, n*uint64(d))}}
	off := recordFixed
	for i := range r.Labels {
		r.Labels[i] = int(int32(binary.LittleEndian.Uint32(b[off:])))
		off += 4
	}
	for i := range r.Vecs {
		r.Vecs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		off += 4
	}
	if pix > 0 {
		r.Pixels = append([]uint8(nil), b[off:]...)
	}
	return r, nil
}

// images keeps the added items' images by their number (seq).
type images struct {
	mu  sync.RWMutex
	all [][]uint8
}

// add stores the images of a batch whose first item is number seq.
func (im *images) add(seq int, b Batch) {
	pix, _ := b.pixelsPer()
	im.mu.Lock()
	defer im.mu.Unlock()
	for len(im.all) < seq {
		im.all = append(im.all, nil)
	}
	for i := range b.Labels {
		var p []uint8
		if pix > 0 {
			p = b.Pixels[i*pix : (i+1)*pix : (i+1)*pix]
		}
		im.all = append(im.all[:seq+i], p)
	}
}

// get is item number seq's image, if it has one.
func (im *images) get(seq int) ([]uint8, bool) {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if seq < 0 || seq >= len(im.all) || im.all[seq] == nil {
		return nil, false
	}
	return im.all[seq], true
}

// records are items [from, to) of the index (number seq at index id
// base+seq) as records, a new one wherever the image size changes.
func (im *images) records(ix interface {
	Vector(int) ([]float32, error)
	Label(int) (int, error)
}, base, from, to int) []record {
	var out []record
	pix := -1
	for seq := from; seq < to; seq++ {
		p, _ := im.get(seq)
		if len(p) != pix {
			out = append(out, record{seq: seq})
			pix = len(p)
		}
		r := &out[len(out)-1]
		v, _ := ix.Vector(base + seq)
		l, _ := ix.Label(base + seq)
		r.Vecs = append(r.Vecs, v...)
		r.Labels = append(r.Labels, l)
		r.Pixels = append(r.Pixels, p...)
	}
	return out
}
