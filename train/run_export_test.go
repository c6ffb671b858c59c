package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRunExports: a finished run writes its encoder into the run folder
// and to RunOptions.Export, the same bytes as ExportModel of its state,
// and with a moving average also the last parameters' encoder, which
// differs; ExportCheckpoint of the run folder writes the same file again.
func TestRunExports(t *testing.T) {
	data := mnistTrain(t, 100)
	cfg := smallConfig()
	cfg.Run.Steps, cfg.Optimiser.EMA = 2, 0.9
	dir := t.TempDir()
	extra := filepath.Join(t.TempDir(), "shipped.onnx")
	st, err := Run(context.Background(), cfg, data, RunOptions{Dir: dir, Export: extra})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(t.TempDir(), "want.onnx")
	if err := ExportModel(want, st, data.Classes); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	w := read(want)
	for _, p := range []string{filepath.Join(dir, ModelFile), extra} {
		if !bytes.Equal(read(p), w) {
			t.Errorf("%s differs from ExportModel of the run's state", p)
		}
	}
	if bytes.Equal(read(filepath.Join(dir, LastModelFile)), w) {
		t.Errorf("%s equals the moving average's export", LastModelFile)
	}
	again := filepath.Join(t.TempDir(), "again.onnx")
	if _, err := ExportCheckpoint(dir, again, nil, os.Getenv); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(again), w) {
		t.Error("ExportCheckpoint of the run folder differs from the run's export")
	}
	if _, err := ExportCheckpoint(t.TempDir(), again, nil, os.Getenv); err == nil {
		t.Error("ExportCheckpoint of a folder without a checkpoint: no error")
	}
}
