package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cebm/cebm/internal/modelfile"
	"github.com/cebm/cebm/train/objective"
)

// flatConfig and flatState are Config and State as they were before the
// config had sections: checkpoints of version 1 hold them.
type flatConfig struct {
	Kind            modelfile.Kind `json:"kind"`
	Arch            string         `json:"arch"`
	Components      int            `json:"components"`
	Data            string         `json:"data"`
	Seed            uint64         `json:"seed"`
	Objective       string         `json:"objective,omitempty"`
	SigmaMin        float64        `json:"sigma_min,omitempty"`
	SigmaMax        float64        `json:"sigma_max,omitempty"`
	BaseSigma       float64        `json:"base_sigma,omitempty"`
	Init            string         `json:"init,omitempty"`
	Whiten          float64        `json:"whiten,omitempty"`
	WhitenEps       float64        `json:"whiten_eps,omitempty"`
	BatchSize       int            `json:"batch_size"`
	LR              float64        `json:"lr"`
	Beta1           float64        `json:"beta1"`
	Beta2           float64        `json:"beta2"`
	AdamEps         float64        `json:"adam_eps"`
	Gamma           float64        `json:"gamma"`
	DataNoise       float64        `json:"data_noise"`
	SGLDSteps       int            `json:"sgld_steps"`
	SGLDStep        float64        `json:"sgld_step"`
	SGLDNoise       float64        `json:"sgld_noise"`
	BufferSize      int            `json:"buffer_size"`
	ReinitProb      float64        `json:"reinit_prob"`
	ReinitFrom      string         `json:"reinit_from"`
	YoungSteps      int            `json:"young_steps"`
	Warmup          int            `json:"warmup"`
	DecaySteps      int            `json:"decay_steps"`
	LRFinal         float64        `json:"lr_final"`
	FreezeConvs     bool           `json:"freeze_convs,omitempty"`
	EMA             float64        `json:"ema"`
	InitShare       float64        `json:"init_share,omitempty"`
	Steps           int            `json:"steps"`
	Duration        time.Duration  `json:"duration"`
	CheckpointEvery int            `json:"checkpoint_every"`
	MaxLoss         float64        `json:"max_loss"`
	Threads         int            `json:"threads"`
	Engine          string         `json:"engine,omitempty"`
	TrainLimit      int            `json:"train_limit"`
}

type flatState struct {
	Config      flatConfig
	Step        int
	Elapsed     time.Duration
	Params      [][]float32
	EMA         [][]float32
	EMAStart    int
	EMAFromInit bool
	AdamM       [][]float32
	AdamV       [][]float32
	Buffer      []float32
	RNG         []byte
}

// flatten is st in the layout of version 1, field by field.
func flatten(st *State) flatState {
	c := st.Config
	m, o, cd, dsm, r := c.Model, c.Optimiser, c.Objective.CD, c.Objective.DSM, c.Run
	return flatState{
		Config: flatConfig{
			Kind: m.Kind, Arch: m.Arch, Components: m.Components, Data: r.Data, Seed: r.Seed,
			Objective: string(c.Objective.Name), SigmaMin: dsm.SigmaMin, SigmaMax: dsm.SigmaMax, BaseSigma: dsm.BaseSigma,
			Init: string(m.Init), Whiten: m.Whiten, WhitenEps: m.WhitenEps,
			BatchSize: o.BatchSize, LR: o.LR, Beta1: o.Beta1, Beta2: o.Beta2, AdamEps: o.AdamEps,
			Gamma: cd.Gamma, DataNoise: cd.DataNoise, SGLDSteps: cd.SGLDSteps, SGLDStep: cd.SGLDStep, SGLDNoise: cd.SGLDNoise,
			BufferSize: cd.BufferSize, ReinitProb: cd.ReinitProb, ReinitFrom: string(cd.ReinitFrom), YoungSteps: cd.YoungSteps,
			Warmup: o.Warmup, DecaySteps: o.DecaySteps, LRFinal: o.LRFinal, FreezeConvs: o.FreezeConvs, EMA: o.EMA, InitShare: o.InitShare,
			Steps: r.Steps, Duration: r.Duration, CheckpointEvery: r.CheckpointEvery, MaxLoss: r.MaxLoss, Threads: r.Threads,
			Engine: string(c.Engine), TrainLimit: r.TrainLimit,
		},
		Step: st.Step, Elapsed: st.Elapsed, Params: st.Params, EMA: st.EMA, EMAStart: st.EMAStart, EMAFromInit: st.EMAFromInit,
		AdamM: st.AdamM, AdamV: st.AdamV, Buffer: st.Objective.Buffer, RNG: st.RNG,
	}
}

