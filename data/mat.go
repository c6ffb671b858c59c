package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// A reader for MATLAB level-5 MAT-files (the format of SVHN's *_32x32.mat),
// implementing exactly what numeric matrices need; see MathWorks' "MAT-File
// Format" (matfile_format.pdf), chapter 1:
//
//	header   128 bytes: 116 bytes of text ("MATLAB 5.0 MAT-file, ..."),
//	         8 bytes subsystem offset, version 0x0100, endian indicator "IM"
//	         (little-endian) or "MI" (big-endian)
//	element  tag (type uint32, byte count uint32), data, padding to 8 bytes;
//	         or the small format: one uint32 holding count<<16 | type, then
//	         up to 4 data bytes, 8 bytes in all
//	miMATRIX sub-elements: array flags (miUINT32 ×2: class in the low byte,
//	         complex bit 0x0800), dimensions (miINT32), name (miINT8),
//	         real part (any numeric type, converted to the class)
//	miCOMPRESSED  a zlib stream of further elements (no padding after it)
//
// Variables of other classes (char, cell, struct, sparse, ...) are returned
// with their name, class and dimensions but no data.

// MATClass is a MAT-file array class (mxDOUBLE_CLASS, mxUINT8_CLASS, ...).
type MATClass uint8

// The array classes that ReadMAT returns data for.
const (
	MATDouble MATClass = 6 // mxDOUBLE_CLASS
	MATUint8  MATClass = 9 // mxUINT8_CLASS
)

var matClassNames = [...]string{1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double", 7: "single",
	8: "int8", 9: "uint8", 10: "int16", 11: "uint16", 12: "int32", 13: "uint32", 14: "int64", 15: "uint64"}

func (c MATClass) String() string {
	if int(c) < len(matClassNames) && matClassNames[c] != "" {
		return matClassNames[c]
	}
	return fmt.Sprintf("class%d", uint8(c))
}

// MATArray is one variable of a MAT-file.
type MATArray struct {
	Name  string
	Class MATClass
	// Dims are MATLAB's dimensions, column-major: the first varies fastest.
	Dims []int
	// Uint8 holds the data of a uint8 array, Float64 that of a double array;
	// both are nil for other classes.
	Uint8   []uint8
	Float64 []float64
}

// MAT data element types.
const (
	miINT8       = 1
	miUINT8      = 2
	miINT16      = 3
	miUINT16     = 4
	miINT32      = 5
	miUINT32     = 6
	miSINGLE     = 7
	miDOUBLE     = 9
	miINT64      = 12
	miUINT64     = 13
	miMATRIX     = 14
	miCOMPRESSED = 15
)

// matTypeSize is the size in bytes of each numeric element type.
var matTypeSize = map[uint32]int{miINT8: 1, miUINT8: 1, miINT16: 2, miUINT16: 2, miINT32: 4, miUINT32: 4,
	miSINGLE: 4, miDOUBLE: 8, miINT64: 8, miUINT64: 8}

// ReadMAT reads the variables of a level-5 MAT-file, compressed (MATLAB's
// default since v7) or not, in either byte order.
func ReadMAT(r io.Reader) ([]*MATArray, error) {
	var hdr [128]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("truncated MAT header: %d of 128 bytes", n)
	}
	if bytes.HasPrefix(hdr[:], []byte("MATLAB 7.3 MAT-file")) {
		return nil, errors.New("MAT v7.3 (HDF5) file: only level-5 MAT-files are supported (save with -v7)")
	}
	if !bytes.HasPrefix(hdr[:], []byte("MATLAB 5.0 MAT-file")) {
		return nil, fmt.Errorf("not a level-5 MAT-file: header text %q does not start with \"MATLAB 5.0 MAT-file\"", bytes.TrimRight(hdr[:19], "\x00"))
	}
	m := matReader{}
	switch string(hdr[126:128]) {
	case "IM":
		m.order = binary.LittleEndian
	case "MI":
		m.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("bad MAT endian indicator %q (want \"IM\" or \"MI\")", hdr[126:128])
	}
	if v := m.order.Uint16(hdr[124:]); v != 0x0100 {
		return nil, fmt.Errorf("unsupported MAT version 0x%04x (want 0x0100)", v)
	}
	var vars []*MATArray
	for i := 0; ; i++ {
		typ, body, err := m.readElement(r, true)
		if err == io.EOF {
			return vars, nil
		}
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		switch typ {
		case miMATRIX:
			v, err := m.parseMatrix(body)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			vars = append(vars, v)
		case miCOMPRESSED:
			inner, err := m.readCompressed(body)
			if err != nil {
				return nil, fmt.Errorf("element %d (compressed): %w", i, err)
			}
			vars = append(vars, inner...)
		}
		// Other top-level elements carry no variables; skip them.
	}
}

