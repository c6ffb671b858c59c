// Package ort finds and initialises the ONNX Runtime shared library once per
// process. The library is fetched by scripts/setup.sh (make setup) into
// .ort/ at the repository root; CEBM_ORT_LIB (or SetLibraryPath) points
// elsewhere.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// EnvLibrary names the environment variable that overrides the library path.
const EnvLibrary = "CEBM_ORT_LIB"

// EnvProfile, when set, makes every session write an ONNX Runtime profile
// (JSON, one event per node run) to files starting with its value.
const EnvProfile = "CEBM_ORT_PROFILE"

// SetupHint is the command that installs the library.
const SetupHint = "make setup"

var (
	mu      sync.Mutex
	libPath string
)

// SetLibraryPath overrides where the library is looked for. It must be
// called before Init; an empty path restores the default search.
func SetLibraryPath(path string) {
	mu.Lock()
	defer mu.Unlock()
	libPath = path
}

// LibraryPath returns the library the process will load: the explicit
// setting, then $CEBM_ORT_LIB, then .ort/libonnxruntime.so in the current
// folder or the nearest parent that has one.
func LibraryPath() (string, error) {
	mu.Lock()
	p := libPath
	mu.Unlock()
	if p == "" {
		p = os.Getenv(EnvLibrary)
	}
	if p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ONNX Runtime library %s: %w (run %q or fix %s)", p, err, SetupHint, EnvLibrary)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		cand := filepath.Join(dir, ".ort", "libonnxruntime.so")
		if _, err := os.Stat(cand); err == nil {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("ONNX Runtime library not found in .ort/ here or above: run %q, or set %s", SetupHint, EnvLibrary)
		}
		dir = parent
	}
}

// Init loads the library and creates the ONNX Runtime environment. It is
// safe to call many times and from many goroutines: the first call does the
// work, and every call returns only once it is done, with its result.
func Init() error { return initOnce() }

var initOnce = sync.OnceValue(func() error {
	p, err := LibraryPath()
	if err != nil {
		return err
	}
	onnx.SetSharedLibraryPath(p)
	if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", p, err)
	}
	return nil
})

// Threads is the number of intra-op threads sessions should use by default:
// every core the process may use.
func Threads() int { return runtime.GOMAXPROCS(0) }

// NewSessionOptions returns options with the given intra-op thread count
// (0 means Threads()), one inter-op thread and every graph optimisation.
func NewSessionOptions(threads int) (*onnx.SessionOptions, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = Threads()
	}
	o, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if err := errors.Join(
		o.SetIntraOpNumThreads(threads),
		o.SetInterOpNumThreads(1),
		o.SetGraphOptimizationLevel(onnx.GraphOptimizationLevelEnableAll),
	); err != nil {
		o.Destroy()
		return nil, err
	}
	if prefix := os.Getenv(EnvProfile); prefix != "" {
		if err := o.EnableProfiling(prefix); err != nil {
			o.Destroy()
			return nil, err
		}
	}
	return o, nil
}
