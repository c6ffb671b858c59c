// Package dirlock gives one process at a time a folder: an exclusive
// advisory lock (flock) on a file in it, which also holds the owner's pid.
// The kernel drops the lock when its holder exits, however it exits, so a
// crashed owner never leaves the folder locked.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file in a locked folder.
const FileName = "lock"

// HeldError is the error of Lock when another process holds the folder.
type HeldError struct {
	Dir string
	PID int // 0 when the holder's pid cannot be read
}

func (e *HeldError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = fmt.Sprintf("another process (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s is in use by %s", e.Dir, holder)
}

// Lock is a held folder.
type Lock struct {
	f *os.File
}

// Acquire creates dir if need be and locks it, or returns a *HeldError if
// another process holds it.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errHeld) {
			pid, _ := readPID(path)
			return nil, &HeldError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f}, nil
}

// Release unlocks the folder. The lock file stays, its pid stale.
func (l *Lock) Release() error { return l.f.Close() }

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
