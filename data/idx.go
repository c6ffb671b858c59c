package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// IDX is the content of an IDX file (the MNIST format): an array of unsigned
// bytes with its dimensions, the first dimension varying slowest.
type IDX struct {
	Dims []int
	Data []byte // product of Dims bytes
}

// IDX type byte for unsigned bytes, the only element type MNIST-like files use.
const idxUint8 = 0x08

// maxUncompressed bounds how much a gzip file may inflate to (4 GiB), so that
// a corrupt or hostile file cannot exhaust memory.
const maxUncompressed = 4 << 30

// ReadIDXFile reads an IDX file of unsigned bytes, gzip-compressed or raw
// (recognised by the gzip magic bytes). Errors name the file.
func ReadIDXFile(path string) (*IDX, error) {
	b, err := readMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	idx, err := DecodeIDX(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return idx, nil
}

// DecodeIDX parses the bytes of an uncompressed IDX file: a 4-byte magic
// (0, 0, type, number of dimensions), one big-endian uint32 per dimension,
// then the data. Only the unsigned-byte type (0x08) is supported. The data
// must be exactly as long as the dimensions say.
func DecodeIDX(b []byte) (*IDX, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("truncated IDX header: %d bytes", len(b))
	}
	if b[0] != 0 || b[1] != 0 {
		return nil, fmt.Errorf("wrong IDX magic 0x%08x: first two bytes must be zero", binary.BigEndian.Uint32(b))
	}
	if b[2] != idxUint8 {
		return nil, fmt.Errorf("unsupported IDX element type 0x%02x in magic 0x%08x (only 0x08, unsigned byte)", b[2], binary.BigEndian.Uint32(b))
	}
	ndims := int(b[3])
	if ndims == 0 {
		return nil, errors.New("IDX file has zero dimensions")
	}
	header := 4 + 4*ndims
	if len(b) < header {
		return nil, fmt.Errorf("truncated IDX header: %d dimensions need %d bytes, have %d", ndims, header, len(b))
	}
	dims := make([]int, ndims)
	size := 1
	for i := range dims {
		d := int(binary.BigEndian.Uint32(b[4+4*i:]))
		dims[i] = d
		if d != 0 && size > math.MaxInt32/d {
			return nil, fmt.Errorf("bad IDX dimensions: %v... exceed 2^31 bytes", dims[:i+1])
		}
		size *= d
	}
	data := b[header:]
	switch {
	case len(data) < size:
		return nil, fmt.Errorf("truncated IDX data: dimensions %v need %d bytes, have %d", dims, size, len(data))
	case len(data) > size:
		return nil, fmt.Errorf("IDX file has %d bytes after the %d that dimensions %v need", len(data)-size, size, dims)
	}
	return &IDX{Dims: dims, Data: data}, nil
}

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// readMaybeGzip returns a file's content, inflated if it is gzip-compressed.
func readMaybeGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, gzipMagic) {
		b, err := io.ReadAll(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return b, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: gzip: %w", path, err)
	}
	var buf bytes.Buffer
	if hint := gzipSizeHint(f); hint > 0 {
		buf.Grow(hint)
	}
	n, err := buf.ReadFrom(io.LimitReader(zr, maxUncompressed+1))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%s: truncated gzip stream after %d bytes", path, n)
	case err != nil:
		return nil, fmt.Errorf("%s: gzip: %w", path, err)
	case n > maxUncompressed:
		return nil, fmt.Errorf("%s: inflates to more than %d bytes", path, int64(maxUncompressed))
	}
	return buf.Bytes(), nil
}

// gzipSizeHint returns the uncompressed size that a gzip file's trailer
// records (modulo 2^32), capped to a sane bound, or 0 if unknown. It only
// saves buffer growth; correctness does not depend on it.
func gzipSizeHint(f *os.File) int {
	var t [4]byte
	st, err := f.Stat()
	if err != nil || st.Size() < 22 {
		return 0
	}
	if _, err := f.ReadAt(t[:], st.Size()-4); err != nil {
		return 0
	}
	n := int(binary.LittleEndian.Uint32(t[:]))
	if n > 1<<30 {
		return 0
	}
	return n + bytes.MinRead
}

// idxImages checks that idx holds images (3 dimensions: N, rows, columns).
func idxImages(path string, idx *IDX) (n, h, w int, err error) {
	if len(idx.Dims) != 3 {
		return 0, 0, 0, fmt.Errorf("%s: wrong magic 0x%08x for an image file (want 0x00000803: unsigned bytes, 3 dimensions)", path, 0x800|len(idx.Dims))
	}
	n, h, w = idx.Dims[0], idx.Dims[1], idx.Dims[2]
	if h == 0 || w == 0 {
		return 0, 0, 0, fmt.Errorf("%s: bad image dimensions %d×%d", path, h, w)
	}
	return n, h, w, nil
}

// idxLabels checks that idx holds labels (1 dimension), each below classes.
func idxLabels(path string, idx *IDX, classes int) ([]int, error) {
	if len(idx.Dims) != 1 {
		return nil, fmt.Errorf("%s: wrong magic 0x%08x for a label file (want 0x00000801: unsigned bytes, 1 dimension)", path, 0x800|len(idx.Dims))
	}
	labels := make([]int, len(idx.Data))
	for i, l := range idx.Data {
		if int(l) >= classes {
			return nil, fmt.Errorf("%s: label %d of image %d is out of range (%d classes)", path, l, i, classes)
		}
		labels[i] = int(l)
	}
	return labels, nil
}
