// Package export writes a trained model's deployable encoder: an ONNX file
// x → t1, t2, energy (CEBM, GMM-CEBM) or x → feature, energy (IGEBM) with
// the parameter values baked in and the metadata of package
// internal/modelfile, which package encoder reads.
package export

import (
	"github.com/cebm/cebm/internal/atomicfile"
	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/graph"
	"github.com/cebm/cebm/train/model"
)

// Graph builds the deployable encoder with the parameter values baked
// in: x → t1, t2 (CEBM, GMM-CEBM) or x → feature, energy (IGEBM), and also
// the energy for the CEBMs (so OOD scores need no second model).
func Graph(m model.Model, params [][]float32, meta modelfile.Meta) ([]byte, error) {
	kv, err := meta.Encode()
	if err != nil {
		return nil, err
	}
	g := graph.New(graph.Float32)
	x, ps := m.Declare(g)
	terms := m.Build(g, x, ps)
	if m.Kind == model.IGEBM {
		g.Output(modelfile.OutputFeature, terms.Feature)
	} else {
		g.Output(modelfile.OutputT1, terms.T1)
		g.Output(modelfile.OutputT2, terms.T2)
	}
	g.Output(modelfile.OutputEnergy, terms.Energy)
	values := map[string][]float32{}
	for i, s := range m.ParamSpecs() {
		values[s.Name] = params[i]
	}
	return g.Marshal(graph.ModelOptions{Params: values, Metadata: kv, Name: "cebm-" + string(m.Kind), DocString: "conjugate energy-based model encoder"})
}

// Write writes the encoder of m with params and meta to path (atomically).
func Write(path string, m model.Model, params [][]float32, meta modelfile.Meta) error {
	b, err := Graph(m, params, meta)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, b)
}
