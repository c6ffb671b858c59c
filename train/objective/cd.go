package objective

import (
	"fmt"
	"math/rand/v2"
)

// CDConfig is contrastive divergence's section of the config: the energy's
// L2 weight, the data noise and the persistent Langevin chains.
type CDConfig struct {
	Gamma      float64 `json:"gamma"`                 // energy L2 weight γ
	DataNoise  float64 `json:"data_noise"`            // std of the noise added to x+
	SGLDSteps  int     `json:"sgld_steps"`            // L
	SGLDStep   float64 `json:"sgld_step"`             // α/2: x ← x − (α/2)·∇E + σ·ε
	SGLDNoise  float64 `json:"sgld_noise"`            // σ
	BufferSize int     `json:"buffer_size"`           // replay buffer
	ReinitProb float64 `json:"reinit_prob"`           // chance a chain restarts
	ReinitFrom Start   `json:"reinit_from"`           // where chains (re)start
	YoungSteps int     `json:"young_steps"`           // extra Langevin steps for chains that (re)start this update
	ChainEvery int     `json:"chain_every,omitempty"` // run the chains every k-th update; the others reuse the last negatives (0, 1: every update)
}

// Start names where Langevin chains start and restart (--reinit-from).
type Start string

// The chain starts.
const (
	FromUniform Start = "uniform" // U(−1, 1) noise (the paper)
	FromData    Start = "data"    // a training image plus the data noise (short-run contrastive divergence from the data)
	FromMixture Start = "mixture" // a draw from the PixelMixture fitted to the training images
)

// Validate rejects chain settings that cannot run with batches of batch
// images.
func (c CDConfig) Validate(batch int) error {
	switch {
	case c.SGLDSteps < 0:
		return fmt.Errorf("sgld steps %d < 0", c.SGLDSteps)
	case c.BufferSize < batch:
		return fmt.Errorf("replay buffer %d smaller than the batch %d", c.BufferSize, batch)
	case c.ReinitProb < 0 || c.ReinitProb > 1:
		return fmt.Errorf("reinit probability %v outside [0, 1]", c.ReinitProb)
	case c.ReinitFrom != FromUniform && c.ReinitFrom != FromData && c.ReinitFrom != FromMixture:
		return fmt.Errorf("reinit-from %q: want %s, %s or %s", c.ReinitFrom, FromUniform, FromData, FromMixture)
	case c.YoungSteps < 0:
		return fmt.Errorf("young steps %d < 0", c.YoungSteps)
	case c.ChainEvery < 0:
		return fmt.Errorf("chain-every %d < 0", c.ChainEvery)
	}
	return nil
}

// cd is contrastive divergence with persistent Langevin chains (the paper,
// Wu et al. 2021, §3 and its supplement).
type cd struct {
	env Env
	cfg CDConfig
	st  *State
	per int
	mix *PixelMixture // chain starts for FromMixture

	// scratch, reused every update
	xPos, xNeg, xBoth []float32
	slots             []int
	young             []int     // chains of this update that (re)started
	xYoung            []float32 // their images, for the extra steps
	wa, wb            []float32
	updates           int // Steps since this objective was made (ChainEvery)
}

// cdState is a new run's replay buffer: U(−1, 1) noise (Begin restarts it
// elsewhere when the chains start elsewhere).
func cdState(c Config, per int, rng *rand.Rand) State {
	return State{Buffer: uniformChains(c.CD.BufferSize*per, rng)}
}

// uniformChains draws n values U(−1, 1).
func uniformChains(n int, rng *rand.Rand) []float32 {
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(2*rng.Float64() - 1)
	}
	return b
}

func newCD(env Env, c Config, st *State) (Objective, error) {
	per := env.per()
	cfg := c.CD
	if len(st.Buffer) != cfg.BufferSize*per {
		return nil, fmt.Errorf("replay buffer has %d values, want %d", len(st.Buffer), cfg.BufferSize*per)
	}
	o := &cd{env: env, cfg: cfg, st: st, per: per}
	if cfg.ReinitFrom == FromMixture {
		// Its own random stream from the seed: the same fit on every resume,
		// and the run's stream is left as it was.
		fitRNG := rand.New(rand.NewPCG(env.Seed, 0x6d69787475726521))
		var err error
		if o.mix, err = FitPixelMixture(env.Images, env.N, per, MixtureComponents, MixtureRank, fitRNG); err != nil {
			return nil, err
		}
	}
	b := env.Batch
	o.xBoth, o.slots = make([]float32, 2*b*per), make([]int, b)
	o.xPos, o.xNeg = o.xBoth[:b*per], o.xBoth[b*per:]
	o.wa, o.wb = make([]float32, 2*b), make([]float32, 2*b)
	for i := 0; i < b; i++ {
		o.wa[i], o.wa[b+i] = 1/float32(b), -1/float32(b)
	}
	for i := range o.wb {
		o.wb[i] = float32(2 * cfg.Gamma / float64(b))
	}
	return o, nil
}

// Begin starts every chain of the replay buffer afresh where chains start
// elsewhere than U(−1, 1) (NewState drew those).
func (o *cd) Begin() {
	if o.cfg.ReinitFrom == FromUniform {
		return
	}
	per := o.per
	for i := 0; i < o.cfg.BufferSize; i++ {
		o.freshChain(o.st.Buffer[i*per:][:per])
	}
}

