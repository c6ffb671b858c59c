package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// byteOrder is binary.LittleEndian or binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// matFile builds level-5 MAT-files for tests, as MATLAB and scipy write them.
type matFile struct {
	order byteOrder
	buf   []byte
}

func newMATFile(order byteOrder) *matFile {
	hdr := make([]byte, 128)
	copy(hdr, "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: test")
	for i := 56; i < 116; i++ {
		hdr[i] = ' '
	}
	order.PutUint16(hdr[124:], 0x0100)
	order.PutUint16(hdr[126:], 'M'<<8|'I') // reads "IM" little-endian, "MI" big-endian
	return &matFile{order: order, buf: hdr}
}

// element encodes one data element, in the small format when it fits.
func (m *matFile) element(typ uint32, data []byte) []byte {
	if len(data) <= 4 && typ != miMATRIX && typ != miCOMPRESSED {
		b := m.order.AppendUint32(nil, uint32(len(data))<<16|typ)
		return append(b, append(data, make([]byte, 4-len(data))...)...)
	}
	b := m.order.AppendUint32(nil, typ)
	b = m.order.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	if typ != miCOMPRESSED {
		b = append(b, make([]byte, padding(len(data)))...)
	}
	return b
}

// matrix encodes a miMATRIX element; data is already in storage type typ.
func (m *matFile) matrix(name string, class MATClass, flags uint32, dims []int, typ uint32, data []byte) []byte {
	fl := m.order.AppendUint32(nil, uint32(class)|flags)
	fl = m.order.AppendUint32(fl, 0)
	var d []byte
	for _, v := range dims {
		d = m.order.AppendUint32(d, uint32(v))
	}
	body := m.element(miUINT32, fl)
	body = append(body, m.element(miINT32, d)...)
	body = append(body, m.element(miINT8, []byte(name))...)
	if data != nil {
		body = append(body, m.element(typ, data)...)
	}
	return m.element(miMATRIX, body)
}

