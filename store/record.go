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
	Pixels []uint8    // nil, or len(Labels) images of equal size
	Tags   [][]string // nil, or len(Labels) lists of tags (each may be empty)
}

// Limits on an item's tags, which the record format relies on.
const (
	MaxTags     = 32  // tags per item
	MaxTagBytes = 128 // bytes of one tag
)

// check reports a batch whose pixels or tags do not match its items.
func (b Batch) check() error {
	if _, err := b.pixelsPer(); err != nil {
		return err
	}
	if b.Tags == nil {
		return nil
	}
	if len(b.Tags) != len(b.Labels) {
		return fmt.Errorf("store: %d tag lists for %d items", len(b.Tags), len(b.Labels))
	}
	for _, ts := range b.Tags {
		if len(ts) > MaxTags {
			return fmt.Errorf("store: %d tags on one item, at most %d", len(ts), MaxTags)
		}
		for _, t := range ts {
			if t == "" || len(t) > MaxTagBytes {
				return fmt.Errorf("store: a tag of %d bytes: 1 to %d", len(t), MaxTagBytes)
			}
		}
	}
	return nil
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

// A record is one Append, or one Delete (a tombstone), in the same binary
// form in the embedded log, its snapshot and the Redis stream.
// Little-endian:
//
//	seq    uint64  low 32 bits: number of added items before this record's
//	               first; top byte: the kind (0 items, 1 items with tags,
//	               2 tombstone)
//	count  uint32
//	dim    uint32  (0 in a tombstone)
//	pix    uint32  bytes of each item's image (0: none)
//	labels count × int32 (a tombstone: the index ids deleted)
//	vecs   count × dim × float32, row after row
//	pixels count × pix bytes
//	tags   kind 1 only: per item, uint16 n, then n × (uint16 len, bytes)
//
// Records of kind 0 are the format before tags and deletes, still read.
type record struct {
	seq int
	Batch
	deleted []int // a tombstone: the index ids it deletes
}

// Record kinds, in the top byte of the seq field.
const (
	kindItems     = 0
	kindTagged    = 1
	kindTombstone = 2
)

// tombstone is the record deleting index ids.
func tombstone(ids []int) *record { return &record{deleted: ids} }

const recordFixed = 8 + 4 + 4 + 4

func (r *record) encode(dim int) []byte {
	if r.deleted != nil {
		b := make([]byte, 0, recordFixed+4*len(r.deleted))
		b = binary.LittleEndian.AppendUint64(b, kindTombstone<<56)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.deleted)))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, 0)
		for _, id := range r.deleted {
			b = binary.LittleEndian.AppendUint32(b, uint32(id))
		}
		return b
	}
	n := len(r.Labels)
	pix, _ := r.pixelsPer()
	kind := uint64(kindItems)
	if r.Tags != nil {
		kind = kindTagged
	}
	b := make([]byte, 0, recordFixed+4*n+4*n*dim+len(r.Pixels))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.seq)|kind<<56)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(pix))
	for _, l := range r.Labels {
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(l)))
	}
	for _, v := range r.Vecs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	b = append(b, r.Pixels...)
	if kind == kindTagged {
		for _, ts := range r.Tags {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(ts)))
			for _, t := range ts {
				b = binary.LittleEndian.AppendUint16(b, uint16(len(t)))
				b = append(b, t...)
			}
		}
	}
	return b
}

