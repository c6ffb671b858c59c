package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/cebm/cebm/internal/ort"
	"github.com/cebm/cebm/train/engine"
)

// runVersion is `cebm version`: the build (module version and commit),
// Go, ONNX Runtime and the training engines compiled in, so a binary built
// without -tags dnnl says that it lacks oneDNN.
func runVersion(_ context.Context, args []string, _ func(string) string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("version: unexpected argument %q", args[0])
	}
	version, commit := "(devel)", "unknown (built without VCS stamping)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					commit += " (modified)"
				}
			}
		}
	}
	ortVersion, err := ort.Version()
	if err != nil {
		ortVersion = "not loaded: " + err.Error()
	}
	fmt.Fprintf(stdout, "cebm %s, commit %s\n", version, commit)
	fmt.Fprintf(stdout, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "onnxruntime: %s\n", ortVersion)
	fmt.Fprintf(stdout, "engines: %s\n", engine.Describe())
	return nil
}
