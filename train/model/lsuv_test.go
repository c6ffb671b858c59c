package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/graph"
	"github.com/cebm/cebm/train/internal/traintest"
)

// TestLSUV: after the data-dependent init every hidden layer's
// pre-activations have unit variance on training images (they start far
// below it with PyTorch's scale), and the head is left as drawn.
func TestLSUV(t *testing.T) {
	const n = 300
	x, _ := traintest.MNIST(t, n)
	m, _ := NewModel(CEBM, MNISTArch(), 0)
	params := m.InitParams(rand.New(rand.NewPCG(1, 2)))
	head := slices.Clone(params[len(params)-2])
	stds := func() []float64 {
		g := graph.New(graph.Float32)
		xv, ps := m.Declare(g)
		_, _, pre := m.Arch.network(g, xv, ps)
		for i, z := range pre {
			g.Output(fmt.Sprintf("pre%d", i), z)
		}
		sess, err := graph.NewSession(g, graph.ModelOptions{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		feed := map[string][]float32{modelfile.Input: x}
		for i, s := range m.ParamSpecs() {
			feed[s.Name] = params[i]
		}
		out, err := sess.Run(n, feed)
		if err != nil {
			t.Fatal(err)
		}
		var res []float64
		for i := range pre {
			res = append(res, stdDev(out[fmt.Sprintf("pre%d", i)]))
		}
		return res
	}
	before := stds()
	if err := LSUV(m, params, x, n, rand.New(rand.NewPCG(3, 4)), 1); err != nil {
		t.Fatal(err)
	}
	after := stds()
	for i := range after {
		if math.Abs(after[i]-1) > 0.1 {
			t.Errorf("layer %d: pre-activation std %.3f after LSUV (%.3f before), want 1", i, after[i], before[i])
		}
	}
	if before[len(before)-1] > 0.5 {
		t.Errorf("the last hidden layer's std was %.3f before LSUV: the test no longer shows a change", before[len(before)-1])
	}
	if !slices.Equal(head, params[len(params)-2]) {
		t.Error("LSUV changed the head's weights")
	}
}
