package eval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// ProbeOptions set the linear probe's optimisation (as in the paper: a
// multinomial logistic regression on posterior means).
type ProbeOptions struct {
	// L2 is λ in the objective: mean softmax cross-entropy + λ/2·‖W‖²
	// (weights only, not the biases), on standardised features.
	L2 float64
	// MaxIter caps L-BFGS's major iterations.
	MaxIter int
}

// DefaultProbeOptions: λ = 1e-3, at most 200 L-BFGS iterations.
func DefaultProbeOptions() ProbeOptions { return ProbeOptions{L2: 1e-3, MaxIter: 200} }

// Standardizer centres and scales each feature.
type Standardizer struct{ Mean, Scale []float64 }

// FitStandardizer measures each feature's mean and standard deviation over
// n = len(x)/dim vectors. A constant feature gets scale 1.
func FitStandardizer(x []float32, dim int) Standardizer {
	n := len(x) / dim
	s := Standardizer{Mean: make([]float64, dim), Scale: make([]float64, dim)}
	for i := 0; i < n; i++ {
		for j, v := range x[i*dim : (i+1)*dim] {
			s.Mean[j] += float64(v)
		}
	}
	for j := range s.Mean {
		s.Mean[j] /= float64(max(n, 1))
	}
	for i := 0; i < n; i++ {
		for j, v := range x[i*dim : (i+1)*dim] {
			d := float64(v) - s.Mean[j]
			s.Scale[j] += d * d
		}
	}
	for j := range s.Scale {
		s.Scale[j] = math.Sqrt(s.Scale[j] / float64(max(n, 1)))
		if s.Scale[j] < 1e-12 {
			s.Scale[j] = 1
		}
	}
	return s
}

// Apply returns the standardised vectors of the rows idx of x (all rows when
// idx is nil) as an n×dim matrix.
func (s Standardizer) Apply(x []float32, idx []int) *mat.Dense {
	dim := len(s.Mean)
	if idx == nil {
		idx = make([]int, len(x)/dim)
		for i := range idx {
			idx[i] = i
		}
	}
	out := make([]float64, len(idx)*dim)
	for r, i := range idx {
		for j, v := range x[i*dim : (i+1)*dim] {
			out[r*dim+j] = (float64(v) - s.Mean[j]) / s.Scale[j]
		}
	}
	return mat.NewDense(len(idx), dim, out)
}

// Probe is a fitted multinomial logistic regression: logits = x·Wᵀ + b.
type Probe struct {
	W *mat.Dense // classes × dim
	B []float64  // classes
}

// TrainProbe fits a probe to the rows of x (standardised features) with
// labels y in [0, classes) by L-BFGS (gonum/optimize) from zero weights.
func TrainProbe(ctx context.Context, x *mat.Dense, y []int, classes int, opt ProbeOptions) (p *Probe, err error) {
	n, dim := x.Dims()
	if n != len(y) || n == 0 || classes < 2 {
		return nil, fmt.Errorf("eval: probe on %d vectors with %d labels, %d classes", n, len(y), classes)
	}
	for _, l := range y {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("eval: probe label %d outside [0, %d)", l, classes)
		}
	}
	defer func() { // gonum panics on misuse: an error at this boundary
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("eval: probe optimisation: %v", r)
		}
	}()
	obj := &probeObjective{x: x, y: y, classes: classes, dim: dim, l2: opt.L2,
		logits: mat.NewDense(n, classes, nil)}
	prob := optimize.Problem{Func: obj.fun, Grad: obj.grad}
	settings := &optimize.Settings{MajorIterations: opt.MaxIter, GradientThreshold: 1e-6, Recorder: ctxRecorder{ctx}}
	res, err := optimize.Minimize(prob, make([]float64, classes*(dim+1)), settings, &optimize.LBFGS{})
	if err != nil && !errors.Is(err, optimize.ErrLinesearcherFailure) {
		return nil, fmt.Errorf("eval: probe optimisation: %w", err)
	}
	if res == nil || math.IsNaN(res.F) {
		return nil, fmt.Errorf("eval: probe optimisation failed: %v", err)
	}
	w, b := obj.split(res.X)
	return &Probe{W: mat.DenseCopyOf(w), B: append([]float64(nil), b...)}, nil
}

// Predict returns the most probable class of each row of x.
func (p *Probe) Predict(x *mat.Dense) []int {
	n, _ := x.Dims()
	classes, _ := p.W.Dims()
	var z mat.Dense
	z.Mul(x, p.W.T())
	pred := make([]int, n)
	for i := range pred {
		row := z.RawRowView(i)
		best := 0
		for k := 1; k < classes; k++ {
			if row[k]+p.B[k] > row[best]+p.B[best] {
				best = k
			}
		}
		pred[i] = best
	}
	return pred
}