// decodeRecord reads a record of vectors of dimension dim.
func decodeRecord(b []byte, dim int) (record, error) {
	if len(b) < recordFixed {
		return record{}, fmt.Errorf("record of %d bytes is shorter than its header", len(b))
	}
	word := binary.LittleEndian.Uint64(b)
	kind, seq := word>>56, word&(1<<56-1)
	n := uint64(binary.LittleEndian.Uint32(b[8:]))
	d := binary.LittleEndian.Uint32(b[12:])
	pix := uint64(binary.LittleEndian.Uint32(b[16:]))
	if kind == kindTombstone {
		if seq != 0 || d != 0 || pix != 0 || uint64(len(b)) != recordFixed+4*n {
			return record{}, fmt.Errorf("tombstone of %d bytes does not hold %d ids", len(b), n)
		}
		r := record{deleted: make([]int, n)}
		for i := range r.deleted {
			r.deleted[i] = int(binary.LittleEndian.Uint32(b[recordFixed+4*i:]))
		}
		return r, nil
	}
	if kind != kindItems && kind != kindTagged {
		return record{}, fmt.Errorf("record of unknown kind %d", kind)
	}
	if int(d) != dim {
		return record{}, fmt.Errorf("record holds vectors of dimension %d, the index %d", d, dim)
	}
	fixed := recordFixed + 4*n + 4*n*uint64(d) + n*pix
	if seq > math.MaxInt32 || uint64(len(b)) < fixed || (kind == kindItems && uint64(len(b)) != fixed) {
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
		r.Pixels = append([]uint8(nil), b[off:off+int(n*pix)]...)
	}
	if kind == kindTagged {
		tags, err := decodeTags(b[fixed:], int(n))
		if err != nil {
			return record{}, err
		}
		r.Tags = tags
	}
	return r, nil
}

// decodeTags reads n items' tag lists, which b holds exactly.
func decodeTags(b []byte, n int) ([][]string, error) {
	bad := fmt.Errorf("record's tags of %d bytes do not hold %d items' tags", len(b), n)
	out := make([][]string, n)
	for i := range out {
		if len(b) < 2 {
			return nil, bad
		}
		m := int(binary.LittleEndian.Uint16(b))
		b = b[2:]
		if m > MaxTags {
			return nil, bad
		}
		out[i] = make([]string, m)
		for j := range out[i] {
			if len(b) < 2 {
				return nil, bad
			}
			l := int(binary.LittleEndian.Uint16(b))
			if l > MaxTagBytes || len(b) < 2+l {
				return nil, bad
			}
			out[i][j], b = string(b[2:2+l]), b[2+l:]
		}
	}
	if len(b) != 0 {
		return nil, bad
	}
	return out, nil
}

// images keeps the added items' images and tags by their number (seq).
type images struct {
	mu   sync.RWMutex
	all  [][]uint8
	tags [][]string
}

// add stores the images of a batch whose first item is number seq.
func (im *images) add(seq int, b Batch) {
	pix, _ := b.pixelsPer()
	im.mu.Lock()
	defer im.mu.Unlock()
	for len(im.all) < seq {
		im.all = append(im.all, nil)
	}
	for len(im.tags) < seq {
		im.tags = append(im.tags, nil)
	}
	for i := range b.Labels {
		var p []uint8
		if pix > 0 {
			p = b.Pixels[i*pix : (i+1)*pix : (i+1)*pix]
		}
		im.all = append(im.all[:seq+i], p)
		var t []string
		if b.Tags != nil && len(b.Tags[i]) > 0 {
			t = b.Tags[i]
		}
		im.tags = append(im.tags[:seq+i], t)
	}
}

// tagsOf is item number seq's tags (nil: none).
func (im *images) tagsOf(seq int) []string {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if seq < 0 || seq >= len(im.tags) {
		return nil
	}
	return im.tags[seq]
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
// base+seq) as records, a new one wherever the image size changes, with
// their tags; then one tombstone of every index id below base+to that
// the index has deleted (reference items included), if any.
func (im *images) records(ix interface {
	Vector(int) ([]float32, error)
	Label(int) (int, error)
	Deleted(int) bool
}, base, from, to int) []record {
	var out []record
	pix := -1
	for seq := from; seq < to; seq++ {
		p, _ := im.get(seq)
		if len(p) != pix {
			out = append(out, record{seq: seq, Batch: Batch{Tags: [][]string{}}})
			pix = len(p)
		}
		r := &out[len(out)-1]
		v, _ := ix.Vector(base + seq)
		l, _ := ix.Label(base + seq)
		r.Vecs = append(r.Vecs, v...)
		r.Labels = append(r.Labels, l)
		r.Pixels = append(r.Pixels, p...)
		r.Tags = append(r.Tags, im.tagsOf(seq))
	}
	var dead []int
	for id := range base + to {
		if ix.Deleted(id) {
			dead = append(dead, id)
		}
	}
	if dead != nil {
		out = append(out, *tombstone(dead))
	}
	return out
}