type matReader struct {
	order binary.ByteOrder
}

// readElement reads one data element from r and returns its type and data.
// At a clean end of input it returns io.EOF. Padding to 8 bytes is consumed,
// except after miCOMPRESSED, which MATLAB does not pad; a missing final
// padding at the end of the input is tolerated when atTop is set.
func (m matReader) readElement(r io.Reader, atTop bool) (uint32, []byte, error) {
	var tag [8]byte
	n, err := io.ReadFull(r, tag[:])
	switch {
	case n == 0 && err == io.EOF:
		return 0, nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return 0, nil, fmt.Errorf("truncated element tag: %d of 8 bytes", n)
	case err != nil:
		return 0, nil, err // e.g. corrupt zlib data
	}
	typ := m.order.Uint32(tag[:4])
	if count := typ >> 16; count != 0 { // small data element format
		if count > 4 {
			return 0, nil, fmt.Errorf("small data element claims %d bytes (at most 4)", count)
		}
		return typ & 0xffff, tag[4 : 4+count], nil
	}
	size := m.order.Uint32(tag[4:])
	body, err := readN(r, int(size))
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return 0, nil, fmt.Errorf("truncated element of type %d: %d of %d bytes", typ, len(body), size)
	case err != nil:
		return 0, nil, err
	}
	if pad := padding(int(size)); pad > 0 && typ != miCOMPRESSED {
		var p [8]byte
		switch n, err := io.ReadFull(r, p[:pad]); {
		case atTop && n == 0 && err == io.EOF:
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return 0, nil, fmt.Errorf("truncated padding after element of type %d", typ)
		case err != nil:
			return 0, nil, err
		}
	}
	return typ, body, nil
}

// padding returns the bytes that pad n to a multiple of 8.
func padding(n int) int { return (8 - n%8) % 8 }

