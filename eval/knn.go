// Package eval measures representations the way the CEBM paper does (Wu et
// al. 2021) and draws them:
//
//   - [KNN]: 1-nearest-neighbour accuracy in latent or pixel space, with the
//     confusion matrix;
//   - [TrainProbe], [FewLabelProbe]: linear probes (multinomial logistic
//     regression by L-BFGS) with few or all labels;
//   - [AUROC] with [EnergyModel]: out-of-distribution detection by −E(x) and
//     −‖∇x E(x)‖, the energy rebuilt from an exported model;
//   - [ConfusionPNG], [ScatterPNG] with [TSNE], [SamplesPNG]: the pictures;
//   - [Run]: the whole suite of `cebm eval`, reported as [Report]
//     (results.json, results.md) beside the paper's figures ([Paper]).
package eval

import (
	"context"
	"fmt"

	"github.com/cebm/cebm/index"
)

// knnBlock is how many queries KNN searches between checks of its context:
// a fraction of a second on one core against 60,000 MNIST latents.
const knnBlock = 1024

// KNNResult is a k-NN classification of a test split against a reference
// split.
type KNNResult struct {
	Accuracy float64 `json:"accuracy"`
	// Confusion[i][j] is the fraction of test images of true class i
	// predicted as class j; rows sum to 1 (rows of absent classes are 0).
	Confusion [][]float64 `json:"confusion"`
	Correct   int         `json:"correct"`
	Total     int         `json:"total"`
}

// KNN classifies every test vector by its k nearest reference vectors
// (squared L2, exact) and scores the predictions. It searches in blocks of
// knnBlock queries and stops between them when ctx ends.
func KNN(ctx context.Context, ref []float32, refLabels []int, test []float32, testLabels []int, dim, k, classes int) (KNNResult, error) {
	if len(ref) != len(refLabels)*dim || len(test) != len(testLabels)*dim {
		return KNNResult{}, fmt.Errorf("eval: vectors and labels disagree (dim %d)", dim)
	}
	ix := index.New(dim, "")
	if _, err := ix.Add(ref, refLabels); err != nil {
		return KNNResult{}, err
	}
	pred := make([]int, 0, len(testLabels))
	for s := 0; s < len(testLabels); s += knnBlock {
		if err := ctx.Err(); err != nil {
			return KNNResult{}, err
		}
		e := min(len(testLabels), s+knnBlock)
		res, err := ix.ClassifyBatch(test[s*dim:e*dim], k)
		if err != nil {
			return KNNResult{}, err
		}
		for _, r := range res {
			pred = append(pred, r.Label)
		}
	}
	return Score(pred, testLabels, classes), nil
}

// Score compares predictions with true labels.
func Score(pred, truth []int, classes int) KNNResult {
	counts := make([][]int, classes)
	for i := range counts {
		counts[i] = make([]int, classes)
	}
	r := KNNResult{Total: len(truth)}
	for i, t := range truth {
		if pred[i] == t {
			r.Correct++
		}
		if t >= 0 && t < classes && pred[i] >= 0 && pred[i] < classes {
			counts[t][pred[i]]++
		}
	}
	if r.Total > 0 {
		r.Accuracy = float64(r.Correct) / float64(r.Total)
	}
	r.Confusion = make([][]float64, classes)
	for i, row := range counts {
		r.Confusion[i] = make([]float64, classes)
		n := 0
		for _, c := range row {
			n += c
		}
		for j, c := range row {
			if n > 0 {
				r.Confusion[i][j] = float64(c) / float64(n)
			}
		}
	}
	return r
}
