package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/eval"
	"github.com/cebm/cebm/train"
)

// printValidation ends a training run: the 1-NN accuracy of the exported
// model's posterior means on the data set's validation split (its last
// 10,000 training images against the ones before them: for MNIST
// train[50000:60000] against the first 50,000, which the presets' runs
// leave out with --train-limit 50000), the figure `cebm eval --split val`
// prints, with the pixels' beside it, as one line on stdout. It is the
// whole data set's split whatever --train-limit the run had. It does not
// fail the run, whose model is already written: an interrupted run (ctx
// ended), a set too small or an error is said on the log.
func printValidation(ctx context.Context, tc *trainConfig, env func(string) string, stdout io.Writer, log *slog.Logger) {
	if tc.NoEval {
		return
	}
	if ctx.Err() != nil {
		log.Info("interrupted: no validation 1-NN (cebm eval --split val computes it)")
		return
	}
	// The whole training split, whatever --train-limit the run had.
	set, err := data.LoadEnv(tc.Run.Run.Data, "train", env)
	if err != nil {
		log.Error("validation 1-NN", "err", err)
		return
	}
	if eval.ValidationImages(set.N) < 1 {
		log.Warn("no validation 1-NN: too few training images", "images", set.N)
		return
	}
	log.Info("validation 1-NN: encoding the training images", "images", set.N)
	r, err := eval.Validation(ctx, filepath.Join(tc.Out, train.ModelFile), set, tc.Run.Run.Threads)
	switch {
	case errors.Is(err, context.Canceled):
		log.Info("interrupted: no validation 1-NN (cebm eval --split val computes it)")
		return
	case err != nil:
		log.Error("validation 1-NN", "err", err)
		return
	}
	fmt.Fprintf(stdout, "validation 1-NN (%s, %d %s images against %d before them): posterior means %.4f, pixels %.4f (%.0f s)\n",
		set.Name, r.Val.N, r.Val.Split, r.Fit.N, r.Latent, r.Pixel, r.Seconds)
}