// saveVersion1 writes old as a checkpoint of version 1: "CEBMCKPT\x01",
// its gob, the payload's sha256.
func saveVersion1(t *testing.T, path string, old flatState) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("CEBMCKPT\x01")
	if err := gob.NewEncoder(&buf).Encode(old); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes()[9:])
	buf.Write(sum[:])
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResumeVersion1Checkpoint: a checkpoint in the layout before the
// config had sections — one from before --reinit-from and --objective
// existed, too — resumes to bit-for-bit the state of a run that never
// stopped, its settings read into their sections.
func TestResumeVersion1Checkpoint(t *testing.T) {
	data := mnistTrain(t, 200)
	cfg := smallConfig()
	cfg.Optimiser.EMA, cfg.Objective.CD.YoungSteps = 0.9, 1
	want, err := Run(context.Background(), cfg, data, RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	half := cfg
	half.Run.Steps = 4
	st, err := Run(context.Background(), half, data, RunOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	old := flatten(st)
	old.Config.Objective, old.Config.ReinitFrom = "", "" // the oldest checkpoints lack them
	saveVersion1(t, filepath.Join(dir, CheckpointFile), old)

	loaded, err := LoadCheckpoint(filepath.Join(dir, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := st.Config
	if loaded.Config != wantCfg {
		t.Fatalf("version-1 config read as %+v, want %+v", loaded.Config, wantCfg)
	}
	got, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Step != want.Step {
		t.Fatalf("resumed to step %d, want %d", got.Step, want.Step)
	}
	for i := range want.Params {
		if !slices.Equal(got.Params[i], want.Params[i]) || !slices.Equal(got.EMA[i], want.EMA[i]) || !slices.Equal(got.AdamM[i], want.AdamM[i]) {
			t.Fatalf("parameter tensor %d differs after resuming a version-1 checkpoint", i)
		}
	}
	if !slices.Equal(got.Objective.Buffer, want.Objective.Buffer) || !slices.Equal(got.RNG, want.RNG) {
		t.Fatal("replay buffer or random state differs after resuming a version-1 checkpoint")
	}
	// The resumed run saved a checkpoint of this version.
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil || string(b[:9]) != "CEBMCKPT\x02" {
		t.Fatalf("checkpoint after resume starts %q (err %v), want version 2", b[:9], err)
	}

	// Score matching kept a replay buffer it never read: it is dropped.
	dsm := flatten(st)
	dsm.Config.Objective = "dsm"
	path := filepath.Join(t.TempDir(), "dsm.ckpt")
	saveVersion1(t, path, dsm)
	if loaded, err := LoadCheckpoint(path); err != nil || loaded.Config.Objective.Name != objective.DSM || loaded.Objective.Buffer != nil {
		t.Fatalf("score-matching version-1 checkpoint: objective %q, buffer of %d values, err %v", loaded.Config.Objective.Name, len(loaded.Objective.Buffer), err)
	}
}

// TestConfigJSON: the config's JSON is the flat object of the layout
// before sections, key for key and in the same order (model files record
// it), and reads back into the same sections.
func TestConfigJSON(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Model.WhitenEps, cfg.Optimiser.EMA, cfg.Optimiser.InitShare = 0.05, 0.998, 0.3
	cfg.Objective.CD.ReinitFrom, cfg.Engine, cfg.Run.TrainLimit = objective.FromMixture, "onednn", 50000
	got, err := cfg.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"cebm","arch":"mnist","components":10,"data":"mnist","seed":1,"objective":"cd","sigma_min":0.3,"sigma_max":1,"init":"pytorch","whiten_eps":0.05,"batch_size":100,"lr":0.0001,"beta1":0.9,"beta2":0.999,"adam_eps":1e-8,"gamma":0.1,"data_noise":0.03,"sgld_steps":60,"sgld_step":1,"sgld_noise":0.0075,"buffer_size":5000,"reinit_prob":0.05,"reinit_from":"mixture","young_steps":0,"warmup":0,"decay_steps":0,"lr_final":0,"ema":0.998,"init_share":0.3,"steps":1000,"duration":0,"checkpoint_every":50,"max_loss":10000,"threads":0,"engine":"onednn","train_limit":50000}`
	if string(got) != want {
		t.Fatalf("config JSON\n%s\nwant\n%s", got, want)
	}
	var back Config
	if err := back.UnmarshalJSON(got); err != nil || back != cfg {
		t.Fatalf("read back %+v (err %v), want %+v", back, err, cfg)
	}
}
