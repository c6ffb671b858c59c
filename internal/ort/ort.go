// Package ort finds and initialises the ONNX Runtime shared library once per
// process, and is the one place that talks to it (through
// github.com/yalue/onnxruntime_go): sessions, tensors, model metadata. The
// library is fetched by scripts/setup.sh (make setup) into .ort/ at the
// repository root; CEBM_ORT_LIB (or SetLibraryPath) points elsewhere.
//
// ONNX Runtime needs cgo. Built without it (CGO_ENABLED=0, as when
// cross-compiling), the package still compiles, so that the rest of the
// module can be vetted for other platforms, and every call that would need
// the runtime returns ErrNoCgo.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
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

// Float is the element types of the tensors exchanged with ONNX Runtime.
type Float interface{ float32 | float64 }

// ErrNoCgo is returned where ONNX Runtime is needed by a build without cgo.
var ErrNoCgo = errors.New("ONNX Runtime needs cgo: this binary was built with CGO_ENABLED=0")

// Threads is the number of intra-op threads sessions should use by default:
// every core the process may use.
func Threads() int { return runtime.GOMAXPROCS(0) }
