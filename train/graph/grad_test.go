package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// gradCase is one finite-difference check: build maps the declared tensors
// to an output y; the checked scalar is L = Σ seed·y for a random seed.
type gradCase struct {
	name   string
	shapes [][]int // Batch first means a data input, otherwise a parameter
	build  func(g *Graph, in []*Value) *Value
	// domain keeps inputs where the op is smooth (e.g. Log, Sqrt need x > 0).
	positive bool
	scale    float64 // input scale, 1 if zero
}

const testBatch = 3

func gradCases() []gradCase {
	un := func(f func(g *Graph, x *Value) *Value) func(g *Graph, in []*Value) *Value {
		return func(g *Graph, in []*Value) *Value { return f(g, in[0]) }
	}
	bin := func(f func(g *Graph, a, b *Value) *Value) func(g *Graph, in []*Value) *Value {
		return func(g *Graph, in []*Value) *Value { return f(g, in[0], in[1]) }
	}
	x45 := [][]int{{Batch, 4, 5}}
	return []gradCase{
		{name: "Add/broadcast", shapes: [][]int{{Batch, 4, 5}, {5}}, build: bin((*Graph).Add)},
		{name: "Sub/broadcast", shapes: [][]int{{Batch, 4, 5}, {4, 1}}, build: bin((*Graph).Sub)},
		{name: "Mul/broadcast", shapes: [][]int{{Batch, 4, 5}, {1, 5}}, build: bin((*Graph).Mul)},
		{name: "Div", shapes: [][]int{{Batch, 4, 5}, {Batch, 4, 5}}, build: bin((*Graph).Div), positive: true},
		{name: "Neg", shapes: x45, build: un((*Graph).Neg)},
		{name: "Sigmoid", shapes: x45, build: un((*Graph).Sigmoid)},
		{name: "Swish", shapes: x45, build: un((*Graph).Swish)},
		{name: "Relu", shapes: x45, build: un((*Graph).Relu)},
		{name: "LeakyRelu", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.LeakyRelu(x, 0.2) })},
		{name: "Tanh", shapes: x45, build: un((*Graph).Tanh)},
		{name: "Exp", shapes: x45, build: un((*Graph).Exp)},
		{name: "Log", shapes: x45, build: un((*Graph).Log), positive: true},
		{name: "Softplus", shapes: x45, build: un((*Graph).Softplus)},
		{name: "Sqrt", shapes: x45, build: un((*Graph).Sqrt), positive: true},
		{name: "Pow/3", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.Pow(x, 3) })},
		{name: "Pow/2", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.Pow(x, 2) })},
		{name: "ReduceSum/keep", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.ReduceSum(x, []int{2}, true) })},
		{name: "ReduceSum/batch", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.ReduceSum(x, []int{0, 1}, false) })},
		{name: "ReduceMean", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.ReduceMean(x, []int{1}, false) })},
		{name: "ReduceLogSumExp", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.ReduceLogSumExp(x, []int{-1}, false) })},
		{name: "Softmax", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.Softmax(x, 1) })},
		{name: "Reshape", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.Square(g.Reshape(x, []int{Batch, 20})) })},
		{name: "Flatten", shapes: [][]int{{Batch, 2, 3, 2}}, build: un(func(g *Graph, x *Value) *Value { return g.Square(g.Flatten(x)) })},
		{name: "Transpose", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.Square(g.Transpose(x, 0, 2, 1)) })},
		{name: "Slice", shapes: x45, build: un(func(g *Graph, x *Value) *Value { return g.Square(g.Slice(x, 2, 1, 4)) })},
		{name: "Concat", shapes: [][]int{{Batch, 4, 2}, {Batch, 4, 3}}, build: func(g *Graph, in []*Value) *Value { return g.Square(g.Concat(2, in[0], in[1])) }},
		{name: "MatMul", shapes: [][]int{{Batch, 6}, {6, 4}}, build: bin((*Graph).MatMul)},
		{name: "Linear", shapes: [][]int{{Batch, 6}, {4, 6}, {4}}, build: func(g *Graph, in []*Value) *Value { return g.Linear(in[0], in[1], in[2]) }},
		{name: "Conv/3x3s1p1", shapes: [][]int{{Batch, 2, 6, 6}, {3, 2, 3, 3}, {3}}, build: convCase(ConvSpec{Stride: 1, Pad: 1})},
		{name: "Conv/4x4s2p1", shapes: [][]int{{Batch, 2, 7, 7}, {3, 2, 4, 4}, {3}}, build: convCase(ConvSpec{Stride: 2, Pad: 1})},
		{name: "Conv/3x3s2p0", shapes: [][]int{{Batch, 2, 8, 8}, {2, 2, 3, 3}, {2}}, build: convCase(ConvSpec{Stride: 2})},
		{name: "Conv/dilation2", shapes: [][]int{{Batch, 1, 7, 7}, {2, 1, 3, 3}, {2}}, build: convCase(ConvSpec{Stride: 1, Pad: 2, Dilation: 2})},
		{name: "ConvTranspose/4x4s2p1", shapes: [][]int{{Batch, 3, 4, 4}, {3, 2, 4, 4}, {2}}, build: func(g *Graph, in []*Value) *Value {
			return g.convTranspose(in[0], in[1], in[2], ConvSpec{Stride: 2, Pad: 1, Dilation: 1}, []int{0, 0})
		}},
		{name: "ConvTranspose/outpad", shapes: [][]int{{Batch, 2, 3, 3}, {2, 2, 3, 3}, {2}}, build: func(g *Graph, in []*Value) *Value {
			return g.convTranspose(in[0], in[1], in[2], ConvSpec{Stride: 2, Pad: 1, Dilation: 1}, []int{1, 1})
		}},
		// Second order: the gradient of a function of ∂f/∂x, as denoising
		// score matching needs. Each case differentiates one node kind that
		// only gradient graphs emit.
		{name: "Grad2/Swish", shapes: x45, build: un(func(g *Graph, x *Value) *Value {
			return g.Square(g.Grad(g.Swish(x), nil, x)[0])
		})},
		{name: "Grad2/Slice", shapes: x45, build: un(func(g *Graph, x *Value) *Value {
			return g.Square(g.Grad(g.Pow(g.Slice(x, 2, 1, 4), 3), nil, x)[0])
		})},
		{name: "Grad2/ReduceSum", shapes: x45, build: un(func(g *Graph, x *Value) *Value {
			return g.Square(g.Grad(g.Square(g.ReduceSum(g.Square(x), []int{2}, true)), nil, x)[0])
		})},
		{name: "Grad2/Linear", shapes: [][]int{{Batch, 6}, {4, 6}, {4}}, build: func(g *Graph, in []*Value) *Value {
			return g.Square(g.Grad(g.Swish(g.Linear(in[0], in[1], in[2])), nil, in[0])[0])
		}},
		{name: "Grad2/Conv/4x4s2p1", shapes: [][]int{{Batch, 2, 7, 7}, {3, 2, 4, 4}, {3}}, build: func(g *Graph, in []*Value) *Value {
			y := g.Swish(g.Conv(in[0], in[1], in[2], ConvSpec{Stride: 2, Pad: 1}))
			return g.Square(g.Grad(y, nil, in[0])[0])
		}},
	}
}

