package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"os"

	"github.com/cebm/cebm/internal/atomicfile"
)

// checkpointMagic starts every checkpoint file; the version follows it.
const checkpointMagic = "CEBMCKPT\x01"

// SaveCheckpoint writes the state as magic, gob payload, sha256(payload).
func SaveCheckpoint(path string, st *State) error {
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes()[len(checkpointMagic):])
	buf.Write(sum[:])
	return atomicfile.WriteBytes(path, buf.Bytes())
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
