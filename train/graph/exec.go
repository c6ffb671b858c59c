package graph

import (
	"fmt"

	"github.com/cebm/cebm/internal/ort"
)

// Session runs one graph on ONNX Runtime. Parameters without values in the
// ModelOptions are inputs, fed like data on every run. Input tensors wrap the
// caller's slices (no copy); output buffers are reused between runs of the
// same batch size. A Session is for one goroutine at a time.
type Session struct {
	s        *ort.Session
	dtype    DType
	inputs   []*Value
	outputs  []*Value
	outBatch int
	outBufs  any // []*ort.Tensor[float32] or []*ort.Tensor[float64], the dtype's
	free     func()
}

// NewSession compiles the graph for ONNX Runtime with the given number of
// intra-op threads (0: all cores). Params given in opt.Params are baked in.
func NewSession(g *Graph, opt ModelOptions, threads int) (*Session, error) {
	model, err := g.Marshal(opt)
	if err != nil {
		return nil, err
	}
	used := g.usedValues()
	s := &Session{dtype: g.dtype, outputs: g.Outputs(), outBatch: -1}
	for _, in := range g.inputs {
		if used[in] {
			s.inputs = append(s.inputs, in)
		}
	}
	for _, p := range g.params {
		if _, baked := opt.Params[p.name]; !baked && used[p] {
			s.inputs = append(s.inputs, p)
		}
	}
	s.s, err = ort.NewSession(model, names(s.inputs), names(s.outputs), threads)
	if err != nil {
		return nil, fmt.Errorf("graph: creating ONNX Runtime session: %w", err)
	}
	return s, nil
}

func names(vs []*Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.name
	}
	return out
}

// InputNames lists the names Run expects, data inputs first, then
// parameters, in declaration order.
func (s *Session) InputNames() []string { return names(s.inputs) }

// Close releases the ONNX Runtime session and buffers.
func (s *Session) Close() {
	s.freeOutputs()
	if s.s != nil {
		s.s.Close()
		s.s = nil
	}
}

func (s *Session) freeOutputs() {
	if s.free != nil {
		s.free()
	}
	s.outBufs, s.free, s.outBatch = nil, nil, -1
}

func destroyAll[T ort.Float](ts []*ort.Tensor[T]) {
	for _, t := range ts {
		if t != nil {
			t.Destroy()
		}
	}
}

func concrete(shape []int, batch int) []int64 {
	out := make([]int64, len(shape))
	for i, d := range shape {
		if d == Batch {
			d = batch
		}
		out[i] = int64(d)
	}
	return out
}

// Run feeds the inputs (by name, float32 graphs) with the given batch size
// and returns the outputs by name. The returned slices are reused by the next
// Run: copy what must outlive it.
func (s *Session) Run(batch int, inputs map[string][]float32) (map[string][]float32, error) {
	if s.dtype != Float32 {
		return nil, fmt.Errorf("graph: Run on a %v graph", s.dtype)
	}
	return run(s, batch, inputs)
}

// Run64 is Run for float64 graphs (gradient checks).
func (s *Session) Run64(batch int, inputs map[string][]float64) (map[string][]float64, error) {
	if s.dtype != Float64 {
		return nil, fmt.Errorf("graph: Run64 on a %v graph", s.dtype)
	}
	return run(s, batch, inputs)
}

func run[T float32 | float64](s *Session, batch int, inputs map[string][]T) (map[string][]T, error) {
	if s.s == nil {
		return nil, fmt.Errorf("graph: session closed")
	}
	if batch < 1 {
		return nil, fmt.Errorf("graph: batch size %d", batch)
	}
	ins := make([]*ort.Tensor[T], len(s.inputs))
	defer destroyAll(ins)
	for i, in := range s.inputs {
		data, ok := inputs[in.name]
		if !ok {
			return nil, fmt.Errorf("graph: missing input %q", in.name)
		}
		shape := concrete(in.shape, batch)
		size := int64(1)
		for _, d := range shape {
			size *= d
		}
		if int64(len(data)) != size {
			return nil, fmt.Errorf("graph: input %q has %d values, want %d for shape %v", in.name, len(data), size, shape)
		}
		t, err := ort.NewTensor(shape, data)
		if err != nil {
			return nil, fmt.Errorf("graph: input %q: %w", in.name, err)
		}
		ins[i] = t
	}
	if batch != s.outBatch {
		s.freeOutputs()
		outs := make([]*ort.Tensor[T], len(s.outputs))
		s.outBufs, s.free = outs, func() { destroyAll(outs) }
		for i, o := range s.outputs {
			t, err := ort.NewEmptyTensor[T](concrete(o.shape, batch))
			if err != nil {
				s.freeOutputs()
				return nil, err
			}
			outs[i] = t
		}
		s.outBatch = batch
	}
	outs := s.outBufs.([]*ort.Tensor[T])
	if err := ort.Run(s.s, ins, outs); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	out := make(map[string][]T, len(s.outputs))
	for i, o := range s.outputs {
		out[o.name] = outs[i].Data()
	}
	return out, nil
}
