package train

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/model"
	"github.com/cebm/cebm/train/objective"
)

// Config is every setting of a training run, in sections: the model, the
// objective (with each objective's own settings), the optimiser, the run
// and the engine. Defaults follow the authors' code, which produced the
// published numbers (Wu et al. 2021: batch 100, Adam 1e-4, γ = 0.1, 60
// Langevin steps of 1.0·∇E with noise 0.0075, a 5,000-chain replay buffer
// restarted 5% of the time from U(−1, 1)).
//
// Its JSON is one flat object, every section's json keys side by side:
// the form model files' metadata and checkpoints hold (MarshalJSON).
type Config struct {
	Model     model.Config
	Objective objective.Config
	Optimiser Optimiser
	Run       RunConfig
	// Engine runs every training step (Langevin, parameter, score
	// matching's second-order step): engine.ORT (ONNX Runtime, the
	// reference) or engine.OneDNN (train/dnnl: 2-3× faster; every model
	// kind, without --whiten).
	Engine engine.Name `json:"engine,omitempty"`
}

// Optimiser is the optimiser's section of the config: Adam on minibatches,
// its learning-rate schedule, and the parameters a run exports.
type Optimiser struct {
	BatchSize int     `json:"batch_size"`
	LR        float64 `json:"lr"`
	Beta1     float64 `json:"beta1"`
	Beta2     float64 `json:"beta2"`
	AdamEps   float64 `json:"adam_eps"`

	Warmup     int     `json:"warmup"`      // learning rate rises linearly from 0 over this many updates
	DecaySteps int     `json:"decay_steps"` // cosine decay of the learning rate from LR to LRFinal, ending at this update; 0: constant
	LRFinal    float64 `json:"lr_final"`    // learning rate after DecaySteps

	// FreezeConvs keeps the convolutions at their initial (random) values:
	// only the dense layers (and a GMM-CEBM's prior) learn.
	FreezeConvs bool `json:"freeze_convs,omitempty"`

	// LookaheadK, when > 0, wraps Adam in Lookahead: every K updates the
	// slow weights move LookaheadAlpha of the way to the fast ones and the
	// fast ones restart there (Trainer.lookahead).
	LookaheadK     int     `json:"lookahead_k,omitempty"`
	LookaheadAlpha float64 `json:"lookahead_alpha,omitempty"`

	EMA float64 `json:"ema"` // decay of an exponential moving average of the parameters, exported instead of the last values; 0: off
	// InitShare β, when > 0, exports β·θ₀ + (1 − β)·θ̄: θ₀ the run's
	// initial parameters, θ̄ the trajectory's average (the moving average
	// with its starting point taken out; the last parameters without one;
	// State.ExportParams) — a weight-space interpolation with the
	// untrained encoder, chosen on the validation split like any other
	// setting. A moving average started at θ₀ holds a share EMA^steps of
	// it; this sets the share directly.
	InitShare float64 `json:"init_share,omitempty"`
}

// RunConfig is the run's section of the config: its data, seed and
// length, checkpoints, divergence guard and threads.
type RunConfig struct {
	Data            string        `json:"data"`
	Seed            uint64        `json:"seed"`
	Steps           int           `json:"steps"`    // parameter updates; 0 means until Duration
	Duration        time.Duration `json:"duration"` // wall-clock budget; 0 means until Steps
	CheckpointEvery int           `json:"checkpoint_every"`
	MaxLoss         float64       `json:"max_loss"`    // divergence guard on |loss|
	Threads         int           `json:"threads"`     // the engine's threads; 0: all cores
	TrainLimit      int           `json:"train_limit"` // use only the first N training images; 0: all
}

// DefaultConfig is the authors' MNIST recipe.
func DefaultConfig() Config {
	return Config{
		Model: model.Config{Kind: model.CEBM, Arch: "mnist", Components: 10, Init: model.InitPyTorch},
		Objective: objective.Config{
			Name: objective.CD,
			CD: objective.CDConfig{Gamma: 0.1, DataNoise: 0.03,
				SGLDSteps: 60, SGLDStep: 1.0, SGLDNoise: 0.0075,
				BufferSize: 5000, ReinitProb: 0.05, ReinitFrom: objective.FromUniform},
			DSM: objective.DSMConfig{SigmaMin: 0.3, SigmaMax: 1.0},
		},
		Optimiser: Optimiser{BatchSize: 100, LR: 1e-4, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8},
		Run:       RunConfig{Data: "mnist", Seed: 1, Steps: 1000, CheckpointEvery: 50, MaxLoss: 1e4},
	}
}

// LRAt is the learning rate of update step (1-based): a linear warm-up,
// then a cosine decay from LR to LRFinal ending at DecaySteps.
func (c Optimiser) LRAt(step int) float64 {
	if c.Warmup > 0 && step <= c.Warmup {
		return c.LR * float64(step) / float64(c.Warmup)
	}
	if c.DecaySteps <= 0 {
		return c.LR
	}
	if step >= c.DecaySteps {
		return c.LRFinal
	}
	f := float64(step-c.Warmup) / float64(c.DecaySteps-c.Warmup)
	return c.LRFinal + (c.LR-c.LRFinal)*0.5*(1+math.Cos(math.Pi*f))
}

