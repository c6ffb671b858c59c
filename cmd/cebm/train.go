package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/cebm/cebm/train"
	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/model"
)

// trainConfig is every setting of `cebm train`: the run's recipe
// (train.Config) and what the command does around it. Each is a flag and
// also CEBM_<FLAG> in the environment.
type trainConfig struct {
	Run    train.Config
	Preset string
	Out    string
	Resume bool
	Export string
	// ExportOnly writes --export from the run folder's checkpoint, with the
	// settings --resume may change applied (--ema, --init-share), and
	// trains nothing.
	ExportOnly bool
	Quiet      bool
	NoEval     bool            // no validation 1-NN at the end (train_eval.go)
	given      map[string]bool // flags set on the command line or environment
}

// parseTrainFlags reads args and the environment; it returns nil, nil for
// -h. A --preset sets the recipe's defaults, so flags given beside it
// override single settings.
func parseTrainFlags(args []string, env func(string) string, stderr io.Writer) (*trainConfig, error) {
	c := &trainConfig{Run: train.DefaultConfig()}
	preset := env(envName("preset"))
	for i, a := range args { // --preset must be known before the defaults are bound
		if v, ok := strings.CutPrefix(a, "--preset="); ok {
			preset = v
		} else if (a == "--preset" || a == "-preset") && i+1 < len(args) {
			preset = args[i+1]
		}
	}
	if preset != "" {
		p, ok := presets()[preset]
		if !ok {
			return nil, fmt.Errorf("train: unknown --preset %q (%s)", preset, strings.Join(slices.Sorted(maps.Keys(presets())), ", "))
		}
		c.Run = p.config
	}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerTrainFlags(fs, &c.Run)
	fs.StringVar(&c.Preset, "preset", preset, "start from a named recipe (flags given beside it override it):"+presetList())
	fs.StringVar(&c.Out, "out", "runs/mnist-cebm", "run folder: checkpoint, metrics.jsonl, curves.png, samples.png, model.onnx")
	fs.BoolVar(&c.Resume, "resume", false, "continue from the run folder's checkpoint")
	fs.StringVar(&c.Export, "export", "", "also write the trained encoder here (e.g. models/mnist-cebm.onnx)")
	fs.BoolVar(&c.ExportOnly, "export-only", false, "write --export from the checkpoint in --out (with --ema, --init-share applied) and train nothing")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress bar")
	fs.BoolVar(&c.NoEval, "no-eval", false, "skip the validation 1-NN that ends a run (the last 10,000 of its training images against the ones before them, as cebm eval --split val; under a minute for MNIST)")
	deprecatedFlag(fs, "model", "kind", stderr, func(v string) error {
		c.Run.Model.Kind = model.Kind(v)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cebm train [flags]\n\nTrains a CEBM, GMM-CEBM or IGEBM; SIGUSR1 redraws curves.png and samples.png.\nEvery flag is also read from CEBM_<FLAG> (e.g. CEBM_THREADS).")
		fs.PrintDefaults()
	}
	given, err := parseFlags("train", fs, args, env)
	if err != nil {
		if err == flag.ErrHelp {
			return nil, nil
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("train: unexpected argument %q", fs.Arg(0))
	}
	c.given = given
	return c, nil
}

// presetList is the presets for the usage text, one a line.
func presetList() string {
	var b strings.Builder
	ps := presets()
	for _, name := range slices.Sorted(maps.Keys(ps)) {
		fmt.Fprintf(&b, "\n  %s: %s", name, ps[name].summary)
	}
	return b.String()
}

// resumeOverrides applies to a resumed run's recipe the settings that may
// change on --resume when given: the learning rate and its schedule, the
// moving average, the initial parameters' share and the engine. The rest of the recipe stays as the
// checkpoint has it.
func (c *trainConfig) resumeOverrides(log *slog.Logger) func(*train.Config) {
	return func(r *train.Config) {
		if c.given["lr"] {
			log.Info("resume: new learning rate", "from", r.Optimiser.LR, "to", c.Run.Optimiser.LR)
			r.Optimiser.LR = c.Run.Optimiser.LR
		}
		if c.given["ema"] {
			r.Optimiser.EMA = c.Run.Optimiser.EMA
		}
		if c.given["init-share"] {
			r.Optimiser.InitShare = c.Run.Optimiser.InitShare
		}
		if c.given["lr-final"] {
			r.Optimiser.LRFinal = c.Run.Optimiser.LRFinal
		}
		if c.given["decay-steps"] {
			r.Optimiser.DecaySteps = c.Run.Optimiser.DecaySteps
		}
		if c.given["warmup"] {
			r.Optimiser.Warmup = c.Run.Optimiser.Warmup
		}
		if c.given["engine"] {
			r.Engine = c.Run.Engine
		}
	}
}

// runTrain is `cebm train`: contrastive divergence with persistent Langevin
// chains (or score matching), checkpoints in --out, the encoder exported at
// the end.
func runTrain(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	tc, err := parseTrainFlags(args, env, stderr)
	if tc == nil || err != nil {
		return err
	}
	cfg := tc.Run
	if err := cfg.Engine.Usable(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if tc.ExportOnly {
		return exportCheckpoint(tc, env, log)
	}
	imgs, err := train.LoadImages(cfg.Run, env)
	if err != nil {
		return err
	}
	log.Info("training", "kind", cfg.Model.Kind, "preset", tc.Preset, "data", cfg.Run.Data, "images", imgs.N, "out", tc.Out, "resume", tc.Resume)

	snap := make(chan struct{}, 1)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			select {
			case snap <- struct{}{}:
			default:
			}
		}
	}()
	opt := train.RunOptions{Dir: tc.Out, Resume: tc.Resume, Snapshot: snap, OnResume: tc.resumeOverrides(log), Export: tc.Export,
		Log: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }}
	if !tc.Quiet {
		opt.Progress = stderr
	}
	if _, err := train.Run(ctx, cfg, imgs, opt); err != nil {
		return err
	}
	printValidation(ctx, tc, env, stdout, log)
	return nil
}

