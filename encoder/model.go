// Package encoder runs a self-describing exported CEBM encoder on ONNX
// Runtime and turns its output t_θ(x) into the posterior: natural
// parameters λ + t_θ(x), mean, variance and energy (and, for GMM-CEBM,
// p(y|x) and each component's posterior).
package encoder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"

	"github.com/cebm/cebm/internal/expfam"
	"github.com/cebm/cebm/internal/ort"
	onnx "github.com/yalue/onnxruntime_go"
)

// Meta is what an exported model says about itself (its metadata_props).
type Meta struct {
	Kind       string          `json:"kind"` // cebm, gmm-cebm, igebm
	LatentDim  int             `json:"latent_dim"`
	InputShape [3]int          `json:"input_shape"` // C, H, W
	Scaling    string          `json:"input_scaling"`
	Polarity   string          `json:"input_polarity,omitempty"`
	Classes    []string        `json:"classes"`
	Dataset    string          `json:"dataset"`
	Steps      int             `json:"steps"`
	WallTime   float64         `json:"wall_time_s"`
	Config     json.RawMessage `json:"config,omitempty"`
	Digest     string          `json:"digest"` // sha256 of the .onnx file
	Path       string          `json:"-"`

	Prior expfam.Mixture `json:"-"` // one component for CEBM, K for GMM-CEBM
}

// Model is a loaded encoder. Its session is shared by all goroutines.
type Model struct {
	Meta
	sess    *onnx.DynamicAdvancedSession
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
	meta, err := readMeta(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	meta.Digest = hex.EncodeToString(sum[:])
	meta.Path = path
	outs := []string{"t1", "t2", "energy"}
	if meta.Kind == "igebm" {
		outs = []string{"feature", "energy"}
	}
	if threads <= 0 {
		threads = ort.Threads()
	}
	so, err := ort.NewSessionOptions(threads)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := onnx.NewDynamicAdvancedSessionWithONNXData(b, []string{"x"}, outs, so)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Model{Meta: meta, sess: s, outputs: outs, threads: threads}, nil
}

// Close releases the session.
func (m *Model) Close() { m.sess.Destroy() }

func readMeta(model []byte) (Meta, error) {
	md, err := onnx.GetModelMetadataWithONNXData(model)
	if err != nil {
		return Meta{}, err
	}
	defer md.Destroy()
	get := func(k string) string {
		v, _, _ := md.LookupCustomMetadataMap(k)
		return v
	}
	var m Meta
	m.Kind = get("kind")
	switch m.Kind {
	case "cebm", "gmm-cebm", "igebm":
	case "":
		return m, fmt.Errorf("not a cebm model: no 'kind' in its metadata")
	default:
		return m, fmt.Errorf("unknown model kind %q", m.Kind)
	}
	var shape []int
	if err := json.Unmarshal([]byte(get("input_shape")), &shape); err != nil || len(shape) != 3 {
		return m, fmt.Errorf("bad input_shape metadata %q", get("input_shape"))
	}
	copy(m.InputShape[:], shape)
	if m.LatentDim, err = strconv.Atoi(get("latent_dim")); err != nil || m.LatentDim < 1 {
		return m, fmt.Errorf("bad latent_dim metadata %q", get("latent_dim"))
	}
	if s := get("classes"); s != "" {
		if err := json.Unmarshal([]byte(s), &m.Classes); err != nil {
			return m, fmt.Errorf("bad classes metadata: %w", err)
		}
	}
	m.Scaling, m.Polarity, m.Dataset = get("input_scaling"), get("input_polarity"), get("dataset")
	m.Steps, _ = strconv.Atoi(get("steps"))
	m.WallTime, _ = strconv.ParseFloat(get("wall_time_s"), 64)
	if c := get("config"); c != "" && json.Valid([]byte(c)) {
		m.Config = json.RawMessage(c)
	}
	if m.Kind == "igebm" {
		return m, nil
	}
	var prior []struct{ Eta1, Eta2 []float64 }
	if err := json.Unmarshal([]byte(get("prior")), &prior); err != nil || len(prior) == 0 {
		return m, fmt.Errorf("bad prior metadata")
	}
	for k, p := range prior {
		if len(p.Eta1) != m.LatentDim || len(p.Eta2) != m.LatentDim {
			return m, fmt.Errorf("prior component %d has the wrong dimension", k)
		}
		for _, v := range p.Eta2 {
			if !(v < 0) {
				return m, fmt.Errorf("prior component %d has η2 ≥ 0", k)
			}
		}
		m.Prior = append(m.Prior, expfam.Gaussian{Eta1: p.Eta1, Eta2: p.Eta2})
	}
	return m, nil
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
	in, err := onnx.NewTensor(onnx.NewShape(int64(n), int64(c), int64(h), int64(w)), x)
	if err != nil {
		return Output{}, err
	}
	defer in.Destroy()
	outs := make([]onnx.Value, len(m.outputs))
	if err := m.sess.Run([]onnx.Value{in}, outs); err != nil {
		return Output{}, fmt.Errorf("encoder: %w", err)
	}
	res := Output{N: n}
	for i, name := range m.outputs {
		t := outs[i].(*onnx.Tensor[float32])
		d := append([]float32(nil), t.GetData()...)
		t.Destroy()
		switch name {
		case "t1":
			res.T1 = d
		case "t2":
			res.T2 = d
		case "feature":
			res.Feature = d
		case "energy":
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
	if m.Kind == "igebm" {
		copy(dst, o.Feature[i*d:(i+1)*d])
		return
	}
	p := m.Posterior(o, i)
	c := p.Components[p.MAP()]
	for j := 0; j < d; j++ {
		dst[j] = float32(-c.Eta1[j] / (2 * c.Eta2[j]))
	}
}

// Latents encodes a whole set in batches and returns its latents [n, D].
// When the session uses fewer threads than there are cores, batches run
// concurrently so that every core works.
func (m *Model) Latents(x []float32, n, batch int) ([]float32, error) {
	per, d := m.InputSize(), m.LatentDim
	out := make([]float32, n*d)
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
			}
		}()
	}
	for s := 0; s < n; s += batch {
		starts <- s
	}
	close(starts)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	for _, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("encoder: non-finite latent")
		}
	}
	return out, nil
}
