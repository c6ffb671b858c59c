//go:build !unix

package dirlock

import (
	"errors"
	"os"
)

var errHeld = errors.New("dirlock: held")

// lockFile does not lock where flock is missing: the folder is not
// guarded there.
func lockFile(*os.File) error { return nil }
