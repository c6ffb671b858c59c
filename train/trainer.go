package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/model"
	"github.com/cebm/cebm/train/objective"
)

// Images is a training set: N images of C×H×W, NCHW float32 in [−1, 1],
// and its class names (for the exported model's metadata; LoadImages
// reads a data set's training split).
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
	EMA     [][]float32 // moving average of Params (Optimiser.EMA > 0)
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
	// Slow holds Lookahead's slow weights (Optimiser.LookaheadK > 0): the
	// parameters of the last synchronisation.
	Slow      [][]float32
	AdamM     [][]float32
	AdamV     [][]float32
	Objective objective.State // what the objective keeps between updates (contrastive divergence's replay buffer)
	RNG       []byte          // PCG state
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

// Trainer advances a run one update at a time: the objective's gradients
// from the run's engine, the divergence guard, then Adam (with Lookahead
// when configured), frozen layers left as they are, and the moving
// average.
type Trainer struct {
	State     *State
	Model     model.Model
	engine    engine.Engine
	objective objective.Objective
	pcg       *rand.PCG
	rng       *rand.Rand
	frozen    []bool // per parameter: ParamSpec.Frozen, or a convolution under FreezeConvs
	data      Images
	quality   *SampleQuality // fitted on first use (BufferFD)
}

// NewState starts a run: initial parameters, zero Adam moments and the
// objective's state (contrastive divergence's replay buffer, drawn as its
// chain start says; nothing for score matching), all from the run's seed.
func NewState(cfg Config, m model.Model) *State {
	pcg, rng := initStream(cfg)
	params := m.InitParams(rng)
	st := &State{Config: cfg, Params: params}
	for _, p := range params {
		st.AdamM = append(st.AdamM, make([]float32, len(p)))
		st.AdamV = append(st.AdamV, make([]float32, len(p)))
	}
	a := m.Arch
	st.Objective = objective.NewState(cfg.Objective, a.C*a.H*a.W, rng)
	st.RNG, _ = pcg.MarshalBinary()
	return st
}

// initStream is the random stream a run starts from: its initial
// parameters, then the objective's state, then everything else.
func initStream(cfg Config) (*rand.PCG, *rand.Rand) {
	pcg := rand.NewPCG(cfg.Run.Seed, 0x9e3779b97f4a7c15)
	return pcg, rand.New(pcg)
}

// ModelFor builds the model a config describes.
func ModelFor(cfg Config) (model.Model, error) { return model.FromConfig(cfg.Model) }

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
	pcg := &rand.PCG{}
	if err := pcg.UnmarshalBinary(st.RNG); err != nil {
		return nil, fmt.Errorf("random state: %w", err)
	}
	e, err := engine.New(cfg.Engine, m, cfg.Run.Threads)
	if err != nil {
		return nil, err
	}
	t := &Trainer{State: st, Model: m, engine: e, pcg: pcg, rng: rand.New(pcg), data: data}
	env := objective.Env{Model: m, Engine: e, Images: data.X, N: data.N,
		Batch: cfg.Optimiser.BatchSize, RNG: t.rng, Seed: cfg.Run.Seed}
	if t.objective, err = objective.New(env, cfg.Objective, &st.Objective); err != nil {
		e.Close()
		return nil, err
	}
	for _, s := range m.ParamSpecs() {
		t.frozen = append(t.frozen, s.Frozen || cfg.Optimiser.FreezeConvs && strings.HasPrefix(s.Name, "conv"))
	}
	return t, nil
}

// Close releases the engine.
func (t *Trainer) Close() {
	t.engine.Close()
}

// Step does one parameter update and returns its metrics.
func (t *Trainer) Step() (Metrics, error) {
	start := time.Now()
	u, err := t.objective.Step(t.State.Params)
	if err != nil {
		return Metrics{}, err
	}
	if err := t.checkFinite(u.Loss, u.Grads); err != nil {
		if !u.Negatives {
			return Metrics{}, fmt.Errorf("%w (E %.4g)", err, u.EPos)
		}
		return Metrics{}, fmt.Errorf("%w (E+ %.4g, E− %.4g)", err, u.EPos, u.ENeg)
	}
	return t.update(u.Grads, start, Metrics{Loss: u.Loss, EPos: u.EPos, ENeg: u.ENeg}), nil
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
	m.Step, m.LR = t.State.Step, t.State.Config.Optimiser.LRAt(t.State.Step)
	m.StepsPer, m.Elapsed = 1/dt.Seconds(), t.State.Elapsed.Seconds()
	return m
}

// checkFinite is the divergence guard: a non-finite or exploding loss, or
// a non-finite gradient, stops the run.
func (t *Trainer) checkFinite(loss float64, grads [][]float32) error {
	limit := t.State.Config.Run.MaxLoss
	if math.IsNaN(loss) || math.IsInf(loss, 0) || math.Abs(loss) > limit {
		return fmt.Errorf("%w at step %d: loss %v (limit %g)", ErrDiverged, t.State.Step+1, loss, limit)
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

// adam applies one Adam update (Kingma & Ba) in place.
func (t *Trainer) adam(grads [][]float32) {
	cfg := t.State.Config.Optimiser
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
	s, k := t.State, t.State.Config.Optimiser.LookaheadK
	if k <= 0 {
		s.Slow = nil
		return
	}
	if (s.Step+1)%k != 0 {
		return
	}
	a := float32(s.Config.Optimiser.LookaheadAlpha)
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
	if s.Config.Optimiser.LookaheadK <= 0 || len(s.Slow) == len(s.Params) {
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
	if s.Config.Optimiser.EMA == 0 || len(s.EMA) == len(s.Params) {
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
	d := float32(s.Config.Optimiser.EMA)
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
// With Optimiser.InitShare β it is β·θ₀ + (1 − β)·θ̄, θ₀ the initial
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
func (s *State) ExportParams(m model.Model) ([][]float32, error) {
	opt := s.Config.Optimiser
	ema := len(s.EMA) == len(s.Params) && opt.EMA > 0
	p := s.Params
	if ema {
		p = s.EMA
	}
	beta := opt.InitShare
	if beta == 0 {
		return p, nil
	}
	share := 0.0 // of θ₀ in p
	if ema {
		if !s.EMAFromInit {
			return nil, fmt.Errorf("init share: the moving average was seeded after update %d, not with the initial parameters (a resume turned it on, or the checkpoint predates exact seeding); export with --ema 0", max(s.EMAStart, 1))
		}
		share = math.Pow(opt.EMA, float64(s.Step))
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
