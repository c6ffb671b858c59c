//go:build cgo && linux && amd64 && dnnl && dnnlconv

package dnnl

// Single convolution steps, for the tests and benchmarks of the measured
// decision (docs/benchmarks.md) only: built with -tags 'dnnl dnnlconv',
// which make's test and bench targets add; cebm never has them.

/*
#include <stdlib.h>
#include "conv.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Op is a convolution step.
type Op int

// The three steps of a convolution layer in training.
const (
	Forward         Op = C.CONV_FORWARD          // x, w → y
	BackwardData    Op = C.CONV_BACKWARD_DATA    // dy, w → dx
	BackwardWeights Op = C.CONV_BACKWARD_WEIGHTS // x, dy → dw
)

// Shape is a convolution of input [N, C, H, W] by weights [O, C, K, K].
type Shape struct {
	N, C, H, W, O, K, Stride, Pad int
}

// OutHW is the output's spatial size.
func (s Shape) OutHW() (int, int) {
	return (s.H+2*s.Pad-s.K)/s.Stride + 1, (s.W+2*s.Pad-s.K)/s.Stride + 1
}

// Conv is one prepared step over fixed buffers: its two inputs and its
// output, in plain layouts (NCHW, OIHW). The buffers are C memory; fill
// them through In and read Out.
type Conv struct {
	cv       *C.conv
	msg      *C.char // the C side's message buffer
	bufs     [3]unsafe.Pointer
	sizes    [3]int
	Op       Op
	Shape    Shape
	released bool
}

// New prepares op for shape s.
func New(op Op, s Shape) (*Conv, error) {
	oh, ow := s.OutHW()
	x, w, y := s.N*s.C*s.H*s.W, s.O*s.C*s.K*s.K, s.N*s.O*oh*ow
	var sizes [3]int
	switch op {
	case Forward:
		sizes = [3]int{x, w, y}
	case BackwardData:
		sizes = [3]int{y, w, x}
	case BackwardWeights:
		sizes = [3]int{x, y, w}
	default:
		return nil, fmt.Errorf("dnnl: unknown op %d", op)
	}
	if s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.O < 1 || s.K < 1 || s.Stride < 1 || s.Pad < 0 || oh < 1 || ow < 1 {
		return nil, fmt.Errorf("dnnl: convolution %+v: want positive sizes and an output", s)
	}
	c := &Conv{Op: op, Shape: s, sizes: sizes}
	for i, n := range sizes {
		p, err := cAlloc(n, 4)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.bufs[i] = p
	}
	msg, err := cAlloc(C.CONV_ERRLEN, 1)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.msg = (*C.char)(msg)
	c.cv = C.conv_new(C.int(op), C.int(s.N), C.int(s.C), C.int(s.H), C.int(s.W), C.int(s.O), C.int(s.K),
		C.int(s.Stride), C.int(s.Pad), (*C.float)(c.bufs[0]), (*C.float)(c.bufs[1]), (*C.float)(c.bufs[2]), c.msg)
	if c.cv == nil {
		err := fmt.Errorf("dnnl: convolution: %s", C.GoString(c.msg))
		c.Close()
		return nil, err
	}
	runtime.SetFinalizer(c, (*Conv).Close)
	return c, nil
}

// In is input i (0 or 1) of the step, to fill.
func (c *Conv) In(i int) []float32 { return unsafe.Slice((*float32)(c.bufs[i]), c.sizes[i]) }

// Out is the step's output after Run.
func (c *Conv) Out() []float32 { return unsafe.Slice((*float32)(c.bufs[2]), c.sizes[2]) }

// Run runs the step once.
func (c *Conv) Run() error {
	if C.conv_run(c.cv, c.msg) != 0 {
		return fmt.Errorf("dnnl: convolution: %s", C.GoString(c.msg))
	}
	return nil
}

// Close frees the step.
func (c *Conv) Close() {
	if c.released {
		return
	}
	c.released = true
	if c.cv != nil {
		C.conv_free(c.cv)
	}
	for _, b := range c.bufs {
		C.free(b) // free(NULL) does nothing
	}
	C.free(unsafe.Pointer(c.msg))
}
