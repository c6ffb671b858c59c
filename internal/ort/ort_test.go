//go:build cgo

package ort

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	opts, err := newSessionOptions(2)
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

// TestConcurrentInit: every caller of Init that gets nil finds the runtime
// initialised, however many call at once. Each try runs in a fresh process,
// where nothing has called Init yet; the window the test looks for is
// short, so it tries several times.
func TestConcurrentInit(t *testing.T) {
	if os.Getenv("CEBM_ORT_TEST_CHILD") != "1" {
		for range 12 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentInit$", "-test.count=1")
			cmd.Env = append(os.Environ(), "CEBM_ORT_TEST_CHILD=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		return
	}
	if onnx.IsInitialized() {
		t.Fatal("initialised before the test")
	}
	const callers = 16
	start := make(chan struct{})
	errs := make(chan error, callers)
	for range callers {
		go func() {
			<-start
			// Keep calling for a while, so that calls land while the
			// first one is still loading the library.
			for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
				if err := Init(); err != nil {
					errs <- err
					return
				}
				if !onnx.IsInitialized() {
					errs <- errors.New("Init returned before the runtime was initialised")
					return
				}
			}
			errs <- nil
		}()
	}
	close(start)
	for range callers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
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