func (m *matFile) doubles(v []float64) []byte {
	var b []byte
	for _, x := range v {
		b = m.order.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

// add appends an element, zlib-compressed when compress is set.
func (m *matFile) add(elem []byte, compress bool) *matFile {
	if compress {
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(elem)
		zw.Close()
		elem = m.element(miCOMPRESSED, z.Bytes())
	}
	m.buf = append(m.buf, elem...)
	return m
}

// svhnPixels returns n test images, 3×32×32 NCHW, each pixel distinct-ish.
func svhnPixels(n int) []byte {
	p := make([]byte, n*3*32*32)
	for i := range p {
		p[i] = byte(i*7 + i/1024)
	}
	return p
}

// svhnX converts NCHW pixels to SVHN's column-major 32×32×3×N.
func svhnX(nchw []byte) []byte {
	x := make([]byte, len(nchw))
	for p := 0; p < len(x); p += 1024 {
		for row := range 32 {
			for col := range 32 {
				x[p+col*32+row] = nchw[p+row*32+col]
			}
		}
	}
	return x
}

// svhnMAT writes an SVHN-style file with the given labels (1..10).
func svhnMAT(order byteOrder, compress bool, labels []float64) []byte {
	n := len(labels)
	m := newMATFile(order)
	m.add(m.matrix("X", MATUint8, 0, []int{32, 32, 3, n}, miUINT8, svhnX(svhnPixels(n))), compress)
	m.add(m.matrix("y", MATDouble, 0, []int{n, 1}, miDOUBLE, m.doubles(labels)), compress)
	return m.buf
}

func TestReadMAT(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	good := svhnMAT(le, false, []float64{1, 10, 3})
	goodZ := svhnMAT(le, true, []float64{1, 10, 3})
	mixed := func() []byte { // y stored as miUINT8 (as MATLAB does) plus a char variable
		m := newMATFile(le)
		m.add(m.matrix("note", 4, 0, []int{1, 2}, miUINT16, []byte{'h', 0, 'i', 0}), false)
		m.add(m.matrix("y", MATDouble, 0, []int{3, 1}, miUINT8, []byte{1, 10, 3}), true)
		return m.buf
	}()
	badHeader := slices.Clone(good)
	copy(badHeader, "MATLAB 4.0")
	v73 := slices.Clone(good)
	copy(v73, "MATLAB 7.3 MAT-file")
	badEndian := slices.Clone(good)
	copy(badEndian[126:], "XX")
	badZlib := slices.Clone(goodZ)
	badZlib[len(badZlib)-30] ^= 0xff
	complexArr := func() []byte {
		m := newMATFile(le)
		return m.add(m.matrix("y", MATDouble, 0x0800, []int{1, 1}, miDOUBLE, m.doubles([]float64{1})), false).buf
	}()
	sizeMismatch := func() []byte {
		m := newMATFile(le)
		return m.add(m.matrix("y", MATDouble, 0, []int{4, 1}, miDOUBLE, m.doubles([]float64{1, 2, 3})), false).buf
	}()

	tests := []struct {
		name    string
		file    []byte
		want    map[string][]float64 // expected double variables
		wantErr string
	}{
		{"uncompressed little-endian", good, map[string][]float64{"y": {1, 10, 3}}, ""},
		{"compressed", goodZ, map[string][]float64{"y": {1, 10, 3}}, ""},
		{"big-endian", svhnMAT(be, false, []float64{2, 4}), map[string][]float64{"y": {2, 4}}, ""},
		{"big-endian compressed", svhnMAT(be, true, []float64{2, 4}), map[string][]float64{"y": {2, 4}}, ""},
		{"double stored as uint8, char skipped", mixed, map[string][]float64{"y": {1, 10, 3}}, ""},
		{"header only", good[:128], map[string][]float64{}, ""},
		{"wrong header", badHeader, nil, "not a level-5 MAT-file"},
		{"v7.3", v73, nil, "HDF5"},
		{"bad endian", badEndian, nil, "bad MAT endian indicator"},
		{"short header", good[:100], nil, "truncated MAT header: 100 of 128 bytes"},
		{"truncated tag", good[:132], nil, "truncated element tag: 4 of 8 bytes"},
		{"truncated data", good[:len(good)-20], nil, "truncated element of type 14"},
		{"truncated compressed", goodZ[:len(goodZ)-20], nil, "truncated element of type 15"},
		{"corrupt zlib", badZlib, nil, "element 1 (compressed)"},
		{"complex", complexArr, nil, "complex arrays are not supported"},
		{"size mismatch", sizeMismatch, nil, "dimensions [4 1] need 4 values, data holds 24 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars, err := ReadMAT(bytes.NewReader(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]float64{}
			for _, v := range vars {
				if v.Class == MATDouble {
					got[v.Name] = v.Float64
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got variables %v, want %v", got, tt.want)
			}
			for name, w := range tt.want {
				if !slices.Equal(got[name], w) {
					t.Errorf("%s = %v, want %v", name, got[name], w)
				}
			}
		})
	}
}

func TestLoadSVHN(t *testing.T) {
	le := binary.LittleEndian
	noY := func() []byte {
		m := newMATFile(le)
		return m.add(m.matrix("X", MATUint8, 0, []int{32, 32, 3, 1}, miUINT8, svhnPixels(1)), true).buf
	}()
	wrongClass := func() []byte {
		m := newMATFile(le)
		m.add(m.matrix("X", MATDouble, 0, []int{32, 32, 3, 1}, miUINT8, svhnPixels(1)), true)
		return m.add(m.matrix("y", MATDouble, 0, []int{1, 1}, miDOUBLE, m.doubles([]float64{1})), true).buf
	}()
	wrongDims := func() []byte {
		m := newMATFile(le)
		m.add(m.matrix("X", MATUint8, 0, []int{32, 3, 32, 1}, miUINT8, svhnPixels(1)), true)
		return m.add(m.matrix("y", MATDouble, 0, []int{1, 1}, miDOUBLE, m.doubles([]float64{1})), true).buf
	}()
	countMismatch := func() []byte {
		m := newMATFile(le)
		m.add(m.matrix("X", MATUint8, 0, []int{32, 32, 3, 2}, miUINT8, svhnPixels(2)), false)
		return m.add(m.matrix("y", MATDouble, 0, []int{1, 1}, miDOUBLE, m.doubles([]float64{1})), false).buf
	}()
	tests := []struct {
		name    string
		file    []byte
		labels  []int
		wantErr string
	}{
		{"uncompressed", svhnMAT(le, false, []float64{10, 1, 9}), []int{0, 1, 9}, ""},
		{"compressed", svhnMAT(le, true, []float64{3, 10}), []int{3, 0}, ""},
		{"missing y", noY, nil, "no variable y"},
		{"X not uint8", wrongClass, nil, "variable X is double, want uint8"},
		{"X wrong dimensions", wrongDims, nil, "variable X has dimensions [32 3 32 1]"},
		{"empty file", nil, nil, "truncated MAT header: 0 of 128 bytes"},
		{"label count", countMismatch, nil, "variable X has 2 images but y has 1 labels"},
		{"label 0", svhnMAT(le, true, []float64{0}), nil, "label y(1) = 0"},
		{"label 2.5", svhnMAT(le, false, []float64{1, 2.5}), nil, "label y(2) = 2.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, filepath.Join(dir, "test_32x32.mat"), tt.file)
			set, err := Load("svhn:"+dir, "test")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if set.N != len(tt.labels) || set.C != 3 || set.H != 32 || set.W != 32 || !slices.Equal(set.Labels, tt.labels) {
				t.Fatalf("got %d×%d×%d×%d labels %v", set.N, set.C, set.H, set.W, set.Labels)
			}
			if !bytes.Equal(set.Pixels, svhnPixels(set.N)) {
				t.Fatal("pixels differ from the NCHW images written")
			}
			if len(set.Classes) != 10 || set.Classes[0] != "0" {
				t.Fatalf("classes %v", set.Classes)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := Load("svhn:"+t.TempDir(), "train")
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "train_32x32.mat") {
			t.Fatalf("err = %v, want ErrMissing naming train_32x32.mat", err)
		}
	})
}

// FuzzReadMAT checks that no input makes the MAT parser panic.
func FuzzReadMAT(f *testing.F) {
	le := binary.LittleEndian
	f.Add(svhnMAT(le, false, []float64{1}))
	f.Add(svhnMAT(le, true, []float64{1, 2}))
	f.Add(svhnMAT(binary.BigEndian, false, []float64{1})[:300])
	f.Fuzz(func(t *testing.T, b []byte) {
		vars, err := ReadMAT(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, v := range vars {
			n := 1
			for _, d := range v.Dims {
				n *= d
			}
			if (v.Uint8 != nil && len(v.Uint8) != n) || (v.Float64 != nil && len(v.Float64) != n) {
				t.Fatalf("%s: dims %v but %d/%d values", v.Name, v.Dims, len(v.Uint8), len(v.Float64))
			}
		}
	})
}
