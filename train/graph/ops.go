package graph

import (
	"fmt"
	"slices"
)

// This file holds the operators: each infers its output shape and records how
// to differentiate itself. Gradients are built from the same operators, so a
// gradient graph can itself be differentiated (not needed so far).

// broadcastShape is numpy broadcasting with Batch treated as an unknown size
// that only matches Batch or 1.
func broadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	if err := checkShape(out); err != nil {
		return nil, err
	}
	return out, nil
}

// unbroadcast sums dy down to shape (the adjoint of broadcasting).
func (g *Graph) unbroadcast(dy *Value, shape []int) *Value {
	if slices.Equal(dy.shape, shape) {
		return dy
	}
	lead := len(dy.shape) - len(shape)
	var axes []int
	for i := range dy.shape {
		j := i - lead
		if j < 0 || (shape[j] == 1 && dy.shape[i] != 1) {
			axes = append(axes, i)
		}
	}
	s := dy
	if len(axes) > 0 {
		s = g.ReduceSum(dy, axes, true)
	}
	return g.Reshape(s, shape)
}

func (g *Graph) binary(op string, a, b *Value, grad func(y, dy *Value) []*Value) *Value {
	shape, err := broadcastShape(a.shape, b.shape)
	if err != nil {
		g.fail("%s: %v", op, err)
		shape = a.shape
	}
	y := g.add(op, shape, g.dtype, []*Value{a, b})
	y.node.grad = func(dy *Value) []*Value {
		ds := grad(y, dy)
		return []*Value{g.unbroadcast(ds[0], a.shape), g.unbroadcast(ds[1], b.shape)}
	}
	return y
}

// Add is a + b with broadcasting.
func (g *Graph) Add(a, b *Value) *Value {
	return g.binary("Add", a, b, func(_, dy *Value) []*Value { return []*Value{dy, dy} })
}

// Sub is a − b with broadcasting.
func (g *Graph) Sub(a, b *Value) *Value {
	return g.binary("Sub", a, b, func(_, dy *Value) []*Value { return []*Value{dy, g.Neg(dy)} })
}

// Mul is a · b elementwise with broadcasting.
func (g *Graph) Mul(a, b *Value) *Value {
	return g.binary("Mul", a, b, func(_, dy *Value) []*Value { return []*Value{g.Mul(dy, b), g.Mul(dy, a)} })
}

// Div is a / b elementwise with broadcasting.
func (g *Graph) Div(a, b *Value) *Value {
	return g.binary("Div", a, b, func(y, dy *Value) []*Value {
		db := g.Neg(g.Div(g.Mul(dy, y), b))
		return []*Value{g.Div(dy, b), db}
	})
}

func (g *Graph) unary(op string, x *Value, grad func(y, dy *Value) *Value, attrs ...attr) *Value {
	y := g.add(op, x.shape, g.dtype, []*Value{x}, attrs...)
	if grad != nil {
		y.node.grad = func(dy *Value) []*Value { return []*Value{grad(y, dy)} }
	}
	return y
}

// Neg is −x.
func (g *Graph) Neg(x *Value) *Value {
	return g.unary("Neg", x, func(_, dy *Value) *Value { return g.Neg(dy) })
}

// Identity copies x.
func (g *Graph) Identity(x *Value) *Value {
	return g.unary("Identity", x, func(_, dy *Value) *Value { return dy })
}

// Sigmoid is 1/(1+e^−x).
func (g *Graph) Sigmoid(x *Value) *Value {
	return g.unary("Sigmoid", x, func(y, dy *Value) *Value {
		return g.Mul(dy, g.Mul(y, g.Sub(g.Scalar(1), y)))
	})
}

