package graph

import (
	"fmt"

	"github.com/cebm/cebm/internal/ort"
	onnx "github.com/yalue/onnxruntime_go"
)

// Session runs one graph on ONNX Runtime. Parameters without values in the
// ModelOptions are inputs, fed like data on every run. Input tensors wrap the
// caller's slices (no copy); output buffers are reused between runs of the
// same batch size. A Session is for one goroutine at a time.
type Session struct {
	s        *onnx.DynamicAdvancedSession
	dtype    DType
	inputs   []*Value
	outputs  []*Value
	outBatch int
	outBufs  []onnx.Value
	outData  []any
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
	so, err := ort.NewSessionOptions(threads)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s.s, err = onnx.NewDynamicAdvancedSessionWithONNXData(model, names(s.inputs), names(s.outputs), so)
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
		s.s.Destroy()
		s.s = nil
	}
}

func (s *Session) freeOutputs() {
	for _, b := range s.outBufs {
		if b != nil {
			b.Destroy()
		}
	}
	s.outBufs, s.outData, s.outBatch = nil, nil, -1
}

func concrete(shape []int, batch int) onnx.Shape {
	out := make(onnx.Shape, len(shape))
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
	ins := make([]onnx.Value, len(s.inputs))
	defer func() {
		for _, t := range ins {
			if t != nil {
				t.Destroy()
			}
		}
	}()
	for i, in := range s.inputs {
		data, ok := inputs[in.name]
		if !ok {
			return nil, fmt.Errorf("graph: missing input %q", in.name)
		}
		shape := concrete(in.shape, batch)
		if int64(len(data)) != shape.FlattenedSize() {
			return nil, fmt.Errorf("graph: input %q has %d values, want %d for shape %v", in.name, len(data), shape.FlattenedSize(), shape)
		}
		t, err := onnx.NewTensor(shape, data)
		if err != nil {
			return nil, fmt.Errorf("graph: input %q: %w", in.name, err)
		}
		ins[i] = t
	}
	if batch != s.outBatch {
		s.freeOutputs()
		for _, o := range s.outputs {
			t, err := onnx.NewEmptyTensor[T](concrete(o.shape, batch))
			if err != nil {
				s.freeOutputs()
				return nil, err
			}
			s.outBufs = append(s.outBufs, t)
			s.outData = append(s.outData, t.GetData())
		}
		s.outBatch = batch
	}
	if err := s.s.Run(ins, s.outBufs); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	out := make(map[string][]T, len(s.outputs))
	for i, o := range s.outputs {
		out[o.name] = s.outData[i].([]T)
	}
	return out, nil
}
