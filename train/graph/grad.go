package graph

import "slices"

// Grad appends to the graph the gradient of Σ seed·y with respect to each
// value in wrt (inputs, parameters or intermediate values), by reverse-mode
// differentiation. seed has y's shape; nil means ones (so the result is the
// gradient of the sum of y). A value y does not depend on gets zeros.
func (g *Graph) Grad(y, seed *Value, wrt ...*Value) []*Value {
	if seed == nil {
		seed = g.expandTo(g.Reshape(g.Scalar(1), ones(y.Rank())), y)
	} else if !slices.Equal(seed.shape, y.shape) {
		g.fail("Grad: seed shape %v, output %v", seed.shape, y.shape)
		return nil
	}

	// Forward pass: which values depend on any wrt value.
	depends := map[*Value]bool{}
	for _, w := range wrt {
		depends[w] = true
	}
	var tape []*node // nodes on a path from wrt to y, in construction order
	for _, n := range g.nodes {
		for _, in := range n.inputs {
			if in != nil && depends[in] {
				depends[n.outputs[0]] = true
				break
			}
		}
		if depends[n.outputs[0]] {
			tape = append(tape, n)
		}
		if n.outputs[0] == y {
			break
		}
	}

	// Reverse pass, accumulating gradients.
	grads := map[*Value]*Value{y: seed}
	for i := len(tape) - 1; i >= 0; i-- {
		n := tape[i]
		dy := grads[n.outputs[0]]
		if dy == nil {
			continue
		}
		if n.grad == nil {
			g.fail("Grad: operator %s has no gradient", n.op)
			return nil
		}
		dxs := n.grad(dy)
		for j, in := range n.inputs {
			if in == nil || j >= len(dxs) || dxs[j] == nil || !depends[in] {
				continue
			}
			if prev := grads[in]; prev != nil {
				grads[in] = g.Add(prev, dxs[j])
			} else {
				grads[in] = dxs[j]
			}
		}
	}
	out := make([]*Value, len(wrt))
	for i, w := range wrt {
		if d := grads[w]; d != nil {
			out[i] = d
		} else {
			out[i] = g.Mul(w, g.Scalar(0))
		}
	}
	return out
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}
