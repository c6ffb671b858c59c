package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cebm/cebm/internal/expfam"
	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/graph"
)

// Kind is a model family (defined with the model file it is written into).
type Kind = modelfile.Kind

// The model families of the paper.
const (
	CEBM    = modelfile.CEBM
	GMMCEBM = modelfile.GMMCEBM
	IGEBM   = modelfile.IGEBM
)

// Model is a network architecture plus the energy it defines.
type Model struct {
	Kind       Kind
	Arch       Arch
	Components int // K, GMM-CEBM only
}

// NewModel checks the kind and fixes up the architecture (IGEBM's head).
func NewModel(kind Kind, arch Arch, components int) (Model, error) {
	switch kind {
	case CEBM:
	case GMMCEBM:
		if components < 1 {
			return Model{}, fmt.Errorf("gmm-cebm needs at least one component, got %d", components)
		}
	case IGEBM:
		arch = arch.IGEBM()
	default:
		return Model{}, fmt.Errorf("unknown model kind %q (cebm, gmm-cebm, igebm)", kind)
	}
	return Model{Kind: kind, Arch: arch, Components: components}, nil
}

// ParamSpecs are the network's parameters, then (GMM-CEBM) the prior's:
// prior.mu [K, D] and prior.log_sigma [K, D]. The standard deviation is
// learned through its logarithm so it stays positive.
func (m Model) ParamSpecs() []ParamSpec {
	ps := m.Arch.ParamSpecs()
	if m.Kind == GMMCEBM {
		d := m.Arch.LatentDim
		ps = append(ps,
			ParamSpec{Name: "prior.mu", Shape: []int{m.Components, d}},
			ParamSpec{Name: "prior.log_sigma", Shape: []int{m.Components, d}})
	}
	return ps
}

// InitParams draws initial values: PyTorch's defaults for the network and,
// for GMM-CEBM, the paper's μ_k = 0.31·N(0, 1), σ_k ~ U(1, 6).
func (m Model) InitParams(rng *rand.Rand) [][]float32 {
	specs := m.ParamSpecs()
	net := InitParams(m.Arch.ParamSpecs(), rng)
	if m.Kind != GMMCEBM {
		return net
	}
	mu := make([]float32, specs[len(net)].Size())
	ls := make([]float32, len(mu))
	for i := range mu {
		mu[i] = float32(0.31 * rng.NormFloat64())
		ls[i] = float32(math.Log(1 + 5*rng.Float64()))
	}
	return append(net, mu, ls)
}

// Terms are the graph values of a model applied to a batch.
type Terms struct {
	Energy  *graph.Value // E(x), [B]
	T1, T2  *graph.Value // sufficient-statistic weights t(x), [B, D] (not IGEBM)
	Feature *graph.Value // IGEBM: the 128-d input of the energy head
	Scores  *graph.Value // GMM-CEBM: score_k, [B, K]
}

// logNormalizer is B(η1, η2) = −η1²/(4η2) − ½·log(−2η2), elementwise.
func logNormalizer(g *graph.Graph, eta1, eta2 *graph.Value) *graph.Value {
	a := g.Div(g.Square(eta1), g.Mul(eta2, g.Scalar(-4)))
	b := g.Mul(g.Log(g.Mul(eta2, g.Scalar(-2))), g.Scalar(0.5))
	return g.Sub(a, b)
}

// Declare adds to g the input x [B, C, H, W] and the parameters (ParamSpecs
// order) as graph inputs, to be fed on every run.
func (m Model) Declare(g *graph.Graph) (*graph.Value, []*graph.Value) {
	a := m.Arch
	x := g.Input(modelfile.Input, graph.Batch, a.C, a.H, a.W)
	var ps []*graph.Value
	for _, s := range m.ParamSpecs() {
		ps = append(ps, g.Param(s.Name, s.Shape...))
	}
	return x, ps
}

// Build applies the model to x [B, C, H, W] with parameters p (ParamSpecs
// order) and returns its energy and latent terms.
func (m Model) Build(g *graph.Graph, x *graph.Value, p []*graph.Value) Terms {
	nNet := len(m.Arch.ParamSpecs())
	out, feat := m.Arch.Network(g, x, p[:nNet])
	if m.Kind == IGEBM {
		return Terms{Energy: g.Reshape(out, []int{graph.Batch}), Feature: feat}
	}
	d := m.Arch.LatentDim
	t1 := g.Slice(out, 1, 0, d)
	s := g.Slice(out, 1, d, 2*d)
	t2 := g.Neg(g.Square(s)) // t2 = −s² keeps η2 ≤ λ2 < 0
	terms := Terms{T1: t1, T2: t2}
	switch m.Kind {
	case CEBM:
		// λ = (0, −½): B(λ) = 0 and E(x) = −Σ_d B(t1, −½ − s²).
		eta2 := g.Sub(t2, g.Scalar(0.5))
		terms.Energy = g.Neg(g.ReduceSum(logNormalizer(g, t1, eta2), []int{1}, false))
	case GMMCEBM:
		// λ_k from (μ_k, σ_k): λ1 = μ/σ², λ2 = −1/(2σ²); shapes [1, K, D].
		k := m.Components
		mu, logSigma := p[nNet], p[nNet+1]
		prec := g.Exp(g.Mul(logSigma, g.Scalar(-2))) // 1/σ²
		lam1 := g.Reshape(g.Mul(mu, prec), []int{1, k, d})
		lam2 := g.Reshape(g.Mul(prec, g.Scalar(-0.5)), []int{1, k, d})
		t1k := g.Reshape(t1, []int{graph.Batch, 1, d})
		t2k := g.Reshape(t2, []int{graph.Batch, 1, d})
		post := logNormalizer(g, g.Add(lam1, t1k), g.Add(lam2, t2k)) // [B, K, D]
		prior := logNormalizer(g, lam1, lam2)                        // [1, K, D]
		scores := g.ReduceSum(g.Sub(post, prior), []int{2}, false)   // [B, K]
		lse := g.ReduceLogSumExp(scores, []int{1}, false)
		terms.Energy = g.Sub(g.Scalar(math.Log(float64(k))), lse)
		terms.Scores = scores
	}
	return terms
}

// Prior returns the prior's natural parameters for the given parameter
// values: one Gaussian for CEBM, K for GMM-CEBM, none for IGEBM.
func (m Model) Prior(params [][]float32) expfam.Mixture {
	d := m.Arch.LatentDim
	switch m.Kind {
	case CEBM:
		return expfam.Mixture{expfam.StandardNormal(d)}
	case GMMCEBM:
		n := len(m.Arch.ParamSpecs())
		mu, ls := params[n], params[n+1]
		var mix expfam.Mixture
		for k := 0; k < m.Components; k++ {
			mean := make([]float64, d)
			vari := make([]float64, d)
			for i := range mean {
				mean[i] = float64(mu[k*d+i])
				vari[i] = math.Exp(2 * float64(ls[k*d+i]))
			}
			mix = append(mix, expfam.NaturalParams(mean, vari))
		}
		return mix
	}
	return nil
}