// Accuracy is the fraction of rows of x whose predicted class is y.
func (p *Probe) Accuracy(x *mat.Dense, y []int) float64 {
	ok := 0
	for i, c := range p.Predict(x) {
		if c == y[i] {
			ok++
		}
	}
	return float64(ok) / float64(max(len(y), 1))
}

// probeObjective is the mean cross-entropy plus λ/2·‖W‖². Parameters are
// laid out as W (classes × dim, row-major) then b (classes). L-BFGS asks for
// f then ∇f at the same point: fun computes both and grad hands ∇f over.
type probeObjective struct {
	x            *mat.Dense
	y            []int
	classes, dim int
	l2           float64
	logits       *mat.Dense
	atX, g       []float64
}

func (o *probeObjective) split(theta []float64) (*mat.Dense, []float64) {
	nw := o.classes * o.dim
	return mat.NewDense(o.classes, o.dim, theta[:nw]), theta[nw:]
}

func (o *probeObjective) fun(theta []float64) float64 {
	n, _ := o.x.Dims()
	w, b := o.split(theta)
	o.logits.Mul(o.x, w.T())
	var loss float64
	for i := 0; i < n; i++ {
		row := o.logits.RawRowView(i)
		floats.Add(row, b)
		m := floats.Max(row)
		var s float64
		for k, v := range row {
			row[k] = math.Exp(v - m)
			s += row[k]
		}
		loss += m + math.Log(s) - (math.Log(row[o.y[i]]) + m)
		floats.Scale(1/s, row) // row is now p(k | x_i)
		row[o.y[i]]--          // p − onehot
	}
	loss /= float64(n)
	loss += o.l2 / 2 * floats.Dot(theta[:o.classes*o.dim], theta[:o.classes*o.dim])

	// ∇W = (P − Y)ᵀ X / n + λW; ∇b = Σ_i (P − Y)_i / n.
	if o.g == nil {
		o.g = make([]float64, len(theta))
	}
	gw, gb := o.split(o.g)
	gw.Mul(o.logits.T(), o.x)
	gw.Scale(1/float64(n), gw)
	var wl2 mat.Dense
	wl2.Scale(o.l2, w)
	gw.Add(gw, &wl2)
	for k := range gb {
		gb[k] = 0
	}
	for i := 0; i < n; i++ {
		floats.Add(gb, o.logits.RawRowView(i))
	}
	floats.Scale(1/float64(n), gb)
	o.atX = append(o.atX[:0], theta...)
	return loss
}

func (o *probeObjective) grad(dst, theta []float64) {
	if !floats.Equal(theta, o.atX) {
		o.fun(theta)
	}
	copy(dst, o.g)
}

// ProbeScore is a probe's test accuracy with few labels per class: the mean
// and standard deviation over seeded subsets.
type ProbeScore struct {
	Mean float64   `json:"mean"`
	Std  float64   `json:"std"`
	Runs []float64 `json:"runs"`
}

// FewLabelProbe trains a probe on perClass labelled training vectors of
// every class, for each of seeds random subsets (seeded 1..seeds), and
// scores each on the whole test split. The features are standardised with
// the statistics of the whole (unlabelled) training split.
func FewLabelProbe(ctx context.Context, std Standardizer, train []float32, trainLabels []int, test *mat.Dense, testLabels []int, classes, perClass, seeds int, opt ProbeOptions) (ProbeScore, error) {
	byClass := make([][]int, classes)
	for i, l := range trainLabels {
		byClass[l] = append(byClass[l], i)
	}
	var sc ProbeScore
	for seed := 1; seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(perClass)))
		var idx []int
		var y []int
		for c, members := range byClass {
			if len(members) < perClass {
				return sc, fmt.Errorf("eval: class %d has %d training vectors, fewer than %d", c, len(members), perClass)
			}
			for _, j := range rng.Perm(len(members))[:perClass] {
				idx = append(idx, members[j])
				y = append(y, c)
			}
		}
		p, err := TrainProbe(ctx, std.Apply(train, idx), y, classes, opt)
		if err != nil {
			return sc, err
		}
		sc.Runs = append(sc.Runs, p.Accuracy(test, testLabels))
	}
	sc.Mean, sc.Std = meanStd(sc.Runs)
	return sc, nil
}

// ctxRecorder stops an optimisation with ctx's error once ctx ends.
type ctxRecorder struct{ ctx context.Context }

func (r ctxRecorder) Init() error { return r.ctx.Err() }

func (r ctxRecorder) Record(*optimize.Location, optimize.Operation, *optimize.Stats) error {
	return r.ctx.Err()
}

// meanStd is the mean and the sample standard deviation.
func meanStd(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	m := floats.Sum(v) / float64(len(v))
	if len(v) == 1 {
		return m, 0
	}
	var s float64
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return m, math.Sqrt(s / float64(len(v)-1))
}
