package objective

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DSMConfig is denoising score matching's section of the config.
type DSMConfig struct {
	SigmaMin  float64 `json:"sigma_min,omitempty"`  // noise levels σ log-uniform in [SigmaMin, SigmaMax]
	SigmaMax  float64 `json:"sigma_max,omitempty"`  //
	BaseSigma float64 `json:"base_sigma,omitempty"` // Gaussian base measure N(0, (σ_B² + σ²)·I) at noise level σ; 0: none
}

// Validate rejects noise levels that cannot run.
func (c DSMConfig) Validate() error {
	switch {
	case c.SigmaMin <= 0 || c.SigmaMax < c.SigmaMin:
		return fmt.Errorf("noise levels [%v, %v]: want 0 < sigma-min ≤ sigma-max", c.SigmaMin, c.SigmaMax)
	case c.BaseSigma < 0:
		return fmt.Errorf("base sigma %v < 0", c.BaseSigma)
	}
	return nil
}

// BaseVariance is the variance v = σ_B² + σ² of the Gaussian base measure
// at noise level σ.
func (c DSMConfig) BaseVariance(sigma float64) float64 {
	return c.BaseSigma*c.BaseSigma + sigma*sigma
}

// BasePrecision is 1/BaseVariance(σ), the factor of x in the base
// measure's gradient, or 0 without a base measure.
func (c DSMConfig) BasePrecision(sigma float64) float64 {
	if c.BaseSigma <= 0 {
		return 0
	}
	return 1 / c.BaseVariance(sigma)
}

// dsm is multi-scale denoising score matching: x̃ = x + σ·ε with σ
// log-uniform in [SigmaMin, SigmaMax], loss mean_i ½‖σ_i·∂E′/∂x(x̃_i) − ε_i‖²
// (Engine.DSMGrad), E′ the energy with the noise level's base measure.
type dsm struct {
	env               Env
	cfg               DSMConfig
	per               int
	xt, eps           []float32 // noisy images and their noise
	sigma, invVar, wa []float32 // per image: noise level, base precision, weight 1/B
}

// dsmState keeps nothing, but draws what a contrastive-divergence run's
// replay buffer takes from the stream, as score-matching runs did when
// they kept one: a run's results stay those of its seed.
func dsmState(c Config, per int, rng *rand.Rand) State {
	uniformChains(c.CD.BufferSize*per, rng)
	return State{}
}

func newDSM(env Env, c Config, _ *State) (Objective, error) {
	b, per := env.Batch, env.per()
	o := &dsm{env: env, cfg: c.DSM, per: per,
		xt: make([]float32, b*per), eps: make([]float32, b*per),
		sigma: make([]float32, b), invVar: make([]float32, b), wa: make([]float32, b)}
	for i := range o.wa {
		o.wa[i] = 1 / float32(b)
	}
	return o, nil
}

// Begin does nothing: score matching keeps no state.
func (o *dsm) Begin() {}

// Step is one update. EPos is the mean energy of the noisy images; ENeg
// is not defined (0).
func (o *dsm) Step(params [][]float32) (Update, error) {
	cfg, rng := o.cfg, o.env.RNG
	b, per := o.env.Batch, o.per
	lo, hi := math.Log(cfg.SigmaMin), math.Log(cfg.SigmaMax)
	for i := 0; i < b; i++ {
		sigma := math.Exp(lo + (hi-lo)*rng.Float64())
		o.sigma[i] = float32(sigma)
		o.invVar[i] = float32(cfg.BasePrecision(sigma))
		src := o.env.Draw()
		for j, v := range src {
			e := rng.NormFloat64()
			o.eps[i*per+j] = float32(e)
			o.xt[i*per+j] = v + float32(sigma*e)
		}
	}
	energy, losses, grads, err := o.env.Engine.DSMGrad(params, o.xt, o.eps, o.sigma, o.invVar, o.wa)
	if err != nil {
		return Update{}, err
	}
	var loss, ePos float64
	for i := 0; i < b; i++ {
		loss += float64(losses[i])
		ePos += float64(energy[i])
	}
	return Update{Grads: grads, Loss: loss / float64(b), EPos: ePos / float64(b)}, nil
}

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

// Samples draws n samples by annealed Langevin (annealedSamples) from the
// seed's own stream.
func (o *dsm) Samples(n int, params func() ([][]float32, error)) ([]float32, error) {
	p, err := params()
	if err != nil {
		return nil, err
	}
	return o.annealedSamples(n, o.env.Seed, p)
}

// annealedSamples draws n samples from a score-matching model with
// parameters params, starting from the base measure of the largest noise
// level. It uses its own random stream (seed), so drawing pictures leaves
// the run's stream alone.
func (o *dsm) annealedSamples(n int, seed uint64, params [][]float32) ([]float32, error) {
	cfg := o.cfg
	rng := rand.New(rand.NewPCG(seed, 0x616e6e65616c))
	per := o.per
	x := make([]float32, n*per)
	start := math.Sqrt(cfg.BaseVariance(cfg.SigmaMax))
	for i := range x {
		x[i] = float32(start * rng.NormFloat64())
	}
	for l := 0; l < annealLevels; l++ {
		f := float64(l) / float64(max(1, annealLevels-1))
		sigma := cfg.SigmaMax * math.Pow(cfg.SigmaMin/cfg.SigmaMax, f)
		alpha, ivar := annealStep*cfg.BaseVariance(sigma), cfg.BasePrecision(sigma)
		for k := 0; k < annealSteps; k++ {
			_, gx, err := o.env.Engine.EnergyGrad(params, x)
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
	_, gx, err := o.env.Engine.EnergyGrad(params, x)
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
