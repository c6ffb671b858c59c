package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cebm/cebm/internal/atomicfile"
	"github.com/cebm/cebm/train/model"

	"github.com/schollz/progressbar/v3"
)

// Files of a run folder.
const (
	CheckpointFile = "checkpoint.ckpt"
	MetricsFile    = "metrics.jsonl"
	CurvesFile     = "curves.png"
	SamplesFile    = "samples.png"
	ModelFile      = "model.onnx"
	// LastModelFile is the last parameters' encoder, written beside
	// ModelFile when the run exports a moving average, to compare the two.
	LastModelFile = "model-last.onnx"
)

// RunOptions control a training run's side effects.
type RunOptions struct {
	Dir      string          // run folder: checkpoint, metrics, pictures, model
	Resume   bool            // continue from Dir's checkpoint
	Progress io.Writer       // progress bar (nil: none)
	Snapshot <-chan struct{} // a receive writes the pictures now (e.g. on SIGUSR1)
	// OnResume may change the resumed run's settings: the learning rate (a
	// schedule step) and the moving-average decay are safe to change; the
	// rest of the recipe should stay as the checkpoint has it.
	OnResume func(*Config)
	// Export is a path the trained encoder is written to besides Dir's
	// ModelFile (e.g. models/mnist-cebm.onnx); empty: none.
	Export string
	Log    func(format string, args ...any)
}

