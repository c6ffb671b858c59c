package main

import "github.com/cebm/cebm/train"

// preset is a named training recipe: the one that produced a shipped
// model (so `cebm train --preset NAME` reproduces it), or the paper's.
type preset struct {
	summary string
	config  train.Config
}

// shippedRecipe is the recipe of the shipped models (docs/experiments.md):
// the authors' CD with γ = 0.005 instead of 0.1, 10 Langevin steps, Adam
// 1e-3 decayed along a cosine to 1e-4 over the run, a moving average of the
// parameters exported, trained on the first 50,000 training images (the
// last 10,000 are the validation split recipes were chosen on).
func shippedRecipe(data string, kind train.Kind, steps int) train.Config {
	c := train.DefaultConfig()
	c.Data, c.Kind = data, kind
	c.Gamma, c.SGLDSteps = 0.005, 10
	c.LR, c.LRFinal, c.DecaySteps = 1e-3, 1e-4, steps
	c.EMA = 0.998
	c.Steps = steps
	c.TrainLimit = 50000
	return c
}

func presets() map[string]preset {
	return map[string]preset{
		"paper": {"the authors' MNIST recipe (cebm-spec §3): L = 60, γ = 0.1, Adam 1e-4", train.DefaultConfig()},
		"mnist-cebm": {"models/mnist-cebm.onnx",
			shippedRecipe("mnist", train.CEBM, 3000)},
		"fashion-mnist-cebm": {"models/fashion-mnist-cebm.onnx",
			shippedRecipe("fashion-mnist", train.CEBM, 1500)},
		"mnist-gmm-cebm": {"models/mnist-gmm-cebm.onnx",
			shippedRecipe("mnist", train.GMMCEBM, 1500)},
	}
}
