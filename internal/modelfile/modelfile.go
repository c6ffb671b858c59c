// Package modelfile is the contract of an exported model file: the model
// kinds, the names of the encoder graph's input and outputs, and the
// metadata (ModelProto.metadata_props) that makes the file self-describing.
// Package train writes it and package encoder reads it; both use this
// package, so a key, a kind or an output name is spelled only here.
package modelfile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cebm/cebm/internal/expfam"
)

// Kind is a model family.
type Kind string

// The model families of the paper.
const (
	CEBM    Kind = "cebm"     // diagonal Gaussian latent, fixed N(0, I) prior
	GMMCEBM Kind = "gmm-cebm" // mixture-of-Gaussians prior with learnable components
	IGEBM   Kind = "igebm"    // scalar-energy baseline (Du & Mordatch 2019)
)

// Valid reports whether k is one of the three kinds.
func (k Kind) Valid() bool { return k == CEBM || k == GMMCEBM || k == IGEBM }

// Names of the encoder graph's input and outputs.
const (
	Input         = "x"       // [N, C, H, W] images, scaled as Meta.Scaling says
	OutputT1      = "t1"      // [N, D] sufficient-statistic weights (CEBM, GMM-CEBM)
	OutputT2      = "t2"      // [N, D]
	OutputFeature = "feature" // [N, D] the input of IGEBM's energy head
	OutputEnergy  = "energy"  // [N] E_θ(x)
)

// Outputs are the output names of an encoder of kind k, in graph order.
func (k Kind) Outputs() []string {
	if k == IGEBM {
		return []string{OutputFeature, OutputEnergy}
	}
	return []string{OutputT1, OutputT2, OutputEnergy}
}

// Metadata keys.
const (
	KeyKind       = "kind"
	KeyLatentDim  = "latent_dim"
	KeyPrior      = "prior"       // JSON [{"eta1": [...], "eta2": [...]}, ...], one per component
	KeyInputShape = "input_shape" // JSON [C, H, W]
	KeyScaling    = "input_scaling"
	KeyPolarity   = "input_polarity"
	KeyClasses    = "classes" // JSON list of class names
	KeyDataset    = "dataset"
	KeySteps      = "steps"
	KeyWallTime   = "wall_time_s"
	KeyConfig     = "config"  // JSON of the training configuration
	KeyOutputs    = "outputs" // comma list: Kind.Outputs
)

// Scaling is the input scaling every exported model uses.
const Scaling = "x/127.5-1: pixel bytes 0..255 to [-1, 1]"

// LightOnDark is the polarity of MNIST-style single-channel data.
const LightOnDark = "light-on-dark"

// Meta is what an exported model says about itself. Its JSON form is part
// of the service's GET /models answer.
type Meta struct {
	Kind       Kind            `json:"kind"`
	LatentDim  int             `json:"latent_dim"`  // D
	InputShape [3]int          `json:"input_shape"` // C, H, W
	Scaling    string          `json:"input_scaling"`
	Polarity   string          `json:"input_polarity,omitempty"` // LightOnDark, or ""
	Classes    []string        `json:"classes"`
	Dataset    string          `json:"dataset"`
	Steps      int             `json:"steps"`
	WallTime   float64         `json:"wall_time_s"` // seconds, one decimal in the file
	Config     json.RawMessage `json:"config,omitempty"`

	// Prior is λ: one component for CEBM, K for GMM-CEBM, none for IGEBM.
	Prior expfam.Mixture `json:"-"`
}

// prior is one prior component as the file holds it.
type prior struct {
	Eta1 []float64 `json:"eta1"`
	Eta2 []float64 `json:"eta2"`
}

