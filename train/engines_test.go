package train

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cebm/cebm/encoder"
	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/export"
	"github.com/cebm/cebm/train/internal/traintest"
	"github.com/cebm/cebm/train/model"
	"github.com/cebm/cebm/train/objective"
)

// exportedEnergy loads a model file as the service does (package encoder)
// and returns its energies of the n images of x.
func exportedEnergy(t *testing.T, m model.Model, params [][]float32, x []float32, n int) []float32 {
	t.Helper()
	d := m.Arch.LatentDim
	if m.Kind == model.IGEBM {
		d = m.Arch.Hidden[len(m.Arch.Hidden)-1]
	}
	meta := modelfile.Meta{Kind: m.Kind, LatentDim: d, InputShape: [3]int{m.Arch.C, m.Arch.H, m.Arch.W}, Prior: m.Prior(params)}
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := export.Write(path, m, params, meta); err != nil {
		t.Fatal(err)
	}
	enc, err := encoder.Load(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	o, err := enc.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	return o.Energy
}

// TestExportReproducesTraining: the exported file, loaded in a fresh
// session, gives the training graph's energies; GMM-CEBM and IGEBM too.
func TestExportReproducesTraining(t *testing.T) {
	const n = 5
	for _, kind := range []model.Kind{model.CEBM, model.GMMCEBM, model.IGEBM} {
		t.Run(string(kind), func(t *testing.T) {
			m, err := model.NewModel(kind, model.MNISTArch(), 10)
			if err != nil {
				t.Fatal(err)
			}
			params := m.InitParams(rand.New(rand.NewPCG(5, 6)))
			x := traintest.RandVec(n*28*28, 11)
			e, err := engine.NewORTEngine(m, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			want, err := e.Energy(params, x)
			if err != nil {
				t.Fatal(err)
			}
			got := exportedEnergy(t, m, params, x, n)
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
					t.Errorf("image %d: exported %v, training graph %v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestWhitenFrozen: with --whiten, a run fits the map to the training
// images, training leaves it as it is while the other parameters move,
// and the exported file applies it (it reproduces the training energies).
func TestWhitenFrozen(t *testing.T) {
	data := mnistTrain(t, 256)
	cfg := smallConfig()
	cfg.Model.Whiten, cfg.Model.WhitenEps, cfg.Run.Steps = 0.25, 0.05, 3
	dir := t.TempDir()
	st, err := startState(filepath.Join(dir, "c.ckpt"), cfg, data)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ModelFor(cfg)
	specs := m.ParamSpecs()
	w := len(m.Arch.ParamSpecs()) - 1
	if specs[w].Name != model.WhitenParam || !specs[w].Frozen {
		t.Fatalf("parameter %d is %+v, want the frozen whitening map", w, specs[w])
	}
	n := 28 * 28
	fitted := slices.Clone(st.Params[w])
	if fitted[0] == 1 && fitted[1] == 0 && fitted[n+1] == 1 {
		t.Fatal("the whitening map is still the identity")
	}
	before := slices.Clone(st.Params[0])
	tr, err := NewTrainer(st, data)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for range cfg.Run.Steps {
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(st.Params[w], fitted) {
		t.Error("training changed the frozen whitening map")
	}
	if slices.Equal(st.Params[0], before) {
		t.Error("training did not change conv1.weight")
	}
	x := data.X[:4*n]
	want, err := tr.engine.Energy(st.Params, x)
	if err != nil {
		t.Fatal(err)
	}
	got := exportedEnergy(t, m, st.Params, x, 4)
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("image %d: exported %v, training graph %v", i, got[i], want[i])
		}
	}
	// Without --whiten the architecture has no such parameter.
	plain, _ := ModelFor(smallConfig())
	for _, s := range plain.ParamSpecs() {
		if s.Name == model.WhitenParam {
			t.Error("a model without --whiten has the whitening parameter")
		}
	}
}

// TestOneDNNEngineRun: a run on oneDNN follows the ONNX Runtime run's loss
// curve over 50 updates (same seed; contrastive divergence on a CEBM and a
// GMM-CEBM, score matching on a CEBM): the two differ by float32 rounding
// only.
func TestOneDNNEngineRun(t *testing.T) {
	if !dnnl.Available {
		t.Skip("no oneDNN in this build")
	}
	data := mnistTrain(t, 512)
	for _, kind := range []model.Kind{model.CEBM, model.GMMCEBM} {
		t.Run(string(kind), func(t *testing.T) { oneDNNEngineRun(t, data, kind, objective.CD) })
	}
	t.Run("cebm/dsm", func(t *testing.T) { oneDNNEngineRun(t, data, model.CEBM, objective.DSM) })
	cfg := smallConfig()
	cfg.Engine, cfg.Model.Whiten, cfg.Model.WhitenEps = engine.OneDNN, 0.25, 0.05
	m, _ := ModelFor(cfg)
	if _, err := NewTrainer(NewState(cfg, m), data); err == nil {
		t.Error("engine onednn accepted a model with --whiten")
	}
}

func oneDNNEngineRun(t *testing.T, data Images, kind model.Kind, obj objective.Name) {
	losses := func(e engine.Name) []float64 {
		cfg := smallConfig()
		cfg.Model.Kind, cfg.Objective.Name = kind, obj
		cfg.Engine, cfg.Run.Steps, cfg.Objective.CD.SGLDSteps, cfg.Objective.CD.Gamma, cfg.Optimiser.LR = e, 50, 5, 0.005, 1e-3
		m, _ := ModelFor(cfg)
		tr, err := NewTrainer(NewState(cfg, m), data)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var out []float64
		for range cfg.Run.Steps {
			met, err := tr.Step()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, met.Loss)
		}
		return out
	}
	ort, fast := losses(engine.ORT), losses(engine.OneDNN)
	var worst, scale float64
	for i := range ort {
		worst = max(worst, math.Abs(fast[i]-ort[i]))
		scale = max(scale, math.Abs(ort[i]))
	}
	t.Logf("50 updates: max |loss(oneDNN) − loss(ORT)| = %.3g, loss scale %.3g; first %.5f / %.5f, last %.5f / %.5f",
		worst, scale, fast[0], ort[0], fast[49], ort[49])
	if worst > 1e-3*max(scale, 1) {
		t.Errorf("the loss curves part: max difference %g at scale %g", worst, scale)
	}
}
