package train

import (
	"math"
	"math/rand/v2"
)

// Annealed Langevin sampling for models trained by score matching
// (Song & Ermon 2019): noise levels σ from SigmaMax down to SigmaMin, at
// each level steps of x ← x − (α/2)·∂E′/∂x + √α·ε with α = annealStep·v,
// where E′ = E + ½‖x‖²/v, v = σ_B² + σ², is the energy with the level's
// base measure (v bounds E′'s curvature, so α/2 < 1/v keeps it stable).
// The model's density keeps the base measure's isotropic variance in every
// direction the encoder did not learn, so the chains end noisy; the picture
// shows Tweedie's estimate of the clean image, x + v·∇log p(x).
const (
	annealLevels = 10
	annealSteps  = 20
	annealStep   = 0.25
)

// AnnealedSamples draws n samples from a score-matching model, starting
// from the base measure of the largest noise level. It uses its own random
// stream (seed), so drawing pictures leaves the run's stream alone.
func (t *Trainer) AnnealedSamples(n int, seed uint64) ([]float32, error) {
	cfg := t.State.Config
	rng := rand.New(rand.NewPCG(seed, 0x616e6e65616c))
	per := t.per
	x := make([]float32, n*per)
	params, err := t.State.ExportParams(t.Model)
	if err != nil {
		return nil, err
	}
	start := math.Sqrt(cfg.BaseVariance(cfg.SigmaMax))
	for i := range x {
		x[i] = float32(start * rng.NormFloat64())
	}
	for l := 0; l < annealLevels; l++ {
		f := float64(l) / float64(max(1, annealLevels-1))
		sigma := cfg.SigmaMax * math.Pow(cfg.SigmaMin/cfg.SigmaMax, f)
		alpha, ivar := annealStep*cfg.BaseVariance(sigma), cfg.BasePrecision(sigma)
		for k := 0; k < annealSteps; k++ {
			_, gx, err := t.engine.EnergyGrad(params, x)
			if err != nil {
				return nil, err
			}
			for j := range x {
				g := float64(gx[j]) + ivar*float64(x[j])
				x[j] += float32(-alpha/2*g + math.Sqrt(alpha)*rng.NormFloat64())
			}
		}
	}
	// Tweedie's estimate at the smallest level: x − v·∂E′/∂x.
	_, gx, err := t.engine.EnergyGrad(params, x)
	if err != nil {
		return nil, err
	}
	v, ivar := cfg.BaseVariance(cfg.SigmaMin), cfg.BasePrecision(cfg.SigmaMin)
	for j := range x {
		x[j] -= float32(v * (float64(gx[j]) + ivar*float64(x[j])))
		x[j] = max(-1, min(1, x[j]))
	}
	return x, nil
}
