// Package engine runs what training needs of a model's energy on a batch
// of images: E(x), the Langevin step's ∂E/∂x, contrastive divergence's
// weighted parameter gradient and score matching's second-order step
// ([Engine]). Two implementations: [ORTEngine] on ONNX Runtime's graphs,
// the reference, and [OneDNNEngine] on oneDNN (package train/dnnl, built
// with -tags dnnl), held to the reference by the parity tests.
package engine

import (
	"fmt"

	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/graph"
	"github.com/cebm/cebm/train/model"
)

// Engine computes what training needs of a model's energy, for a batch x
// of images (NCHW) under parameters params (ParamSpecs order): the steps of
// contrastive divergence (Langevin: E and ∂E/∂x; the parameter step) and
// of denoising score matching (a second-order gradient). Two
// implementations: ORTEngine, ONNX Runtime's graphs, the reference; and
// OneDNNEngine (train/dnnl), the same steps 2-3× faster, held to the
// reference by the parity tests. Results are reused by the next call. An
// Engine is for one goroutine at a time.
type Engine interface {
	// Energy returns E(x).
	Energy(params [][]float32, x []float32) ([]float32, error)
	// EnergyGrad returns E(x) and ∂ΣE/∂x (the Langevin step's gradient).
	EnergyGrad(params [][]float32, x []float32) (energy, gradX []float32, err error)
	// ParamGrad returns E(x) and Σ_i (a_i + b_i·E_i)·∂E_i/∂θ for every
	// parameter tensor: contrastive divergence's parameter step.
	ParamGrad(params [][]float32, x, a, b []float32) (energy []float32, grads [][]float32, err error)
	// DSMGrad returns E(x̃), ℓ_i = ½‖σ_i·∂E′/∂x(x̃_i) − ε_i‖² and
	// Σ_i w_i·∂ℓ_i/∂θ, with E′(x) = E(x) + ½‖x‖²·invVar_i (see
	// ORTEngine.buildDSM).
	DSMGrad(params [][]float32, xt, eps, sigma, invVar, w []float32) (energy, loss []float32, grads [][]float32, err error)
	// Close releases the engine's resources.
	Close()
}

// Name names an engine (a run's --engine).
type Name string

// The engines.
const (
	ORT    Name = "onnxruntime" // ONNX Runtime's graphs: the reference
	OneDNN Name = "onednn"      // train/dnnl: 2-3× faster; every model kind, without --whiten
)

// Validate rejects a name that is no engine; empty means ORT.
func (n Name) Validate() error {
	switch n {
	case "", ORT, OneDNN:
		return nil
	}
	return fmt.Errorf("engine %q: want %s or %s", n, ORT, OneDNN)
}

// OneDNNHint says why a binary lacks the oneDNN engine and how to get it.
const OneDNNHint = "onednn not built: build with -tags dnnl, needs libdnnl-dev"

// Compiled lists the engines this binary has: ORT always, OneDNN when it
// was built with -tags dnnl.
func Compiled() []Name {
	if dnnl.Available {
		return []Name{ORT, OneDNN}
	}
	return []Name{ORT}
}

// Describe is Compiled for people: "onnxruntime, onednn", or
// "onnxruntime (onednn not built: …)" with the hint.
func Describe() string {
	if dnnl.Available {
		return string(ORT) + ", " + string(OneDNN)
	}
	return string(ORT) + " (" + OneDNNHint + ")"
}

// Usable is Validate, and for OneDNN also whether this binary has it.
func (n Name) Usable() error {
	if err := n.Validate(); err != nil {
		return err
	}
	if n == OneDNN && !dnnl.Available {
		return fmt.Errorf("engine %s: %s", n, OneDNNHint)
	}
	return nil
}

// New builds the engine named name (ORT when empty) for m; threads is the
// cores it may use (0: all).
func New(name Name, m model.Model, threads int) (Engine, error) {
	switch name {
	case "", ORT:
		return NewORTEngine(m, threads)
	case OneDNN:
		return NewOneDNNEngine(m, threads)
	}
	return nil, name.Validate()
}

// ORTEngine runs the model's training graphs on ONNX Runtime. ONNX Runtime
// computes every node of a graph, so each job has its own minimal graph:
//
//	energy:   x → E(x)
//	langevin: x → E(x), ∂ΣE/∂x                       (every SGLD step)
//	step:     x, a, b → E(x), ∂L/∂θ with L's per-image weight a_i + b_i·E_i
//
// The step graph's weights make one pass over [x+; x−] give the gradient of
// loss = mean E(x+) − mean E(x−) + γ(mean E(x+)² + mean E(x−)²):
// ∂loss/∂θ = Σ_i (a_i + b_i·E_i)·∂E_i/∂θ with a = ±1/B and b = 2γ/B.
//
// An ORTEngine is for one goroutine at a time.
type ORTEngine struct {
	Model    model.Model
	specs    []model.ParamSpec
	energy   *graph.Session
	langevin *graph.Session
	step     *graph.Session
	dsm      *graph.Session // built on first use (objective dsm)
	threads  int
	feed     map[string][]float32
}

