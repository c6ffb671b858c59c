package engine

import (
	"errors"
	"fmt"

	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/model"
)

// OneDNNEngine runs the training steps on oneDNN (train/dnnl): one network
// per batch size, its parameters loaded at every call (a memory copy and a
// layout change: under 1% of a step, BenchmarkEngine). The parity tests
// (TestDNNL*Parity) hold it to ORTEngine.
type OneDNNEngine struct {
	model   model.Model
	specs   []model.ParamSpec
	threads int
	nets    map[int]*dnnl.Net
	loss, v []float32 // DSMGrad's scratch
}

// NewOneDNNEngine prepares m for oneDNN; threads is the threads of every
// step (0: the cores the process may run on).
func NewOneDNNEngine(m model.Model, threads int) (*OneDNNEngine, error) {
	switch {
	case !dnnl.Available:
		return nil, OneDNN.Usable()
	case m.Arch.Whiten:
		return nil, errors.New("engine onednn: runs models without --whiten; use onnxruntime")
	}
	return &OneDNNEngine{model: m, specs: m.ParamSpecs(), threads: threads, nets: map[int]*dnnl.Net{}}, nil
}

// net is the network for batches of x's size, holding params.
func (e *OneDNNEngine) net(params [][]float32, x []float32) (*dnnl.Net, int, error) {
	n, err := batchOf(e.model.Arch, x)
	if err != nil {
		return nil, 0, err
	}
	if err := checkParams(e.specs, params); err != nil {
		return nil, 0, err
	}
	nn, ok := e.nets[n]
	if !ok {
		if nn, err = dnnlNet(e.model, n, e.threads); err != nil {
			return nil, 0, err
		}
		e.nets[n] = nn
	}
	return nn, n, nn.SetParams(params)
}

// Energy returns E(x).
func (e *OneDNNEngine) Energy(params [][]float32, x []float32) ([]float32, error) {
	nn, _, err := e.net(params, x)
	if err != nil {
		return nil, err
	}
	return nn.Energy(x)
}

// EnergyGrad returns E(x) and ∂ΣE/∂x.
func (e *OneDNNEngine) EnergyGrad(params [][]float32, x []float32) (energy, gradX []float32, err error) {
	nn, _, err := e.net(params, x)
	if err != nil {
		return nil, nil, err
	}
	return nn.EnergyGrad(x)
}

// ParamGrad returns E(x) and Σ_i (a_i + b_i·E_i)·∂E_i/∂θ.
func (e *OneDNNEngine) ParamGrad(params [][]float32, x, a, b []float32) (energy []float32, grads [][]float32, err error) {
	nn, n, err := e.net(params, x)
	if err != nil {
		return nil, nil, err
	}
	if len(a) != n || len(b) != n {
		return nil, nil, fmt.Errorf("engine: weights a, b have %d, %d values for batch %d", len(a), len(b), n)
	}
	return nn.ParamGrad(x, a, b)
}

// DSMGrad is ORTEngine.DSMGrad's second-order step in two passes: E and
// g = ∂E/∂x at x̃, then r_i = σ_i·(g_i + x̃_i·invVar_i) − ε_i and
// ∂θ Σ_i ⟨g_i, w_i·σ_i·r_i⟩ (= Σ_i w_i·∂ℓ_i/∂θ, since ∂ℓ_i/∂θ = σ_i·r_iᵀ∂g_i/∂θ
// and the base measure's term does not depend on θ).
func (e *OneDNNEngine) DSMGrad(params [][]float32, xt, eps, sigma, invVar, w []float32) (energy, loss []float32, grads [][]float32, err error) {
	nn, n, err := e.net(params, xt)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(eps) != len(xt) || len(sigma) != n || len(invVar) != n || len(w) != n {
		return nil, nil, nil, fmt.Errorf("engine: score-matching inputs do not match a batch of %d", n)
	}
	energy, g, err := nn.EnergyGrad(xt)
	if err != nil {
		return nil, nil, nil, err
	}
	per := len(xt) / n
	e.loss, e.v = grow(e.loss, n), grow(e.v, len(xt))
	for i := range n {
		s, iv, ws := sigma[i], invVar[i], w[i]*sigma[i]
		var l float64
		for j := i * per; j < (i+1)*per; j++ {
			r := s*(g[j]+xt[j]*iv) - eps[j]
			l += float64(r * r)
			e.v[j] = ws * r
		}
		e.loss[i] = float32(l / 2)
	}
	grads, err = nn.ScoreParamGrad(e.v)
	if err != nil {
		return nil, nil, nil, err
	}
	return energy, e.loss, grads, nil
}

// grow is s resized to n values (reusing its memory when it can).
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// Close frees the networks.
func (e *OneDNNEngine) Close() {
	for _, nn := range e.nets {
		nn.Close()
	}
	e.nets = map[int]*dnnl.Net{}
}

// dnnlNet builds model m on oneDNN for batches of n, run on threads
// threads (0: all the process may use).
func dnnlNet(m model.Model, n, threads int) (*dnnl.Net, error) {
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
	if m.Kind == model.GMMCEBM {
		components = m.Components
	}
	return dnnl.NewNet(n, a.C, a.H, a.W, convs, a.Hidden, latent, components, threads)
}