// Step is one update: x+ are noisy training images, x− the replay buffer's
// chains (some restarted) after L Langevin steps, and one pass over
// [x+; x−] gives the energies and the gradient of
// loss = mean E(x+) − mean E(x−) + γ(mean E(x+)² + mean E(x−)²).
func (o *cd) Step(params [][]float32) (Update, error) {
	cfg := o.cfg
	b, per := o.env.Batch, o.per

	// x+ = data + N(0, σ_data²)
	for i := 0; i < b; i++ {
		o.noisyData(o.xPos[i*per:][:per])
	}

	// x− from the replay buffer (or fresh noise), then L Langevin steps;
	// with ChainEvery k > 1 only every k-th update (and the first after a
	// resume): the others reuse the last negatives against fresh
	// positives — a positive costs one pass, a negative L + 1.
	o.updates++
	if k := cfg.ChainEvery; k <= 1 || (o.updates-1)%k == 0 {
		if err := o.chains(params); err != nil {
			return Update{}, err
		}
	}

	energy, grads, err := o.env.Engine.ParamGrad(params, o.xBoth, o.wa, o.wb)
	if err != nil {
		return Update{}, err
	}
	var ePos, eNeg, e2Pos, e2Neg float64
	for i := 0; i < b; i++ {
		p, n := float64(energy[i]), float64(energy[b+i])
		ePos += p
		eNeg += n
		e2Pos += p * p
		e2Neg += n * n
	}
	fb := float64(b)
	ePos, eNeg = ePos/fb, eNeg/fb
	loss := ePos - eNeg + cfg.Gamma*(e2Pos/fb+e2Neg/fb)
	return Update{Grads: grads, Loss: loss, EPos: ePos, ENeg: eNeg, Negatives: true}, nil
}

// chains draws this update's negatives: chains from the replay buffer (or
// fresh starts), L Langevin steps, written back to their slots.
func (o *cd) chains(params [][]float32) error {
	cfg, rng := o.cfg, o.env.RNG
	b, per := o.env.Batch, o.per
	o.young = o.young[:0]
	for i := 0; i < b; i++ {
		slot := rng.IntN(cfg.BufferSize)
		o.slots[i] = slot
		dst := o.xNeg[i*per:][:per]
		if rng.Float64() < cfg.ReinitProb {
			o.freshChain(dst)
			o.young = append(o.young, i)
		} else {
			copy(dst, o.st.Buffer[slot*per:][:per])
		}
	}
	if err := o.youngLangevin(params); err != nil {
		return err
	}
	if err := o.langevin(params, o.xNeg, cfg.SGLDSteps); err != nil {
		return err
	}
	for i, slot := range o.slots {
		copy(o.st.Buffer[slot*per:][:per], o.xNeg[i*per:][:per])
	}
	return nil
}

// noisyData fills dst with a random training image plus N(0, σ_data²).
func (o *cd) noisyData(dst []float32) {
	src := o.env.Draw()
	sd, rng := o.cfg.DataNoise, o.env.RNG
	for j, v := range src {
		dst[j] = v + float32(sd*rng.NormFloat64())
	}
}

// freshChain starts a Langevin chain where CDConfig.ReinitFrom says.
func (o *cd) freshChain(dst []float32) {
	rng := o.env.RNG
	switch o.cfg.ReinitFrom {
	case FromData:
		o.noisyData(dst)
	case FromMixture:
		o.mix.Sample(dst, rng)
	default:
		for j := range dst {
			dst[j] = float32(2*rng.Float64() - 1)
		}
	}
}

// youngLangevin gives the chains that (re)started in this update
// YoungSteps extra Langevin steps, as one smaller batch.
func (o *cd) youngLangevin(params [][]float32) error {
	steps, per := o.cfg.YoungSteps, o.per
	if steps == 0 || len(o.young) == 0 {
		return nil
	}
	o.xYoung = o.xYoung[:0]
	for _, i := range o.young {
		o.xYoung = append(o.xYoung, o.xNeg[i*per:][:per]...)
	}
	if err := o.langevin(params, o.xYoung, steps); err != nil {
		return err
	}
	for k, i := range o.young {
		copy(o.xNeg[i*per:][:per], o.xYoung[k*per:][:per])
	}
	return nil
}

// langevin runs L steps of x ← x − (α/2)·∇x E(x) + σ·ε in place.
func (o *cd) langevin(params [][]float32, x []float32, steps int) error {
	step, noise, rng := float32(o.cfg.SGLDStep), o.cfg.SGLDNoise, o.env.RNG
	for k := 0; k < steps; k++ {
		_, gx, err := o.env.Engine.EnergyGrad(params, x)
		if err != nil {
			return err
		}
		for j := range x {
			x[j] += -step*gx[j] + float32(noise*rng.NormFloat64())
		}
	}
	return nil
}

// Samples are the first n chains of the replay buffer.
func (o *cd) Samples(n int, _ func() ([][]float32, error)) ([]float32, error) {
	n = min(n, o.cfg.BufferSize)
	return o.st.Buffer[:n*o.per], nil
}
