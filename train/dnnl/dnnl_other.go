//go:build !(cgo && linux && amd64 && dnnl)

// Package dnnl: this build has no oneDNN (it needs cgo on linux/amd64,
// Debian's libdnnl-dev and -tags dnnl, which make adds when the library is
// installed). NewNet says so; every method of a Net fails.
package dnnl

import "errors"

// Available reports whether this build can run oneDNN.
const Available = false

// Net is unavailable in this build.
type Net struct{}

// ConvLayer is one convolution of a Net.
type ConvLayer struct{ Out, Kernel, Stride, Pad int }

// NewNet reports that oneDNN is unavailable.
func NewNet(n, c, h, w int, convs []ConvLayer, hidden []int, latent, components, threads int) (*Net, error) {
	return nil, errors.New("dnnl: this build has no oneDNN: build with -tags dnnl and libdnnl-dev (make does when scripts/setup.sh could install it)")
}

// SetParams fails.
func (nn *Net) SetParams([][]float32) error { return errors.New("dnnl: unavailable") }

// EnergyGrad fails.
func (nn *Net) EnergyGrad([]float32) ([]float32, []float32, error) {
	return nil, nil, errors.New("dnnl: unavailable")
}

// Close does nothing.
func (nn *Net) Close() {}

// ParamGrad fails.
func (nn *Net) ParamGrad(x, a, b []float32) ([]float32, [][]float32, error) {
	return nil, nil, errors.New("dnnl: unavailable")
}

// ScoreParamGrad fails.
func (nn *Net) ScoreParamGrad([]float32) ([][]float32, error) {
	return nil, errors.New("dnnl: unavailable")
}

// Energy fails.
func (nn *Net) Energy([]float32) ([]float32, error) { return nil, errors.New("dnnl: unavailable") }
