package data

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cifarBatch encodes CIFAR-10 records: one label byte, then 3072 pixels.
func cifarBatch(labels []byte, firstPixel byte) []byte {
	var b []byte
	for i, l := range labels {
		b = append(b, l)
		for p := range cifarPixels {
			b = append(b, firstPixel+byte(i)+byte(p))
		}
	}
	return b
}

// writeCIFAR writes a CIFAR-10 folder with 2 images per training batch and
// 3 test images.
func writeCIFAR(t *testing.T, dir string, meta string) {
	t.Helper()
	for i, name := range cifarBatches["train"] {
		writeFile(t, filepath.Join(dir, name), cifarBatch([]byte{byte(i), byte(9 - i)}, byte(10*i)))
	}
	writeFile(t, filepath.Join(dir, "test_batch.bin"), cifarBatch([]byte{3, 1, 4}, 100))
	if meta != "" {
		writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte(meta))
	}
}

func TestLoadCIFAR10(t *testing.T) {
	meta := "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
	t.Run("good", func(t *testing.T) {
		dir := t.TempDir()
		writeCIFAR(t, filepath.Join(dir, "cifar-10-batches-bin"), meta) // as unpacked from the archive
		train, err := Load("cifar10:"+dir, "train")
		if err != nil {
			t.Fatal(err)
		}
		if train.N != 10 || train.C != 3 || train.H != 32 || train.W != 32 || len(train.Files) != 5 {
			t.Fatalf("train: %d×%d×%d×%d from %d files", train.N, train.C, train.H, train.W, len(train.Files))
		}
		if !slices.Equal(train.Labels, []int{0, 9, 1, 8, 2, 7, 3, 6, 4, 5}) || train.Classes[9] != "truck" {
			t.Fatalf("labels %v classes %v", train.Labels, train.Classes)
		}
		test, err := Load("cifar10:"+dir, "test")
		if err != nil {
			t.Fatal(err)
		}
		// Image 1 of the test batch: pixel p (plane R, G, B in turn) is 100+1+p.
		if test.N != 3 || !bytes.Equal(test.Pixel(1), cifarBatch([]byte{0}, 101)[1:]) {
			t.Fatalf("test: %d images, pixel mismatch", test.N)
		}
	})
	t.Run("no meta file: standard names", func(t *testing.T) {
		dir := t.TempDir()
		writeCIFAR(t, dir, "")
		set, err := Load("cifar10:"+dir, "test")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(set.Classes, cifarClasses) {
			t.Fatalf("classes %v", set.Classes)
		}
	})

	tests := []struct {
		name    string
		file    string // test_batch.bin is replaced by content
		content []byte
		wantErr string // the error must also name the file that is at fault
	}{
		{"truncated record", "test_batch.bin", cifarBatch([]byte{1, 2}, 0)[:cifarRecord+100], "test_batch.bin: truncated record 1: 100 of 3073 bytes"},
		{"empty batch", "test_batch.bin", []byte{}, "test_batch.bin: empty batch file"},
		{"label out of range", "test_batch.bin", cifarBatch([]byte{1, 10}, 0), "test_batch.bin: record 1: label 10 out of range"},
		{"empty meta", "batches.meta.txt", []byte("\n\n"), "batches.meta.txt: 0 class names"},
		{"label beyond meta", "batches.meta.txt", []byte("a\nb\n"), "test_batch.bin: record 0: label 3 out of range (2 classes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeCIFAR(t, dir, meta)
			writeFile(t, filepath.Join(dir, tt.file), tt.content)
			_, err := Load("cifar10:"+dir, "test")
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming a file in %s and containing %q", err, dir, tt.wantErr)
			}
		})
	}
	t.Run("missing batch", func(t *testing.T) {
		_, err := Load("cifar10:"+t.TempDir(), "train")
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "data_batch_1.bin") {
			t.Fatalf("err = %v, want ErrMissing naming data_batch_1.bin", err)
		}
	})
}
