package graph

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// tensorFloatData is TensorProto.float_data (onnx.proto), for files written
// by other tools; Marshal writes raw_data.
const (
	tensorFloatData = 4
	onnxFloat       = 1 // TensorProto.DataType FLOAT
)

// LoadParams reads the float32 initializers of an ONNX file by name: the
// parameter values an exported model carries (Marshal with
// ModelOptions.Params), so a training graph can be rebuilt around them.
func LoadParams(path string) (map[string][]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ps, err := ReadParams(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ps, nil
}

// ReadParams is LoadParams on the bytes of a ModelProto.
func ReadParams(model []byte) (map[string][]float32, error) {
	out := map[string][]float32{}
	err := fields(model, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != modelGraph || typ != protowire.BytesType {
			return nil
		}
		return fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			if num != graphInitializer || typ != protowire.BytesType {
				return nil
			}
			name, data, ok, err := readFloatTensor(v)
			if err != nil || !ok {
				return err
			}
			out[name] = data
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("graph: reading ONNX initializers: %w", err)
	}
	return out, nil
}

// readFloatTensor decodes a TensorProto; ok is false for other data types.
func readFloatTensor(b []byte) (name string, data []float32, ok bool, err error) {
	size, dtype := 1, int64(0)
	var raw []byte
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == tensorDims && typ == protowire.VarintType:
			d, _ := protowire.ConsumeVarint(v)
			size *= int(d)
		case num == tensorDims && typ == protowire.BytesType: // packed
			for len(v) > 0 {
				d, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return protowire.ParseError(n)
				}
				size *= int(d)
				v = v[n:]
			}
		case num == tensorDataType && typ == protowire.VarintType:
			d, _ := protowire.ConsumeVarint(v)
			dtype = int64(d)
		case num == tensorName && typ == protowire.BytesType:
			name = string(v)
		case num == tensorRawData && typ == protowire.BytesType:
			raw = v
		case num == tensorFloatData && typ == protowire.BytesType: // packed
			for i := 0; i+4 <= len(v); i += 4 {
				data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(v[i:])))
			}
		case num == tensorFloatData && typ == protowire.Fixed32Type:
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(v)))
		}
		return nil
	})
	if err != nil || dtype != onnxFloat {
		return "", nil, false, err
	}
	if raw != nil {
		if len(raw)%4 != 0 {
			return "", nil, false, fmt.Errorf("tensor %s: raw_data of %d bytes", name, len(raw))
		}
		data = make([]float32, len(raw)/4)
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	}
	if len(data) != size {
		return "", nil, false, fmt.Errorf("tensor %s: %d values for %d elements", name, len(data), size)
	}
	return name, data, true, nil
}

// fields calls f for every field of a protobuf message; v holds a varint's
// or fixed value's encoding, or a length-delimited field's payload.
func fields(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			p, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			v, n = p, m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			v = b[:n]
		}
		if err := f(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
