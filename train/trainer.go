package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Images is a training set: N images of C×H×W, NCHW float32 in [−1, 1].
type Images struct {
	X       []float32
	N       int
	Classes []string
}

// State is everything a run needs to continue exactly where it stopped;
// checkpoints hold one.
type State struct {
	Config  Config
	Step    int           // parameter updates done
	Elapsed time.Duration // training wall time so far
	Params  [][]float32
	EMA     [][]float32 // moving average of Params (Config.EMA > 0)
	// EMAStart is the update after which the moving average started, at
	// the parameters of that update: 0 when it was seeded with the initial
	// parameters θ₀, before the first update (EMAFromInit). Checkpoints
	// written before EMAFromInit existed hold 0 or 1 and were seeded after
	// the first update.
	EMAStart int
	// EMAFromInit is set when the moving average was seeded with θ₀, so
	// that after n updates it holds exactly dⁿ·θ₀ (ExportParams takes it
	// out). Older runs seeded it with θ₁, one Adam step away.
	EMAFromInit bool
	// Slow holds Lookahead's slow weights (Config.LookaheadK > 0): the
	// parameters of the last synchronisation.
	Slow   [][]float32
	AdamM  [][]float32
	AdamV  [][]float32
	Buffer []float32 // replay buffer, BufferSize images
	RNG    []byte    // PCG state
}

// Metrics describe one parameter update.
type Metrics struct {
	Step     int     `json:"step"`
	Loss     float64 `json:"loss"`
	EPos     float64 `json:"e_pos"` // mean E(x+)
	ENeg     float64 `json:"e_neg"` // mean E(x−)
	LR       float64 `json:"lr"`
	StepsPer float64 `json:"steps_per_s"`
	Elapsed  float64 `json:"elapsed_s"`
	// BufferFD is the replay buffer's Fréchet distance to the training
	// images (SampleQuality), logged at checkpoints of contrastive
	// divergence.
	BufferFD float64 `json:"buffer_fd,omitempty"`
}

// ErrDiverged reports a non-finite or exploding loss.
var ErrDiverged = errors.New("training diverged")

// Trainer runs contrastive divergence with persistent Langevin chains.
type Trainer struct {
	State   *State
	Model   Model
	engine  Engine
	data    Images
	pcg     *rand.PCG
	rng     *rand.Rand
	per     int            // values per image
	mix     *PixelMixture  // chain starts for ReinitFrom "mixture"
	quality *SampleQuality // fitted on first use (BufferFD)
	haveNeg bool           // xNeg holds this run's negatives (ChainEvery)
	frozen  []bool         // per parameter: ParamSpec.Frozen

	// scratch, reused every step
	xPos, xNeg, xBoth []float32
	slots             []int
	young             []int     // chains of this update that (re)started
	xYoung            []float32 // their images, for the extra steps
	wa, wb            []float32
	sigma, invVar     []float32 // dsm: per-image noise level and base precision
}

// NewState starts a run: initial parameters, zero Adam moments and a replay
// buffer of U(−1, 1) noise, all from cfg.Seed.
func NewState(cfg Config, m Model) *State {
	pcg, rng := initStream(cfg)
	params := m.InitParams(rng)
	st := &State{Config: cfg, Params: params}
	for _, p := range params {
		st.AdamM = append(st.AdamM, make([]float32, len(p)))
		st.AdamV = append(st.AdamV, make([]float32, len(p)))
	}
	a := m.Arch
	st.Buffer = make([]float32, cfg.BufferSize*a.C*a.H*a.W)
	for i := range st.Buffer {
		st.Buffer[i] = float32(2*rng.Float64() - 1)
	}
	st.RNG, _ = pcg.MarshalBinary()
	return st
}

// initStream is the random stream a run starts from: its initial
// parameters, then its replay buffer, then everything else.
func initStream(cfg Config) (*rand.PCG, *rand.Rand) {
	pcg := rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)
	return pcg, rand.New(pcg)
}

// ModelFor builds the model a config describes.
func ModelFor(cfg Config) (Model, error) {
	arch, err := ArchByName(cfg.Arch)
	if err != nil {
		return Model{}, err
	}
	arch.Whiten = cfg.Whiten > 0
	return NewModel(cfg.Kind, arch, cfg.Components)
}

