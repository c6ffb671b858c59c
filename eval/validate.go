package eval

import (
	"context"
	"fmt"
	"time"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
)

// ValidationImages is how many of a training set's last images
// [Validation] holds out: 10,000 (MNIST's 50,000/10,000 split, as `cebm
// eval --split val`), or half of a set of fewer than 20,000.
func ValidationImages(n int) int { return min(10000, n/2) }

// ValidationResult is a model's 1-NN accuracy on a validation split with
// the raw pixels' beside it.
type ValidationResult struct {
	Latent, Pixel float64 // 1-NN accuracy of posterior means, and of pixels
	Fit, Val      *data.Set
	Seconds       float64
}

// Validation is the quick check that ends a training run: 1-NN accuracy
// of the model's posterior means of the last [ValidationImages] images of
// train against the ones before them (squared L2, exactly as `cebm eval
// --split val` computes it), and of their pixels. It stops between batches
// when ctx ends, with ctx's error.
func Validation(ctx context.Context, model string, train *data.Set, threads int) (ValidationResult, error) {
	start := time.Now()
	var r ValidationResult
	var err error
	if r.Fit, r.Val, err = data.ValidationSplit(train, ValidationImages(train.N)); err != nil {
		return r, err
	}
	m, err := encoder.Load(model, threads)
	if err != nil {
		return r, err
	}
	defer m.Close()
	if train.Size() != m.InputSize() {
		return r, fmt.Errorf("%s has %d×%d×%d images; %s expects %v", train.Name, train.C, train.H, train.W, model, m.InputShape)
	}
	// Each split in batches of 500 as the suite encodes them, so that the
	// figures agree to the bit.
	const batch = 500
	zFit, err := m.Latents(ctx, r.Fit.Images, r.Fit.N, batch)
	if err != nil {
		return r, err
	}
	zVal, err := m.Latents(ctx, r.Val.Images, r.Val.N, batch)
	if err != nil {
		return r, err
	}
	classes := len(train.Classes)
	latent, err := KNN(ctx, zFit, r.Fit.Labels, zVal, r.Val.Labels, m.LatentDim, 1, classes)
	if err != nil {
		return r, err
	}
	pixel, err := KNN(ctx, r.Fit.Images, r.Fit.Labels, r.Val.Images, r.Val.Labels, train.Size(), 1, classes)
	if err != nil {
		return r, err
	}
	r.Latent, r.Pixel, r.Seconds = latent.Accuracy, pixel.Accuracy, time.Since(start).Seconds()
	return r, nil
}
