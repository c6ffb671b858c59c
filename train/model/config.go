// Package model is what a run trains: the network architectures of the
// paper ([Arch]), the energy of each model family ([Kind]: CEBM, GMM-CEBM,
// the IGEBM baseline) written as graph nodes (package train/graph), the
// initial parameters (PyTorch's defaults, [LSUV]) and the fixed whitening
// map some runs put in front of the encoder ([FitWhitening]).
//
// The energy of a CEBM is E(x) = −Σ_d B(t1, −½ − s²): the log-normaliser B
// of the posterior's natural parameters, the prior's (λ = (0, −½)) plus the
// encoder's sufficient-statistic weights t(x); a GMM-CEBM sums over its K
// priors' posteriors (log-sum-exp).
package model

import (
	"errors"
	"fmt"
)

// Config is the model section of a training run's settings: which model,
// and how its parameters start.
type Config struct {
	Kind       Kind   `json:"kind"`
	Arch       string `json:"arch"`
	Components int    `json:"components"` // K, GMM-CEBM
	Init       Init   `json:"init,omitempty"`
	// Whiten, when > 0, puts a fixed map P = U·diag((λ + WhitenEps)^−Whiten)·Uᵀ
	// in front of the encoder (Arch.Whiten), from the training images'
	// covariance UΛUᵀ, scaled to keep their total variance: ¼ evens out
	// how fast denoising score matching learns each principal direction.
	Whiten    float64 `json:"whiten,omitempty"`
	WhitenEps float64 `json:"whiten_eps,omitempty"`
}

// Validate rejects settings that cannot run (an unknown kind or
// architecture is FromConfig's error).
func (c Config) Validate() error {
	switch {
	case c.Init != "" && c.Init != InitPyTorch && c.Init != InitLSUV:
		return fmt.Errorf("init %q: want %s or %s", c.Init, InitPyTorch, InitLSUV)
	case c.Whiten < 0 || c.Whiten > 1 || c.WhitenEps < 0 || (c.Whiten > 0 && c.WhitenEps == 0):
		return fmt.Errorf("whiten %v, whiten-eps %v: want a power in [0, 1] and eps > 0", c.Whiten, c.WhitenEps)
	case c.Whiten > 0 && c.Init == InitLSUV:
		return errors.New("whiten and the lsuv init do not combine")
	}
	return nil
}

// FromConfig builds the model a config describes.
func FromConfig(c Config) (Model, error) {
	arch, err := ArchByName(c.Arch)
	if err != nil {
		return Model{}, err
	}
	arch.Whiten = c.Whiten > 0
	return NewModel(c.Kind, arch, c.Components)
}
