package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/eval"
)

// evalReport is `cebm eval --json`. Accuracies are fractions.
type evalReport struct {
	Model             string      `json:"model"`
	Kind              string      `json:"kind"`
	Data              string      `json:"data"`
	Steps             int         `json:"steps"`
	KNN1Accuracy      float64     `json:"knn1_accuracy"`
	PixelKNN1Accuracy float64     `json:"pixel_knn1_accuracy"`
	Confusion         [][]float64 `json:"confusion"`
	PixelConfusion    [][]float64 `json:"pixel_confusion"`
	Classes           []string    `json:"classes"`
	Seconds           float64     `json:"seconds"`
}

// runEval is `cebm eval`: 1-NN accuracy of posterior means (test split
// against training split, squared L2) beside the pixel-space baseline.
func runEval(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "models/mnist-cebm.onnx", "exported model")
	name := fs.String("data", "mnist", "data set (see cebm data list)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	threads := fs.Int("threads", 0, "ONNX Runtime threads (0: all cores)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	start := time.Now()
	m, err := encoder.Load(*model, *threads)
	if err != nil {
		return err
	}
	defer m.Close()
	trainSet, err := data.LoadEnv(*name, "train", env)
	if err != nil {
		return err
	}
	testSet, err := data.LoadEnv(*name, "test", env)
	if err != nil {
		return err
	}
	if trainSet.Size() != m.InputSize() {
		return fmt.Errorf("%s has %d×%d×%d images; the model expects %v", *name, trainSet.C, trainSet.H, trainSet.W, m.InputShape)
	}
	const batch = 500
	zTrain, err := m.Latents(trainSet.Images, trainSet.N, batch)
	if err != nil {
		return err
	}
	zTest, err := m.Latents(testSet.Images, testSet.N, batch)
	if err != nil {
		return err
	}
	classes := len(trainSet.Classes)
	latent, err := eval.KNN(zTrain, trainSet.Labels, zTest, testSet.Labels, m.LatentDim, 1, classes)
	if err != nil {
		return err
	}
	pixel, err := eval.KNN(trainSet.Images, trainSet.Labels, testSet.Images, testSet.Labels, trainSet.Size(), 1, classes)
	if err != nil {
		return err
	}
	r := evalReport{
		Model: *model, Kind: m.Kind, Data: *name, Steps: m.Steps,
		KNN1Accuracy: latent.Accuracy, PixelKNN1Accuracy: pixel.Accuracy,
		Confusion: latent.Confusion, PixelConfusion: pixel.Confusion,
		Classes: trainSet.Classes, Seconds: time.Since(start).Seconds(),
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "model %s (%s, %d steps) on %s: %d test vs %d train images\n", *model, r.Kind, r.Steps, *name, testSet.N, trainSet.N)
	fmt.Fprintf(stdout, "1-NN accuracy, latent space: %.4f\n1-NN accuracy, pixel space:  %.4f\n", r.KNN1Accuracy, r.PixelKNN1Accuracy)
	fmt.Fprintf(stdout, "confusion (rows: true class, fractions):\n")
	for i, row := range r.Confusion {
		fmt.Fprintf(stdout, "  %-12.12s", r.Classes[i])
		for _, v := range row {
			fmt.Fprintf(stdout, " %5.3f", v)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "(%.1f s)\n", r.Seconds)
	return nil
}
