package train

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSIGKILLThenResume trains in a child process that checkpoints every
// step, kills it with SIGKILL in the middle of its work, and checks that
// the checkpoint left behind loads (never half-written) and that resuming
// it reaches exactly the state of a run that was never interrupted.
func TestSIGKILLThenResume(t *testing.T) {
	cfg := smallConfig()
	cfg.Run.CheckpointEvery = 1
	if dir := os.Getenv("CEBM_KILL_CHILD_DIR"); dir != "" {
		cfg.Run.Steps = 1000 // killed long before
		_, err := Run(context.Background(), cfg, mnistTrain(t, 200), RunOptions{Dir: dir})
		t.Fatalf("child was not killed: %v", err)
	}
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run", "^TestSIGKILLThenResume$")
	child.Env = append(os.Environ(), "CEBM_KILL_CHILD_DIR="+dir)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, CheckpointFile)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if st, err := LoadCheckpoint(ckpt); err == nil && st.Step >= 3 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("child wrote no checkpoint past step 3")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	child.Wait()

	st, err := LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatalf("checkpoint after SIGKILL: %v", err)
	}
	resumed := cfg
	resumed.Run.Steps = st.Step + 2
	got, err := Run(context.Background(), resumed, mnistTrain(t, 200), RunOptions{Dir: dir, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := Run(context.Background(), resumed, mnistTrain(t, 200), RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Params {
		if !slices.Equal(got.Params[i], want.Params[i]) {
			t.Fatalf("after SIGKILL at step %d and resume to %d, parameter tensor %d differs from an uninterrupted run", st.Step, resumed.Run.Steps, i)
		}
	}
}
