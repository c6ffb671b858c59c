package objective

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// NCEConfig is noise-contrastive estimation's section of the config.
type NCEConfig struct {
	Noise int `json:"nce_noise,omitempty"` // draws of the noise density per update (0: the batch size)
}

// nce is ranking noise-contrastive estimation (Gutmann & Hyvärinen 2010;
// the ranking form of Ma & Collins 2018) against a [NoiseMixture] q fitted
// to the training images. With s(x) = −E(x) − log q(x), each noisy training
// image x_i is told apart from the update's M draws y_1…y_M of q by a
// softmax: loss = mean_i [log(e^{s(x_i)} + Σ_m e^{s(y_m)}) − s(x_i)]. Its
// minimum is at e^{−E} ∝ p_data, whatever constant E carries, so no
// normaliser is learnt, and its gradient is a fixed target's — no sampler
// chases the energy as the chains of contrastive divergence do. An update
// costs one forward pass and one parameter gradient over B + M images.
type nce struct {
	env   Env
	cfg   NCEConfig
	noise float64 // data noise σ_d
	step  float32 // the pictures' Langevin step and noise (CD's settings)
	sd    float64
	per   int
	q     *NoiseMixture
	// scratch, reused every update
	x      []float32 // B noisy training images, then M draws of q
	logQ   []float64
	wa, wb []float32
}

func nceState(Config, int, *rand.Rand) State { return State{} }

func newNCE(env Env, c Config, _ *State) (Objective, error) {
	per := env.per()
	m := c.NCE.Noise
	if m == 0 {
		m = env.Batch
	}
	// q is fitted on its own stream from the seed: the same fit on every
	// resume, and the run's stream is left as it was.
	fitRNG := rand.New(rand.NewPCG(env.Seed, 0x6e6f697365717121))
	q, err := FitNoiseMixture(env.Images, env.N, per, MixtureComponents, MixtureRank, c.CD.DataNoise, fitRNG)
	if err != nil {
		return nil, err
	}
	n := env.Batch + m
	return &nce{env: env, cfg: NCEConfig{Noise: m}, noise: c.CD.DataNoise, step: float32(c.CD.SGLDStep), sd: c.CD.SGLDNoise, per: per, q: q,
		x: make([]float32, n*per), logQ: make([]float64, n), wa: make([]float32, n), wb: make([]float32, n)}, nil
}

// Begin does nothing: the noise density is fitted when the objective is
// made, and nothing else is kept.
func (o *nce) Begin() {}

// Step is one update. EPos is the mean energy of the noisy training
// images, ENeg that of the noise density's draws.
func (o *nce) Step(params [][]float32) (Update, error) {
	b, m, per, rng := o.env.Batch, o.cfg.Noise, o.per, o.env.RNG
	for i := 0; i < b; i++ {
		dst := o.x[i*per:][:per]
		for j, v := range o.env.Draw() {
			dst[j] = v + float32(o.noise*rng.NormFloat64())
		}
	}
	for i := b; i < b+m; i++ {
		o.q.Sample(o.x[i*per:][:per], rng)
	}
	for i := range o.logQ {
		o.logQ[i] = o.q.LogDensity(o.x[i*per:][:per])
	}
	energy, err := o.env.Engine.Energy(params, o.x)
	if err != nil {
		return Update{}, err
	}
	loss, grad := rankingNCE(energy, o.logQ, b)
	for i, g := range grad {
		o.wa[i] = float32(g)
	}
	_, grads, err := o.env.Engine.ParamGrad(params, o.x, o.wa, o.wb)
	if err != nil {
		return Update{}, err
	}
	var ePos, eNeg float64
	for i, e := range energy {
		if i < b {
			ePos += float64(e)
		} else {
			eNeg += float64(e)
		}
	}
	return Update{Grads: grads, Loss: loss, EPos: ePos / float64(b), ENeg: eNeg / float64(m), Negatives: true}, nil
}

// rankingNCE returns the ranking loss of the first b energies (the data)
// against the rest (the noise draws), with log q of each, and its gradient
// with respect to every energy.
func rankingNCE(energy []float32, logQ []float64, b int) (loss float64, grad []float64) {
	n := len(energy)
	s := make([]float64, n)
	for i, e := range energy {
		s[i] = -float64(e) - logQ[i]
	}
	// The noise draws' log-sum-exp, shared by every data image.
	top := math.Inf(-1)
	for _, v := range s[b:] {
		top = max(top, v)
	}
	var sum float64
	for _, v := range s[b:] {
		sum += math.Exp(v - top)
	}
	noiseLSE := top + math.Log(sum)
	// dL/ds, then dL/dE = −dL/ds.
	ds := make([]float64, n)
	fb := float64(b)
	for i := 0; i < b; i++ {
		hi := max(s[i], noiseLSE)
		z := hi + math.Log(math.Exp(s[i]-hi)+math.Exp(noiseLSE-hi))
		loss += (z - s[i]) / fb
		ds[i] += (math.Exp(s[i]-z) - 1) / fb
		for k := b; k < n; k++ {
			ds[k] += math.Exp(s[k]-z) / fb
		}
	}
	grad = make([]float64, n)
	for i, d := range ds {
		grad[i] = -d
	}
	return loss, grad
}

// Langevin pictures of an NCE model: chains from the noise density's
// draws, with contrastive divergence's step settings.
const nceSampleSteps = 60

// Samples draws n images by Langevin steps from draws of q, on the seed's
// own stream (the run's is left alone).
func (o *nce) Samples(n int, params func() ([][]float32, error)) ([]float32, error) {
	p, err := params()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.env.Seed, 0x6e63657069637321))
	x := make([]float32, n*o.per)
	for i := 0; i < n; i++ {
		o.q.Sample(x[i*o.per:][:o.per], rng)
	}
	for k := 0; k < nceSampleSteps; k++ {
		_, gx, err := o.env.Engine.EnergyGrad(p, x)
		if err != nil {
			return nil, err
		}
		for j := range x {
			x[j] += -o.step*gx[j] + float32(o.sd*rng.NormFloat64())
		}
	}
	for j, v := range x {
		x[j] = max(-1, min(1, v))
	}
	return x, nil
}

// validate rejects NCE settings that cannot run.
func (c NCEConfig) validate(dataNoise float64) error {
	switch {
	case c.Noise < 0:
		return fmt.Errorf("nce noise draws %d < 0", c.Noise)
	case dataNoise <= 0:
		return fmt.Errorf("nce needs data noise > 0 (got %v): the noise density's variances are floored by it", dataNoise)
	}
	return nil
}