// Swish is x·σ(x) (also called SiLU), the activation of the paper's networks.
// Its gradient is written directly as dy·(σ + y·(1 − σ)): four elementwise
// nodes instead of the six that differentiating Mul and Sigmoid would give,
// which matters on the large first-layer activations.
func (g *Graph) Swish(x *Value) *Value {
	sig := g.Sigmoid(x) // its own gradient is used only when a gradient graph is differentiated
	y := g.add("Mul", x.shape, g.dtype, []*Value{x, sig})
	y.node.grad = func(dy *Value) []*Value {
		f := g.Add(sig, g.Mul(y, g.Sub(g.Scalar(1), sig)))
		return []*Value{g.Mul(dy, f), nil}
	}
	return y
}

// Relu is max(x, 0).
func (g *Graph) Relu(x *Value) *Value {
	return g.unary("Relu", x, func(y, dy *Value) *Value { return g.Mul(dy, g.sign(y)) })
}

// sign is used only inside gradients: it has no gradient of its own.
func (g *Graph) sign(x *Value) *Value { return g.add("Sign", x.shape, g.dtype, []*Value{x}) }

// LeakyRelu is x for x > 0, alpha·x otherwise.
func (g *Graph) LeakyRelu(x *Value, alpha float64) *Value {
	return g.unary("LeakyRelu", x, func(_, dy *Value) *Value {
		pos := g.add("Greater", x.shape, Bool, []*Value{x, g.Scalar(0)})
		return g.add("Where", dy.shape, g.dtype, []*Value{pos, dy, g.Mul(dy, g.Scalar(alpha))})
	}, floatAttr("alpha", float32(alpha)))
}

// Tanh is the hyperbolic tangent.
func (g *Graph) Tanh(x *Value) *Value {
	return g.unary("Tanh", x, func(y, dy *Value) *Value {
		return g.Mul(dy, g.Sub(g.Scalar(1), g.Mul(y, y)))
	})
}

// Exp is e^x.
func (g *Graph) Exp(x *Value) *Value {
	return g.unary("Exp", x, func(y, dy *Value) *Value { return g.Mul(dy, y) })
}

// Log is the natural logarithm.
func (g *Graph) Log(x *Value) *Value {
	return g.unary("Log", x, func(_, dy *Value) *Value { return g.Div(dy, x) })
}

// Softplus is log(1 + e^x).
func (g *Graph) Softplus(x *Value) *Value {
	return g.unary("Softplus", x, func(_, dy *Value) *Value { return g.Mul(dy, g.Sigmoid(x)) })
}

// Sqrt is the square root.
func (g *Graph) Sqrt(x *Value) *Value {
	return g.unary("Sqrt", x, func(y, dy *Value) *Value { return g.Div(g.Mul(dy, g.Scalar(0.5)), y) })
}

// Pow is x^p for a constant exponent p.
func (g *Graph) Pow(x *Value, p float64) *Value {
	y := g.add("Pow", x.shape, g.dtype, []*Value{x, g.Scalar(p)})
	y.node.grad = func(dy *Value) []*Value {
		var d *Value
		switch p {
		case 1:
			d = dy
		case 2:
			d = g.Mul(dy, g.Mul(x, g.Scalar(2)))
		default:
			d = g.Mul(dy, g.Mul(g.Pow(x, p-1), g.Scalar(p)))
		}
		return []*Value{d, nil}
	}
	return y
}

// Square is x².
func (g *Graph) Square(x *Value) *Value { return g.Mul(x, x) }