// Validate rejects optimiser settings that cannot run.
func (c Optimiser) Validate() error {
	switch {
	case c.BatchSize < 1:
		return fmt.Errorf("batch size %d < 1", c.BatchSize)
	case c.LR <= 0:
		return fmt.Errorf("learning rate %v <= 0", c.LR)
	case c.Warmup < 0 || c.DecaySteps < 0:
		return fmt.Errorf("warm-up %d and decay steps %d must be ≥ 0", c.Warmup, c.DecaySteps)
	case c.DecaySteps > 0 && (c.LRFinal < 0 || c.LRFinal > c.LR):
		return fmt.Errorf("final learning rate %v outside [0, %v]", c.LRFinal, c.LR)
	case c.DecaySteps > 0 && c.DecaySteps <= c.Warmup:
		return fmt.Errorf("decay steps %d must exceed the warm-up %d", c.DecaySteps, c.Warmup)
	case c.InitShare < 0 || c.InitShare >= 1:
		return fmt.Errorf("init share %v: want a share in [0, 1)", c.InitShare)
	case c.EMA < 0 || c.EMA >= 1:
		return fmt.Errorf("ema decay %v outside [0, 1)", c.EMA)
	case c.LookaheadK < 0 || (c.LookaheadK > 0 && (c.LookaheadAlpha <= 0 || c.LookaheadAlpha > 1)):
		return fmt.Errorf("lookahead %d, alpha %v: want K ≥ 0 and 0 < α ≤ 1", c.LookaheadK, c.LookaheadAlpha)
	}
	return nil
}

// Validate rejects run settings that cannot run.
func (c RunConfig) Validate() error {
	switch {
	case c.Steps <= 0 && c.Duration <= 0:
		return fmt.Errorf("give --steps or --duration")
	case c.CheckpointEvery < 1:
		return fmt.Errorf("checkpoint interval %d < 1", c.CheckpointEvery)
	}
	return nil
}

// Validate rejects settings that cannot run: each section's, then those
// that do not combine.
func (c Config) Validate() error {
	for _, err := range []error{c.Objective.Validate(c.Optimiser.BatchSize), c.Model.Validate(), c.Engine.Validate(), c.Optimiser.Validate(), c.Run.Validate()} {
		if err != nil {
			return err
		}
	}
	if c.Optimiser.InitShare > 0 && c.Model.Init == model.InitLSUV {
		return errors.New("init-share and the lsuv init do not combine (its initial parameters depend on the data)")
	}
	return nil
}

// configKeys are the config's JSON keys in the order of its first, flat
// layout; MarshalJSON keeps it (model files record their config, and the
// same config must give the same file), then writes keys added since in
// section order.
var configKeys = []string{
	"kind", "arch", "components", "data", "seed", "objective", "sigma_min", "sigma_max", "base_sigma",
	"init", "whiten", "whiten_eps", "batch_size", "lr", "beta1", "beta2", "adam_eps", "gamma", "data_noise",
	"sgld_steps", "sgld_step", "sgld_noise", "buffer_size", "reinit_prob", "reinit_from", "young_steps",
	"warmup", "decay_steps", "lr_final", "freeze_convs", "ema", "init_share", "steps", "duration",
	"checkpoint_every", "max_loss", "threads", "engine", "train_limit",
}

// setting is one field of the config with a JSON key.
type setting struct {
	key       string
	omitEmpty bool
	v         reflect.Value
}

// settings lists v's fields with a json tag in section order: a field
// without one is a section (a struct), whose settings are listed in its
// place.
func settings(v reflect.Value) []setting {
	var out []setting
	t := v.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		if tag == "" {
			out = append(out, settings(v.Field(i))...)
			continue
		}
		key, opts, _ := strings.Cut(tag, ",")
		out = append(out, setting{key, opts == "omitempty", v.Field(i)})
	}
	return out
}

// MarshalJSON writes the config as one flat object: the keys of
// configKeys in that order, then any others.
func (c Config) MarshalJSON() ([]byte, error) {
	ss := settings(reflect.ValueOf(c))
	rank := func(s setting) int {
		if i := slices.Index(configKeys, s.key); i >= 0 {
			return i
		}
		return len(configKeys)
	}
	slices.SortStableFunc(ss, func(a, b setting) int { return cmp.Compare(rank(a), rank(b)) })
	var buf bytes.Buffer
	buf.WriteByte('{')
	for _, s := range ss {
		if s.omitEmpty && s.v.IsZero() {
			continue
		}
		v, err := json.Marshal(s.v.Interface())
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", s.key, err)
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, "%q:", s.key)
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads the flat object MarshalJSON writes; keys it does not
// hold leave their settings as they are.
func (c *Config) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, s := range settings(reflect.ValueOf(c).Elem()) {
		if r, ok := raw[s.key]; ok {
			if err := json.Unmarshal(r, s.v.Addr().Interface()); err != nil {
				return fmt.Errorf("config %s: %w", s.key, err)
			}
		}
	}
	return nil
}

// GobEncode writes the config to checkpoints as its JSON, so that they
// hold settings by name, whatever section a setting moves to.
func (c Config) GobEncode() ([]byte, error) { return c.MarshalJSON() }

// GobDecode reads what GobEncode writes.
func (c *Config) GobDecode(b []byte) error { return c.UnmarshalJSON(b) }
