package encoder

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"

	"github.com/cebm/cebm/internal/expfam"
	"github.com/cebm/cebm/internal/modelfile"
)

// ContentID is the content address of a preprocessed input under a model:
// the first 128 bits of sha256(model digest ‖ input as little-endian
// float32), in hex. The same image always gets the same id.
func ContentID(modelDigest string, x []float32) string {
	h := sha256.New()
	h.Write([]byte(modelDigest))
	buf := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Component is one Gaussian posterior p(z | x, y = k) = N(Mean, Variance)
// with natural parameters (Eta1, Eta2) = λ_k + t_θ(x).
type Component struct {
	Eta1, Eta2     []float32
	Mean, Variance []float32
}

// Result is the posterior of one image in the form the service returns and
// stores.
type Result struct {
	ID       string
	Inverted bool
	Energy   float64 // E_θ(x)
	// Posterior is the Gaussian posterior: the only one for CEBM, the most
	// probable component's for GMM-CEBM. Empty for IGEBM.
	Posterior Component
	// Components and Responsibilities (p(y = k | x)) are set for GMM-CEBM.
	Components       []Component
	Responsibilities []float64
	// Latent is the vector the index holds: the posterior mean (IGEBM: its
	// feature).
	Latent []float32
}

// component is g in float32, with its mean and variance.
func component(g expfam.Gaussian) Component {
	return Component{Eta1: float32s(g.Eta1), Eta2: float32s(g.Eta2), Mean: float32s(g.Mean()), Variance: float32s(g.Variance())}
}

func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// Result computes image i's posterior from a run's output: natural
// parameters λ + t_θ(x), mean and variance (internal/expfam).
func (m *Model) Result(o Output, i int) Result {
	d := m.LatentDim
	if m.Kind == modelfile.IGEBM {
		return Result{Energy: float64(o.Energy[i]), Latent: append([]float32(nil), o.Feature[i*d:(i+1)*d]...)}
	}
	p := m.Posterior(o, i)
	r := Result{Energy: p.Energy}
	best := p.MAP()
	if len(p.Components) > 1 {
		r.Responsibilities = p.Responsibility
		r.Components = make([]Component, len(p.Components))
		for k, c := range p.Components {
			r.Components[k] = component(c)
		}
		r.Posterior = r.Components[best]
	} else {
		r.Posterior = component(p.Components[0])
	}
	r.Latent = r.Posterior.Mean
	return r
}
