// Package objective holds the training objectives of a model's energy: an
// [Objective] draws an update's batch from the run's random stream and
// returns the loss's parameter gradients; the run (package train) applies
// them with Adam, keeps the moving average and counts the update.
//
// Three objectives, each a [Name] with a section of [Config] and a file:
//
//   - [CD], contrastive divergence with persistent Langevin chains (the
//     paper, Wu et al. 2021): a replay buffer of chains, restarted at
//     random from U(−1, 1) noise, noisy training images or a
//     [PixelMixture] fitted to them, with extra steps for young chains.
//   - [DSM], multi-scale denoising score matching of the same energy, no
//     sampler.
//   - [NCE], ranking noise-contrastive estimation of the same energy
//     against a [NoiseMixture] fitted to the training images, no sampler.
//
// A new objective is a file here: its config section (a field of Config
// with json tags), its constructors in the objectives table, and whatever it keeps
// between updates as a field of [State] (checkpoints hold it).
package objective

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/model"
)

// Name names an objective (a run's --objective).
type Name string

// The objectives.
const (
	CD  Name = "cd"  // contrastive divergence with persistent Langevin chains
	DSM Name = "dsm" // denoising score matching
	NCE Name = "nce" // ranking noise-contrastive estimation against a pixel mixture
)

// Config is the objective section of a training run's settings: which
// objective, and each objective's own settings. Every field's json tag is
// a key of the run's flat config (package train writes it so).
type Config struct {
	Name Name      `json:"objective,omitempty"`
	CD   CDConfig  // contrastive divergence: its chains
	DSM  DSMConfig // denoising score matching: its noise levels
	NCE  NCEConfig // noise-contrastive estimation: its noise draws
}

// Validate rejects settings that cannot run; batch is the update's number
// of training images. The chains' settings are checked whichever objective
// runs.
func (c Config) Validate(batch int) error {
	if _, ok := objectives[c.Name]; !ok {
		names := slices.Sorted(maps.Keys(objectives))
		s := make([]string, len(names))
		for i, n := range names {
			s[i] = string(n)
		}
		return fmt.Errorf("objective %q: want %s", c.Name, strings.Join(s, " or "))
	}
	switch {
	case c.Name == DSM:
		if err := c.DSM.Validate(); err != nil {
			return err
		}
	case c.Name == NCE:
		if err := c.NCE.validate(c.CD.DataNoise); err != nil {
			return err
		}
	case c.DSM.BaseSigma < 0:
		return fmt.Errorf("base sigma %v < 0", c.DSM.BaseSigma)
	}
	return c.CD.Validate(batch)
}

// Objective is one training objective of a run, built by New.
type Objective interface {
	// Begin starts a new run's persistent state (not a resumed run's),
	// once, before the first update.
	Begin()
	// Step draws one update's batch from the run's random stream and
	// returns the loss's gradients at params (ParamSpecs order) with the
	// update's metrics. The gradients are reused by the next call.
	Step(params [][]float32) (Update, error)
	// Samples draws n images of the model for the run's pictures (fewer,
	// or none, where it has fewer), without touching the run's random
	// stream; params are the parameters the model is exported with.
	Samples(n int, params func() ([][]float32, error)) ([]float32, error)
}

// Update is what an objective's step returns: the loss's gradient for
// every parameter tensor, the loss and the mean energies.
type Update struct {
	Grads [][]float32
	Loss  float64
	EPos  float64 // mean E(x+), the data's (score matching: the noisy data's)
	ENeg  float64 // mean E(x−), the samples' (0 where Negatives is false)
	// Negatives is set by objectives that draw samples of the model.
	Negatives bool
}

// Env is what an objective works with.
type Env struct {
	Model  model.Model
	Engine engine.Engine
	// Images holds the N training images of the model's shape, NCHW in
	// [−1, 1]; Draw picks one.
	Images []float32
	N      int
	Batch  int        // training images per update
	RNG    *rand.Rand // the run's random stream: every draw of an update
	Seed   uint64     // the run's seed, for random streams of an objective's own
}

// per is the number of values of one image.
func (e *Env) per() int {
	a := e.Model.Arch
	return a.C * a.H * a.W
}

// Draw returns a training image drawn uniformly with replacement from the
// run's stream, so that a resumed run continues the same sequence.
func (e *Env) Draw() []float32 {
	per := e.per()
	return e.Images[e.RNG.IntN(e.N)*per:][:per]
}

// State is what the objectives keep from update to update; checkpoints
// hold it. Each objective has its fields.
type State struct {
	Buffer []float32 // CD: the replay buffer, CDConfig.BufferSize chains
}

// kind is an objective's constructors.
type kind struct {
	// state draws a new run's persistent state from the run's stream
	// (after the initial parameters); per is an image's number of values.
	state func(c Config, per int, rng *rand.Rand) State
	// new builds the objective over st, a new run's or a checkpoint's.
	new func(env Env, c Config, st *State) (Objective, error)
}

// objectives are the objectives a run may name.
var objectives = map[Name]kind{
	CD:  {state: cdState, new: newCD},
	DSM: {state: dsmState, new: newDSM},
	NCE: {state: nceState, new: newNCE},
}

// NewState draws a new run's persistent state for the objective c names
// from the run's stream rng; per is an image's number of values. An
// unknown objective keeps nothing (New refuses it).
func NewState(c Config, per int, rng *rand.Rand) State {
	k, ok := objectives[c.Name]
	if !ok {
		return State{}
	}
	return k.state(c, per, rng)
}

// New builds the objective c names over st (a new run's, from NewState, or
// a checkpoint's).
func New(env Env, c Config, st *State) (Objective, error) {
	k, ok := objectives[c.Name]
	if !ok {
		return nil, c.Validate(env.Batch)
	}
	return k.new(env, c, st)
}
