package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cebm/cebm/train/graph"
)

// ConvLayer is one convolution of an encoder.
type ConvLayer struct{ Out, Kernel, Stride, Pad int }

// Arch is a network architecture of the paper (supplementary Tables 5–7):
// a stack of convolutions, fully connected layers, then a head. Swish
// follows every layer but the head.
type Arch struct {
	Name       string
	C, H, W    int // input shape
	Convs      []ConvLayer
	Hidden     []int // fully connected widths after the convolutions
	LatentDim  int   // D; the CEBM head has 2·D outputs (t1, s)
	EnergyHead bool  // IGEBM: the head is one scalar energy
	// Whiten puts a fixed linear map of the flattened image in front of
	// the first convolution (the frozen parameter input.whiten, C·H·W
	// square): a preconditioner that lets gradient descent learn the
	// image's low-variance directions as fast as its high-variance ones.
	Whiten bool
}

// MNISTArch is the 28×28×1 encoder of the paper.
func MNISTArch() Arch {
	return Arch{
		Name: "mnist", C: 1, H: 28, W: 28,
		Convs:     []ConvLayer{{64, 3, 1, 1}, {64, 4, 2, 1}, {32, 4, 2, 1}, {32, 4, 2, 1}},
		Hidden:    []int{128},
		LatentDim: 128,
	}
}

// CIFARArch is the 32×32×3 encoder of the paper (CIFAR-10, SVHN).
func CIFARArch() Arch {
	return Arch{
		Name: "cifar", C: 3, H: 32, W: 32,
		Convs:     []ConvLayer{{64, 3, 1, 1}, {128, 4, 2, 1}, {256, 4, 2, 1}, {512, 4, 2, 1}},
		Hidden:    []int{1024},
		LatentDim: 128,
	}
}

// IGEBM turns an encoder architecture into the IGEBM baseline: FC 128,
// FC 128, then a scalar energy (Du & Mordatch 2019).
func (a Arch) IGEBM() Arch {
	a.Hidden = []int{128, 128}
	a.EnergyHead = true
	return a
}

// ArchByName returns "mnist" or "cifar".
func ArchByName(name string) (Arch, error) {
	switch name {
	case "mnist":
		return MNISTArch(), nil
	case "cifar":
		return CIFARArch(), nil
	}
	return Arch{}, fmt.Errorf("unknown architecture %q (mnist, cifar)", name)
}

// ParamSpec is a named parameter tensor.
type ParamSpec struct {
	Name   string
	Shape  []int
	FanIn  int
	Frozen bool // fixed at its initial value: the optimiser leaves it alone
}

// Size is the number of elements.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// convOut is the spatial size after a convolution.
func convOut(in int, c ConvLayer) int { return (in+2*c.Pad-c.Kernel)/c.Stride + 1 }

// ParamSpecs lists the network's parameters in a fixed order.
func (a Arch) ParamSpecs() []ParamSpec {
	var ps []ParamSpec
	c, h, w := a.C, a.H, a.W
	for i, l := range a.Convs {
		fan := c * l.Kernel * l.Kernel
		ps = append(ps,
			ParamSpec{Name: fmt.Sprintf("conv%d.weight", i+1), Shape: []int{l.Out, c, l.Kernel, l.Kernel}, FanIn: fan},
			ParamSpec{Name: fmt.Sprintf("conv%d.bias", i+1), Shape: []int{l.Out}, FanIn: fan})
		c, h, w = l.Out, convOut(h, l), convOut(w, l)
	}
	in := c * h * w
	for i, n := range a.Hidden {
		ps = append(ps,
			ParamSpec{Name: fmt.Sprintf("fc%d.weight", i+1), Shape: []int{n, in}, FanIn: in},
			ParamSpec{Name: fmt.Sprintf("fc%d.bias", i+1), Shape: []int{n}, FanIn: in})
		in = n
	}
	out := 2 * a.LatentDim
	if a.EnergyHead {
		out = 1
	}
	ps = append(ps,
		ParamSpec{Name: "head.weight", Shape: []int{out, in}, FanIn: in},
		ParamSpec{Name: "head.bias", Shape: []int{out}, FanIn: in})
	if a.Whiten {
		n := a.C * a.H * a.W
		ps = append(ps, ParamSpec{Name: WhitenParam, Shape: []int{n, n}, Frozen: true})
	}
	return ps
}

// WhitenParam is the name of Arch.Whiten's fixed map.
const WhitenParam = "input.whiten"

// InitParams draws PyTorch's default initialisation for Conv2d and Linear:
// weights and biases uniform in ±1/√fan_in. Arch.Whiten's map starts as
// the identity (a run fits it to the data: FitWhitening).
func InitParams(specs []ParamSpec, rng *rand.Rand) [][]float32 {
	out := make([][]float32, len(specs))
	for i, s := range specs {
		if s.Name == WhitenParam {
			n := s.Shape[0]
			out[i] = make([]float32, n*n)
			for j := range n {
				out[i][j*n+j] = 1
			}
			continue
		}
		bound := 1 / math.Sqrt(float64(s.FanIn))
		d := make([]float32, s.Size())
		for j := range d {
			d[j] = float32((2*rng.Float64() - 1) * bound)
		}
		out[i] = d
	}
	return out
}

// Network builds the forward pass of x [B, C, H, W] with the given
// parameter values (graph params or constants) in ParamSpecs order. It
// returns the head's output and the head's input (the IGEBM "latent").
func (a Arch) Network(g *graph.Graph, x *graph.Value, p []*graph.Value) (out, feature *graph.Value) {
	out, feature, _ = a.network(g, x, p)
	return out, feature
}

// network is Network that also returns every hidden layer's
// pre-activation (the input of its Swish), for data-dependent init.
func (a Arch) network(g *graph.Graph, x *graph.Value, p []*graph.Value) (out, feature *graph.Value, pre []*graph.Value) {
	h := x
	if a.Whiten { // x·P, P symmetric: the whitened image
		h = g.Reshape(g.MatMul(g.Flatten(x), p[len(p)-1]), []int{graph.Batch, a.C, a.H, a.W})
	}
	k := 0
	for _, l := range a.Convs {
		z := g.Conv(h, p[k], p[k+1], graph.ConvSpec{Stride: l.Stride, Pad: l.Pad})
		pre = append(pre, z)
		h = g.Swish(z)
		k += 2
	}
	h = g.Flatten(h)
	for range a.Hidden {
		z := g.Linear(h, p[k], p[k+1])
		pre = append(pre, z)
		h = g.Swish(z)
		k += 2
	}
	return g.Linear(h, p[k], p[k+1]), h, pre
}

// FLOPs is the number of multiply-adds ×2 of one forward pass per image.
func (a Arch) FLOPs() float64 {
	var f float64
	c, h, w := a.C, a.H, a.W
	for _, l := range a.Convs {
		oh, ow := convOut(h, l), convOut(w, l)
		f += 2 * float64(oh*ow*l.Out*c*l.Kernel*l.Kernel)
		c, h, w = l.Out, oh, ow
	}
	in := c * h * w
	for _, n := range a.Hidden {
		f += 2 * float64(in*n)
		in = n
	}
	out := 2 * a.LatentDim
	if a.EnergyHead {
		out = 1
	}
	return f + 2*float64(in*out)
}
