// Package graph builds ONNX computation graphs in Go, differentiates them in
// reverse mode (the gradient is more ONNX nodes, standard ops only), writes
// them as .onnx files and runs them on ONNX Runtime.
//
// Tensors have static shapes except for one symbolic batch dimension, written
// Batch (-1), which may appear only as the first dimension. A graph has one
// floating-point element type (Float32 for training and export, Float64 for
// gradient checks where ONNX Runtime supports it).
//
// Inputs are fed on every run; parameters are inputs in training graphs (they
// change every step) and become initializers when a graph is exported with
// their values.
package graph

import (
	"fmt"
	"strings"
)

// Batch marks the symbolic batch dimension of a shape.
const Batch = -1

// DType is an ONNX TensorProto element type.
type DType int32

// Element types used here (values from onnx.proto's TensorProto.DataType).
const (
	Float32 DType = 1
	Int64   DType = 7
	Bool    DType = 9
	Float64 DType = 11
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

type valueKind int

const (
	kindNode  valueKind = iota // produced by a node
	kindInput                  // fed on every run
	kindParam                  // a parameter: input when training, initializer when exported
	kindConst                  // an initializer holding fixed data
)

// Value is a tensor in a graph.
type Value struct {
	g     *Graph
	name  string
	shape []int
	dtype DType
	kind  valueKind
	node  *node // producer, for kindNode

	f64 []float64 // data of a floating constant
	i64 []int64   // data of an int64 constant
}

// Shape returns the value's shape; Batch marks the batch dimension.
func (v *Value) Shape() []int { return append([]int(nil), v.shape...) }

// Name is the tensor's name in the ONNX graph.
func (v *Value) Name() string { return v.name }

// Graph returns the graph the value belongs to.
func (v *Value) Graph() *Graph { return v.g }

// Rank is the number of dimensions.
func (v *Value) Rank() int { return len(v.shape) }

// Size is the number of elements per batch item (all static dimensions).
func (v *Value) Size() int {
	n := 1
	for _, d := range v.shape {
		if d != Batch {
			n *= d
		}
	}
	return n
}

func (v *Value) hasBatch() bool { return len(v.shape) > 0 && v.shape[0] == Batch }

type attr struct {
	name   string
	kind   int // 1 float, 2 int, 3 string, 7 ints, 6 floats
	f      float32
	i      int64
	s      string
	ints   []int64
	floats []float32
}

type node struct {
	op      string
	inputs  []*Value
	outputs []*Value
	attrs   []attr
	// grad returns the gradients of the node's inputs given the gradient of
	// its (single) output; nil entries mean no gradient flows there.
	grad func(dy *Value) []*Value
}

// Graph is a computation under construction.
type Graph struct {
	dtype   DType
	nodes   []*node
	inputs  []*Value
	params  []*Value
	consts  []*Value
	outputs []*Value
	names   map[string]bool
	nextID  int
	scalars map[float64]*Value // scalar constants, shared
	err     error
}

// New returns an empty graph whose floating tensors have type dtype.
func New(dtype DType) *Graph {
	if dtype != Float32 && dtype != Float64 {
		panic("graph: dtype must be Float32 or Float64")
	}
	return &Graph{dtype: dtype, names: map[string]bool{}, scalars: map[float64]*Value{}}
}

// DType is the graph's floating element type.
func (g *Graph) DType() DType { return g.dtype }

// Err reports the first construction error (bad shapes, bad arguments).
// Builders record errors instead of panicking so that a caller checks once.
func (g *Graph) Err() error { return g.err }

func (g *Graph) fail(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf("graph: "+format, args...)
	}
}

