//go:build !(cgo && linux && amd64 && dnnl)

// Package dnnl: this build has no oneDNN (it needs cgo on linux/amd64,
// Debian's libdnnl-dev and -tags dnnl, which make adds when the library is
// installed).
package dnnl

import "errors"

// Available reports whether this build can run oneDNN.
const Available = false

// Op is a convolution step.
type Op int

// The three steps of a convolution layer in training.
const (
	Forward Op = iota
	BackwardData
	BackwardWeights
)

// Shape is a convolution of input [N, C, H, W] by weights [O, C, K, K].
type Shape struct {
	N, C, H, W, O, K, Stride, Pad int
}

// OutHW is the output's spatial size.
func (s Shape) OutHW() (int, int) {
	return (s.H+2*s.Pad-s.K)/s.Stride + 1, (s.W+2*s.Pad-s.K)/s.Stride + 1
}

// Conv is unavailable in this build.
type Conv struct{}

// New reports that oneDNN is unavailable.
func New(Op, Shape) (*Conv, error) {
	return nil, errors.New("dnnl: this build has no oneDNN: build with -tags dnnl and libdnnl-dev (make does when scripts/setup.sh could install it)")
}

// In is nil.
func (c *Conv) In(int) []float32 { return nil }

// Out is nil.
func (c *Conv) Out() []float32 { return nil }

// Run fails.
func (c *Conv) Run() error { return errors.New("dnnl: unavailable") }

// Close does nothing.
func (c *Conv) Close() {}

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