// exportCheckpoint is `cebm train --export-only`: the encoder of the run
// folder's checkpoint, with what --resume may change applied, written to
// --export.
func exportCheckpoint(tc *trainConfig, env func(string) string, log *slog.Logger) error {
	if tc.Export == "" {
		return errors.New("train: --export-only needs --export PATH")
	}
	st, err := train.ExportCheckpoint(tc.Out, tc.Export, tc.resumeOverrides(log), env)
	if err != nil {
		return fmt.Errorf("train: --export-only: %w", err)
	}
	log.Info("exported", "path", tc.Export, "steps", st.Step, "ema", st.Config.Optimiser.EMA, "init_share", st.Config.Optimiser.InitShare)
	return nil
}

// registerTrainFlags binds every setting of a training run to a flag, with
// c's values as defaults.
func registerTrainFlags(fs *flag.FlagSet, c *train.Config) {
	fs.Func("kind", "model family: cebm, gmm-cebm or igebm (default "+string(c.Model.Kind)+")", func(s string) error {
		c.Model.Kind = model.Kind(s)
		return nil
	})
	fs.StringVar(&c.Model.Arch, "arch", c.Model.Arch, "network: mnist (28×28×1) or cifar (32×32×3)")
	fs.IntVar(&c.Model.Components, "components", c.Model.Components, "GMM-CEBM mixture components K")
	fs.StringVar(&c.Run.Data, "data", c.Run.Data, "training data set (see cebm data list)")
	fs.Uint64Var(&c.Run.Seed, "seed", c.Run.Seed, "random seed")
	fs.StringVar((*string)(&c.Objective.Name), "objective", string(c.Objective.Name), "training objective: cd (contrastive divergence, persistent Langevin chains), dsm (denoising score matching of the same energy) or nce (ranking noise-contrastive estimation against a pixel mixture)")
	fs.IntVar(&c.Objective.NCE.Noise, "nce-noise", c.Objective.NCE.Noise, "nce: draws of the noise density per update (0: the batch size)")
	fs.Float64Var(&c.Objective.DSM.SigmaMin, "sigma-min", c.Objective.DSM.SigmaMin, "dsm: smallest noise level σ")
	fs.Float64Var(&c.Objective.DSM.SigmaMax, "sigma-max", c.Objective.DSM.SigmaMax, "dsm: largest noise level σ (σ is log-uniform in [min, max])")
	fs.Float64Var(&c.Objective.DSM.BaseSigma, "base-sigma", c.Objective.DSM.BaseSigma, "dsm: Gaussian base measure N(0, (σ_B²+σ²)I) added to the energy (x-only: the posterior is unchanged); 0: none")
	fs.Float64Var(&c.Model.Whiten, "whiten", c.Model.Whiten, "power of a fixed whitening map P = U·diag((λ+eps)^−power)·Uᵀ of the training images' covariance in front of the encoder (0: none; ¼ evens out how fast score matching learns each principal direction)")
	fs.Float64Var(&c.Model.WhitenEps, "whiten-eps", 0.05, "added to the covariance's eigenvalues before --whiten's power")
	fs.StringVar((*string)(&c.Model.Init), "init", string(c.Model.Init), "network initialisation: pytorch (U(±1/√fan_in), the authors' code) or lsuv (then each hidden layer rescaled to unit-variance pre-activations on 500 training images)")
	fs.IntVar(&c.Optimiser.BatchSize, "batch", c.Optimiser.BatchSize, "minibatch size B")
	fs.Float64Var(&c.Optimiser.LR, "lr", c.Optimiser.LR, "Adam learning rate")
	fs.Float64Var(&c.Optimiser.Beta1, "beta1", c.Optimiser.Beta1, "Adam β1")
	fs.Float64Var(&c.Optimiser.Beta2, "beta2", c.Optimiser.Beta2, "Adam β2")
	fs.Float64Var(&c.Optimiser.AdamEps, "adam-eps", c.Optimiser.AdamEps, "Adam ε")
	fs.Float64Var(&c.Objective.CD.Gamma, "gamma", c.Objective.CD.Gamma, "energy L2 weight γ")
	fs.Float64Var(&c.Objective.CD.DataNoise, "data-noise", c.Objective.CD.DataNoise, "std of Gaussian noise added to data")
	fs.IntVar(&c.Objective.CD.SGLDSteps, "sgld-steps", c.Objective.CD.SGLDSteps, "Langevin steps L per update")
	fs.Float64Var(&c.Objective.CD.SGLDStep, "sgld-step", c.Objective.CD.SGLDStep, "Langevin gradient step α/2")
	fs.Float64Var(&c.Objective.CD.SGLDNoise, "sgld-noise", c.Objective.CD.SGLDNoise, "Langevin noise std σ")
	fs.IntVar(&c.Objective.CD.BufferSize, "buffer", c.Objective.CD.BufferSize, "replay buffer size")
	fs.Float64Var(&c.Objective.CD.ReinitProb, "reinit", c.Objective.CD.ReinitProb, "probability a chain restarts")
	fs.StringVar((*string)(&c.Objective.CD.ReinitFrom), "reinit-from", string(c.Objective.CD.ReinitFrom), "where chains start and restart: uniform (U(-1, 1) noise), data (training images plus data noise) or mixture (a low-rank Gaussian mixture fitted to the training images, no labels)")
	fs.IntVar(&c.Objective.CD.ChainEvery, "chain-every", c.Objective.CD.ChainEvery, "run the Langevin chains every k-th update only; the others reuse the last negatives against fresh positives (0, 1: every update)")
	fs.IntVar(&c.Objective.CD.YoungSteps, "young-steps", c.Objective.CD.YoungSteps, "extra Langevin steps for chains that start or restart in an update")
	fs.IntVar(&c.Optimiser.Warmup, "warmup", c.Optimiser.Warmup, "linear learning-rate warm-up over this many updates")
	fs.IntVar(&c.Optimiser.DecaySteps, "decay-steps", c.Optimiser.DecaySteps, "cosine learning-rate decay from --lr to --lr-final, ending at this update (0: constant)")
	fs.Float64Var(&c.Optimiser.LRFinal, "lr-final", c.Optimiser.LRFinal, "learning rate at and after --decay-steps")
	fs.IntVar(&c.Optimiser.LookaheadK, "lookahead", c.Optimiser.LookaheadK, "Lookahead around Adam: every K updates the slow weights move --lookahead-alpha of the way to Adam's and Adam restarts from them (0: off)")
	fs.Float64Var(&c.Optimiser.LookaheadAlpha, "lookahead-alpha", 0.5, "Lookahead's share α")
	fs.BoolVar(&c.Optimiser.FreezeConvs, "freeze-convs", c.Optimiser.FreezeConvs, "keep the convolutions at their random initial values; only the dense layers learn")
	fs.Float64Var(&c.Optimiser.EMA, "ema", c.Optimiser.EMA, "export an exponential moving average of the parameters with this decay (e.g. 0.995; 0: the last parameters)")
	fs.Float64Var(&c.Optimiser.InitShare, "init-share", c.Optimiser.InitShare, "export β·(initial parameters) + (1−β)·(the trajectory's average: the moving average with its start taken out, or the last parameters) with this β in [0, 1); may change on --resume")
	fs.IntVar(&c.Run.Steps, "steps", c.Run.Steps, "parameter updates (0: run for --duration)")
	fs.DurationVar(&c.Run.Duration, "duration", c.Run.Duration, "wall-clock budget (0: run for --steps)")
	fs.IntVar(&c.Run.CheckpointEvery, "checkpoint-every", c.Run.CheckpointEvery, "checkpoint interval in steps")
	fs.Float64Var(&c.Run.MaxLoss, "max-loss", c.Run.MaxLoss, "stop when |loss| exceeds this (divergence guard)")
	fs.IntVar(&c.Run.Threads, "threads", c.Run.Threads, "ONNX Runtime threads (0: all cores)")
	fs.StringVar((*string)(&c.Engine), "engine", string(engine.ORT), "engine of every training step (Langevin, parameter, score matching): onnxruntime (the reference) or onednn (2-3× faster; not with --whiten)")
	fs.IntVar(&c.Run.TrainLimit, "train-limit", c.Run.TrainLimit, "use only the first N training images (0: all)")
}
