package data

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register JPEG for image.Decode
	_ "image/png"  // register PNG for image.Decode
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// An image folder (folder:DIR) holds one sub-folder per class, named after
// the class, each holding PNG or JPEG images:
//
//	DIR/cat/001.png
//	DIR/dog/001.jpg
//
// If DIR has a "train" or "test" sub-folder, each split is read from the
// sub-folder of that name (DIR/train/cat/001.png); otherwise all of DIR is the
// "train" split and there is no "test" split ([ErrNoSplit]).
//
// Classes are the sub-folder names in sorted order; images within a class are
// read in sorted file-name order. Every image must have the same width and
// height. If all images are grayscale the set has 1 channel, otherwise 3
// (RGB; grayscale images are repeated in each channel, alpha is dropped).
// Files and folders whose names start with "." are ignored, as are plain
// files directly in the split folder (README, LICENSE); every other file in
// a class folder must be a PNG or JPEG image, or loading fails naming it.

// maxFolderImageSide bounds image width and height, checked from the file
// header before decoding, so that a hostile file cannot exhaust memory.
const maxFolderImageSide = 4096

// loadFolder reads a split of an image folder.
func loadFolder(dir, split string) (*Set, error) {
	root, err := folderSplitDir(dir, split)
	if err != nil {
		return nil, err
	}
	classes, files, err := listClassFiles(root)
	if err != nil {
		return nil, err
	}

	// First pass: headers only, to find the size and channel count and to
	// reject odd images before decoding anything.
	var h, w, c int
	c = 1
	for i, f := range files {
		cfg, err := decodeConfig(f.path)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			w, h = cfg.Width, cfg.Height
			if w <= 0 || h <= 0 || w > maxFolderImageSide || h > maxFolderImageSide {
				return nil, fmt.Errorf("%s: bad image dimensions %d×%d (each side must be 1..%d)", f.path, w, h, maxFolderImageSide)
			}
		} else if cfg.Width != w || cfg.Height != h {
			return nil, fmt.Errorf("%s: image is %d×%d, but %s is %d×%d; all images must be the same size", f.path, cfg.Width, cfg.Height, files[0].path, w, h)
		}
		if cfg.ColorModel != color.GrayModel && cfg.ColorModel != color.Gray16Model {
			c = 3
		}
	}

	size := c * h * w
	pixels := make([]uint8, len(files)*size)
	labels := make([]int, len(files))
	for i, f := range files {
		if err := decodeInto(f.path, pixels[i*size:(i+1)*size], c, h, w); err != nil {
			return nil, err
		}
		labels[i] = f.label
	}
	set := newSet(pixels, labels, classes, len(files), c, h, w)
	set.Files = []File{{Path: root}}
	return set, nil
}

// folderSplitDir returns the folder that holds a split's class folders.
func folderSplitDir(dir, split string) (string, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("folder: %w: %v", ErrMissing, err)
	}
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s: not a folder", dir)
	}
	isDir := func(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }
	if isDir(filepath.Join(dir, "train")) || isDir(filepath.Join(dir, "test")) {
		if sub := filepath.Join(dir, split); isDir(sub) {
			return sub, nil
		}
		return "", fmt.Errorf("%s: %w %q (no %s sub-folder)", dir, ErrNoSplit, split, split)
	}
	if split != "train" {
		return "", fmt.Errorf("%s: %w %q (no train/test sub-folders, so the whole folder is the train split)", dir, ErrNoSplit, split)
	}
	return dir, nil
}

type classFile struct {
	path  string
	label int
}

// listClassFiles lists the class folders of root and the files in each.
func listClassFiles(root string) ([]string, []classFile, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, err
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	if len(classes) == 0 {
		return nil, nil, fmt.Errorf("%s: no class sub-folders", root)
	}
	slices.Sort(classes)
	var files []classFile
	for label, class := range classes {
		dir := filepath.Join(root, class)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, err
		}
		n := 0
		for _, e := range entries { // ReadDir sorts by name
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if e.IsDir() {
				return nil, nil, fmt.Errorf("%s: nested folder in class %q (want only images)", path, class)
			}
			files = append(files, classFile{path: path, label: label})
			n++
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("%s: class %q has no images", dir, class)
		}
	}
	return classes, files, nil
}

func decodeConfig(path string) (image.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, err
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return image.Config{}, fmt.Errorf("%s: not a PNG or JPEG image: %w", path, err)
	}
	if format != "png" && format != "jpeg" {
		return image.Config{}, fmt.Errorf("%s: %s image, want PNG or JPEG", path, format)
	}
	return cfg, nil
}

// decodeInto decodes an image into dst as c planes of h×w bytes.
func decodeInto(path string, dst []uint8, c, h, w int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return fmt.Errorf("%s: cannot decode: %w", path, err)
	}
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		return fmt.Errorf("%s: decoded size %d×%d differs from its header %d×%d", path, b.Dx(), b.Dy(), w, h)
	}
	plane := h * w
	for y := range h {
		for x := range w {
			at := img.At(b.Min.X+x, b.Min.Y+y)
			if c == 1 {
				dst[y*w+x] = color.GrayModel.Convert(at).(color.Gray).Y
				continue
			}
			p := color.NRGBAModel.Convert(at).(color.NRGBA)
			dst[y*w+x], dst[plane+y*w+x], dst[2*plane+y*w+x] = p.R, p.G, p.B
		}
	}
	return nil
}
