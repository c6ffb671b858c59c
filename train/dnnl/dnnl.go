//go:build cgo && linux && amd64 && dnnl

// Package dnnl is the training engine's fast path on oneDNN (Debian's
// libdnnl-dev, which scripts/setup.sh installs; built with -tags dnnl,
// which make adds when the library is there): single convolution steps for
// the measured decision (docs/benchmarks.md), and Net, a whole encoder's
// Langevin, parameter and score matching's second-order steps, each held
// to the ONNX Runtime graphs the trainer builds.
package dnnl

/*
#cgo CFLAGS: -fopenmp
#cgo LDFLAGS: -ldnnl -lmvec -lm -fopenmp
#include <stdlib.h>
#include "conv.h"
#include "net.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// Available reports whether this build can run oneDNN.
const Available = true

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
	c := &Conv{Op: op, Shape: s, sizes: sizes}
	for i, n := range sizes {
		c.bufs[i] = C.calloc(C.size_t(n), 4)
	}
	msg := (*C.char)(C.calloc(256, 1))
	defer C.free(unsafe.Pointer(msg))
	c.cv = C.conv_new(C.int(op), C.int(s.N), C.int(s.C), C.int(s.H), C.int(s.W), C.int(s.O), C.int(s.K),
		C.int(s.Stride), C.int(s.Pad), (*C.float)(c.bufs[0]), (*C.float)(c.bufs[1]), (*C.float)(c.bufs[2]), msg)
	if c.cv == nil {
		c.Close()
		return nil, errors.New(C.GoString(msg))
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
	if C.conv_run(c.cv) != 0 {
		return errors.New("dnnl: run failed")
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
		C.free(b)
	}
}

// Net is E(x), ∂E/∂x and the weighted ∂E/∂θ of an encoder (convolutions,
// dense layers, Swish after each, then the head: a CEBM's (t1, s) with the
// N(0, I) prior, or an IGEBM's scalar energy) on oneDNN, for a fixed batch
// size: contrastive divergence's Langevin and parameter steps and score
// matching's second-order step (ScoreParamGrad).
type Net struct {
	nt     *C.net
	n, per int
	energy []float32
	dx     []float32
	// ∂W, ∂b per layer: C buffers net_param_grad writes, and Go copies.
	cgrads  []unsafe.Pointer // [dw0, db0, dw1, db1, …]
	cptrs   unsafe.Pointer   // two C arrays of float*: dw pointers, then db pointers
	grads   [][]float32
	weights []float32 // the per-image loss weights, C memory
	prior   int       // GMM-CEBM: values of μ (and of log σ), k·latent; 0 otherwise
	cprior  [2]unsafe.Pointer
	v       []float32 // ScoreParamGrad's direction, C memory
	// afterEnergyGrad: the network holds EnergyGrad's activations and
	// gradients, which ScoreParamGrad reuses.
	afterEnergyGrad bool
}

// ConvLayer is one convolution of a Net.
type ConvLayer struct{ Out, Kernel, Stride, Pad int }

// NewNet builds the network for batches of n images of c×h×w; latent 0
// makes an IGEBM (a scalar energy head), components > 0 a GMM-CEBM with
// that many prior components (its μ and log σ follow the network's
// parameters in SetParams and ParamGrad, as in the trainer). Every step
// runs on threads threads (0: the cores the process may run on).
func NewNet(n, c, h, w int, convs []ConvLayer, hidden []int, latent, components, threads int) (*Net, error) {
	if len(convs) == 0 || len(hidden) == 0 {
		return nil, errors.New("dnnl: a Net needs convolutions and at least one dense layer")
	}
	spec := make([]C.int, 0, 4*len(convs))
	for _, l := range convs {
		spec = append(spec, C.int(l.Out), C.int(l.Kernel), C.int(l.Stride), C.int(l.Pad))
	}
	widths := make([]C.int, len(hidden))
	for i, h := range hidden {
		widths[i] = C.int(h)
	}
	if threads <= 0 {
		threads = runtime.NumCPU() // the process's CPU affinity mask
	}
	msg := (*C.char)(C.calloc(256, 1))
	defer C.free(unsafe.Pointer(msg))
	nt := C.net_new(C.int(n), C.int(c), C.int(h), C.int(w), C.int(len(convs)), &spec[0], C.int(len(hidden)), &widths[0], C.int(latent), C.int(components), C.int(threads), msg)
	if nt == nil {
		return nil, errors.New(C.GoString(msg))
	}
	nn := &Net{nt: nt, n: n, per: c * h * w, energy: make([]float32, n), dx: make([]float32, n*c*h*w)}
	layers := int(C.net_layers(nt))
	ptrs := (*[1 << 20]*C.float)(C.calloc(C.size_t(2*layers), C.size_t(unsafe.Sizeof((*C.float)(nil)))))
	nn.cptrs = unsafe.Pointer(ptrs)
	for i := range layers {
		var ws, bs C.long
		C.net_layer_sizes(nt, C.int(i), &ws, &bs)
		for k, size := range []C.long{ws, bs} {
			buf := C.calloc(C.size_t(size), 4)
			nn.cgrads = append(nn.cgrads, buf)
			ptrs[k*layers+i] = (*C.float)(buf)
			nn.grads = append(nn.grads, make([]float32, size))
		}
	}
	nn.weights = unsafe.Slice((*float32)(C.calloc(C.size_t(2*n), 4)), 2*n)
	nn.v = unsafe.Slice((*float32)(C.calloc(C.size_t(n*c*h*w), 4)), n*c*h*w)
	if components > 0 {
		nn.prior = components * latent
		for i := range nn.cprior {
			nn.cprior[i] = C.calloc(C.size_t(nn.prior), 4)
			nn.grads = append(nn.grads, make([]float32, nn.prior))
		}
	}
	runtime.SetFinalizer(nn, (*Net).Close)
	return nn, nil
}

// ParamGrad returns E(x) and Σ_i (a_i + b_i·E_i)·∂E_i/∂θ for every layer's
// weight and bias, in the trainer's order and plain layouts (the results
// are reused by the next call).
func (nn *Net) ParamGrad(x, a, b []float32) (energy []float32, grads [][]float32, err error) {
	if len(x) != nn.n*nn.per || len(a) != nn.n || len(b) != nn.n {
		return nil, nil, fmt.Errorf("dnnl: %d values, %d and %d weights for a batch of %d images of %d", len(x), len(a), len(b), nn.n, nn.per)
	}
	copy(nn.weights, a)
	copy(nn.weights[nn.n:], b)
	nn.afterEnergyGrad = false
	layers := int(C.net_layers(nn.nt))
	ptrs := (*[1 << 20]*C.float)(nn.cptrs)
	if C.net_param_grad(nn.nt, (*C.float)(&x[0]), (*C.float)(&nn.weights[0]), (*C.float)(&nn.weights[nn.n]),
		(*C.float)(&nn.energy[0]), &ptrs[0], &ptrs[layers], (*C.float)(nn.cprior[0]), (*C.float)(nn.cprior[1])) != 0 {
		return nil, nil, errors.New("dnnl: run failed")
	}
	return nn.energy, nn.copyGrads(), nil
}

// ScoreParamGrad returns ∂/∂θ of Σ_i ⟨∂E_i/∂x, v_i⟩ at the x of the
// EnergyGrad call just before it (whose activations it reuses), in
// ParamGrad's order and layouts: the second-order step of denoising score
// matching, whose loss gradient is this with v_i = w_i·σ_i·r_i. The
// results are reused by the next call.
func (nn *Net) ScoreParamGrad(v []float32) ([][]float32, error) {
	if len(v) != nn.n*nn.per {
		return nil, fmt.Errorf("dnnl: %d values for a batch of %d images of %d", len(v), nn.n, nn.per)
	}
	if !nn.afterEnergyGrad {
		return nil, errors.New("dnnl: ScoreParamGrad needs EnergyGrad at the same images just before it")
	}
	copy(nn.v, v)
	layers := int(C.net_layers(nn.nt))
	ptrs := (*[1 << 20]*C.float)(nn.cptrs)
	if C.net_score_param_grad(nn.nt, (*C.float)(&nn.v[0]), &ptrs[0], &ptrs[layers], (*C.float)(nn.cprior[0]), (*C.float)(nn.cprior[1])) != 0 {
		return nil, errors.New("dnnl: run failed")
	}
	return nn.copyGrads(), nil
}

// copyGrads copies the C gradient buffers into nn.grads.
func (nn *Net) copyGrads() [][]float32 {
	layers := int(C.net_layers(nn.nt))
	ptrs := (*[1 << 20]*C.float)(nn.cptrs)
	for i := range layers {
		copy(nn.grads[2*i], unsafe.Slice((*float32)(unsafe.Pointer(ptrs[i])), len(nn.grads[2*i])))
		copy(nn.grads[2*i+1], unsafe.Slice((*float32)(unsafe.Pointer(ptrs[layers+i])), len(nn.grads[2*i+1])))
	}
	for i, p := range nn.cprior {
		if p != nil {
			copy(nn.grads[2*layers+i], unsafe.Slice((*float32)(p), nn.prior))
		}
	}
	return nn.grads
}

// Energy returns E(x) for a batch of the Net's size; the result is reused
// by the next call.
func (nn *Net) Energy(x []float32) ([]float32, error) {
	if len(x) != nn.n*nn.per {
		return nil, fmt.Errorf("dnnl: %d values for a batch of %d images of %d", len(x), nn.n, nn.per)
	}
	nn.afterEnergyGrad = false
	if C.net_energy(nn.nt, (*C.float)(&x[0]), (*C.float)(&nn.energy[0])) != 0 {
		return nil, errors.New("dnnl: run failed")
	}
	return nn.energy, nil
}

// SetParams takes the network's parameters in the trainer's order (weight,
// bias per layer) and plain layouts.
func (nn *Net) SetParams(params [][]float32) error {
	layers := int(C.net_layers(nn.nt))
	want := 2 * layers
	if nn.prior > 0 {
		want += 2
	}
	if len(params) != want {
		return fmt.Errorf("dnnl: %d parameter tensors, want %d", len(params), want)
	}
	nn.afterEnergyGrad = false
	for i := range layers {
		if C.net_set_layer(nn.nt, C.int(i), (*C.float)(&params[2*i][0]), (*C.float)(&params[2*i+1][0])) != 0 {
			return fmt.Errorf("dnnl: setting layer %d failed", i)
		}
	}
	if nn.prior > 0 {
		mu, ls := params[2*layers], params[2*layers+1]
		if len(mu) != nn.prior || len(ls) != nn.prior {
			return fmt.Errorf("dnnl: prior of %d and %d values, want %d", len(mu), len(ls), nn.prior)
		}
		if C.net_set_prior(nn.nt, (*C.float)(&mu[0]), (*C.float)(&ls[0])) != 0 {
			return errors.New("dnnl: setting the prior failed")
		}
	}
	return nil
}

// EnergyGrad returns E(x) and ∂ΣE/∂x for a batch of the Net's size; the
// results are reused by the next call.
func (nn *Net) EnergyGrad(x []float32) (energy, dx []float32, err error) {
	if len(x) != nn.n*nn.per {
		return nil, nil, fmt.Errorf("dnnl: %d values for a batch of %d images of %d", len(x), nn.n, nn.per)
	}
	nn.afterEnergyGrad = false
	if C.net_energy_grad(nn.nt, (*C.float)(&x[0]), (*C.float)(&nn.energy[0]), (*C.float)(&nn.dx[0])) != 0 {
		return nil, nil, errors.New("dnnl: run failed")
	}
	nn.afterEnergyGrad = true
	return nn.energy, nn.dx, nil
}

// Close frees the network.
func (nn *Net) Close() {
	if nn.nt == nil {
		return
	}
	C.net_free(nn.nt)
	nn.nt = nil
	for _, b := range nn.cgrads {
		C.free(b)
	}
	C.free(nn.cptrs)
	C.free(unsafe.Pointer(&nn.weights[0]))
	C.free(unsafe.Pointer(&nn.v[0]))
	for _, p := range nn.cprior {
		C.free(p) // free(NULL) does nothing
	}
}
