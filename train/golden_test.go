package train

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"hash"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cebm/cebm/train/dnnl"
	"github.com/cebm/cebm/train/engine"
	"github.com/cebm/cebm/train/model"
)

var updateGolden = flag.Bool("golden.update", false, "rewrite testdata/golden.txt with this machine's hashes")

// goldenFile holds the hashes TestGoldenRuns expects, with the machine they
// were recorded on: ONNX Runtime and oneDNN pick their kernels by CPU, so
// the last bits of a run are only reproducible on the same kind of CPU.
const goldenFile = "testdata/golden.txt"

// goldenCases are short runs of every objective and chain start, each a
// change of smallConfig.
var goldenCases = []struct {
	name   string
	dnnl   bool
	change func(*Config)
}{
	{"cd/onnxruntime", false, func(c *Config) {}},
	{"cd/onednn", true, func(c *Config) { c.Engine = engine.OneDNN }},
	{"cd/gmm-cebm", false, func(c *Config) { c.Model.Kind = model.GMMCEBM }},
	{"cd/gmm-cebm/onednn", true, func(c *Config) { c.Model.Kind, c.Engine = model.GMMCEBM, engine.OneDNN }},
	{"cd/igebm", false, func(c *Config) { c.Model.Kind = model.IGEBM }},
	{"cd/mixture/young", false, func(c *Config) {
		c.Objective.CD.ReinitFrom, c.Objective.CD.YoungSteps, c.Objective.CD.ReinitProb = "mixture", 2, 0.3
	}},
	{"cd/data/ema/init-share", false, func(c *Config) {
		c.Objective.CD.ReinitFrom, c.Optimiser.EMA, c.Optimiser.InitShare, c.Objective.CD.ReinitProb = "data", 0.9, 0.3, 0.3
	}},
	{"cd/lsuv/cosine/freeze", false, func(c *Config) {
		c.Model.Init, c.Optimiser.Warmup, c.Optimiser.DecaySteps, c.Optimiser.LRFinal, c.Optimiser.FreezeConvs = model.InitLSUV, 1, 3, 1e-5, true
	}},
	{"dsm", false, func(c *Config) { c.Objective.Name, c.Objective.DSM.BaseSigma = "dsm", 0.8 }},
	{"dsm/onednn", true, func(c *Config) { c.Objective.Name, c.Objective.DSM.BaseSigma, c.Engine = "dsm", 0.8, engine.OneDNN }},
	{"dsm/whiten", false, func(c *Config) { c.Objective.Name, c.Model.Whiten, c.Model.WhitenEps = "dsm", 0.25, 0.05 }},
}

// TestGoldenRuns: a few updates of every objective, engine and chain start
// from a fixed seed reach the recorded parameters, optimiser moments,
// moving average, replay buffer and random state, log the recorded metrics,
// and export the recorded model file, bit for bit. A change of the trainer
// that is meant to keep its behaviour must keep these hashes; run with
// -golden.update to record them on a new kind of CPU (a different CPU only
// logs its hashes).
func TestGoldenRuns(t *testing.T) {
	data := mnistTrain(t, 600) // the pixel mixture needs 20·(24 + 2)
	want, wantCPU := readGolden(t)
	cpu := cpuName()
	got := maps.Clone(want) // the cases not run keep their hashes
	for _, c := range goldenCases {
		if c.dnnl && !dnnl.Available {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			sum := goldenRun(t, data, c.change)
			got[c.name] = sum
			switch {
			case *updateGolden:
			case want[c.name] == "":
				t.Errorf("no recorded hash (run with -golden.update)")
			case cpu != wantCPU:
				t.Logf("%s (recorded on %q, this is %q: not compared)", sum, wantCPU, cpu)
			case sum != want[c.name]:
				t.Errorf("hash %s, recorded %s: the run's results changed", sum, want[c.name])
			}
		})
	}
	if *updateGolden {
		out := "cpu " + cpu + "\n"
		for _, c := range goldenCases {
			if sum, ok := got[c.name]; ok {
				out += c.name + " " + sum + "\n"
			}
		}
		if err := os.WriteFile(goldenFile, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// goldenRun trains smallConfig, changed by change, for 3 updates and
// returns the hash of the state, the metrics and the exported model file.
func goldenRun(t *testing.T, data Images, change func(*Config)) string {
	t.Helper()
	cfg := smallConfig()
	cfg.Run.Steps, cfg.Run.CheckpointEvery = 3, 2
	change(&cfg)
	dir := t.TempDir()
	st, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	hashState(h, st)
	hashMetrics(t, h, filepath.Join(dir, MetricsFile))
	st.Elapsed = 0 // the model file's metadata records the wall time
	model := filepath.Join(dir, "golden.onnx")
	if err := ExportModel(model, st, data.Classes); err != nil {
		t.Fatalf("export: %v", err)
	}
	b, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(b)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// readGolden reads goldenFile: the case hashes and the CPU they were
// recorded on.
func readGolden(t *testing.T) (map[string]string, string) {
	t.Helper()
	want := map[string]string{}
	f, err := os.Open(goldenFile)
	if os.IsNotExist(err) && *updateGolden {
		return want, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cpu string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if c, ok := strings.CutPrefix(sc.Text(), "cpu "); ok {
			cpu = c
			continue
		}
		if name, sum, ok := strings.Cut(sc.Text(), " "); ok {
			want[name] = sum
		}
	}
	return want, cpu
}

// cpuName is the architecture and CPU model the kernels were chosen for.
func cpuName() string {
	name := runtime.GOARCH
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return name + " " + strings.TrimSpace(v)
		}
	}
	return name
}

// hashState feeds what a run carries from update to update into h.
func hashState(h hash.Hash, st *State) {
	fmt.Fprintf(h, "step %d ema-start %d from-init %v\n", st.Step, st.EMAStart, st.EMAFromInit)
	for _, group := range [][][]float32{st.Params, st.AdamM, st.AdamV, st.EMA, {st.Objective.Buffer}} {
		fmt.Fprintf(h, "%d tensors\n", len(group))
		for _, v := range group {
			hashFloats(h, v)
		}
	}
	h.Write(st.RNG)
}

func hashFloats(h hash.Hash, v []float32) {
	b := make([]byte, 4*len(v)+8)
	binary.LittleEndian.PutUint64(b, uint64(len(v)))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[8+4*i:], math.Float32bits(f))
	}
	h.Write(b)
}

// hashMetrics feeds the metrics log into h, less its timings.
func hashMetrics(t *testing.T, h hash.Hash, path string) {
	t.Helper()
	ms, err := ReadMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		fmt.Fprintf(h, "%d %x %x %x %x\n", m.Step, math.Float64bits(m.Loss), math.Float64bits(m.EPos), math.Float64bits(m.ENeg), math.Float64bits(m.LR))
	}
}
