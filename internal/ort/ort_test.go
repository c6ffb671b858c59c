package ort

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	onnx "github.com/yalue/onnxruntime_go"
)

// TestDynamicBatch runs the onnxruntime_go module's own dynamic-axes example
// (input [N, 10] float32 → output [N] = sum over the row) on the real library
// at two batch sizes through one shared session.
func TestDynamicBatch(t *testing.T) {
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	modDir := moduleDir(t, "github.com/yalue/onnxruntime_go")
	data, err := os.ReadFile(filepath.Join(modDir, "test_data", "example_dynamic_axes.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := NewSessionOptions(2)
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	s, err := onnx.NewDynamicAdvancedSessionWithONNXData(data, []string{"input_vectors"}, []string{"output_scalars"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	for _, n := range []int{1, 7} {
		in := make([]float32, n*10)
		want := make([]float32, n)
		for i := range in {
			in[i] = float32(i%13) * 0.5
			want[i/10] += in[i]
		}
		x, err := onnx.NewTensor(onnx.NewShape(int64(n), 10), in)
		if err != nil {
			t.Fatal(err)
		}
		outs := []onnx.Value{nil}
		if err := s.Run([]onnx.Value{x}, outs); err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		got := outs[0].(*onnx.Tensor[float32]).GetData()
		if len(got) != n {
			t.Fatalf("batch %d: %d outputs", n, len(got))
		}
		for i := range got {
			if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
				t.Errorf("batch %d row %d: got %v want %v", n, i, got[i], want[i])
			}
		}
		x.Destroy()
		outs[0].Destroy()
	}
}

func TestMissingLibraryNamesSetup(t *testing.T) {
	SetLibraryPath(filepath.Join(t.TempDir(), "nope.so"))
	defer SetLibraryPath("")
	_, err := LibraryPath()
	if err == nil || !strings.Contains(err.Error(), SetupHint) {
		t.Fatalf("error %v should name %q", err, SetupHint)
	}
}

func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", mod, err)
	}
	return strings.TrimSpace(string(out))
}
