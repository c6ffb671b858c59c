package data

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR-10 binary version (cifar-10-binary.tar.gz): each batch file is a
// sequence of 3073-byte records, one label byte (0..9) then 3072 pixel bytes,
// the 32×32 red plane, then green, then blue, rows first; that is already
// CHW order. batches.meta.txt names the classes, one per line.
const (
	cifarSide   = 32
	cifarPixels = 3 * cifarSide * cifarSide
	cifarRecord = 1 + cifarPixels
)

// cifarBatches names the batch files of each split.
var cifarBatches = map[string][]string{
	"train": {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
	"test":  {"test_batch.bin"},
}

// cifarClasses are CIFAR-10's class names, used when batches.meta.txt is absent.
var cifarClasses = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// loadCIFAR10 reads a split of CIFAR-10 from dir, or from
// dir/cifar-10-batches-bin where the archive was unpacked into dir.
func loadCIFAR10(dir, split string) (*Set, error) {
	if st, err := os.Stat(filepath.Join(dir, "cifar-10-batches-bin")); err == nil && st.IsDir() {
		dir = filepath.Join(dir, "cifar-10-batches-bin")
	}
	classes, err := readCIFARMeta(filepath.Join(dir, "batches.meta.txt"))
	if err != nil {
		return nil, err
	}
	var (
		pixels []uint8
		labels []int
		files  []File
	)
	for _, name := range cifarBatches[split] {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cifar10: %w: %v (download cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it)", ErrMissing, err)
		}
		if err != nil {
			return nil, err
		}
		if pixels == nil { // all batches are the same size in the official data
			pixels = make([]uint8, 0, len(cifarBatches[split])*len(b)/cifarRecord*cifarPixels)
		}
		if pixels, labels, err = appendCIFARBatch(pixels, labels, b, len(classes)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		files = append(files, File{Path: path})
	}
	set := newSet(pixels, labels, classes, len(labels), 3, cifarSide, cifarSide)
	set.Files = files
	return set, nil
}

// appendCIFARBatch appends the records of one batch file's bytes.
func appendCIFARBatch(pixels []uint8, labels []int, b []byte, classes int) ([]uint8, []int, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("empty batch file")
	}
	if rem := len(b) % cifarRecord; rem != 0 {
		return nil, nil, fmt.Errorf("truncated record %d: %d of %d bytes (file size %d is not a multiple of %d)", len(b)/cifarRecord, rem, cifarRecord, len(b), cifarRecord)
	}
	for i := 0; i < len(b); i += cifarRecord {
		if int(b[i]) >= classes {
			return nil, nil, fmt.Errorf("record %d: label %d out of range (%d classes)", i/cifarRecord, b[i], classes)
		}
		labels = append(labels, int(b[i]))
		pixels = append(pixels, b[i+1:i+cifarRecord]...)
	}
	return pixels, labels, nil
}

// readCIFARMeta reads the class names, one per non-empty line; without the
// file, the standard CIFAR-10 names are used.
func readCIFARMeta(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cifarClasses, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var classes []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" {
			classes = append(classes, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(classes) == 0 || len(classes) > 256 {
		return nil, fmt.Errorf("%s: %d class names, want 1 to 256", path, len(classes))
	}
	return classes, nil
}
