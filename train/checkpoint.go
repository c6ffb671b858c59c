package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// checkpointMagic starts every checkpoint file; the version follows it.
const checkpointMagic = "CEBMCKPT\x01"

// WriteFileAtomic writes data to path through a temporary file in the same
// folder, fsynced and renamed over path, so a reader sees the old file or
// the new one, never a part.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// SaveCheckpoint writes the state as magic, gob payload, sha256(payload).
func SaveCheckpoint(path string, st *State) error {
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes()[len(checkpointMagic):])
	buf.Write(sum[:])
	return WriteFileAtomic(path, buf.Bytes())
}

// LoadCheckpoint reads a state and refuses a truncated or corrupt file.
func LoadCheckpoint(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < len(checkpointMagic)+sha256.Size || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return nil, fmt.Errorf("%s: not a cebm checkpoint (bad header or truncated)", path)
	}
	payload := b[len(checkpointMagic) : len(b)-sha256.Size]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
		return nil, fmt.Errorf("%s: checksum mismatch (truncated or corrupt checkpoint)", path)
	}
	var st State
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(st.Params) == 0 || len(st.Params) != len(st.AdamM) || len(st.Params) != len(st.AdamV) {
		return nil, errors.New(path + ": checkpoint without parameters")
	}
	return &st, nil
}
