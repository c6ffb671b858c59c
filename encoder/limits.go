package encoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
)

// Limits bound what an upload may be; [Inspect] checks them on the image's
// header, before anything is decoded. A zero field is no bound.
type Limits struct {
	MaxPixels int     // width × height
	MaxSide   int     // the longer side, in pixels
	MaxAspect float64 // the longer side over the shorter
}

// DefaultLimits are generous for any picture of a digit or a garment, and
// refuse the shapes that cost memory without being one: a 16777216 × 1
// image has few pixels but no use.
var DefaultLimits = Limits{MaxPixels: 16 << 20, MaxSide: 8192, MaxAspect: 64}

// Header is what an upload's header tells before it is decoded.
type Header struct {
	Format        string // "png" or "jpeg"
	Width, Height int
	// DecodeBytes bounds the memory [Preprocess] allocates for the image:
	// the decoder's pixels (and, for interlaced PNG and progressive JPEG,
	// its working copies), plus a fixed allowance for its tables and the
	// shrunken copy.
	DecodeBytes int64
}

// decodeOverhead is what decoding allocates besides the pixels: the
// decoders' tables and buffers (some 100 KiB), and the reduced image and
// its sums (32 bytes a pixel of reduceMultiple² times the model's input:
// 400 KiB for 28×28).
const decodeOverhead = 1 << 20

// Inspect reads an upload's header, checks it against lim and bounds what
// decoding it costs. Its errors wrap ErrUnsupported, ErrUndecodable or
// ErrTooLarge (a *SizeError).
func Inspect(b []byte, lim Limits) (Header, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return Header{}, ErrUnsupported
		}
		return Header{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if format != "png" && format != "jpeg" {
		return Header{}, ErrUnsupported
	}
	w, h := cfg.Width, cfg.Height
	if w < 1 || h < 1 {
		return Header{}, fmt.Errorf("%w: empty image", ErrUndecodable)
	}
	long, short := max(w, h), min(w, h)
	side := "wide"
	if h > w {
		side = "high"
	}
	switch {
	case lim.MaxSide > 0 && long > lim.MaxSide:
		return Header{}, &SizeError{fmt.Sprintf("is %d pixels %s, more than %d", long, side, lim.MaxSide)}
	case lim.MaxAspect > 0 && float64(long) > lim.MaxAspect*float64(short):
		return Header{}, &SizeError{fmt.Sprintf("is %d×%d, an aspect ratio above %g:1", w, h, lim.MaxAspect)}
	case lim.MaxPixels > 0 && int64(w)*int64(h) > int64(lim.MaxPixels):
		return Header{}, &SizeError{fmt.Sprintf("is %d×%d, more than %d pixels", w, h, lim.MaxPixels)}
	}
	var per float64 // bytes per (padded) pixel, and the padded size
	pw, ph := float64(w), float64(h)
	if format == "png" {
		per = pngBytesPerPixel(b)
		pw++ // a filter byte per row, and the decoder's two row buffers
		ph += 2
	} else {
		per = jpegBytesPerPixel(b, cfg.ColorModel)
		pw, ph = pw+32, ph+32 // whole MCUs of up to 32×32 pixels
	}
	cost := per*pw*ph + decodeOverhead
	if cost > math.MaxInt64/2 {
		cost = math.MaxInt64 / 2
	}
	return Header{Format: format, Width: w, Height: h, DecodeBytes: int64(cost)}, nil
}

// pngBytesPerPixel is what Go's PNG decoder allocates per pixel of b, a
// PNG whose header decodes: the image it returns (transparency by tRNS
// turns grey or RGB into NRGBA), twice for an interlaced image (each pass
// is decoded into an image of its own first).
func pngBytesPerPixel(b []byte) float64 {
	depth, ctype, interlaced := b[24], b[25], b[28] == 1
	trns := false
	for i := 8; i+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		if typ == "IDAT" || n > len(b) {
			break
		}
		if typ == "tRNS" {
			trns = true
		}
		i += 12 + n
	}
	var per float64
	switch {
	case ctype == 3: // paletted
		per = 1
	case ctype == 0 && !trns: // grey
		per = float64(max(1, depth/8))
	case depth == 16:
		per = 8
	default:
		per = 4
	}
	if interlaced {
		per *= 2
	}
	return per
}

// jpegBytesPerPixel bounds what Go's JPEG decoder allocates per pixel of
// b: a byte per component (as if none were subsampled), four more per
// component for a progressive image's coefficients, and four for the
// conversion of RGB or CMYK data.
func jpegBytesPerPixel(b []byte, m color.Model) float64 {
	comps := 3.0
	switch m {
	case color.GrayModel:
		comps = 1
	case color.CMYKModel:
		comps = 4
	}
	per := comps
	if jpegProgressive(b) {
		per += 4 * comps
	}
	if m == color.RGBAModel || m == color.CMYKModel {
		per += 4
	}
	return per
}

// jpegProgressive reports whether b's first frame header is progressive
// (SOF2), reading the markers before it.
func jpegProgressive(b []byte) bool {
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return false
		}
		m := b[i+1]
		switch {
		case m == 0xff: // fill byte
			i++
			continue
		case m == 0x01 || m >= 0xd0 && m <= 0xd8: // no length
			i += 2
			continue
		case m == 0xda || m == 0xd9: // scan data or end before a frame
			return false
		case m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc:
			return m == 0xc2
		}
		i += 2 + int(binary.BigEndian.Uint16(b[i+2:]))
	}
	return false
}
