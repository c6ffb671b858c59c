package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cebm/cebm/train"
	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/graph"
	"github.com/cebm/cebm/train/model"
)

// EnergyModel is an exported model's energy E(x) with its input gradient
// ∂E/∂x: the training engine's graph (rebuilt from the config in the file's
// metadata) fed with the parameter values the file carries as initializers.
// One goroutine at a time.
type EnergyModel struct {
	Config train.Config
	Model  model.Model
	engine engine.Engine
	params [][]float32
	per    int
}

// LoadEnergyModel rebuilds the energy of the exported model at path from
// its config metadata (train.Config as JSON).
func LoadEnergyModel(path string, config json.RawMessage, threads int) (*EnergyModel, error) {
	if len(config) == 0 {
		return nil, fmt.Errorf("%s: no training config in the metadata: cannot rebuild its energy", path)
	}
	var cfg train.Config
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("%s: config metadata: %w", path, err)
	}
	m, err := train.ModelFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	values, err := graph.LoadParams(path)
	if err != nil {
		return nil, err
	}
	var params [][]float32
	for _, s := range m.ParamSpecs() {
		v, ok := values[s.Name]
		if !ok || len(v) != s.Size() {
			return nil, fmt.Errorf("%s: parameter %s missing or of the wrong size (%d values, want %d)", path, s.Name, len(v), s.Size())
		}
		params = append(params, v)
	}
	e, err := engine.NewORTEngine(m, threads)
	if err != nil {
		return nil, err
	}
	a := m.Arch
	return &EnergyModel{Config: cfg, Model: m, engine: e, params: params, per: a.C * a.H * a.W}, nil
}

// Close releases the engine.
func (m *EnergyModel) Close() { m.engine.Close() }

// EnergyGrad returns E(x_i) and ‖∂E/∂x_i‖ (L2 over the image) for the n
// images of x, in batches.
func (m *EnergyModel) EnergyGrad(ctx context.Context, x []float32, batch int) (energy, gradNorm []float64, err error) {
	if len(x)%m.per != 0 {
		return nil, nil, fmt.Errorf("eval: %d values is not a whole number of images of %d", len(x), m.per)
	}
	n := len(x) / m.per
	energy, gradNorm = make([]float64, n), make([]float64, n)
	for s := 0; s < n; s += batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		e := min(n, s+batch)
		en, gx, err := m.engine.EnergyGrad(m.params, x[s*m.per:e*m.per])
		if err != nil {
			return nil, nil, err
		}
		for i := 0; i < e-s; i++ {
			energy[s+i] = float64(en[i])
			var ss float64
			for _, g := range gx[i*m.per : (i+1)*m.per] {
				ss += float64(g) * float64(g)
			}
			gradNorm[s+i] = math.Sqrt(ss)
		}
	}
	return energy, gradNorm, nil
}

// Sample runs n SGLD chains from U(−1, 1) noise for steps steps with the
// model's own training settings, x ← x − (α/2)·∇E(x) + σ·ε,
// and returns the final states.
func (m *EnergyModel) Sample(ctx context.Context, n, steps int, seed uint64) ([]float32, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5a3))
	x := UniformNoise(n, m.per, rng)
	step, noise := float32(m.Config.Objective.CD.SGLDStep), m.Config.Objective.CD.SGLDNoise
	for k := 0; k < steps; k++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, gx, err := m.engine.EnergyGrad(m.params, x)
		if err != nil {
			return nil, err
		}
		for j := range x {
			x[j] += -step*gx[j] + float32(noise*rng.NormFloat64())
		}
	}
	return x, nil
}

// UniformNoise is n images of U(−1, 1) pixels.
func UniformNoise(n, per int, rng *rand.Rand) []float32 {
	x := make([]float32, n*per)
	for i := range x {
		x[i] = float32(2*rng.Float64() - 1)
	}
	return x
}

// ConstantImages is n images, each filled with one U(−1, 1) value.
func ConstantImages(n, per int, rng *rand.Rand) []float32 {
	x := make([]float32, n*per)
	for i := 0; i < n; i++ {
		v := float32(2*rng.Float64() - 1)
		for j := range x[i*per : (i+1)*per] {
			x[i*per+j] = v
		}
	}
	return x
}

// OODSet is a set of out-of-distribution images.
type OODSet struct {
	Name string
	X    []float32
}

// OODScore is AUROC of both scores for one OOD set, in-distribution images
// as positives.
type OODScore struct {
	NegEnergy   float64 `json:"neg_energy"`    // score −E(x)
	NegGradNorm float64 `json:"neg_grad_norm"` // score −‖∂E/∂x‖
}

// OOD scores the in-distribution images in against each OOD set.
func (m *EnergyModel) OOD(ctx context.Context, in []float32, sets []OODSet, batch int) (map[string]OODScore, error) {
	score := func(x []float32) (negE, negG []float64, err error) {
		e, g, err := m.EnergyGrad(ctx, x, batch)
		if err != nil {
			return nil, nil, err
		}
		for i := range e {
			e[i], g[i] = -e[i], -g[i]
		}
		return e, g, nil
	}
	inE, inG, err := score(in)
	if err != nil {
		return nil, err
	}
	out := map[string]OODScore{}
	for _, s := range sets {
		e, g, err := score(s.X)
		if err != nil {
			return nil, err
		}
		var r OODScore
		if r.NegEnergy, err = AUROC(inE, e); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		if r.NegGradNorm, err = AUROC(inG, g); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		out[s.Name] = r
	}
	return out, nil
}
