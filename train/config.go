package train

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config is every setting of a training run. Defaults follow the authors'
// code, which produced the published numbers (Wu et al. 2021: batch 100,
// Adam 1e-4, γ = 0.1, 60 Langevin steps of 1.0·∇E with noise 0.0075, a
// 5,000-chain replay buffer restarted 5% of the time from U(−1, 1)).
type Config struct {
	Kind       Kind   `json:"kind"`
	Arch       string `json:"arch"`
	Components int    `json:"components"` // K, GMM-CEBM
	Data       string `json:"data"`
	Seed       uint64 `json:"seed"`

	// Objective: "cd" (contrastive divergence with persistent Langevin
	// chains, the paper) or "dsm" (multi-scale denoising score matching of
	// the same energy, no sampler).
	Objective string  `json:"objective,omitempty"`
	SigmaMin  float64 `json:"sigma_min,omitempty"`  // dsm: noise levels σ log-uniform in [SigmaMin, SigmaMax]
	SigmaMax  float64 `json:"sigma_max,omitempty"`  //
	BaseSigma float64 `json:"base_sigma,omitempty"` // dsm: Gaussian base measure N(0, (σ_B² + σ²)·I) at noise level σ; 0: none

	Init string `json:"init,omitempty"` // network initialisation: InitPyTorch or InitLSUV
	// Whiten, when > 0, puts a fixed map P = U·diag((λ + WhitenEps)^−Whiten)·Uᵀ
	// in front of the encoder (Arch.Whiten), from the training images'
	// covariance UΛUᵀ, scaled to keep their total variance: ¼ evens out
	// how fast denoising score matching learns each principal direction.
	Whiten    float64 `json:"whiten,omitempty"`
	WhitenEps float64 `json:"whiten_eps,omitempty"`

	BatchSize int     `json:"batch_size"`
	LR        float64 `json:"lr"`
	Beta1     float64 `json:"beta1"`
	Beta2     float64 `json:"beta2"`
	AdamEps   float64 `json:"adam_eps"`
	Gamma     float64 `json:"gamma"`      // energy L2 weight γ
	DataNoise float64 `json:"data_noise"` // std of the noise added to x+

	SGLDSteps  int     `json:"sgld_steps"`            // L
	SGLDStep   float64 `json:"sgld_step"`             // α/2: x ← x − (α/2)·∇E + σ·ε
	SGLDNoise  float64 `json:"sgld_noise"`            // σ
	BufferSize int     `json:"buffer_size"`           // replay buffer
	ReinitProb float64 `json:"reinit_prob"`           // chance a chain restarts
	ReinitFrom string  `json:"reinit_from"`           // where chains (re)start: "uniform" U(−1, 1), "data" (a training image + data noise) or "mixture" (a PixelMixture fitted to the training images)
	YoungSteps int     `json:"young_steps"`           // extra Langevin steps for chains that (re)start this update
	ChainEvery int     `json:"chain_every,omitempty"` // run the chains every k-th update; the others reuse the last negatives (0, 1: every update)

	Warmup     int     `json:"warmup"`      // learning rate rises linearly from 0 over this many updates
	DecaySteps int     `json:"decay_steps"` // cosine decay of the learning rate from LR to LRFinal, ending at this update; 0: constant
	LRFinal    float64 `json:"lr_final"`    // learning rate after DecaySteps

	// LookaheadK, when > 0, wraps Adam in Lookahead: every K updates the
	// slow weights move LookaheadAlpha of the way to the fast ones and the
	// fast ones restart there (Trainer.lookahead).
	LookaheadK     int     `json:"lookahead_k,omitempty"`
	LookaheadAlpha float64 `json:"lookahead_alpha,omitempty"`

	// FreezeConvs keeps the convolutions at their initial (random) values:
	// only the dense layers (and a GMM-CEBM's prior) learn.
	FreezeConvs bool `json:"freeze_convs,omitempty"`

	EMA float64 `json:"ema"` // decay of an exponential moving average of the parameters, exported instead of the last values; 0: off
	// InitShare β, when > 0, exports β·θ₀ + (1 − β)·θ̄: θ₀ the run's
	// initial parameters, θ̄ the trajectory's average (the moving average
	// with its starting point taken out; the last parameters without one;
	// State.ExportParams) — a weight-space interpolation with the
	// untrained encoder, chosen on the validation split like any other
	// setting. A moving average started at θ₀ holds a share EMA^steps of
	// it; this sets the share directly.
	InitShare float64 `json:"init_share,omitempty"`

	Steps           int           `json:"steps"`    // parameter updates; 0 means until Duration
	Duration        time.Duration `json:"duration"` // wall-clock budget; 0 means until Steps
	CheckpointEvery int           `json:"checkpoint_every"`
	MaxLoss         float64       `json:"max_loss"` // divergence guard on |loss|
	Threads         int           `json:"threads"`  // ONNX Runtime intra-op threads; 0: all cores
	// Engine runs every training step (Langevin, parameter, score
	// matching's second-order step): EngineORT (ONNX Runtime, the
	// reference) or EngineOneDNN (train/dnnl: 2-3× faster; every model
	// kind, without --whiten).
	Engine     string `json:"engine,omitempty"`
	TrainLimit int    `json:"train_limit"`
}

// The engines of Config.Engine.
const (
	EngineORT    = "onnxruntime"
	EngineOneDNN = "onednn"
)

