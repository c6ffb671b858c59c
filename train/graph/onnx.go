package graph

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Opset is the ONNX operator-set version the graphs are written for.
const Opset = 17

// irVersion is the ONNX IR version that goes with Opset 17.
const irVersion = 8

// ModelOptions says how to write a graph as an ONNX model.
type ModelOptions struct {
	// Params holds parameter values by name. A parameter with a value
	// becomes an initializer (the export graph); one without stays a graph
	// input (training graphs, where parameters change every step).
	Params map[string][]float32
	// Metadata becomes ModelProto.metadata_props.
	Metadata map[string]string
	// Name is the graph's name; DocString the model's description.
	Name, DocString string
}

// Field numbers from onnx.proto.
const (
	modelIRVersion     = 1
	modelProducerName  = 2
	modelProducerVer   = 3
	modelDocString     = 6
	modelGraph         = 7
	modelOpsetImport   = 8
	modelMetadataProps = 14

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5

	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrS      = 4
	attrFloats = 7
	attrInts   = 8
	attrType   = 20

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9
)

// Marshal writes the graph as an ONNX ModelProto.
func (g *Graph) Marshal(opt ModelOptions) ([]byte, error) {
	if g.err != nil {
		return nil, g.err
	}
	if len(g.outputs) == 0 {
		return nil, fmt.Errorf("graph: no outputs")
	}
	gb, err := g.encodeGraph(opt)
	if err != nil {
		return nil, err
	}
	var mb []byte
	mb = protowire.AppendTag(mb, modelIRVersion, protowire.VarintType)
	mb = protowire.AppendVarint(mb, irVersion)
	mb = appendString(mb, modelProducerName, "cebm")
	mb = appendString(mb, modelProducerVer, "1")
	if opt.DocString != "" {
		mb = appendString(mb, modelDocString, opt.DocString)
	}
	mb = appendMessage(mb, modelGraph, gb)
	var ob []byte
	ob = appendString(ob, 1, "") // default domain
	ob = protowire.AppendTag(ob, 2, protowire.VarintType)
	ob = protowire.AppendVarint(ob, Opset)
	mb = appendMessage(mb, modelOpsetImport, ob)
	return appendMetadata(mb, opt.Metadata), nil
}

// encodeGraph is the GraphProto: the nodes, constants and parameter values
// the outputs need, then the inputs (data, and parameters without values)
// and the outputs.
func (g *Graph) encodeGraph(opt ModelOptions) ([]byte, error) {
	used := g.usedValues()
	var gb []byte
	for i, n := range g.nodes {
		if used[n.outputs[0]] { // ONNX Runtime would compute an unused node anyway
			gb = appendMessage(gb, graphNode, encodeNode(n, i))
		}
	}
	gb = appendString(gb, graphName, cmp.Or(opt.Name, "cebm"))
	for _, c := range g.consts {
		if used[c] {
			gb = appendMessage(gb, graphInitializer, encodeConst(c))
		}
	}
	for _, p := range g.params {
		data, ok := opt.Params[p.name]
		if !ok || !used[p] {
			continue
		}
		if len(data) != p.Size() {
			return nil, fmt.Errorf("graph: param %s has %d values, want %d", p.name, len(data), p.Size())
		}
		gb = appendMessage(gb, graphInitializer, encodeFloat32(p.name, p.shape, g.dtype, data))
	}
	for _, in := range g.inputs {
		if used[in] {
			gb = appendMessage(gb, graphInput, encodeValueInfo(in))
		}
	}
	for _, p := range g.params {
		if _, ok := opt.Params[p.name]; !ok && used[p] {
			gb = appendMessage(gb, graphInput, encodeValueInfo(p))
		}
	}
	for _, o := range g.outputs {
		gb = appendMessage(gb, graphOutput, encodeValueInfo(o))
	}
	return gb, nil
}

