//go:build unix

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

var errHeld = errors.New("dirlock: held")

// lockFile takes f's exclusive lock without waiting.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errHeld
		case !errors.Is(err, syscall.EINTR):
			return err
		}
	}
}
