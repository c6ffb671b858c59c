package main

import (
	"github.com/cebm/cebm/train"
	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/model"
	"github.com/cebm/cebm/train/objective"
)

// preset is a named training recipe: the one that produced a shipped
// model (so `cebm train --preset NAME` reproduces it), or the paper's.
type preset struct {
	summary string
	config  train.Config
}

// sessionRecipe is the contrastive divergence of the 2026-11-27 runs
// (docs/experiments.md): the authors' recipe with γ = 0.005 instead of 0.1,
// 10 Langevin steps, Adam 1e-3, a moving average of the parameters
// (decay 0.998) exported, trained on the first 50,000 training images (the
// last 10,000 are the validation split recipes were chosen on).
func sessionRecipe(data string, kind model.Kind, steps int) train.Config {
	c := train.DefaultConfig()
	c.Run.Data, c.Model.Kind = data, kind
	c.Objective.CD.Gamma, c.Objective.CD.SGLDSteps, c.Optimiser.LR, c.Optimiser.EMA = 0.005, 10, 1e-3, 0.998
	c.Run.Steps, c.Run.TrainLimit = steps, 50000
	return c
}

// withCosine decays the learning rate along a cosine to 1e-4, ending at
// update `over` (a run may stop before).
func withCosine(c train.Config, over int) train.Config {
	c.Optimiser.LRFinal, c.Optimiser.DecaySteps = 1e-4, over
	return c
}

// withAverage exports the moving average with the given decay.
func withAverage(c train.Config, decay float64) train.Config {
	c.Optimiser.EMA = decay
	return c
}

// withoutAverage exports the last parameters (the moving average does not
// change the training trajectory, only what is exported).
func withoutAverage(c train.Config) train.Config {
	c.Optimiser.EMA = 0
	return c
}

// withMixture restarts chains from the pixel-space mixture.
func withMixture(c train.Config) train.Config {
	c.Objective.CD.ReinitFrom = objective.FromMixture
	return c
}

// withInitShare exports β·θ₀ + (1 − β)·(the trajectory's average).
func withInitShare(c train.Config, beta float64) train.Config {
	c.Optimiser.InitShare = beta
	return c
}

// onOneDNN runs every training step on oneDNN (train/dnnl): the same
// losses as ONNX Runtime up to float rounding, 2.4× faster.
func onOneDNN(c train.Config) train.Config {
	c.Engine = engine.OneDNN
	return c
}

func presets() map[string]preset {
	return map[string]preset{
		"paper": {"the authors' MNIST recipe (Wu et al. 2021): L = 60, γ = 0.1, Adam 1e-4", train.DefaultConfig()},
		"mnist-cebm": {"models/mnist-cebm.onnx: 7,394 updates on oneDNN, chains from the pixel mixture, 0.3·θ₀ + 0.7·(the trajectory's average)",
			onOneDNN(withInitShare(withAverage(withMixture(sessionRecipe("mnist", model.CEBM, 7394)), 0.9999375), 0.3))},
		"fashion-mnist-cebm": {"models/fashion-mnist-cebm.onnx: 1,500 updates, the last parameters",
			withoutAverage(withCosine(sessionRecipe("fashion-mnist", model.CEBM, 1500), 1500))},
		"mnist-gmm-cebm": {"models/mnist-gmm-cebm.onnx: 2,400 updates on oneDNN, chains from the pixel mixture, 0.6·θ₀ + 0.4·(the trajectory's average)",
			onOneDNN(withInitShare(withAverage(withMixture(sessionRecipe("mnist", model.GMMCEBM, 2400)), 0.999875), 0.6))},
	}
}
