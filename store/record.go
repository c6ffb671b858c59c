package store

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A record is one Append: the items it added, in the same binary form in
// the embedded log and in the Redis stream. Little-endian:
//
//	seq    uint64  number of added items before this record's first
//	count  uint32
//	dim    uint32
//	labels count × int32
//	vecs   count × dim × float32, row after row
type record struct {
	seq    int
	vecs   []float32
	labels []int
}

const recordFixed = 8 + 4 + 4

func (r *record) encode(dim int) []byte {
	n := len(r.labels)
	b := make([]byte, 0, recordFixed+4*n+4*n*dim)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.seq))
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	for _, l := range r.labels {
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(l)))
	}
	for _, v := range r.vecs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// decodeRecord reads a record of vectors of dimension dim.
func decodeRecord(b []byte, dim int) (record, error) {
	if len(b) < recordFixed {
		return record{}, fmt.Errorf("record of %d bytes is shorter than its header", len(b))
	}
	seq := binary.LittleEndian.Uint64(b)
	n := uint64(binary.LittleEndian.Uint32(b[8:]))
	d := binary.LittleEndian.Uint32(b[12:])
	if int(d) != dim {
		return record{}, fmt.Errorf("record holds vectors of dimension %d, the index %d", d, dim)
	}
	if seq > math.MaxInt32 || uint64(len(b)) != recordFixed+4*n+4*n*uint64(d) {
		return record{}, fmt.Errorf("record of %d bytes does not hold %d items of dimension %d (seq %d)", len(b), n, d, seq)
	}
	r := record{seq: int(seq), labels: make([]int, n), vecs: make([]float32, n*uint64(d))}
	off := recordFixed
	for i := range r.labels {
		r.labels[i] = int(int32(binary.LittleEndian.Uint32(b[off:])))
		off += 4
	}
	for i := range r.vecs {
		r.vecs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		off += 4
	}
	return r, nil
}