// NewTrainer prepares a run from a state (new or from a checkpoint).
func NewTrainer(st *State, data Images) (*Trainer, error) {
	cfg := st.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := ModelFor(cfg)
	if err != nil {
		return nil, err
	}
	a := m.Arch
	per := a.C * a.H * a.W
	if data.N < 1 || len(data.X) != data.N*per {
		return nil, fmt.Errorf("training data: %d values for %d images of %d×%d×%d", len(data.X), data.N, a.C, a.H, a.W)
	}
	if len(st.Buffer) != cfg.BufferSize*per {
		return nil, fmt.Errorf("replay buffer has %d values, want %d", len(st.Buffer), cfg.BufferSize*per)
	}
	pcg := &rand.PCG{}
	if err := pcg.UnmarshalBinary(st.RNG); err != nil {
		return nil, fmt.Errorf("random state: %w", err)
	}
	var mix *PixelMixture
	if cfg.ReinitFrom == "mixture" {
		// Its own random stream from the seed: the same fit on every resume,
		// and the run's stream is left as it was.
		fitRNG := rand.New(rand.NewPCG(cfg.Seed, 0x6d69787475726521))
		if mix, err = FitPixelMixture(data.X, data.N, per, MixtureComponents, MixtureRank, fitRNG); err != nil {
			return nil, err
		}
	}
	e, err := NewEngine(cfg.Engine, m, cfg.Threads)
	if err != nil {
		return nil, err
	}
	b := cfg.BatchSize
	t := &Trainer{mix: mix,
		State: st, Model: m, engine: e, data: data, pcg: pcg, rng: rand.New(pcg), per: per,
		xBoth: make([]float32, 2*b*per), slots: make([]int, b),
		wa: make([]float32, 2*b), wb: make([]float32, 2*b),
		sigma: make([]float32, b), invVar: make([]float32, b),
	}
	t.xPos, t.xNeg = t.xBoth[:b*per], t.xBoth[b*per:]
	for _, s := range m.ParamSpecs() {
		t.frozen = append(t.frozen, s.Frozen || cfg.FreezeConvs && strings.HasPrefix(s.Name, "conv"))
	}
	for i := 0; i < b; i++ {
		t.wa[i], t.wa[b+i] = 1/float32(b), -1/float32(b)
	}
	for i := range t.wb {
		t.wb[i] = float32(2 * cfg.Gamma / float64(b))
	}
	return t, nil
}

// Close releases ONNX Runtime sessions.
func (t *Trainer) Close() {
	t.engine.Close()
}

// Engine exposes the compiled graphs (sampling, evaluation).
func (t *Trainer) Engine() Engine { return t.engine }

// nextIndex draws a training image uniformly with replacement, from the
// run's one random stream, so a resumed run continues the same sequence.
func (t *Trainer) nextIndex() int { return t.rng.IntN(t.data.N) }

// Step does one parameter update and returns its metrics.
func (t *Trainer) Step() (Metrics, error) {
	if t.State.Config.Objective == "dsm" {
		return t.dsmStep()
	}
	return t.cdStep()
}

// dsmStep is one update of multi-scale denoising score matching: x̃ = x +
// σ·ε with σ log-uniform in [SigmaMin, SigmaMax], loss mean_i
// ½‖σ_i·∂E′/∂x(x̃_i) − ε_i‖² (Engine.DSMGrad). EPos is the mean energy of
// the noisy images; ENeg is not defined (0).
func (t *Trainer) dsmStep() (Metrics, error) {
	cfg := t.State.Config
	b, per := cfg.BatchSize, t.per
	start := time.Now()
	xt, eps := t.xPos, t.xNeg // scratch: noisy images and their noise
	lo, hi := math.Log(cfg.SigmaMin), math.Log(cfg.SigmaMax)
	for i := 0; i < b; i++ {
		sigma := math.Exp(lo + (hi-lo)*t.rng.Float64())
		t.sigma[i] = float32(sigma)
		t.invVar[i] = float32(cfg.BasePrecision(sigma))
		src := t.data.X[t.nextIndex()*per:][:per]
		for j, v := range src {
			e := t.rng.NormFloat64()
			eps[i*per+j] = float32(e)
			xt[i*per+j] = v + float32(sigma*e)
		}
	}
	energy, losses, grads, err := t.engine.DSMGrad(t.State.Params, xt, eps, t.sigma, t.invVar, t.wa[:b])
	if err != nil {
		return Metrics{}, err
	}
	var loss, ePos float64
	for i := 0; i < b; i++ {
		loss += float64(losses[i])
		ePos += float64(energy[i])
	}
	loss, ePos = loss/float64(b), ePos/float64(b)
	if err := t.checkFinite(loss, grads); err != nil {
		return Metrics{}, fmt.Errorf("%w (E %.4g)", err, ePos)
	}
	return t.update(grads, start, Metrics{Loss: loss, EPos: ePos}), nil
}

