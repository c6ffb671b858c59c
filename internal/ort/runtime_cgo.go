//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"os"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// Init loads the library and creates the ONNX Runtime environment. It is
// safe to call many times and from many goroutines: the first call does the
// work, and every call returns only once it is done, with its result.
func Init() error { return initOnce() }

var initOnce = sync.OnceValue(func() error {
	p, err := LibraryPath()
	if err != nil {
		return err
	}
	onnx.SetSharedLibraryPath(p)
	if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", p, err)
	}
	return nil
})

// newSessionOptions returns options with the given intra-op thread count
// (0 means Threads()), one inter-op thread and every graph optimisation.
func newSessionOptions(threads int) (*onnx.SessionOptions, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = Threads()
	}
	o, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := errors.Join(
		o.SetIntraOpNumThreads(threads),
		o.SetInterOpNumThreads(1),
		o.SetGraphOptimizationLevel(onnx.GraphOptimizationLevelEnableAll),
	); err != nil {
		o.Destroy()
		return nil, err
	}
	if prefix := os.Getenv(EnvProfile); prefix != "" {
		if err := o.EnableProfiling(prefix); err != nil {
			o.Destroy()
			return nil, err
		}
	}
	return o, nil
}

// Session is one model compiled by ONNX Runtime. Run may be called from
// several goroutines at once (they share the session's threads).
type Session struct{ s *onnx.DynamicAdvancedSession }

// NewSession compiles an ONNX model with the given inputs and outputs (by
// name) and intra-op thread count (0: Threads()).
func NewSession(model []byte, inputs, outputs []string, threads int) (*Session, error) {
	so, err := newSessionOptions(threads)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := onnx.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, so)
	if err != nil {
		return nil, err
	}
	return &Session{s: s}, nil
}

// Close releases the session.
func (s *Session) Close() { s.s.Destroy() }

// Tensor is a float tensor whose data lives in Go memory: ONNX Runtime
// reads inputs from it and writes outputs into it.
type Tensor[T Float] struct{ t *onnx.Tensor[T] }

// NewTensor wraps data (not a copy) as a tensor of the given shape.
func NewTensor[T Float](shape []int64, data []T) (*Tensor[T], error) {
	t, err := onnx.NewTensor(onnx.Shape(shape), data)
	if err != nil {
		return nil, err
	}
	return &Tensor[T]{t}, nil
}

// NewEmptyTensor allocates a zero tensor of the given shape.
func NewEmptyTensor[T Float](shape []int64) (*Tensor[T], error) {
	t, err := onnx.NewEmptyTensor[T](onnx.Shape(shape))
	if err != nil {
		return nil, err
	}
	return &Tensor[T]{t}, nil
}

// Data is the tensor's data (not a copy).
func (t *Tensor[T]) Data() []T { return t.t.GetData() }

// Destroy releases the tensor.
func (t *Tensor[T]) Destroy() { t.t.Destroy() }

// Run feeds ins (in the session's input order) and writes the outputs into
// outs, tensors of the outputs' shapes.
func Run[T Float](s *Session, ins, outs []*Tensor[T]) error {
	return s.s.Run(values(ins), values(outs))
}

func values[T Float](ts []*Tensor[T]) []onnx.Value {
	out := make([]onnx.Value, len(ts))
	for i, t := range ts {
		out[i] = t.t
	}
	return out
}

// RunCopy feeds ins and returns a copy of each of the session's float32
// outputs, which ONNX Runtime allocates at the shapes the run gives them.
func (s *Session) RunCopy(ins []*Tensor[float32], outputs int) ([][]float32, error) {
	outs := make([]onnx.Value, outputs)
	if err := s.s.Run(values(ins), outs); err != nil {
		return nil, err
	}
	res := make([][]float32, outputs)
	var err error
	for i, o := range outs {
		if t, ok := o.(*onnx.Tensor[float32]); ok {
			res[i] = append([]float32(nil), t.GetData()...)
		} else if err == nil {
			err = fmt.Errorf("output %d is not a float32 tensor", i)
		}
		if o != nil {
			o.Destroy()
		}
	}
	return res, err
}

// ModelMetadata returns an ONNX model's metadata_props.
func ModelMetadata(model []byte) (map[string]string, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	md, err := onnx.GetModelMetadataWithONNXData(model)
	if err != nil {
		return nil, err
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, err
	}
	kv := make(map[string]string, len(keys))
	for _, k := range keys {
		if kv[k], _, err = md.LookupCustomMetadataMap(k); err != nil {
			return nil, err
		}
	}
	return kv, nil
}

// Version is the loaded ONNX Runtime's version (it loads the library).
func Version() (string, error) {
	if err := Init(); err != nil {
		return "", err
	}
	return onnx.GetVersion(), nil
}