func (g *Graph) uniqueName(base string) string {
	if base == "" {
		base = "t"
	}
	if !g.names[base] {
		g.names[base] = true
		return base
	}
	for {
		g.nextID++
		n := fmt.Sprintf("%s_%d", base, g.nextID)
		if !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

func checkShape(shape []int) error {
	for i, d := range shape {
		if d == Batch && i != 0 {
			return fmt.Errorf("batch dimension only allowed first, got %v", shape)
		}
		if d < 1 && d != Batch {
			return fmt.Errorf("bad dimension %d in %v", d, shape)
		}
	}
	return nil
}

// Input declares a tensor fed on every run.
func (g *Graph) Input(name string, shape ...int) *Value {
	if err := checkShape(shape); err != nil {
		g.fail("input %s: %v", name, err)
	}
	if g.names[name] {
		g.fail("duplicate name %q", name)
	}
	g.names[name] = true
	v := &Value{g: g, name: name, shape: append([]int(nil), shape...), dtype: g.dtype, kind: kindInput}
	g.inputs = append(g.inputs, v)
	return v
}

// Param declares a parameter tensor (no batch dimension).
func (g *Graph) Param(name string, shape ...int) *Value {
	if err := checkShape(shape); err != nil || (len(shape) > 0 && shape[0] == Batch) {
		g.fail("param %s: bad shape %v", name, shape)
	}
	if g.names[name] {
		g.fail("duplicate name %q", name)
	}
	g.names[name] = true
	v := &Value{g: g, name: name, shape: append([]int(nil), shape...), dtype: g.dtype, kind: kindParam}
	g.params = append(g.params, v)
	return v
}

// Const adds a floating constant of the given shape (no batch dimension).
func (g *Graph) Const(data []float64, shape ...int) *Value {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		g.fail("const: %d values for shape %v", len(data), shape)
	}
	v := &Value{g: g, name: g.uniqueName("const"), shape: append([]int(nil), shape...), dtype: g.dtype, kind: kindConst, f64: append([]float64(nil), data...)}
	g.consts = append(g.consts, v)
	return v
}

// Scalar is a rank-0 floating constant, shared between uses.
func (g *Graph) Scalar(x float64) *Value {
	if v, ok := g.scalars[x]; ok {
		return v
	}
	v := &Value{g: g, name: g.uniqueName("scalar"), dtype: g.dtype, kind: kindConst, f64: []float64{x}}
	g.consts = append(g.consts, v)
	g.scalars[x] = v
	return v
}

func (g *Graph) ints(vals ...int64) *Value {
	v := &Value{g: g, name: g.uniqueName("ints"), shape: []int{len(vals)}, dtype: Int64, kind: kindConst, i64: append([]int64(nil), vals...)}
	g.consts = append(g.consts, v)
	return v
}

// Output marks v as a graph output under the given name. The value is
// renamed; a value may be output once.
func (g *Graph) Output(name string, v *Value) {
	if v.g != g {
		g.fail("output %s: value from another graph", name)
		return
	}
	if v.kind != kindNode {
		v = g.Identity(v)
	}
	if g.names[name] && v.name != name {
		g.fail("duplicate name %q", name)
		return
	}
	delete(g.names, v.name)
	g.names[name] = true
	v.name = name
	g.outputs = append(g.outputs, v)
}

// Inputs returns the declared inputs in order.
func (g *Graph) Inputs() []*Value { return append([]*Value(nil), g.inputs...) }

// Params returns the declared parameters in order.
func (g *Graph) Params() []*Value { return append([]*Value(nil), g.params...) }

// Outputs returns the graph outputs in order.
func (g *Graph) Outputs() []*Value { return append([]*Value(nil), g.outputs...) }

// NumNodes is the number of operator nodes.
func (g *Graph) NumNodes() int { return len(g.nodes) }

// add appends a node with one output of the given shape and dtype.
func (g *Graph) add(op string, shape []int, dtype DType, inputs []*Value, attrs ...attr) *Value {
	for _, in := range inputs {
		if in != nil && in.g != g {
			g.fail("%s: input from another graph", op)
		}
	}
	n := &node{op: op, inputs: inputs, attrs: attrs}
	out := &Value{g: g, name: g.uniqueName(strings.ToLower(op)), shape: shape, dtype: dtype, kind: kindNode, node: n}
	n.outputs = []*Value{out}
	g.nodes = append(g.nodes, n)
	return out
}

func intAttr(name string, v int64) attr     { return attr{name: name, kind: 2, i: v} }
func floatAttr(name string, v float32) attr { return attr{name: name, kind: 1, f: v} }
func intsAttr(name string, v ...int) attr {
	a := attr{name: name, kind: 7}
	for _, x := range v {
		a.ints = append(a.ints, int64(x))
	}
	return a
}
