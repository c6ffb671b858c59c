package train

import (
	"errors"

	"github.com/cebm/cebm/train/dnnl"
)

// fastLangevin runs contrastive divergence's steps on oneDNN (train/dnnl):
// the Langevin steps' ∂E/∂x and the parameter step's weighted gradient,
// one network per batch size, its parameters refreshed once per update.
// TestDNNLLangevinParity and TestDNNLParamGradParity hold it to the ONNX
// Runtime engine.
type fastLangevin struct {
	model Model
	nets  map[int]*dnnl.Net
	step  map[int]int // the update whose parameters each network holds
}

func newFastLangevin(m Model) (*fastLangevin, error) {
	a := m.Arch
	switch {
	case !dnnl.Available:
		return nil, errors.New("engine onednn: this build has no oneDNN: build with -tags dnnl and Debian's libdnnl-dev (make does when scripts/setup.sh could install it)")
	case a.Whiten:
		return nil, errors.New("engine onednn: runs models without --whiten; use onnxruntime")
	}
	return &fastLangevin{model: m, nets: map[int]*dnnl.Net{}, step: map[int]int{}}, nil
}

// gradX is ∂ΣE/∂x at x under params, the parameters of update step.
func (f *fastLangevin) gradX(params [][]float32, step int, x []float32) ([]float32, error) {
	nn, err := f.net(params, step, x)
	if err != nil {
		return nil, err
	}
	_, dx, err := nn.EnergyGrad(x)
	return dx, err
}

// paramGrad is E(x) and Σ (a_i + b_i·E_i)·∂E_i/∂θ (Engine.ParamGrad).
func (f *fastLangevin) paramGrad(params [][]float32, step int, x, a, b []float32) ([]float32, [][]float32, error) {
	nn, err := f.net(params, step, x)
	if err != nil {
		return nil, nil, err
	}
	return nn.ParamGrad(x, a, b)
}

// net is the network for x's batch size, holding params.
func (f *fastLangevin) net(params [][]float32, step int, x []float32) (*dnnl.Net, error) {
	a := f.model.Arch
	n := len(x) / (a.C * a.H * a.W)
	nn, ok := f.nets[n]
	if !ok {
		var err error
		if nn, err = dnnlNet(f.model, n); err != nil {
			return nil, err
		}
		f.nets[n] = nn
		f.step[n] = -1
	}
	if f.step[n] != step {
		if err := nn.SetParams(params); err != nil {
			return nil, err
		}
		f.step[n] = step
	}
	return nn, nil
}

func (f *fastLangevin) close() {
	if f == nil {
		return
	}
	for _, nn := range f.nets {
		nn.Close()
	}
}

// dnnlNet builds model m on oneDNN for batches of n.
func dnnlNet(m Model, n int) (*dnnl.Net, error) {
	a := m.Arch
	var convs []dnnl.ConvLayer
	for _, l := range a.Convs {
		convs = append(convs, dnnl.ConvLayer{Out: l.Out, Kernel: l.Kernel, Stride: l.Stride, Pad: l.Pad})
	}
	latent := a.LatentDim
	if a.EnergyHead {
		latent = 0 // IGEBM: the head is the energy
	}
	components := 0
	if m.Kind == GMMCEBM {
		components = m.Components
	}
	return dnnl.NewNet(n, a.C, a.H, a.W, convs, a.Hidden, latent, components)
}