// Encode returns m as metadata_props. It checks what Decode checks, so
// that a file written from it can be read back.
func (m Meta) Encode() (map[string]string, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	shape, err := json.Marshal(m.InputShape[:])
	if err != nil {
		return nil, err
	}
	cls, err := json.Marshal(m.Classes)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{
		KeyKind:       string(m.Kind),
		KeyLatentDim:  strconv.Itoa(m.LatentDim),
		KeyInputShape: string(shape),
		KeyScaling:    m.Scaling,
		KeyClasses:    string(cls),
		KeyDataset:    m.Dataset,
		KeySteps:      strconv.Itoa(m.Steps),
		KeyWallTime:   strconv.FormatFloat(m.WallTime, 'f', 1, 64),
		KeyOutputs:    strings.Join(m.Kind.Outputs(), ","),
	}
	if m.Polarity != "" {
		kv[KeyPolarity] = m.Polarity
	}
	if len(m.Config) > 0 {
		kv[KeyConfig] = string(m.Config)
	}
	if m.Kind != IGEBM {
		ps := make([]prior, len(m.Prior))
		for k, c := range m.Prior {
			ps[k] = prior{c.Eta1, c.Eta2}
		}
		b, err := json.Marshal(ps)
		if err != nil {
			return nil, err
		}
		kv[KeyPrior] = string(b)
	}
	return kv, nil
}

// Decode reads the metadata_props kv of an exported model.
func Decode(kv map[string]string) (Meta, error) {
	var m Meta
	m.Kind = Kind(kv[KeyKind])
	switch {
	case m.Kind == "":
		return m, fmt.Errorf("not a cebm model: no %q in its metadata", KeyKind)
	case !m.Kind.Valid():
		return m, fmt.Errorf("unknown model kind %q", m.Kind)
	}
	if o, ok := kv[KeyOutputs]; ok && o != strings.Join(m.Kind.Outputs(), ",") {
		return m, fmt.Errorf("bad %s metadata %q for a %s model", KeyOutputs, o, m.Kind)
	}
	var shape []int
	if err := json.Unmarshal([]byte(kv[KeyInputShape]), &shape); err != nil || len(shape) != 3 {
		return m, fmt.Errorf("bad %s metadata %q", KeyInputShape, kv[KeyInputShape])
	}
	copy(m.InputShape[:], shape)
	var err error
	if m.LatentDim, err = strconv.Atoi(kv[KeyLatentDim]); err != nil {
		return m, fmt.Errorf("bad %s metadata %q", KeyLatentDim, kv[KeyLatentDim])
	}
	if s := kv[KeyClasses]; s != "" {
		if err := json.Unmarshal([]byte(s), &m.Classes); err != nil {
			return m, fmt.Errorf("bad %s metadata: %w", KeyClasses, err)
		}
	}
	m.Scaling, m.Polarity, m.Dataset = kv[KeyScaling], kv[KeyPolarity], kv[KeyDataset]
	m.Steps, _ = strconv.Atoi(kv[KeySteps])
	m.WallTime, _ = strconv.ParseFloat(kv[KeyWallTime], 64)
	if c := kv[KeyConfig]; c != "" && json.Valid([]byte(c)) {
		m.Config = json.RawMessage(c)
	}
	if m.Kind != IGEBM {
		var ps []prior
		if err := json.Unmarshal([]byte(kv[KeyPrior]), &ps); err != nil {
			return m, fmt.Errorf("bad %s metadata", KeyPrior)
		}
		for _, p := range ps {
			m.Prior = append(m.Prior, expfam.Gaussian{Eta1: p.Eta1, Eta2: p.Eta2})
		}
	}
	return m, m.check()
}

// check validates what a reader relies on: the shape, the dimension and a
// proper prior (η2 < 0 in every dimension of every component).
func (m Meta) check() error {
	if !m.Kind.Valid() {
		return fmt.Errorf("unknown model kind %q", m.Kind)
	}
	if slices.Min(m.InputShape[:]) < 1 {
		return fmt.Errorf("bad %s %v", KeyInputShape, m.InputShape)
	}
	if m.LatentDim < 1 {
		return fmt.Errorf("bad %s %d", KeyLatentDim, m.LatentDim)
	}
	if m.Kind == IGEBM {
		return nil
	}
	if len(m.Prior) == 0 {
		return fmt.Errorf("bad %s metadata: no component", KeyPrior)
	}
	for k, p := range m.Prior {
		if len(p.Eta1) != m.LatentDim || len(p.Eta2) != m.LatentDim {
			return fmt.Errorf("prior component %d has the wrong dimension", k)
		}
		for _, v := range p.Eta2 {
			if !(v < 0) {
				return fmt.Errorf("prior component %d has η2 ≥ 0", k)
			}
		}
	}
	return nil
}
