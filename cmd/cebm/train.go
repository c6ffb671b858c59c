package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/train"
)

// runTrain is `cebm train`: contrastive divergence with persistent Langevin
// chains, checkpoints in --out, the encoder exported at the end.
func runTrain(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg := train.DefaultConfig()
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	out := fs.String("out", "runs/mnist-cebm", "run folder: checkpoint, metrics.jsonl, curves.png, samples.png, model.onnx")
	resume := fs.Bool("resume", false, "continue from the run folder's checkpoint")
	export := fs.String("export", "", "also write the trained encoder here (e.g. models/mnist-cebm.onnx)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cebm train [flags]\n\nTrains a CEBM, GMM-CEBM or IGEBM; SIGUSR1 redraws curves.png and samples.png.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	set, err := data.LoadEnv(cfg.Data, "train", env)
	if err != nil {
		return err
	}
	imgs := train.Images{X: set.Images, N: set.N, Classes: set.Classes}
	if cfg.TrainLimit > 0 && cfg.TrainLimit < set.N {
		imgs.N = cfg.TrainLimit
		imgs.X = set.Images[:imgs.N*set.Size()]
	}
	log.Info("training", "model", cfg.Kind, "data", cfg.Data, "images", imgs.N, "out", *out, "resume", *resume)

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
	opt := train.RunOptions{Dir: *out, Resume: *resume, Snapshot: snap,
		Log: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }}
	// On --resume the checkpoint's recipe stands, except for these flags
	// when given: the learning rate and its schedule, and the moving average.
	var changed []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "lr", "ema", "lr-final", "decay-steps", "warmup":
			changed = append(changed, f.Name)
		}
	})
	opt.OnResume = func(c *train.Config) {
		for _, name := range changed {
			switch name {
			case "lr":
				log.Info("resume: new learning rate", "from", c.LR, "to", cfg.LR)
				c.LR = cfg.LR
			case "ema":
				c.EMA = cfg.EMA
			case "lr-final":
				c.LRFinal = cfg.LRFinal
			case "decay-steps":
				c.DecaySteps = cfg.DecaySteps
			case "warmup":
				c.Warmup = cfg.Warmup
			}
		}
	}
	if !*quiet {
		opt.Progress = stderr
	}
	st, err := train.Run(ctx, cfg, imgs, opt)
	if err != nil {
		return err
	}
	paths := []string{filepath.Join(*out, train.ModelFile)}
	if *export != "" {
		paths = append(paths, *export)
	}
	for _, p := range paths {
		if err := train.ExportModel(p, st, set.Classes); err != nil {
			return fmt.Errorf("export %s: %w", p, err)
		}
		log.Info("exported", "path", p, "steps", st.Step, "ema", st.Config.EMA)
	}
	if st.Config.EMA > 0 {
		// The last parameters too, to compare with the moving average.
		last := *st
		last.Config.EMA = 0
		p := filepath.Join(*out, "model-last.onnx")
		if err := train.ExportModel(p, &last, set.Classes); err != nil {
			return fmt.Errorf("export %s: %w", p, err)
		}
		log.Info("exported", "path", p, "steps", st.Step, "ema", 0)
	}
	return nil
}
