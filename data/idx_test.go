package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes encodes an unsigned-byte IDX file.
func idxBytes(dims []int, data []byte) []byte {
	b := []byte{0, 0, idxUint8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// counting returns n bytes 0, 1, 2, ... (mod 256).
func counting(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestReadIDXFile(t *testing.T) {
	good := idxBytes([]int{3, 2, 4}, counting(24))
	gz := gzipBytes(t, good)
	tests := []struct {
		name    string
		file    []byte
		wantErr string // "" for success
	}{
		{"raw", good, ""},
		{"gzip", gz, ""},
		{"wrong magic", append([]byte{0, 1}, good[2:]...), "wrong IDX magic 0x00010803"},
		{"int32 elements", append([]byte{0, 0, 0x0c}, good[3:]...), "unsupported IDX element type 0x0c"},
		{"empty", nil, "truncated IDX header: 0 bytes"},
		{"truncated header", good[:9], "truncated IDX header: 3 dimensions need 16 bytes, have 9"},
		{"truncated data", good[:len(good)-1], "truncated IDX data: dimensions [3 2 4] need 24 bytes, have 23"},
		{"trailing bytes", append(slices.Clip(good), 7), "1 bytes after the 24"},
		{"zero dimensions", []byte{0, 0, 8, 0}, "zero dimensions"},
		{"huge dimensions", idxBytes([]int{1 << 30, 1 << 30}, nil), "exceed 2^31 bytes"},
		{"truncated gzip", gz[:len(gz)-12], "truncated gzip stream"},
		{"bad gzip header", append([]byte{0x1f, 0x8b, 0}, good...), "gzip:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(t.TempDir(), "f-idx3-ubyte"), tt.file)
			idx, err := ReadIDXFile(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(idx.Dims, []int{3, 2, 4}) || !bytes.Equal(idx.Data, counting(24)) {
				t.Fatalf("got dims %v data %v", idx.Dims, idx.Data)
			}
		})
	}
}

func TestLoadIDX(t *testing.T) {
	images := idxBytes([]int{3, 2, 2}, counting(12))
	labels := idxBytes([]int{3}, []byte{2, 0, 1})
	classes := []string{"a", "b", "c"}
	tests := []struct {
		name           string
		images, labels []byte
		wantErr        string
	}{
		{"gzip images, raw labels", gzipBytes(t, images), labels, ""},
		{"raw images, gzip labels", images, gzipBytes(t, labels), ""},
		{"labels as images", labels, labels, "images: wrong magic 0x00000801 for an image file"},
		{"images as labels", images, images, "labels: wrong magic 0x00000803 for a label file"},
		{"truncated images", images[:len(images)-3], labels, "images: truncated IDX data"},
		{"truncated labels", images, labels[:len(labels)-1], "labels: truncated IDX data"},
		{"count mismatch", images, idxBytes([]int{2}, []byte{0, 1}), "has 3 images but"},
		{"label out of range", images, idxBytes([]int{3}, []byte{0, 3, 1}), "label 3 of image 1 is out of range"},
		{"zero-size images", idxBytes([]int{3, 0, 2}, nil), labels, "bad image dimensions 0×2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ip := writeFile(t, filepath.Join(dir, "images"), tt.images)
			lp := writeFile(t, filepath.Join(dir, "labels"), tt.labels)
			set, err := LoadIDX(ip, lp, classes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if set.N != 3 || set.C != 1 || set.H != 2 || set.W != 2 || !slices.Equal(set.Labels, []int{2, 0, 1}) {
				t.Fatalf("got %d×%d×%d×%d labels %v", set.N, set.C, set.H, set.W, set.Labels)
			}
			if !bytes.Equal(set.Pixel(1), []byte{4, 5, 6, 7}) || set.Image(1)[0] != float32(4)/127.5-1 {
				t.Fatalf("image 1 = %v / %v", set.Pixel(1), set.Image(1))
			}
		})
	}
}

// FuzzReadIDX checks that no input makes the IDX parser panic, and that
// what it accepts is self-consistent.
func FuzzReadIDX(f *testing.F) {
	f.Add(idxBytes([]int{2, 2, 2}, counting(8)))
	f.Add(idxBytes([]int{3}, []byte{1, 2, 3}))
	f.Add([]byte{0, 0, 8, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := DecodeIDX(b)
		if err != nil {
			return
		}
		size := 1
		for _, d := range idx.Dims {
			size *= d
		}
		if size != len(idx.Data) {
			t.Fatalf("dims %v but %d bytes", idx.Dims, len(idx.Data))
		}
	})
}
