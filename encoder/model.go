// Package encoder runs a self-describing exported CEBM encoder on ONNX
// Runtime and turns its output t_θ(x) into the posterior: natural
// parameters λ + t_θ(x), mean, variance and energy (and, for GMM-CEBM,
// p(y|x) and each component's posterior).
package encoder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/cebm/cebm/internal/expfam"
	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/internal/ort"
)

// Meta is what an exported model says about itself (package modelfile),
// and which file it is.
type Meta struct {
	modelfile.Meta
	Digest string `json:"digest"` // sha256 of the .onnx file
	Path   string `json:"-"`
}

// Model is a loaded encoder. Its session is shared by all goroutines.
type Model struct {
	Meta
	sess    *ort.Session
	outputs []string
	threads int // intra-op threads of the session
}

// Output of one run on a batch of n images.
type Output struct {
	N       int
	T1, T2  []float32 // [n, D] (CEBM, GMM-CEBM)
	Feature []float32 // [n, D] (IGEBM)
	Energy  []float32 // [n]
}

// Load opens an exported model with the given intra-op thread count (0: all
// cores) and parses its metadata.
func Load(path string, threads int) (*Model, error) {
	if err := ort.Init(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	mf, err := readMeta(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	meta := Meta{Meta: mf, Digest: hex.EncodeToString(sum[:]), Path: path}
	outs := meta.Kind.Outputs()
	if threads <= 0 {
		threads = ort.Threads()
	}
	s, err := ort.NewSession(b, []string{modelfile.Input}, outs, threads)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Model{Meta: meta, sess: s, outputs: outs, threads: threads}, nil
}

// Close releases the session.
func (m *Model) Close() { m.sess.Close() }

// readMeta decodes the metadata_props of an ONNX model.
func readMeta(model []byte) (modelfile.Meta, error) {
	kv, err := ort.ModelMetadata(model)
	if err != nil {
		return modelfile.Meta{}, err
	}
	return modelfile.Decode(kv)
}

// InputSize is C·H·W.
func (m *Model) InputSize() int { return m.InputShape[0] * m.InputShape[1] * m.InputShape[2] }

// Run encodes n images x (NCHW, scaled as the metadata says). Safe for
// concurrent use.
func (m *Model) Run(x []float32, n int) (Output, error) {
	c, h, w := m.InputShape[0], m.InputShape[1], m.InputShape[2]
	if n < 1 || len(x) != n*c*h*w {
		return Output{}, fmt.Errorf("encoder: %d values for %d images of %d×%d×%d", len(x), n, c, h, w)
	}
	in, err := ort.NewTensor([]int64{int64(n), int64(c), int64(h), int64(w)}, x)
	if err != nil {
		return Output{}, err
	}
	defer in.Destroy()
	outs, err := m.sess.RunCopy([]*ort.Tensor[float32]{in}, len(m.outputs))
	if err != nil {
		return Output{}, fmt.Errorf("encoder: %w", err)
	}
	res := Output{N: n}
	for i, name := range m.outputs {
		d := outs[i]
		switch name {
		case modelfile.OutputT1:
			res.T1 = d
		case modelfile.OutputT2:
			res.T2 = d
		case modelfile.OutputFeature:
			res.Feature = d
		case modelfile.OutputEnergy:
			res.Energy = d
		}
	}
	return res, nil
}

// Posterior of image i: the natural parameters λ_k + t(x) of every prior
// component (one for CEBM) and, for a mixture, p(y = k | x).
type Posterior struct {
	Components     []expfam.Gaussian
	Responsibility []float64 // p(y = k | x); [1] for CEBM
	Energy         float64
}

// Posterior computes image i's posterior from a run's output.
func (m *Model) Posterior(o Output, i int) Posterior {
	d := m.LatentDim
	t1 := make([]float64, d)
	t2 := make([]float64, d)
	for j := 0; j < d; j++ {
		t1[j], t2[j] = float64(o.T1[i*d+j]), float64(o.T2[i*d+j])
	}
	p := Posterior{Energy: float64(o.Energy[i])}
	for _, c := range m.Prior {
		p.Components = append(p.Components, c.Posterior(t1, t2))
	}
	if len(m.Prior) == 1 {
		p.Responsibility = []float64{1}
	} else {
		p.Responsibility = m.Prior.Responsibilities(t1, t2)
	}
	return p
}

// MAP is the most probable component.
func (p Posterior) MAP() int {
	best := 0
	for k, r := range p.Responsibility {
		if r > p.Responsibility[best] {
			best = k
		}
	}
	return best
}

// Latent is the vector the paper's evaluations use: the posterior mean (of
// the most probable component for GMM-CEBM), or IGEBM's feature.
func (m *Model) Latent(o Output, i int, dst []float32) {
	d := m.LatentDim
	if m.Kind == modelfile.IGEBM {
		copy(dst, o.Feature[i*d:(i+1)*d])
		return
	}
	p := m.Posterior(o, i)
	for j, v := range p.Components[p.MAP()].Mean() {
		dst[j] = float32(v)
	}
}

// Latents encodes a whole set in batches and returns its latents [n, D].
// When the session uses fewer threads than there are cores, batches run
// concurrently so that every core works. It stops with ctx's error after
// the batches under way when ctx ends.
func (m *Model) Latents(ctx context.Context, x []float32, n, batch int) ([]float32, error) {
	out, _, err := m.LatentsEnergies(ctx, x, n, batch)
	return out, err
}

// LatentsEnergies is Latents that also returns each image's energy E(x).
func (m *Model) LatentsEnergies(ctx context.Context, x []float32, n, batch int) (latents, energies []float32, err error) {
	per, d := m.InputSize(), m.LatentDim
	out := make([]float32, n*d)
	energies = make([]float32, n)
	starts := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range max(1, ort.Threads()/m.threads) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range starts {
				e := min(n, s+batch)
				o, err := m.Run(x[s*per:e*per], e-s)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				for i := 0; i < e-s; i++ {
					m.Latent(o, i, out[(s+i)*d:(s+i+1)*d])
				}
				copy(energies[s:e], o.Energy)
			}
		}()
	}
	for s := 0; s < n && ctx.Err() == nil; s += batch {
		starts <- s
	}
	close(starts)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	select {
	case err := <-errs:
		return nil, nil, err
	default:
	}
	for _, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, fmt.Errorf("encoder: non-finite latent")
		}
	}
	return out, energies, nil
}