// Names of graph inputs and outputs.
const (
	inX      = modelfile.Input
	inA      = "a"
	inB      = "b"
	inEps    = "eps"
	inSigma  = "sigma"
	inIVar   = "inv_var"
	inW      = "w"
	outLoss  = "loss"
	outE     = modelfile.OutputEnergy
	outDx    = "grad_x"
	outGradP = "grad."
)

// NewORTEngine builds and compiles the three graphs. threads is ONNX
// Runtime's intra-op thread count (0: all cores).
func NewORTEngine(m model.Model, threads int) (*ORTEngine, error) {
	e := &ORTEngine{Model: m, specs: m.ParamSpecs(), feed: map[string][]float32{}, threads: threads}
	var err error

	g := graph.New(graph.Float32)
	x, ps := m.Declare(g)
	g.Output(outE, m.Build(g, x, ps).Energy)
	if e.energy, err = graph.NewSession(g, graph.ModelOptions{}, threads); err != nil {
		return nil, fmt.Errorf("energy graph: %w", err)
	}

	g = graph.New(graph.Float32)
	x, ps = m.Declare(g)
	en := m.Build(g, x, ps).Energy
	g.Output(outE, en)
	g.Output(outDx, g.Grad(en, nil, x)[0])
	if e.langevin, err = graph.NewSession(g, graph.ModelOptions{}, threads); err != nil {
		e.Close()
		return nil, fmt.Errorf("langevin graph: %w", err)
	}

	g = graph.New(graph.Float32)
	x, ps = m.Declare(g)
	a := g.Input(inA, graph.Batch)
	b := g.Input(inB, graph.Batch)
	en = m.Build(g, x, ps).Energy
	g.Output(outE, en)
	seed := g.Add(a, g.Mul(b, en))
	for i, d := range g.Grad(en, seed, ps...) {
		g.Output(outGradP+e.specs[i].Name, d)
	}
	if e.step, err = graph.NewSession(g, graph.ModelOptions{}, threads); err != nil {
		e.Close()
		return nil, fmt.Errorf("parameter-gradient graph: %w", err)
	}
	return e, nil
}

// Close releases the sessions.
func (e *ORTEngine) Close() {
	for _, s := range []*graph.Session{e.energy, e.langevin, e.step, e.dsm} {
		if s != nil {
			s.Close()
		}
	}
}

func (e *ORTEngine) setParams(params [][]float32) error {
	if err := checkParams(e.specs, params); err != nil {
		return err
	}
	for i, s := range e.specs {
		e.feed[s.Name] = params[i]
	}
	return nil
}

// checkParams reports parameters that do not match specs.
func checkParams(specs []model.ParamSpec, params [][]float32) error {
	if len(params) != len(specs) {
		return fmt.Errorf("engine: %d parameter tensors, want %d", len(params), len(specs))
	}
	for i, s := range specs {
		if len(params[i]) != s.Size() {
			return fmt.Errorf("engine: %s has %d values, want %d", s.Name, len(params[i]), s.Size())
		}
	}
	return nil
}

func (e *ORTEngine) batchOf(x []float32) (int, error) { return batchOf(e.Model.Arch, x) }

// batchOf is the number of a's images in x.
func batchOf(a model.Arch, x []float32) (int, error) {
	per := a.C * a.H * a.W
	if len(x) == 0 || len(x)%per != 0 {
		return 0, fmt.Errorf("engine: %d values is not a batch of %d×%d×%d images", len(x), a.C, a.H, a.W)
	}
	return len(x) / per, nil
}

// Energy returns E(x) for a batch x (NCHW). The result is reused by the
// next call.
func (e *ORTEngine) Energy(params [][]float32, x []float32) ([]float32, error) {
	n, err := e.batchOf(x)
	if err != nil {
		return nil, err
	}
	if err := e.setParams(params); err != nil {
		return nil, err
	}
	e.feed[inX] = x
	out, err := e.energy.Run(n, e.feed)
	if err != nil {
		return nil, err
	}
	return out[outE], nil
}

