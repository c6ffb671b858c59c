package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/graph"
)

// Init names an initialisation of the network's parameters (Config.Init).
type Init string

// The initialisations.
const (
	InitPyTorch Init = "pytorch" // weights and biases U(±1/√fan_in): the authors' code
	InitLSUV    Init = "lsuv"    // the same, then each hidden layer rescaled to unit-variance pre-activations on training images
)

// lsuvImages is how many training images the data-dependent init looks at.
const lsuvImages = 500

// LSUV rescales each hidden layer's weights and bias, first to last, so
// that its pre-activations have unit variance on a batch of training images
// (layer-sequential unit-variance init, Mishkin & Matas 2016). With
// PyTorch's default scale the signal shrinks about threefold a layer, so a
// deep encoder starts nearly linear and nearly constant, a slow start for
// any objective; after LSUV every Swish works in its nonlinear range. The
// head is left as drawn. Only the network's parameters change. images
// holds n training images of m's shape.
func LSUV(m Model, params [][]float32, images []float32, n int, rng *rand.Rand, threads int) error {
	a := m.Arch
	per := a.C * a.H * a.W
	all := n
	n = min(lsuvImages, all)
	x := make([]float32, 0, n*per)
	for _, i := range rng.Perm(all)[:n] {
		x = append(x, images[i*per:(i+1)*per]...)
	}
	g := graph.New(graph.Float32)
	xv, ps := m.Declare(g)
	_, _, pre := a.network(g, xv, ps[:len(a.ParamSpecs())])
	for i, z := range pre {
		g.Output(fmt.Sprintf("pre%d", i), z)
	}
	sess, err := graph.NewSession(g, graph.ModelOptions{}, threads)
	if err != nil {
		return fmt.Errorf("lsuv: %w", err)
	}
	defer sess.Close()
	specs := m.ParamSpecs()
	for layer := range pre {
		feed := map[string][]float32{modelfile.Input: x}
		for i, s := range specs {
			feed[s.Name] = params[i]
		}
		out, err := sess.Run(n, feed)
		if err != nil {
			return fmt.Errorf("lsuv: %w", err)
		}
		scale := float32(1 / max(stdDev(out[fmt.Sprintf("pre%d", layer)]), 1e-6))
		for _, p := range params[2*layer : 2*layer+2] { // weight, bias
			for j := range p {
				p[j] *= scale
			}
		}
	}
	return nil
}

// stdDev is the standard deviation of v's values.
func stdDev(v []float32) float64 {
	var sum, sum2 float64
	for _, f := range v {
		sum += float64(f)
		sum2 += float64(f) * float64(f)
	}
	mean := sum / float64(len(v))
	return math.Sqrt(max(sum2/float64(len(v))-mean*mean, 0))
}
