//go:build cgo && linux && amd64 && dnnl

// Package dnnl is the training engine's fast path on oneDNN (Debian's
// libdnnl-dev, which scripts/setup.sh installs; built with -tags dnnl,
// which make adds when the library is there): Net, a whole encoder's
// Langevin, parameter and score matching's second-order steps, each held
// to the ONNX Runtime graphs the trainer builds (train/engine's parity
// tests). With -tags 'dnnl dnnlconv' (tests and benchmarks only) it also
// has Conv, single convolution steps for the measured decision
// (docs/benchmarks.md).
//
// The C side (net.c) checks every argument, sizes included, and returns a
// status and a message from every entry point; the Go side checks slice
// lengths before it calls and allocations after, so a mistake is an error
// naming it, never memory read or written out of bounds.
package dnnl

/*
#cgo CFLAGS: -fopenmp
#cgo LDFLAGS: -ldnnl -lmvec -lm -fopenmp
#include <stdlib.h>
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

// cAlloc is calloc(n, size), or an error when it fails.
func cAlloc(n int, size uintptr) (unsafe.Pointer, error) {
	p := C.calloc(C.size_t(max(n, 1)), C.size_t(size))
	if p == nil {
		return nil, fmt.Errorf("dnnl: out of memory for %d values of %d bytes", n, size)
	}
	return p, nil
}

// Net is E(x), ∂E/∂x and the weighted ∂E/∂θ of an encoder (convolutions,
// dense layers, Swish after each, then the head: a CEBM's (t1, s) with the
// N(0, I) prior, or an IGEBM's scalar energy) on oneDNN, for a fixed batch
// size: contrastive divergence's Langevin and parameter steps and score
// matching's second-order step (ScoreParamGrad).
type Net struct {
	nt     *C.net
	err    *C.char // the C side's message buffer, NET_ERRLEN bytes
	n, per int
	energy []float32
	dx     []float32
	sizes  [][2]int // each layer's weight and bias sizes
	// ∂W, ∂b per layer: C buffers net_param_grad writes, and Go copies.
	cgrads  []unsafe.Pointer // [dw0, db0, dw1, db1, …]
	cptrs   unsafe.Pointer   // two C arrays of float*: dw pointers, then db pointers
	grads   [][]float32
	weights unsafe.Pointer // the per-image loss weights a, b: 2n floats
	prior   int            // GMM-CEBM: values of μ (and of log σ), k·latent; 0 otherwise
	cprior  [2]unsafe.Pointer
	v       unsafe.Pointer // ScoreParamGrad's direction: n·per floats
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
// runs on threads threads (0: the cores the process may run on). A shape
// oneDNN cannot build is an error naming the layer.
func NewNet(n, c, h, w int, convs []ConvLayer, hidden []int, latent, components, threads int) (*Net, error) {
	if len(convs) == 0 || len(hidden) == 0 {
		return nil, errors.New("dnnl: a Net needs convolutions and at least one dense layer")
	}
	if len(convs)+len(hidden)+1 > C.NET_MAXL {
		return nil, fmt.Errorf("dnnl: %d convolutions and %d dense layers: %d layers in all at most", len(convs), len(hidden), C.NET_MAXL-1)
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
	msg, err := cAlloc(C.NET_ERRLEN, 1)
	if err != nil {
		return nil, err
	}
	nn := &Net{err: (*C.char)(msg), n: n, per: c * h * w}
	nn.nt = C.net_new(C.int(n), C.int(c), C.int(h), C.int(w), C.int(len(convs)), &spec[0], C.int(len(hidden)), &widths[0], C.int(latent), C.int(components), C.int(threads), nn.err)
	if nn.nt == nil {
		err := nn.fail("building the network")
		nn.Close()
		return nil, err
	}
	if err := nn.allocate(latent, components); err != nil {
		nn.Close()
		return nil, err
	}
	runtime.SetFinalizer(nn, (*Net).Close)
	return nn, nil
}

// allocate makes the C buffers of a built network: the gradients, the
// loss weights, the direction and a GMM-CEBM's prior gradients.
func (nn *Net) allocate(latent, components int) error {
	layers := int(C.net_layers(nn.nt))
	p, err := cAlloc(2*layers, unsafe.Sizeof((*C.float)(nil)))
	if err != nil {
		return err
	}
	nn.cptrs = p
	ptrs := unsafe.Slice((**C.float)(p), 2*layers)
	for i := range layers {
		var ws, bs C.long
		if C.net_layer_sizes(nn.nt, C.int(i), &ws, &bs, nn.err) != 0 {
			return nn.fail("layer sizes")
		}
		nn.sizes = append(nn.sizes, [2]int{int(ws), int(bs)})
		for k, size := range []C.long{ws, bs} {
			buf, err := cAlloc(int(size), 4)
			if err != nil {
				return err
			}
			nn.cgrads = append(nn.cgrads, buf)
			ptrs[k*layers+i] = (*C.float)(buf)
			nn.grads = append(nn.grads, make([]float32, size))
		}
	}
	if nn.weights, err = cAlloc(2*nn.n, 4); err != nil {
		return err
	}
	if nn.v, err = cAlloc(nn.n*nn.per, 4); err != nil {
		return err
	}
	nn.energy, nn.dx = make([]float32, nn.n), make([]float32, nn.n*nn.per)
	if components > 0 {
		nn.prior = components * latent
		for i := range nn.cprior {
			if nn.cprior[i], err = cAlloc(nn.prior, 4); err != nil {
				return err
			}
			nn.grads = append(nn.grads, make([]float32, nn.prior))
		}
	}
	return nil
}

// fail is the C side's last message as an error about what.
func (nn *Net) fail(what string) error {
	return fmt.Errorf("dnnl: %s: %s", what, C.GoString(nn.err))
}

// checkBatch checks that x holds a batch of the Net's size.
func (nn *Net) checkBatch(what string, x []float32) error {
	if len(x) != nn.n*nn.per {
		return fmt.Errorf("dnnl: %s: %d values for a batch of %d images of %d", what, len(x), nn.n, nn.per)
	}
	return nil
}

// ParamGrad returns E(x) and Σ_i (a_i + b_i·E_i)·∂E_i/∂θ for every layer's
// weight and bias, in the trainer's order and plain layouts (the results
// are reused by the next call).
func (nn *Net) ParamGrad(x, a, b []float32) (energy []float32, grads [][]float32, err error) {
	if err := nn.checkBatch("ParamGrad", x); err != nil {
		return nil, nil, err
	}
	if len(a) != nn.n || len(b) != nn.n {
		return nil, nil, fmt.Errorf("dnnl: ParamGrad: %d and %d weights for a batch of %d images", len(a), len(b), nn.n)
	}
	w := unsafe.Slice((*float32)(nn.weights), 2*nn.n)
	copy(w, a)
	copy(w[nn.n:], b)
	nn.afterEnergyGrad = false
	layers := len(nn.sizes)
	ptrs := unsafe.Slice((**C.float)(nn.cptrs), 2*layers)
	if C.net_param_grad(nn.nt, (*C.float)(&x[0]), C.long(len(x)), (*C.float)(&w[0]), (*C.float)(&w[nn.n]),
		(*C.float)(&nn.energy[0]), &ptrs[0], &ptrs[layers], (*C.float)(nn.cprior[0]), (*C.float)(nn.cprior[1]), nn.err) != 0 {
		return nil, nil, nn.fail("ParamGrad")
	}
	return nn.energy, nn.copyGrads(), nil
}

// ScoreParamGrad returns ∂/∂θ of Σ_i ⟨∂E_i/∂x, v_i⟩ at the x of the
// EnergyGrad call just before it (whose activations it reuses), in
// ParamGrad's order and layouts: the second-order step of denoising score
// matching, whose loss gradient is this with v_i = w_i·σ_i·r_i. The
// results are reused by the next call.
func (nn *Net) ScoreParamGrad(v []float32) ([][]float32, error) {
	if err := nn.checkBatch("ScoreParamGrad", v); err != nil {
		return nil, err
	}
	if !nn.afterEnergyGrad {
		return nil, errors.New("dnnl: ScoreParamGrad needs EnergyGrad at the same images just before it")
	}
	cv := unsafe.Slice((*float32)(nn.v), len(v))
	copy(cv, v)
	layers := len(nn.sizes)
	ptrs := unsafe.Slice((**C.float)(nn.cptrs), 2*layers)
	if C.net_score_param_grad(nn.nt, (*C.float)(&cv[0]), C.long(len(cv)), &ptrs[0], &ptrs[layers], (*C.float)(nn.cprior[0]), (*C.float)(nn.cprior[1]), nn.err) != 0 {
		return nil, nn.fail("ScoreParamGrad")
	}
	return nn.copyGrads(), nil
}

// copyGrads copies the C gradient buffers into nn.grads.
func (nn *Net) copyGrads() [][]float32 {
	for i, buf := range nn.cgrads {
		copy(nn.grads[i], unsafe.Slice((*float32)(buf), len(nn.grads[i])))
	}
	for i, p := range nn.cprior {
		if p != nil {
			copy(nn.grads[len(nn.cgrads)+i], unsafe.Slice((*float32)(p), nn.prior))
		}
	}
	return nn.grads
}

// Energy returns E(x) for a batch of the Net's size; the result is reused
// by the next call.
func (nn *Net) Energy(x []float32) ([]float32, error) {
	if err := nn.checkBatch("Energy", x); err != nil {
		return nil, err
	}
	nn.afterEnergyGrad = false
	if err := nn.energyC(x, len(x)); err != nil {
		return nil, err
	}
	return nn.energy, nil
}

// energyC is net_energy of the first n values of x (which the C side
// checks against the batch's size).
func (nn *Net) energyC(x []float32, n int) error {
	if C.net_energy(nn.nt, (*C.float)(&x[0]), C.long(n), (*C.float)(&nn.energy[0]), nn.err) != 0 {
		return nn.fail("Energy")
	}
	return nil
}

// SetParams takes the network's parameters in the trainer's order (weight,
// bias per layer, then a GMM-CEBM's μ and log σ) and plain layouts; every
// tensor must have the size the network expects.
func (nn *Net) SetParams(params [][]float32) error {
	layers := len(nn.sizes)
	want := 2 * layers
	if nn.prior > 0 {
		want += 2
	}
	if len(params) != want {
		return fmt.Errorf("dnnl: %d parameter tensors, want %d", len(params), want)
	}
	for i, s := range nn.sizes {
		if len(params[2*i]) != s[0] || len(params[2*i+1]) != s[1] {
			return fmt.Errorf("dnnl: layer %d: %d weights and %d biases, want %d and %d", i, len(params[2*i]), len(params[2*i+1]), s[0], s[1])
		}
	}
	if nn.prior > 0 {
		if mu, ls := params[2*layers], params[2*layers+1]; len(mu) != nn.prior || len(ls) != nn.prior {
			return fmt.Errorf("dnnl: prior of %d and %d values, want %d", len(mu), len(ls), nn.prior)
		}
	}
	nn.afterEnergyGrad = false
	for i := range layers {
		if err := nn.setLayerC(i, params[2*i], params[2*i+1]); err != nil {
			return err
		}
	}
	if nn.prior > 0 {
		mu, ls := params[2*layers], params[2*layers+1]
		if C.net_set_prior(nn.nt, (*C.float)(&mu[0]), (*C.float)(&ls[0]), C.long(nn.prior), nn.err) != 0 {
			return nn.fail("setting the prior")
		}
	}
	return nil
}

// setLayerC is net_set_layer, which checks the lengths again.
func (nn *Net) setLayerC(i int, w, b []float32) error {
	if C.net_set_layer(nn.nt, C.int(i), (*C.float)(&w[0]), C.long(len(w)), (*C.float)(&b[0]), C.long(len(b)), nn.err) != 0 {
		return nn.fail(fmt.Sprintf("setting layer %d", i))
	}
	return nil
}

// EnergyGrad returns E(x) and ∂ΣE/∂x for a batch of the Net's size; the
// results are reused by the next call.
func (nn *Net) EnergyGrad(x []float32) (energy, dx []float32, err error) {
	if err := nn.checkBatch("EnergyGrad", x); err != nil {
		return nil, nil, err
	}
	nn.afterEnergyGrad = false
	if C.net_energy_grad(nn.nt, (*C.float)(&x[0]), C.long(len(x)), (*C.float)(&nn.energy[0]), (*C.float)(&nn.dx[0]), nn.err) != 0 {
		return nil, nil, nn.fail("EnergyGrad")
	}
	nn.afterEnergyGrad = true
	return nn.energy, nn.dx, nil
}

// Close frees the network and its buffers; it may be called more than
// once, and on a network whose construction failed part way.
func (nn *Net) Close() {
	if nn.nt != nil {
		C.net_free(nn.nt)
		nn.nt = nil
	}
	for _, b := range nn.cgrads {
		C.free(b)
	}
	nn.cgrads = nil
	for _, p := range []*unsafe.Pointer{&nn.cptrs, &nn.weights, &nn.v, &nn.cprior[0], &nn.cprior[1]} {
		C.free(*p) // free(NULL) does nothing
		*p = nil
	}
	C.free(unsafe.Pointer(nn.err))
	nn.err = nil
}