// readN reads exactly n bytes, growing its buffer only as data arrives so that
// a corrupt byte count cannot make it allocate more than the input holds.
func readN(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk {
		b := make([]byte, n)
		k, err := io.ReadFull(r, b)
		return b[:k], err
	}
	var b []byte
	for len(b) < n {
		k := min(chunk, n-len(b))
		b = slices.Grow(b, k)
		got, err := io.ReadFull(r, b[len(b):len(b)+k])
		b = b[:len(b)+got]
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// readCompressed inflates a miCOMPRESSED element and reads the variables in it.
func (m matReader) readCompressed(body []byte) ([]*MATArray, error) {
	zr, err := zlib.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	var vars []*MATArray
	for {
		typ, inner, err := m.readElement(zr, false)
		if err == io.EOF {
			return vars, nil
		}
		if err != nil {
			return nil, err
		}
		if typ != miMATRIX {
			continue
		}
		v, err := m.parseMatrix(inner)
		if err != nil {
			return nil, err
		}
		vars = append(vars, v)
	}
}

// subElements walks the sub-elements of a miMATRIX held in memory.
type subElements struct {
	m   matReader
	b   []byte
	off int
}

func (s *subElements) next(what string) (uint32, []byte, error) {
	if len(s.b)-s.off < 8 {
		return 0, nil, fmt.Errorf("matrix ends before its %s", what)
	}
	tag := s.b[s.off:]
	typ := s.m.order.Uint32(tag)
	if count := typ >> 16; count != 0 {
		if count > 4 {
			return 0, nil, fmt.Errorf("%s: small data element claims %d bytes (at most 4)", what, count)
		}
		s.off += 8
		return typ & 0xffff, tag[4 : 4+count], nil
	}
	size := int(s.m.order.Uint32(tag[4:]))
	if size > len(s.b)-s.off-8 {
		return 0, nil, fmt.Errorf("truncated %s: %d bytes, matrix holds %d more", what, size, len(s.b)-s.off-8)
	}
	body := tag[8 : 8+size]
	s.off += 8 + min(size+padding(size), len(s.b)-s.off-8)
	return typ, body, nil
}

// parseMatrix decodes the body of a miMATRIX element.
func (m matReader) parseMatrix(b []byte) (*MATArray, error) {
	s := &subElements{m: m, b: b}
	typ, flags, err := s.next("array flags")
	if err != nil {
		return nil, err
	}
	if typ != miUINT32 || len(flags) != 8 {
		return nil, fmt.Errorf("bad array flags: type %d, %d bytes (want miUINT32, 8 bytes)", typ, len(flags))
	}
	f := m.order.Uint32(flags)
	v := &MATArray{Class: MATClass(f & 0xff)}
	complexArray := f&0x0800 != 0

	typ, dimBytes, err := s.next("dimensions")
	if err != nil {
		return nil, err
	}
	if typ != miINT32 || len(dimBytes)%4 != 0 || len(dimBytes) < 8 {
		return nil, fmt.Errorf("bad dimensions element: type %d, %d bytes (want miINT32, at least 2 dimensions)", typ, len(dimBytes))
	}
	count := 1
	for i := 0; i < len(dimBytes); i += 4 {
		d := int(int32(m.order.Uint32(dimBytes[i:])))
		if d < 0 {
			return nil, fmt.Errorf("bad dimensions: %d", d)
		}
		v.Dims = append(v.Dims, d)
		if d != 0 && count > math.MaxInt32/d {
			return nil, fmt.Errorf("bad dimensions %v...: more than 2^31 elements", v.Dims)
		}
		count *= d
	}

	typ, name, err := s.next("array name")
	if err != nil {
		return nil, err
	}
	if typ != miINT8 {
		return nil, fmt.Errorf("bad array name element: type %d (want miINT8)", typ)
	}
	v.Name = string(name)

	if v.Class != MATDouble && v.Class != MATUint8 {
		return v, nil // no data for classes that cebm does not read
	}
	if complexArray {
		return nil, fmt.Errorf("variable %q: complex arrays are not supported", v.Name)
	}
	typ, values, err := s.next("real part of " + v.Name)
	if err != nil {
		return nil, fmt.Errorf("variable %q: %w", v.Name, err)
	}
	size, ok := matTypeSize[typ]
	if !ok {
		return nil, fmt.Errorf("variable %q: data of non-numeric type %d", v.Name, typ)
	}
	if len(values) != count*size {
		return nil, fmt.Errorf("variable %q: dimensions %v need %d values, data holds %d bytes of type %d", v.Name, v.Dims, count, len(values), typ)
	}
	switch v.Class {
	case MATUint8:
		if typ != miUINT8 {
			return nil, fmt.Errorf("variable %q: uint8 array stored as type %d (want miUINT8)", v.Name, typ)
		}
		v.Uint8 = values
	case MATDouble:
		v.Float64 = m.toFloat64(typ, values, count)
	}
	return v, nil
}

// toFloat64 converts numeric data of any storage type to float64 (MATLAB
// stores doubles in the smallest type that holds their values exactly).
func (m matReader) toFloat64(typ uint32, b []byte, count int) []float64 {
	out := make([]float64, count)
	o := m.order
	for i := range out {
		switch typ {
		case miINT8:
			out[i] = float64(int8(b[i]))
		case miUINT8:
			out[i] = float64(b[i])
		case miINT16:
			out[i] = float64(int16(o.Uint16(b[2*i:])))
		case miUINT16:
			out[i] = float64(o.Uint16(b[2*i:]))
		case miINT32:
			out[i] = float64(int32(o.Uint32(b[4*i:])))
		case miUINT32:
			out[i] = float64(o.Uint32(b[4*i:]))
		case miSINGLE:
			out[i] = float64(math.Float32frombits(o.Uint32(b[4*i:])))
		case miDOUBLE:
			out[i] = math.Float64frombits(o.Uint64(b[8*i:]))
		case miINT64:
			out[i] = float64(int64(o.Uint64(b[8*i:])))
		case miUINT64:
			out[i] = float64(o.Uint64(b[8*i:]))
		}
	}
	return out
}