// normAxes turns negative axes into positive ones and sorts them.
func (g *Graph) normAxes(op string, rank int, axes []int) []int {
	out := make([]int, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank {
			g.fail("%s: axis %d out of range for rank %d", op, axes[i], rank)
			a = 0
		}
		out[i] = a
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func reducedShape(shape, axes []int, keep bool) []int {
	var out []int
	for i, d := range shape {
		if slices.Contains(axes, i) {
			if keep {
				out = append(out, 1)
			}
			continue
		}
		out = append(out, d)
	}
	return out
}

// expandTo broadcasts a keep-dims reduction result back to x's shape.
func (g *Graph) expandTo(v, x *Value) *Value {
	if slices.Equal(v.shape, x.shape) {
		return v
	}
	var e *Value
	if !x.hasBatch() {
		e = g.add("Expand", x.shape, v.dtype, []*Value{v, g.ints(toInt64(x.shape)...)})
	} else {
		shape := g.add("Shape", []int{len(x.shape)}, Int64, []*Value{x})
		e = g.add("Expand", x.shape, v.dtype, []*Value{v, shape})
	}
	e.node.grad = func(de *Value) []*Value { return []*Value{g.unbroadcast(de, v.shape), nil} }
	return e
}

func toInt64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// ReduceSum sums over axes (keepdims as in ONNX).
func (g *Graph) ReduceSum(x *Value, axes []int, keep bool) *Value {
	axes = g.normAxes("ReduceSum", x.Rank(), axes)
	k := int64(0)
	if keep {
		k = 1
	}
	y := g.add("ReduceSum", reducedShape(x.shape, axes, keep), g.dtype, []*Value{x, g.ints(toInt64(axes)...)}, intAttr("keepdims", k))
	y.node.grad = func(dy *Value) []*Value {
		return []*Value{g.expandTo(g.Reshape(dy, reducedShape(x.shape, axes, true)), x), nil}
	}
	return y
}

// ReduceMean averages over axes, which must not include the batch dimension
// (a batch mean would need the run-time batch size: weight per item instead).
func (g *Graph) ReduceMean(x *Value, axes []int, keep bool) *Value {
	axes = g.normAxes("ReduceMean", x.Rank(), axes)
	n := 1
	for _, a := range axes {
		if x.shape[a] == Batch {
			g.fail("ReduceMean over the batch dimension is not supported")
			return x
		}
		n *= x.shape[a]
	}
	return g.Mul(g.ReduceSum(x, axes, keep), g.Scalar(1/float64(n)))
}

// ReduceLogSumExp is log Σ exp(x) over axes.
func (g *Graph) ReduceLogSumExp(x *Value, axes []int, keep bool) *Value {
	axes = g.normAxes("ReduceLogSumExp", x.Rank(), axes)
	k := int64(0)
	if keep {
		k = 1
	}
	y := g.add("ReduceLogSumExp", reducedShape(x.shape, axes, keep), g.dtype, []*Value{x}, intsAttr("axes", axes...), intAttr("keepdims", k))
	y.node.grad = func(dy *Value) []*Value {
		keepShape := reducedShape(x.shape, axes, true)
		p := g.Exp(g.Sub(x, g.Reshape(y, keepShape))) // softmax over axes
		return []*Value{g.Mul(p, g.Reshape(dy, keepShape))}
	}
	return y
}

// Softmax over one axis.
func (g *Graph) Softmax(x *Value, axis int) *Value {
	ax := g.normAxes("Softmax", x.Rank(), []int{axis})[0]
	y := g.add("Softmax", x.shape, g.dtype, []*Value{x}, intAttr("axis", int64(ax)))
	y.node.grad = func(dy *Value) []*Value {
		s := g.ReduceSum(g.Mul(dy, y), []int{ax}, true)
		return []*Value{g.Mul(y, g.Sub(dy, s))}
	}
	return y
}

// Reshape to a static shape; Batch (first) keeps the batch dimension.
func (g *Graph) Reshape(x *Value, shape []int) *Value {
	if slices.Equal(x.shape, shape) {
		return x
	}
	if err := checkShape(shape); err != nil {
		g.fail("Reshape: %v", err)
	}
	xs, ys := x.Size(), 1
	for _, d := range shape {
		if d != Batch {
			ys *= d
		}
	}
	if xs != ys || x.hasBatch() != (len(shape) > 0 && shape[0] == Batch) {
		g.fail("Reshape: %v to %v", x.shape, shape)
	}
	spec := toInt64(shape)
	if len(spec) > 0 && spec[0] == Batch {
		spec[0] = 0 // ONNX: copy the dimension from the input
	}
	y := g.add("Reshape", append([]int(nil), shape...), x.dtype, []*Value{x, g.ints(spec...)})
	y.node.grad = func(dy *Value) []*Value { return []*Value{g.Reshape(dy, x.shape), nil} }
	return y
}

// Flatten keeps the first dimension and flattens the rest.
func (g *Graph) Flatten(x *Value) *Value {
	return g.Reshape(x, []int{x.shape[0], x.Size() / max(1, absDim(x.shape[0]))})
}

func absDim(d int) int {
	if d == Batch {
		return 1
	}
	return d
}

// Transpose permutes the dimensions.
func (g *Graph) Transpose(x *Value, perm ...int) *Value {
	if len(perm) != x.Rank() {
		g.fail("Transpose: perm %v for rank %d", perm, x.Rank())
		return x
	}
	shape := make([]int, len(perm))
	inv := make([]int, len(perm))
	for i, p := range perm {
		shape[i] = x.shape[p]
		inv[p] = i
	}
	y := g.add("Transpose", shape, x.dtype, []*Value{x}, intsAttr("perm", perm...))
	y.node.grad = func(dy *Value) []*Value { return []*Value{g.Transpose(dy, inv...)} }
	return y
}

// Slice takes [start, end) along axis (static, non-batch axis).
func (g *Graph) Slice(x *Value, axis, start, end int) *Value {
	axis = g.normAxes("Slice", x.Rank(), []int{axis})[0]
	d := x.shape[axis]
	if d == Batch || start < 0 || end > d || start >= end {
		g.fail("Slice: [%d,%d) of axis %d with size %d", start, end, axis, d)
		return x
	}
	shape := append([]int(nil), x.shape...)
	shape[axis] = end - start
	y := g.add("Slice", shape, x.dtype, []*Value{x, g.ints(int64(start)), g.ints(int64(end)), g.ints(int64(axis))})
	y.node.grad = func(dy *Value) []*Value {
		pads := make([]int64, 2*x.Rank())
		pads[axis] = int64(start)
		pads[x.Rank()+axis] = int64(d - end)
		p := g.add("Pad", x.shape, x.dtype, []*Value{dy, g.ints(pads...)})
		p.node.grad = func(dp *Value) []*Value { return []*Value{g.Slice(dp, axis, start, end), nil} }
		return []*Value{p, nil, nil, nil}
	}
	return y
}

// Concat joins values along a non-batch axis.
func (g *Graph) Concat(axis int, xs ...*Value) *Value {
	if len(xs) == 0 {
		g.fail("Concat of nothing")
		return nil
	}
	axis = g.normAxes("Concat", xs[0].Rank(), []int{axis})[0]
	shape := append([]int(nil), xs[0].shape...)
	total := 0
	for _, x := range xs {
		if x.Rank() != len(shape) {
			g.fail("Concat: ranks differ")
			return xs[0]
		}
		for i := range shape {
			if i != axis && x.shape[i] != shape[i] {
				g.fail("Concat: shapes %v and %v", xs[0].shape, x.shape)
				return xs[0]
			}
		}
		if x.shape[axis] == Batch {
			g.fail("Concat along the batch dimension is not supported")
			return xs[0]
		}
		total += x.shape[axis]
	}
	shape[axis] = total
	y := g.add("Concat", shape, xs[0].dtype, xs, intAttr("axis", int64(axis)))
	y.node.grad = func(dy *Value) []*Value {
		out := make([]*Value, len(xs))
		off := 0
		for i, x := range xs {
			out[i] = g.Slice(dy, axis, off, off+x.shape[axis])
			off += x.shape[axis]
		}
		return out
	}
	return y
}

// MatMul is a·b for a of shape [M, K] (M may be Batch) and b of shape [K, N].
func (g *Graph) MatMul(a, b *Value) *Value {
	if a.Rank() != 2 || b.Rank() != 2 || a.shape[1] != b.shape[0] || b.shape[0] == Batch {
		g.fail("MatMul: shapes %v and %v", a.shape, b.shape)
		return a
	}
	y := g.add("MatMul", []int{a.shape[0], b.shape[1]}, g.dtype, []*Value{a, b})
	y.node.grad = func(dy *Value) []*Value {
		return []*Value{g.MatMul(dy, g.Transpose(b, 1, 0)), g.gemmT(a, dy)}
	}
	return y
}

// gemmT is aᵀ·b, summing over the (possibly batch) first dimension.
func (g *Graph) gemmT(a, b *Value) *Value {
	return g.add("Gemm", []int{a.shape[1], b.shape[1]}, g.dtype, []*Value{a, b}, intAttr("transA", 1))
}

// Linear is x·Wᵀ + b with W of shape [out, in] (PyTorch's layout) and b of
// shape [out]; x is [B, in].
func (g *Graph) Linear(x, w, b *Value) *Value {
	if x.Rank() != 2 || w.Rank() != 2 || x.shape[1] != w.shape[1] || (b != nil && (b.Rank() != 1 || b.shape[0] != w.shape[0])) {
		g.fail("Linear: x %v, W %v", x.shape, w.shape)
		return x
	}
	in := []*Value{x, w}
	if b != nil {
		in = append(in, b)
	}
	y := g.add("Gemm", []int{x.shape[0], w.shape[0]}, g.dtype, in, intAttr("transB", 1))
	y.node.grad = func(dy *Value) []*Value {
		out := []*Value{g.MatMul(dy, w), g.gemmT(dy, x)}
		if b != nil {
			out = append(out, g.ReduceSum(dy, []int{0}, false))
		}
		return out
	}
	return y
}

// ConvSpec is the geometry of a 2-D convolution.
type ConvSpec struct {
	Stride, Pad, Dilation int
}

func (c ConvSpec) norm() ConvSpec {
	if c.Stride == 0 {
		c.Stride = 1
	}
	if c.Dilation == 0 {
		c.Dilation = 1
	}
	return c
}

func convOut(in, k int, c ConvSpec) int {
	return (in+2*c.Pad-c.Dilation*(k-1)-1)/c.Stride + 1
}

// Conv is a 2-D convolution of x [B, C, H, W] with w [O, C, kh, kw] and an
// optional bias b [O].
func (g *Graph) Conv(x, w, b *Value, spec ConvSpec) *Value {
	c := spec.norm()
	if x.Rank() != 4 || w.Rank() != 4 || x.shape[1] != w.shape[1] {
		g.fail("Conv: x %v, W %v", x.shape, w.shape)
		return x
	}
	oh, ow := convOut(x.shape[2], w.shape[2], c), convOut(x.shape[3], w.shape[3], c)
	if oh < 1 || ow < 1 {
		g.fail("Conv: empty output for x %v, W %v, %+v", x.shape, w.shape, c)
		return x
	}
	in := []*Value{x, w}
	if b != nil {
		in = append(in, b)
	}
	y := g.add("Conv", []int{x.shape[0], w.shape[0], oh, ow}, g.dtype, in, convAttrs(w, c)...)
	y.node.grad = func(dy *Value) []*Value {
		out := []*Value{g.convInputGrad(dy, w, x.shape, c), g.convWeightGrad(x, dy, w.shape, c)}
		if b != nil {
			out = append(out, g.ReduceSum(dy, []int{0, 2, 3}, false))
		}
		return out
	}
	return y
}

func convAttrs(w *Value, c ConvSpec) []attr {
	return []attr{
		intsAttr("kernel_shape", w.shape[2], w.shape[3]),
		intsAttr("strides", c.Stride, c.Stride),
		intsAttr("pads", c.Pad, c.Pad, c.Pad, c.Pad),
		intsAttr("dilations", c.Dilation, c.Dilation),
	}
}

// convInputGrad is ∂x of a Conv: a ConvTranspose of dy with the same
// weights, padded at the end so that the result has x's size.
func (g *Graph) convInputGrad(dy, w *Value, xShape []int, c ConvSpec) *Value {
	k := w.shape[2:]
	op := make([]int, 2)
	for i := range 2 {
		full := (dy.shape[2+i]-1)*c.Stride - 2*c.Pad + c.Dilation*(k[i]-1) + 1
		op[i] = xShape[2+i] - full
	}
	return g.convTranspose(dy, w, nil, c, op)
}

// convWeightGrad is ∂W of a Conv: with the batch as the channel dimension,
// a Conv of xᵀ [C, B, H, W] by dyᵀ [O, B, oh, ow] with the stride and the
// dilation swapped gives [C, O, kh', kw']; kh' ≥ kh, the excess (rows the
// forward stride never reached) is cut off.
func (g *Graph) convWeightGrad(x, dy *Value, wShape []int, c ConvSpec) *Value {
	xt := g.add("Transpose", []int{x.shape[1], x.shape[0], x.shape[2], x.shape[3]}, g.dtype, []*Value{x}, intsAttr("perm", 1, 0, 2, 3))
	dyt := g.add("Transpose", []int{dy.shape[1], dy.shape[0], dy.shape[2], dy.shape[3]}, g.dtype, []*Value{dy}, intsAttr("perm", 1, 0, 2, 3))
	sw := ConvSpec{Stride: c.Dilation, Pad: c.Pad, Dilation: c.Stride}
	kh := convOut(x.shape[2], dy.shape[2], sw)
	kw := convOut(x.shape[3], dy.shape[3], sw)
	attrs := []attr{
		intsAttr("kernel_shape", dy.shape[2], dy.shape[3]),
		intsAttr("strides", sw.Stride, sw.Stride),
		intsAttr("pads", sw.Pad, sw.Pad, sw.Pad, sw.Pad),
		intsAttr("dilations", sw.Dilation, sw.Dilation),
	}
	r := g.add("Conv", []int{x.shape[1], dy.shape[1], kh, kw}, g.dtype, []*Value{xt, dyt}, attrs...)
	if kh != wShape[2] || kw != wShape[3] {
		r = g.add("Slice", []int{x.shape[1], dy.shape[1], wShape[2], wShape[3]}, g.dtype,
			[]*Value{r, g.ints(0, 0), g.ints(int64(wShape[2]), int64(wShape[3])), g.ints(2, 3)})
	}
	return g.add("Transpose", wShape, g.dtype, []*Value{r}, intsAttr("perm", 1, 0, 2, 3))
}

// convTranspose is the adjoint of Conv: x [B, C_in, H, W] with w [C_in,
// C_out, kh, kw], optional bias b [C_out] and an output padding per
// spatial axis. Conv's input gradient is one, and it must be differentiable
// too: denoising score matching differentiates ∂E/∂x.
func (g *Graph) convTranspose(x, w, b *Value, c ConvSpec, outPad []int) *Value {
	oh := (x.shape[2]-1)*c.Stride - 2*c.Pad + c.Dilation*(w.shape[2]-1) + 1 + outPad[0]
	ow := (x.shape[3]-1)*c.Stride - 2*c.Pad + c.Dilation*(w.shape[3]-1) + 1 + outPad[1]
	in := []*Value{x, w}
	if b != nil {
		in = append(in, b)
	}
	attrs := append(convAttrs(w, c), intsAttr("output_padding", outPad...))
	y := g.add("ConvTranspose", []int{x.shape[0], w.shape[1], oh, ow}, g.dtype, in, attrs...)
	y.node.grad = func(dy *Value) []*Value {
		dx := g.add("Conv", x.shape, g.dtype, []*Value{dy, w}, convAttrs(w, c)...)
		// ⟨dy, Convᵀ_w x⟩ = ⟨Conv_w dy, x⟩: ∂W is a Conv weight gradient
		// with dy as the convolution's input and x as its output gradient.
		out := []*Value{dx, g.convWeightGrad(dy, x, w.shape, c)}
		if b != nil {
			out = append(out, g.ReduceSum(dy, []int{0, 2, 3}, false))
		}
		return out
	}
	return y
}
