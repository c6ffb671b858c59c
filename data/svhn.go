package data

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SVHN, format 2 (cropped digits, http://ufldl.stanford.edu/housenumbers/):
// train_32x32.mat and test_32x32.mat, level-5 MAT-files holding
//
//	X  uint8, 32×32×3×N, column-major: X(row, col, channel, image)
//	y  double, N×1, labels 1..10, where 10 stands for the digit 0
//
// Labels are mapped to the digits 0..9, so class i is the digit i.
const svhnSide = 32

// loadSVHN reads a split of SVHN from dir.
func loadSVHN(dir, split string) (*Set, error) {
	path := filepath.Join(dir, split+"_32x32.mat")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("svhn: %w: %v (download %s_32x32.mat from http://ufldl.stanford.edu/housenumbers/)", ErrMissing, err, split)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars, err := ReadMAT(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set, err := svhnSet(vars)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	set.Files = []File{{Path: path}}
	return set, nil
}

// svhnSet checks the variables X and y and turns them into a Set.
func svhnSet(vars []*MATArray) (*Set, error) {
	var x, y *MATArray
	for _, v := range vars {
		switch v.Name {
		case "X":
			x = v
		case "y":
			y = v
		}
	}
	switch {
	case x == nil:
		return nil, errors.New("no variable X (the images)")
	case y == nil:
		return nil, errors.New("no variable y (the labels)")
	case x.Class != MATUint8:
		return nil, fmt.Errorf("variable X is %s, want uint8", x.Class)
	case y.Class != MATDouble:
		return nil, fmt.Errorf("variable y is %s, want double", y.Class)
	case len(x.Dims) != 4 || x.Dims[0] != svhnSide || x.Dims[1] != svhnSide || x.Dims[2] != 3:
		return nil, fmt.Errorf("variable X has dimensions %v, want 32×32×3×N", x.Dims)
	case len(y.Dims) != 2 || (y.Dims[0] != 1 && y.Dims[1] != 1):
		return nil, fmt.Errorf("y has dimensions %v, want N×1", y.Dims)
	}
	n := x.Dims[3]
	if len(y.Float64) != n {
		return nil, fmt.Errorf("variable X has %d images but y has %d labels", n, len(y.Float64))
	}
	labels := make([]int, n)
	for i, v := range y.Float64 {
		if v != float64(int(v)) || v < 1 || v > 10 {
			return nil, fmt.Errorf("label y(%d) = %g, want an integer 1..10", i+1, v)
		}
		labels[i] = int(v) % 10 // 10 stands for the digit 0
	}
	// Column-major X(row, col, ch, i) lies at row + 32·col + 1024·ch + 3072·i;
	// NCHW wants row and column swapped within each channel plane.
	const plane = svhnSide * svhnSide
	pixels := make([]uint8, len(x.Uint8))
	for p := 0; p < len(pixels); p += plane {
		src, dst := x.Uint8[p:p+plane], pixels[p:p+plane]
		for col := range svhnSide {
			for row := range svhnSide {
				dst[row*svhnSide+col] = src[col*svhnSide+row]
			}
		}
	}
	return newSet(pixels, labels, digitClasses, n, 3, svhnSide, svhnSide), nil
}
