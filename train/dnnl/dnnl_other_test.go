//go:build !(cgo && linux && amd64 && dnnl)

package dnnl

import (
	"strings"
	"testing"
)

// TestUnavailable: without oneDNN, NewNet says how to build with it and a
// Net's methods fail instead of pretending.
func TestUnavailable(t *testing.T) {
	if Available {
		t.Fatal("Available in a build without oneDNN")
	}
	if _, err := NewNet(1, 1, 28, 28, []ConvLayer{{Out: 1, Kernel: 3, Stride: 1}}, []int{4}, 2, 0, 1); err == nil || !strings.Contains(err.Error(), "-tags dnnl") {
		t.Errorf("NewNet: err %v, want the build hint", err)
	}
	var nn Net
	if err := nn.SetParams(nil); err == nil {
		t.Error("SetParams: no error")
	}
	if _, err := nn.Energy(nil); err == nil {
		t.Error("Energy: no error")
	}
}
