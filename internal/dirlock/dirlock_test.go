package dirlock

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// A second lock on a held folder is refused with the holder's pid; after
// Release the folder can be locked again.
func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() || held.Dir != dir {
		t.Fatalf("second lock: %v, want a HeldError naming %s and pid %d", err, dir, os.Getpid())
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("the error %q does not name the folder", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l, err = Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l.Release()
}