// Run trains until the run's Steps or Duration, checkpointing every
// CheckpointEvery steps and at the end, and draws the pictures (curves and
// samples) into Dir, then exports the encoder (ExportModel, with
// data.Classes) to Dir's ModelFile and opt.Export and, when the run keeps a
// moving average, its last parameters to LastModelFile. A cancelled context
// stops after the current step with a checkpoint, and exports as a
// finished run does. A
// diverged run keeps its last good checkpoint and returns an error
// wrapping ErrDiverged.
func Run(ctx context.Context, cfg Config, data Images, opt RunOptions) (*State, error) {
	logf := opt.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, err
	}
	ckpt := filepath.Join(opt.Dir, CheckpointFile)
	var st *State
	var err error
	if opt.Resume {
		st, err = resumeState(ckpt, cfg, opt)
		if err == nil {
			logf("resumed from %s at step %d", ckpt, st.Step)
		}
	} else {
		st, err = startState(ckpt, cfg, data)
	}
	if err != nil {
		return nil, err
	}
	t, err := NewTrainer(st, data)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if !opt.Resume {
		t.objective.Begin()
	}
	mf, err := os.OpenFile(filepath.Join(opt.Dir, MetricsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer mf.Close()

	startWall := time.Now()
	if err := trainLoop(ctx, t, mf, ckpt, opt, logf); err != nil {
		return st, err
	}
	if err := WritePictures(opt.Dir, t); err != nil {
		logf("pictures: %v", err)
	}
	logf("trained %d steps in %s (this session %s)", st.Step, st.Elapsed.Round(time.Second), time.Since(startWall).Round(time.Second))
	return st, exportRun(st, data.Classes, opt, logf)
}

// exportRun writes a finished run's encoders: the exported parameters to
// Dir's ModelFile and opt.Export, and with a moving average the last
// parameters to LastModelFile too.
func exportRun(st *State, classes []string, opt RunOptions, logf func(string, ...any)) error {
	paths := []string{filepath.Join(opt.Dir, ModelFile)}
	if opt.Export != "" {
		paths = append(paths, opt.Export)
	}
	for _, p := range paths {
		if err := ExportModel(p, st, classes); err != nil {
			return fmt.Errorf("export %s: %w", p, err)
		}
		logf("exported %s (step %d, ema %g)", p, st.Step, st.Config.Optimiser.EMA)
	}
	if st.Config.Optimiser.EMA == 0 {
		return nil
	}
	last := *st
	last.Config.Optimiser.EMA = 0
	p := filepath.Join(opt.Dir, LastModelFile)
	if err := ExportModel(p, &last, classes); err != nil {
		return fmt.Errorf("export %s: %w", p, err)
	}
	logf("exported %s (step %d, ema 0)", p, st.Step)
	return nil
}

// resumeState loads the checkpoint of a run to continue. Its recipe
// stands, except for the run's length and threads (taken from cfg) and
// what opt.OnResume changes; the result is validated as a new run's is.
func resumeState(ckpt string, cfg Config, opt RunOptions) (*State, error) {
	st, err := LoadCheckpoint(ckpt)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	r := &st.Config.Run
	r.Steps, r.Duration, r.Threads = cfg.Run.Steps, cfg.Run.Duration, cfg.Run.Threads
	if opt.OnResume != nil {
		opt.OnResume(&st.Config)
	}
	if err := st.Config.Validate(); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := truncateMetrics(filepath.Join(opt.Dir, MetricsFile), st.Step); err != nil {
		return nil, err
	}
	return st, nil
}

// startState begins a new run in a folder that holds no checkpoint: the
// initial parameters (with the data-dependent init when asked for) and an
// empty metrics log.
func startState(ckpt string, cfg Config, data Images) (*State, error) {
	if _, err := os.Stat(ckpt); err == nil {
		return nil, fmt.Errorf("%s exists: pass --resume to continue it, or choose another --out", ckpt)
	}
	m, err := ModelFor(cfg)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := NewState(cfg, m)
	mc, seed := cfg.Model, cfg.Run.Seed
	if mc.Whiten > 0 {
		a := m.Arch
		p, err := model.FitWhitening(data.X, data.N, a.C*a.H*a.W, mc.Whiten, mc.WhitenEps, rand.New(rand.NewPCG(seed, 0x77686974)))
		if err != nil {
			return nil, err
		}
		st.Params[len(a.ParamSpecs())-1] = p
	}
	if mc.Init == model.InitLSUV {
		rng := rand.New(rand.NewPCG(seed, 0x6c737576))
		if err := model.LSUV(m, st.Params, data.X, data.N, rng, cfg.Run.Threads); err != nil {
			return nil, err
		}
	}
	os.Remove(filepath.Join(filepath.Dir(ckpt), MetricsFile))
	return st, nil
}

// newProgressBar draws steps done against the run's step budget (or a
// spinner when it runs for a duration).
func newProgressBar(w io.Writer, st *State) *progressbar.ProgressBar {
	if w == nil {
		return nil
	}
	bar := progressbar.NewOptions64(progressTotal(st.Config.Run, 0, 0, 0),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("training"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("steps"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish())
	bar.Set(st.Step)
	return bar
}

// progressTotal is the progress bar's total: the step budget or, with a
// duration, the step the run will have reached when its time is up at the
// speed of this invocation so far (startStep to step in ran), whichever is
// sooner; -1 (unknown) before the first step of a run with no step budget.
func progressTotal(cfg RunConfig, startStep, step int, ran time.Duration) int64 {
	total := int64(cfg.Steps)
	if total <= 0 {
		total = -1
	}
	if cfg.Duration <= 0 || step <= startStep || ran <= 0 {
		return total
	}
	left := max(0, (cfg.Duration - ran).Seconds())
	est := int64(step) + int64(math.Round(float64(step-startStep)/ran.Seconds()*left))
	if total > 0 {
		return min(total, est)
	}
	return est
}

// trainLoop steps until the run's steps or duration are done or ctx is
// cancelled, logging every step to mf and checkpointing every
// CheckpointEvery steps and at the end. A diverged run keeps its last good
// checkpoint.
func trainLoop(ctx context.Context, t *Trainer, mf io.Writer, ckpt string, opt RunOptions, logf func(string, ...any)) error {
	st := t.State
	cfg := st.Config.Run
	bar := newProgressBar(opt.Progress, st)
	save := func() error {
		if err := t.SyncRNG(); err != nil {
			return err
		}
		return SaveCheckpoint(ckpt, st)
	}
	startElapsed, startStep := st.Elapsed, st.Step
	done := func() bool {
		if cfg.Steps > 0 && st.Step >= cfg.Steps {
			return true
		}
		return cfg.Duration > 0 && st.Elapsed-startElapsed >= cfg.Duration
	}
	var runErr error
	for !done() {
		if ctx.Err() != nil {
			logf("interrupted at step %d", st.Step)
			break
		}
		select {
		case <-opt.Snapshot:
			if err := WritePictures(opt.Dir, t); err != nil {
				logf("pictures: %v", err)
			}
		default:
		}
		m, err := t.Step()
		if err != nil {
			runErr = err
			break
		}
		if st.Step%cfg.CheckpointEvery == 0 {
			if m.BufferFD, err = t.BufferFD(); err != nil {
				return err
			}
		}
		line, _ := json.Marshal(m)
		if _, err := mf.Write(append(line, '\n')); err != nil {
			return err
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("loss %+.3f  E+ %+.3f  E− %+.3f  %.2f steps/s", m.Loss, m.EPos, m.ENeg, m.StepsPer))
			bar.ChangeMax64(progressTotal(cfg, startStep, st.Step, st.Elapsed-startElapsed))
			bar.Set(st.Step)
		}
		if st.Step%cfg.CheckpointEvery == 0 {
			if err := save(); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
	}
	if bar != nil {
		bar.Finish()
	}
	if runErr != nil {
		if errors.Is(runErr, ErrDiverged) {
			return fmt.Errorf("%w; the last good checkpoint (%s) is kept", runErr, ckpt)
		}
		return runErr
	}
	if err := save(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// truncateMetrics drops metric lines past the checkpoint's step: a run
// killed between checkpoints wrote lines the resumed run will write again.
func truncateMetrics(path string, step int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m Metrics
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Step > step {
			continue
		}
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	return atomicfile.WriteBytes(path, keep.Bytes())
}

// ReadMetrics reads a run's metrics log.
func ReadMetrics(path string) ([]Metrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Metrics
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s:%s: %w", path, strconv.Itoa(line), err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