func convCase(c ConvSpec) func(g *Graph, in []*Value) *Value {
	return func(g *Graph, in []*Value) *Value { return g.Conv(in[0], in[1], in[2], c) }
}

// TestOpGradients checks every operator's gradient against central finite
// differences, in float64 where ONNX Runtime's CPU kernels support it and in
// float32 otherwise (with a looser, stated tolerance).
func TestOpGradients(t *testing.T) {
	for _, c := range gradCases() {
		t.Run(c.name, func(t *testing.T) {
			res, err := checkGrad(c, Float64)
			if err != nil && noFloat64Kernel(err) {
				t.Logf("no float64 kernel in ONNX Runtime; checking in float32")
				res, err = checkGrad(c, Float32)
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.worst > res.tol {
				t.Fatalf("gradient mismatch: worst relative error %.3g > %.3g at %s", res.worst, res.tol, res.where)
			}
		})
	}
}

type gradResult struct {
	worst, tol float64
	where      string
}

// checkGrad compares analytic and numerical gradients at up to 12 sampled
// coordinates of every tensor.
func checkGrad(c gradCase, dt DType) (gradResult, error) {
	rng := rand.New(rand.NewPCG(1, uint64(len(c.name))))
	g := New(dt)
	var vals []*Value
	data := map[string][]float64{}
	scale := c.scale
	if scale == 0 {
		scale = 1
	}
	for i, s := range c.shapes {
		name := fmt.Sprintf("in%d", i)
		var v *Value
		if s[0] == Batch {
			v = g.Input(name, s...)
		} else {
			v = g.Param(name, s...)
		}
		vals = append(vals, v)
		n := v.Size()
		if v.hasBatch() {
			n *= testBatch
		}
		d := make([]float64, n)
		for j := range d {
			if c.positive {
				d[j] = 0.5 + rng.Float64()
			} else {
				d[j] = scale * rng.NormFloat64()
				// keep away from the kinks of Relu-like ops
				if math.Abs(d[j]) < 0.05 {
					d[j] += 0.1
				}
			}
		}
		data[name] = d
	}
	y := c.build(g, vals)
	seedShape := y.Shape()
	seed := g.Input("seed", seedShape...)
	n := seed.Size()
	if seed.hasBatch() {
		n *= testBatch
	}
	sd := make([]float64, n)
	for j := range sd {
		sd[j] = rng.NormFloat64()
	}
	data["seed"] = sd
	all := make([]int, y.Rank())
	for i := range all {
		all[i] = i
	}
	loss := g.Mul(y, seed)
	if len(all) > 0 {
		loss = g.ReduceSum(loss, all, true)
	}
	g.Output("L", g.Reshape(loss, []int{1}))
	grads := g.Grad(y, seed, vals...)
	for i, d := range grads {
		g.Output(fmt.Sprintf("d%d", i), d)
	}
	if err := g.Err(); err != nil {
		return gradResult{}, err
	}
	sess, err := NewSession(g, ModelOptions{}, 1)
	if err != nil {
		return gradResult{}, err
	}
	defer sess.Close()
	eval := func() (map[string][]float64, error) {
		if dt == Float64 {
			out, err := sess.Run64(testBatch, data)
			return copyOut(out), err
		}
		in32 := map[string][]float32{}
		for k, v := range data {
			in32[k] = to32(v)
		}
		out, err := sess.Run(testBatch, in32)
		res := map[string][]float64{}
		for k, v := range out {
			res[k] = to64(v)
		}
		return res, err
	}
	base, err := eval()
	if err != nil {
		return gradResult{}, err
	}
	h, tol := 1e-6, 1e-6
	if dt == Float32 {
		h, tol = 1e-2, 2e-2
	}
	res := gradResult{tol: tol}
	for i := range vals {
		name := fmt.Sprintf("in%d", i)
		analytic := base[fmt.Sprintf("d%d", i)]
		d := data[name]
		for k := 0; k < 12; k++ {
			j := rng.IntN(len(d))
			orig := d[j]
			d[j] = orig + h
			up, err := eval()
			if err != nil {
				return res, err
			}
			d[j] = orig - h
			down, err := eval()
			if err != nil {
				return res, err
			}
			d[j] = orig
			num := (up["L"][0] - down["L"][0]) / (2 * h)
			rel := math.Abs(num-analytic[j]) / math.Max(1, math.Abs(num))
			if rel > res.worst {
				res.worst = rel
				res.where = fmt.Sprintf("%s[%d]: analytic %.6g, numeric %.6g (%v)", name, j, analytic[j], num, dt)
			}
		}
	}
	return res, nil
}

func copyOut(m map[string][]float64) map[string][]float64 {
	out := map[string][]float64{}
	for k, v := range m {
		out[k] = append([]float64(nil), v...)
	}
	return out
}

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// noFloat64Kernel reports whether ONNX Runtime refused a graph for lack of a
// float64 CPU kernel (Conv, ConvTranspose, Softplus, fused MatMul).
func noFloat64Kernel(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Could not find an implementation") || strings.Contains(s, "types are incompatible")
}
