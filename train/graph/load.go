package graph

import (
	"fmt"
	"os"

	"github.com/cebm/cebm/internal/ort"
	onnx "github.com/yalue/onnxruntime_go"
)

// FileSession runs an .onnx file (float32 inputs and outputs, a dynamic
// first dimension) in a fresh ONNX Runtime session: how tests check that an
// exported model reproduces its training graph.
type FileSession struct {
	s                 *onnx.DynamicAdvancedSession
	inShape, outShape map[string]onnx.Shape
	inputs, outputs   []string
}

// LoadSession opens path with the named inputs and outputs.
func LoadSession(path string, inputs, outputs []string, threads int) (*FileSession, error) {
	if err := ort.Init(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ins, outs, err := onnx.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("graph: reading %s: %w", path, err)
	}
	fs := &FileSession{inShape: map[string]onnx.Shape{}, outShape: map[string]onnx.Shape{}, inputs: inputs, outputs: outputs}
	for _, i := range ins {
		fs.inShape[i.Name] = i.Dimensions
	}
	for _, o := range outs {
		fs.outShape[o.Name] = o.Dimensions
	}
	so, err := ort.NewSessionOptions(threads)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	fs.s, err = onnx.NewDynamicAdvancedSessionWithONNXData(data, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("graph: loading %s: %w", path, err)
	}
	return fs, nil
}

// Run feeds the inputs with batch size n and returns the outputs in order.
func (fs *FileSession) Run(n int, inputs map[string][]float32) ([][]float32, error) {
	var ins, outs []onnx.Value
	defer func() {
		for _, v := range append(ins, outs...) {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for _, name := range fs.inputs {
		shape := fs.inShape[name].Clone()
		shape[0] = int64(n)
		t, err := onnx.NewTensor(shape, inputs[name])
		if err != nil {
			return nil, fmt.Errorf("graph: input %s: %w", name, err)
		}
		ins = append(ins, t)
	}
	outs = make([]onnx.Value, len(fs.outputs))
	if err := fs.s.Run(ins, outs); err != nil {
		return nil, err
	}
	res := make([][]float32, len(outs))
	for i, v := range outs {
		t, ok := v.(*onnx.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("graph: output %s is not float32", fs.outputs[i])
		}
		res[i] = append([]float32(nil), t.GetData()...)
	}
	return res, nil
}

// Close releases the session.
func (fs *FileSession) Close() { fs.s.Destroy() }