// DefaultConfig is the authors' MNIST recipe.
func DefaultConfig() Config {
	return Config{
		Kind: CEBM, Arch: "mnist", Components: 10, Data: "mnist", Seed: 1,
		Objective: "cd", SigmaMin: 0.3, SigmaMax: 1.0, Init: InitPyTorch,
		BatchSize: 100, LR: 1e-4, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8,
		Gamma: 0.1, DataNoise: 0.03,
		SGLDSteps: 60, SGLDStep: 1.0, SGLDNoise: 0.0075,
		BufferSize: 5000, ReinitProb: 0.05, ReinitFrom: "uniform",
		Steps: 1000, CheckpointEvery: 50, MaxLoss: 1e4,
	}
}

// BaseVariance is the variance v = σ_B² + σ² of the Gaussian base measure
// at noise level σ, and BasePrecision its 1/v, the factor of x in the base
// measure's gradient (0 when there is no base measure).
func (c Config) BaseVariance(sigma float64) float64 { return c.BaseSigma*c.BaseSigma + sigma*sigma }

// BasePrecision is 1/BaseVariance(σ), or 0 without a base measure.
func (c Config) BasePrecision(sigma float64) float64 {
	if c.BaseSigma <= 0 {
		return 0
	}
	return 1 / c.BaseVariance(sigma)
}

// LRAt is the learning rate of update step (1-based): a linear warm-up,
// then a cosine decay from LR to LRFinal ending at DecaySteps.
func (c Config) LRAt(step int) float64 {
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

// Validate rejects settings that cannot run.
func (c Config) Validate() error {
	switch {
	case c.Objective != "cd" && c.Objective != "dsm":
		return fmt.Errorf("objective %q: want cd or dsm", c.Objective)
	case c.Objective == "dsm" && (c.SigmaMin <= 0 || c.SigmaMax < c.SigmaMin):
		return fmt.Errorf("noise levels [%v, %v]: want 0 < sigma-min ≤ sigma-max", c.SigmaMin, c.SigmaMax)
	case c.Init != "" && c.Init != InitPyTorch && c.Init != InitLSUV:
		return fmt.Errorf("init %q: want %s or %s", c.Init, InitPyTorch, InitLSUV)
	case c.Whiten < 0 || c.Whiten > 1 || c.WhitenEps < 0 || (c.Whiten > 0 && c.WhitenEps == 0):
		return fmt.Errorf("whiten %v, whiten-eps %v: want a power in [0, 1] and eps > 0", c.Whiten, c.WhitenEps)
	case c.Engine != "" && c.Engine != EngineORT && c.Engine != EngineOneDNN:
		return fmt.Errorf("engine %q: want %s or %s", c.Engine, EngineORT, EngineOneDNN)
	case c.ChainEvery < 0:
		return fmt.Errorf("chain-every %d: want ≥ 0", c.ChainEvery)
	case c.LookaheadK < 0 || (c.LookaheadK > 0 && (c.LookaheadAlpha <= 0 || c.LookaheadAlpha > 1)):
		return fmt.Errorf("lookahead %d, alpha %v: want K ≥ 0 and 0 < α ≤ 1", c.LookaheadK, c.LookaheadAlpha)
	case c.Whiten > 0 && c.Init == InitLSUV:
		return errors.New("whiten and the lsuv init do not combine")
	case c.BaseSigma < 0:
		return fmt.Errorf("base sigma %v < 0", c.BaseSigma)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size %d < 1", c.BatchSize)
	case c.LR <= 0:
		return fmt.Errorf("learning rate %v <= 0", c.LR)
	case c.SGLDSteps < 0:
		return fmt.Errorf("sgld steps %d < 0", c.SGLDSteps)
	case c.BufferSize < c.BatchSize:
		return fmt.Errorf("replay buffer %d smaller than the batch %d", c.BufferSize, c.BatchSize)
	case c.ReinitProb < 0 || c.ReinitProb > 1:
		return fmt.Errorf("reinit probability %v outside [0, 1]", c.ReinitProb)
	case c.ReinitFrom != "uniform" && c.ReinitFrom != "data" && c.ReinitFrom != "mixture":
		return fmt.Errorf("reinit-from %q: want uniform, data or mixture", c.ReinitFrom)
	case c.YoungSteps < 0:
		return fmt.Errorf("young steps %d < 0", c.YoungSteps)
	case c.Warmup < 0 || c.DecaySteps < 0:
		return fmt.Errorf("warm-up %d and decay steps %d must be ≥ 0", c.Warmup, c.DecaySteps)
	case c.DecaySteps > 0 && (c.LRFinal < 0 || c.LRFinal > c.LR):
		return fmt.Errorf("final learning rate %v outside [0, %v]", c.LRFinal, c.LR)
	case c.DecaySteps > 0 && c.DecaySteps <= c.Warmup:
		return fmt.Errorf("decay steps %d must exceed the warm-up %d", c.DecaySteps, c.Warmup)
	case c.InitShare < 0 || c.InitShare >= 1:
		return fmt.Errorf("init share %v: want a share in [0, 1)", c.InitShare)
	case c.InitShare > 0 && c.Init == InitLSUV:
		return errors.New("init-share and the lsuv init do not combine (its initial parameters depend on the data)")
	case c.EMA < 0 || c.EMA >= 1:
		return fmt.Errorf("ema decay %v outside [0, 1)", c.EMA)
	case c.Steps <= 0 && c.Duration <= 0:
		return fmt.Errorf("give --steps or --duration")
	case c.CheckpointEvery < 1:
		return fmt.Errorf("checkpoint interval %d < 1", c.CheckpointEvery)
	}
	return nil
}