// EnergyGrad returns E(x) and ∂ΣE/∂x (the Langevin step's gradient). The
// results are reused by the next call.
func (e *ORTEngine) EnergyGrad(params [][]float32, x []float32) (energy, gradX []float32, err error) {
	n, err := e.batchOf(x)
	if err != nil {
		return nil, nil, err
	}
	if err := e.setParams(params); err != nil {
		return nil, nil, err
	}
	e.feed[inX] = x
	out, err := e.langevin.Run(n, e.feed)
	if err != nil {
		return nil, nil, err
	}
	return out[outE], out[outDx], nil
}

// ParamGrad returns E(x) and Σ_i (a_i + b_i·E_i)·∂E_i/∂θ for every
// parameter tensor (ParamSpecs order). Results are reused by the next call.
func (e *ORTEngine) ParamGrad(params [][]float32, x, a, b []float32) (energy []float32, grads [][]float32, err error) {
	n, err := e.batchOf(x)
	if err != nil {
		return nil, nil, err
	}
	if len(a) != n || len(b) != n {
		return nil, nil, fmt.Errorf("engine: weights a, b have %d, %d values for batch %d", len(a), len(b), n)
	}
	if err := e.setParams(params); err != nil {
		return nil, nil, err
	}
	e.feed[inX], e.feed[inA], e.feed[inB] = x, a, b
	out, err := e.step.Run(n, e.feed)
	delete(e.feed, inA)
	delete(e.feed, inB)
	if err != nil {
		return nil, nil, err
	}
	grads = make([][]float32, len(e.specs))
	for i, s := range e.specs {
		grads[i] = out[outGradP+s.Name]
	}
	return out[outE], grads, nil
}

// buildDSM compiles the denoising-score-matching graph:
//
//	x̃, ε, σ, 1/σ_B², w → E(x̃), ℓ_i = ½‖σ_i·∂E′/∂x(x̃_i) − ε_i‖², Σ_i w_i·∂ℓ_i/∂θ
//
// with E′(x) = E(x) + ½‖x‖²/σ_B² (a Gaussian base measure; an x-only term,
// so the posterior is unchanged; 1/σ_B² = 0 turns it off). ∂θ of ∂E/∂x is
// a second-order gradient: the graph differentiates its own gradient.
func (e *ORTEngine) buildDSM() error {
	m := e.Model
	a := m.Arch
	g := graph.New(graph.Float32)
	x, ps := m.Declare(g)
	eps := g.Input(inEps, graph.Batch, a.C, a.H, a.W)
	sigma := g.Input(inSigma, graph.Batch)
	ivar := g.Input(inIVar, graph.Batch)
	w := g.Input(inW, graph.Batch)
	en := m.Build(g, x, ps).Energy
	g.Output(outE, en)
	col := []int{graph.Batch, 1, 1, 1}
	gx := g.Add(g.Grad(en, nil, x)[0], g.Mul(x, g.Reshape(ivar, col)))
	r := g.Sub(g.Mul(g.Reshape(sigma, col), gx), eps)
	loss := g.Mul(g.ReduceSum(g.Square(r), []int{1, 2, 3}, false), g.Scalar(0.5))
	g.Output(outLoss, loss)
	for i, d := range g.Grad(loss, w, ps...) {
		g.Output(outGradP+e.specs[i].Name, d)
	}
	var err error
	if e.dsm, err = graph.NewSession(g, graph.ModelOptions{}, e.threads); err != nil {
		return fmt.Errorf("score-matching graph: %w", err)
	}
	return nil
}

// DSMGrad returns E(x̃), the per-image score-matching losses and
// Σ_i w_i·∂ℓ_i/∂θ (see buildDSM) for noisy images x̃ = x + σ·ε. Results are
// reused by the next call.
func (e *ORTEngine) DSMGrad(params [][]float32, xt, eps, sigma, invVar, w []float32) (energy, loss []float32, grads [][]float32, err error) {
	n, err := e.batchOf(xt)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(eps) != len(xt) || len(sigma) != n || len(invVar) != n || len(w) != n {
		return nil, nil, nil, fmt.Errorf("engine: score-matching inputs do not match a batch of %d", n)
	}
	if e.dsm == nil {
		if err := e.buildDSM(); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := e.setParams(params); err != nil {
		return nil, nil, nil, err
	}
	e.feed[inX], e.feed[inEps], e.feed[inSigma], e.feed[inIVar], e.feed[inW] = xt, eps, sigma, invVar, w
	out, err := e.dsm.Run(n, e.feed)
	for _, k := range []string{inEps, inSigma, inIVar, inW} {
		delete(e.feed, k)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	grads = make([][]float32, len(e.specs))
	for i, s := range e.specs {
		grads[i] = out[outGradP+s.Name]
	}
	return out[outE], out[outLoss], grads, nil
}