// appendMetadata appends metadata_props in key order, so that the same
// model always gives the same bytes.
func appendMetadata(mb []byte, meta map[string]string) []byte {
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		var e []byte
		e = appendString(e, 1, k)
		e = appendString(e, 2, meta[k])
		mb = appendMessage(mb, modelMetadataProps, e)
	}
	return mb
}

// appendMessage appends an embedded message as field.
func appendMessage(b []byte, field protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// usedValues marks every value the outputs depend on.
func (g *Graph) usedValues() map[*Value]bool {
	used := map[*Value]bool{}
	for _, o := range g.outputs {
		used[o] = true
	}
	for i := len(g.nodes) - 1; i >= 0; i-- {
		n := g.nodes[i]
		if !used[n.outputs[0]] {
			continue
		}
		for _, in := range n.inputs {
			if in != nil {
				used[in] = true
			}
		}
	}
	return used
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func encodeNode(n *node, i int) []byte {
	var b []byte
	for _, in := range n.inputs {
		name := ""
		if in != nil {
			name = in.name
		}
		b = appendString(b, nodeInput, name)
	}
	for _, o := range n.outputs {
		b = appendString(b, nodeOutput, o.name)
	}
	b = appendString(b, nodeName, fmt.Sprintf("n%d_%s", i, n.op))
	b = appendString(b, nodeOpType, n.op)
	for _, a := range n.attrs {
		var ab []byte
		ab = appendString(ab, attrName, a.name)
		switch a.kind {
		case 1:
			ab = protowire.AppendTag(ab, attrF, protowire.Fixed32Type)
			ab = protowire.AppendFixed32(ab, math.Float32bits(a.f))
		case 2:
			ab = protowire.AppendTag(ab, attrI, protowire.VarintType)
			ab = protowire.AppendVarint(ab, uint64(a.i))
		case 3:
			ab = protowire.AppendTag(ab, attrS, protowire.BytesType)
			ab = protowire.AppendString(ab, a.s)
		case 6:
			for _, f := range a.floats {
				ab = protowire.AppendTag(ab, attrFloats, protowire.Fixed32Type)
				ab = protowire.AppendFixed32(ab, math.Float32bits(f))
			}
		case 7:
			for _, v := range a.ints {
				ab = protowire.AppendTag(ab, attrInts, protowire.VarintType)
				ab = protowire.AppendVarint(ab, uint64(v))
			}
		}
		ab = protowire.AppendTag(ab, attrType, protowire.VarintType)
		ab = protowire.AppendVarint(ab, uint64(a.kind))
		b = protowire.AppendTag(b, nodeAttribute, protowire.BytesType)
		b = protowire.AppendBytes(b, ab)
	}
	return b
}

func tensorHeader(name string, shape []int, dt DType) []byte {
	var b []byte
	for _, d := range shape {
		b = protowire.AppendTag(b, tensorDims, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, tensorDataType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(dt))
	return appendString(b, tensorName, name)
}

func encodeConst(c *Value) []byte {
	b := tensorHeader(c.name, c.shape, c.dtype)
	var raw []byte
	switch c.dtype {
	case Int64:
		for _, v := range c.i64 {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
	case Float32:
		for _, v := range c.f64 {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(v)))
		}
	case Float64:
		for _, v := range c.f64 {
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(v))
		}
	}
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func encodeFloat32(name string, shape []int, dt DType, data []float32) []byte {
	b := tensorHeader(name, shape, dt)
	raw := make([]byte, 0, len(data)*8)
	for _, v := range data {
		if dt == Float64 {
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(float64(v)))
		} else {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	}
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func encodeValueInfo(v *Value) []byte {
	var shape []byte
	for _, d := range v.shape {
		var dim []byte
		if d == Batch {
			dim = appendString(dim, 2, "N")
		} else {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d))
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(v.dtype))
	tt = protowire.AppendTag(tt, 2, protowire.BytesType)
	tt = protowire.AppendBytes(tt, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tt)
	var b []byte
	b = appendString(b, 1, v.name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, typ)
}