// update applies the gradients (Adam, then the moving average), counts the
// step and its time since start, and completes m.
func (t *Trainer) update(grads [][]float32, start time.Time, m Metrics) Metrics {
	t.seedEMA()
	t.seedSlow()
	t.adam(grads)
	t.lookahead()
	t.updateEMA()
	t.State.Step++
	dt := time.Since(start)
	t.State.Elapsed += dt
	m.Step, m.LR = t.State.Step, t.State.Config.LRAt(t.State.Step)
	m.StepsPer, m.Elapsed = 1/dt.Seconds(), t.State.Elapsed.Seconds()
	return m
}

// checkFinite is the divergence guard: a non-finite or exploding loss, or
// a non-finite gradient, stops the run.
func (t *Trainer) checkFinite(loss float64, grads [][]float32) error {
	cfg := t.State.Config
	if math.IsNaN(loss) || math.IsInf(loss, 0) || math.Abs(loss) > cfg.MaxLoss {
		return fmt.Errorf("%w at step %d: loss %v (limit %g)", ErrDiverged, t.State.Step+1, loss, cfg.MaxLoss)
	}
	for _, g := range grads {
		for _, v := range g {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w at step %d: non-finite gradient", ErrDiverged, t.State.Step+1)
			}
		}
	}
	return nil
}

// cdStep is one update of contrastive divergence with persistent Langevin
// chains (the paper, Wu et al. 2021, §3 and its supplement).
func (t *Trainer) cdStep() (Metrics, error) {
	cfg := t.State.Config
	b, per := cfg.BatchSize, t.per
	start := time.Now()

	// x+ = data + N(0, σ_data²)
	for i := 0; i < b; i++ {
		t.noisyData(t.xPos[i*per:][:per])
	}

	// x− from the replay buffer (or fresh noise), then L Langevin steps;
	// with ChainEvery k > 1, only every k-th update: the others reuse the
	// last negatives against fresh positives (a positive costs one pass,
	// a negative L + 1).
	if k := cfg.ChainEvery; k > 1 && t.State.Step%k != 0 && t.haveNeg {
		return t.paramStep(start)
	}
	t.young = t.young[:0]
	for i := 0; i < b; i++ {
		slot := t.rng.IntN(cfg.BufferSize)
		t.slots[i] = slot
		dst := t.xNeg[i*per:][:per]
		if t.rng.Float64() < cfg.ReinitProb {
			t.freshChain(dst)
			t.young = append(t.young, i)
		} else {
			copy(dst, t.State.Buffer[slot*per:][:per])
		}
	}
	if err := t.youngLangevin(); err != nil {
		return Metrics{}, err
	}
	if err := t.Langevin(t.xNeg, cfg.SGLDSteps); err != nil {
		return Metrics{}, err
	}
	for i, slot := range t.slots {
		copy(t.State.Buffer[slot*per:][:per], t.xNeg[i*per:][:per])
	}
	t.haveNeg = true
	return t.paramStep(start)
}

