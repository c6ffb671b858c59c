//go:build !cgo

package ort

// Built without cgo there is no ONNX Runtime: the package compiles, and
// every call that needs the runtime returns ErrNoCgo.

// Init reports that ONNX Runtime is not available.
func Init() error { return ErrNoCgo }

// Session is not available without cgo.
type Session struct{}

// NewSession returns ErrNoCgo.
func NewSession(model []byte, inputs, outputs []string, threads int) (*Session, error) {
	return nil, ErrNoCgo
}

// Close does nothing.
func (s *Session) Close() {}

// Tensor holds its data in Go memory.
type Tensor[T Float] struct{ data []T }

// NewTensor wraps data.
func NewTensor[T Float](shape []int64, data []T) (*Tensor[T], error) { return &Tensor[T]{data}, nil }

// NewEmptyTensor allocates a zero tensor.
func NewEmptyTensor[T Float](shape []int64) (*Tensor[T], error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return &Tensor[T]{make([]T, n)}, nil
}

// Data is the tensor's data.
func (t *Tensor[T]) Data() []T { return t.data }

// Destroy does nothing.
func (t *Tensor[T]) Destroy() {}

// Run returns ErrNoCgo.
func Run[T Float](s *Session, ins, outs []*Tensor[T]) error { return ErrNoCgo }

// RunCopy returns ErrNoCgo.
func (s *Session) RunCopy(ins []*Tensor[float32], outputs int) ([][]float32, error) {
	return nil, ErrNoCgo
}

// ModelMetadata returns ErrNoCgo.
func ModelMetadata(model []byte) (map[string]string, error) { return nil, ErrNoCgo }

// Version returns ErrNoCgo.
func Version() (string, error) { return "", ErrNoCgo }
