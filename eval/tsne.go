package eval

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// TSNEOptions configure exact t-SNE (van der Maaten & Hinton 2008).
type TSNEOptions struct {
	Perplexity   float64 // effective number of neighbours; 30
	Iterations   int     // gradient steps in all; 750
	Exaggeration float64 // early exaggeration of P; 12
	ExagIters    int     // steps with exaggeration and momentum 0.5; 250
	LearningRate float64 // 0: max(n/12, 50)
	Seed         uint64
	Workers      int // goroutines; 0: 2
}

// DefaultTSNEOptions are the usual settings.
func DefaultTSNEOptions() TSNEOptions {
	return TSNEOptions{Perplexity: 30, Iterations: 750, Exaggeration: 12, ExagIters: 250, Seed: 1, Workers: 2}
}

// TSNE embeds the n = len(x)/dim vectors of x in two dimensions with exact
// t-SNE (O(n²) time and memory: meant for a few thousand points) and returns
// [n, 2] coordinates.
// It stops with ctx's error between iterations once ctx ends.
func TSNE(ctx context.Context, x []float32, dim int, opt TSNEOptions) ([]float64, error) {
	n := len(x) / dim
	if n < 4 || len(x) != n*dim {
		return nil, fmt.Errorf("eval: t-SNE of %d values in %d dimensions", len(x), dim)
	}
	if opt.Perplexity <= 0 || opt.Perplexity >= float64(n) {
		return nil, fmt.Errorf("eval: t-SNE perplexity %v for %d points", opt.Perplexity, n)
	}
	workers := opt.Workers
	if workers < 1 {
		workers = 2
	}
	lr := opt.LearningRate
	if lr <= 0 {
		lr = max(float64(n)/12, 50)
	}
	p := tsneAffinities(x, n, dim, opt.Perplexity, workers)

	rng := rand.New(rand.NewPCG(opt.Seed, 0x75e))
	y := make([]float64, 2*n)
	for i := range y {
		y[i] = 1e-4 * rng.NormFloat64()
	}
	grad := make([]float64, 2*n)
	vel := make([]float64, 2*n)
	gains := make([]float64, 2*n)
	for i := range gains {
		gains[i] = 1
	}
	num := make([]float64, n*n)
	rowZ := make([]float64, n)
	for it := 0; it < opt.Iterations; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		exag, momentum := 1.0, 0.8
		if it < opt.ExagIters {
			exag, momentum = opt.Exaggeration, 0.5
		}
		// Student-t kernel q_ij ∝ (1 + ‖y_i − y_j‖²)⁻¹.
		parallelRows(n, workers, func(i int) {
			var s float64
			yi0, yi1 := y[2*i], y[2*i+1]
			row := num[i*n : (i+1)*n]
			for j := range row {
				d0, d1 := yi0-y[2*j], yi1-y[2*j+1]
				v := 1 / (1 + d0*d0 + d1*d1)
				if j == i {
					v = 0
				}
				row[j] = v
				s += v
			}
			rowZ[i] = s
		})
		var z float64
		for _, s := range rowZ {
			z += s
		}
		// ∂C/∂y_i = 4 Σ_j (exag·p_ij − q_ij)·num_ij·(y_i − y_j).
		parallelRows(n, workers, func(i int) {
			var g0, g1 float64
			yi0, yi1 := y[2*i], y[2*i+1]
			prow, nrow := p[i*n:(i+1)*n], num[i*n:(i+1)*n]
			for j, nij := range nrow {
				m := (exag*prow[j] - nij/z) * nij
				g0 += m * (yi0 - y[2*j])
				g1 += m * (yi1 - y[2*j+1])
			}
			grad[2*i], grad[2*i+1] = 4*g0, 4*g1
		})
		// Momentum with per-coordinate gains (the reference implementation).
		for k, g := range grad {
			if (g > 0) != (vel[k] > 0) {
				gains[k] += 0.2
			} else {
				gains[k] = max(gains[k]*0.8, 0.01)
			}
			vel[k] = momentum*vel[k] - lr*gains[k]*g
			y[k] += vel[k]
		}
		var m0, m1 float64
		for i := 0; i < n; i++ {
			m0 += y[2*i]
			m1 += y[2*i+1]
		}
		for i := 0; i < n; i++ {
			y[2*i] -= m0 / float64(n)
			y[2*i+1] -= m1 / float64(n)
		}
	}
	for _, v := range y {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("eval: t-SNE diverged")
		}
	}
	return y, nil
}

// tsneAffinities returns the symmetric joint probabilities p_ij =
// (p_j|i + p_i|j)/2n, each conditional p_·|i a Gaussian whose bandwidth
// gives the wanted perplexity (found by bisection on the precision).
func tsneAffinities(x []float32, n, dim int, perplexity float64, workers int) []float64 {
	p := make([]float64, n*n)
	target := math.Log(perplexity)
	parallelRows(n, workers, func(i int) {
		d := make([]float64, n)
		xi := x[i*dim : (i+1)*dim]
		for j := 0; j < n; j++ {
			var s float64
			for k, v := range x[j*dim : (j+1)*dim] {
				e := float64(xi[k] - v)
				s += e * e
			}
			d[j] = s
		}
		conditional(d, i, target, p[i*n:(i+1)*n])
	})
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v := max((p[i*n+j]+p[j*n+i])/(2*float64(n)), 1e-12)
			p[i*n+j], p[j*n+i] = v, v
		}
	}
	return p
}

// parallelRows calls f(i) for i in [0, n) on workers goroutines.
func parallelRows(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(i)
			}
		}(w)
	}
	wg.Wait()
}

// conditional fills row with p_j|i ∝ exp(−β·d_j) (row[i] = 0), the
// precision β found by bisection so that the entropy is target nats.
func conditional(d []float64, i int, target float64, row []float64) {
	beta, lo, hi := 1.0, 0.0, math.Inf(1)
	// Distances relative to the nearest neighbour keep exp from
	// underflowing whatever the scale.
	dmin := math.Inf(1)
	for j, v := range d {
		if j != i && v < dmin {
			dmin = v
		}
	}
	for range 200 {
		var sum, hsum float64
		for j, v := range d {
			if j == i {
				row[j] = 0
				continue
			}
			e := math.Exp(-beta * (v - dmin))
			row[j] = e
			sum += e
			hsum += e * (v - dmin)
		}
		h := math.Log(sum) + beta*hsum/sum // entropy in nats
		for j := range row {
			row[j] /= sum
		}
		if math.Abs(h-target) < 1e-5 {
			return
		}
		if h > target { // too flat: raise the precision
			lo = beta
			if math.IsInf(hi, 1) {
				beta *= 2
			} else {
				beta = (beta + hi) / 2
			}
		} else {
			hi = beta
			beta = (beta + lo) / 2
		}
	}
}