// paramStep is contrastive divergence's parameter update on [x+; x−].
func (t *Trainer) paramStep(start time.Time) (Metrics, error) {
	cfg := t.State.Config
	b := cfg.BatchSize

	// One pass over [x+; x−] gives the energies and the loss gradient.
	var (
		energy []float32
		grads  [][]float32
		err    error
	)
	energy, grads, err = t.engine.ParamGrad(t.State.Params, t.xBoth, t.wa, t.wb)
	if err != nil {
		return Metrics{}, err
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
	if err := t.checkFinite(loss, grads); err != nil {
		return Metrics{}, fmt.Errorf("%w (E+ %.4g, E− %.4g)", err, ePos, eNeg)
	}
	return t.update(grads, start, Metrics{Loss: loss, EPos: ePos, ENeg: eNeg}), nil
}

// noisyData fills dst with a random training image plus N(0, σ_data²).
func (t *Trainer) noisyData(dst []float32) {
	src := t.data.X[t.nextIndex()*t.per:][:t.per]
	sd := t.State.Config.DataNoise
	for j, v := range src {
		dst[j] = v + float32(sd*t.rng.NormFloat64())
	}
}

// freshChain starts a Langevin chain: U(−1, 1) noise (the paper), a
// noisy training image (short-run contrastive divergence from the data), or
// a draw from the pixel-space mixture.
func (t *Trainer) freshChain(dst []float32) {
	switch t.State.Config.ReinitFrom {
	case "data":
		t.noisyData(dst)
	case "mixture":
		t.mix.Sample(dst, t.rng)
	default:
		for j := range dst {
			dst[j] = float32(2*t.rng.Float64() - 1)
		}
	}
}

// FillBuffer starts every chain of the replay buffer afresh (a new run
// whose chains start elsewhere than U(−1, 1), where NewState left them).
func (t *Trainer) FillBuffer() {
	per := t.per
	for i := 0; i < t.State.Config.BufferSize; i++ {
		t.freshChain(t.State.Buffer[i*per:][:per])
	}
}

// youngLangevin gives the chains that (re)started in this update
// YoungSteps extra Langevin steps, as one smaller batch.
func (t *Trainer) youngLangevin() error {
	steps, per := t.State.Config.YoungSteps, t.per
	if steps == 0 || len(t.young) == 0 {
		return nil
	}
	t.xYoung = t.xYoung[:0]
	for _, i := range t.young {
		t.xYoung = append(t.xYoung, t.xNeg[i*per:][:per]...)
	}
	if err := t.Langevin(t.xYoung, steps); err != nil {
		return err
	}
	for k, i := range t.young {
		copy(t.xNeg[i*per:][:per], t.xYoung[k*per:][:per])
	}
	return nil
}

// Langevin runs L steps of x ← x − (α/2)·∇x E(x) + σ·ε in place.
func (t *Trainer) Langevin(x []float32, steps int) error {
	cfg := t.State.Config
	step, noise := float32(cfg.SGLDStep), cfg.SGLDNoise
	for k := 0; k < steps; k++ {
		_, gx, err := t.engine.EnergyGrad(t.State.Params, x)
		if err != nil {
			return err
		}
		for j := range x {
			x[j] += -step*gx[j] + float32(noise*t.rng.NormFloat64())
		}
	}
	return nil
}

// adam applies one Adam update (Kingma & Ba) in place.
func (t *Trainer) adam(grads [][]float32) {
	cfg := t.State.Config
	s := t.State
	step := float64(s.Step + 1)
	b1, b2 := cfg.Beta1, cfg.Beta2
	lr := cfg.LRAt(s.Step+1) * math.Sqrt(1-math.Pow(b2, step)) / (1 - math.Pow(b1, step))
	fb1, fb2, flr, eps := float32(b1), float32(b2), float32(lr), float32(cfg.AdamEps)
	for i, g := range grads {
		if t.frozen[i] {
			continue
		}
		p, m, v := s.Params[i], s.AdamM[i], s.AdamV[i]
		for j, gj := range g {
			m[j] = fb1*m[j] + (1-fb1)*gj
			v[j] = fb2*v[j] + (1-fb2)*gj*gj
			p[j] -= flr * m[j] / (float32(math.Sqrt(float64(v[j]))) + eps)
		}
	}
}

// lookahead is the Lookahead optimiser's outer step (Zhang, Lucas, Hinton
// & Ba 2019) around Adam: every K updates the slow weights move a share
// α towards the fast ones, φ ← φ + α·(θ − φ), and the fast weights start
// again from them, θ ← φ. Contrastive divergence is a game between the
// energy and its chains, whose gradients oscillate from update to update
// (Adam's |m|/√v stays near 0.05 in the runs of docs/experiments.md);
// Lookahead damps that oscillation, as it does for GANs (Chavdarova et
// al. 2021). Adam's moments are kept.
func (t *Trainer) lookahead() {
	s, k := t.State, t.State.Config.LookaheadK
	if k <= 0 {
		s.Slow = nil
		return
	}
	if (s.Step+1)%k != 0 {
		return
	}
	a := float32(s.Config.LookaheadAlpha)
	for i, p := range s.Params {
		if t.frozen[i] {
			continue
		}
		slow := s.Slow[i]
		for j, v := range p {
			slow[j] += a * (v - slow[j])
			p[j] = slow[j]
		}
	}
}

// seedSlow starts Lookahead's slow weights at the parameters before the
// update being made (θ₀ in a new run, where a resume turns it on).
func (t *Trainer) seedSlow() {
	s := t.State
	if s.Config.LookaheadK <= 0 || len(s.Slow) == len(s.Params) {
		return
	}
	s.Slow = make([][]float32, len(s.Params))
	for i, p := range s.Params {
		s.Slow[i] = append([]float32(nil), p...)
	}
}

// seedEMA starts the moving average, when one is configured and not yet
// kept, at the parameters before the update being made: θ₀ for a new run,
// so that the average's share of its start is exactly dⁿ after n updates.
// A resume that turns the average on seeds it where the run stands.
func (t *Trainer) seedEMA() {
	s := t.State
	if s.Config.EMA == 0 || len(s.EMA) == len(s.Params) {
		return
	}
	s.EMA = make([][]float32, len(s.Params))
	for i, p := range s.Params {
		s.EMA[i] = append([]float32(nil), p...)
	}
	s.EMAStart, s.EMAFromInit = s.Step, s.Step == 0
}

// updateEMA moves the parameters' moving average towards the new values
// (seedEMA started it).
func (t *Trainer) updateEMA() {
	s := t.State
	d := float32(s.Config.EMA)
	if d == 0 {
		s.EMA = nil
		return
	}
	for i, p := range s.Params {
		e := s.EMA[i]
		for j, v := range p {
			e[j] = d*e[j] + (1-d)*v
		}
	}
}

// ExportParams are the parameters a model is exported with: the moving
// average when one is kept, else the last values. m is the state's model.
//
// With Config.InitShare β it is β·θ₀ + (1 − β)·θ̄, θ₀ the initial
// parameters and θ̄ the average of the trajectory: with a moving average,
// the average with its starting point taken out (bias-corrected as Adam's
// moments are: the average seeded with θ₀ holds a share dⁿ of it after n
// updates, so θ̄ = (EMA − dⁿ·θ₀)/(1 − dⁿ), weights ∝ d^(n−k) on θ₁…θₙ);
// without one, the last parameters. A moving average that was not seeded
// with θ₀ cannot be corrected exactly and is an error: one turned on by a
// resume, and those of checkpoints written before EMAFromInit, which
// started at θ₁ (the correction would scale Adam's first step by
// dⁿ/(1 − dⁿ): ×124 after 129 updates at d = 0.9999375). Frozen tensors
// (a fitted whitening map) are exported as they are.
func (s *State) ExportParams(m Model) ([][]float32, error) {
	ema := len(s.EMA) == len(s.Params) && s.Config.EMA > 0
	p := s.Params
	if ema {
		p = s.EMA
	}
	beta := s.Config.InitShare
	if beta == 0 {
		return p, nil
	}
	share := 0.0 // of θ₀ in p
	if ema {
		if !s.EMAFromInit {
			return nil, fmt.Errorf("init share: the moving average was seeded after update %d, not with the initial parameters (a resume turned it on, or the checkpoint predates exact seeding); export with --ema 0", max(s.EMAStart, 1))
		}
		share = math.Pow(s.Config.EMA, float64(s.Step))
	}
	_, rng := initStream(s.Config)
	init := m.InitParams(rng)
	specs := m.ParamSpecs()
	out := make([][]float32, len(p))
	for i, v := range p {
		if specs[i].Frozen {
			out[i] = v
			continue
		}
		out[i] = make([]float32, len(v))
		for j := range v {
			avg := (float64(v[j]) - share*float64(init[i][j])) / (1 - share)
			out[i][j] = float32(beta*float64(init[i][j]) + (1-beta)*avg)
		}
	}
	return out, nil
}

// SyncRNG stores the random stream's position in the state (before a
// checkpoint).
func (t *Trainer) SyncRNG() error {
	b, err := t.pcg.MarshalBinary()
	if err != nil {
		return err
	}
	t.State.RNG = b
	return nil
}
