package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cebm/cebm/internal/atomicfile"
	"github.com/cebm/cebm/train/objective"
)

// checkpointMagic starts every checkpoint file; the format's version
// follows it: 1, a gob State with the flat config and the replay buffer
// beside the parameters (stateV1); 2, the State of this package, its
// config as JSON (Config.GobEncode).
const (
	checkpointMagic   = "CEBMCKPT"
	checkpointVersion = 2
)

// SaveCheckpoint writes the state as magic, version, gob payload,
// sha256(payload).
func SaveCheckpoint(path string, st *State) error {
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	buf.WriteByte(checkpointVersion)
	head := buf.Len()
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes()[head:])
	buf.Write(sum[:])
	return atomicfile.WriteBytes(path, buf.Bytes())
}

// LoadCheckpoint reads a state, of this version or the first, and refuses
// a truncated or corrupt file.
func LoadCheckpoint(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	head := len(checkpointMagic) + 1
	if len(b) < head+sha256.Size || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return nil, fmt.Errorf("%s: not a cebm checkpoint (bad header or truncated)", path)
	}
	payload := b[head : len(b)-sha256.Size]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
		return nil, fmt.Errorf("%s: checksum mismatch (truncated or corrupt checkpoint)", path)
	}
	var st *State
	switch v := b[head-1]; v {
	case 1:
		st, err = decodeV1(payload)
	case checkpointVersion:
		st = new(State)
		err = gob.NewDecoder(bytes.NewReader(payload)).Decode(st)
	default:
		return nil, fmt.Errorf("%s: checkpoint version %d (this build reads 1 and %d)", path, v, checkpointVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(st.Params) == 0 || len(st.Params) != len(st.AdamM) || len(st.Params) != len(st.AdamV) {
		return nil, errors.New(path + ": checkpoint without parameters")
	}
	return st, nil
}

// stateV1 is State as checkpoints of version 1 hold it.
type stateV1 struct {
	Config      configV1
	Step        int
	Elapsed     time.Duration
	Params      [][]float32
	EMA         [][]float32
	EMAStart    int
	EMAFromInit bool
	AdamM       [][]float32
	AdamV       [][]float32
	Buffer      []float32
	RNG         []byte
}

// configV1 is the flat config of version 1: its fields' names (gob's keys)
// and json tags (Config's keys).
type configV1 struct {
	Kind            string        `json:"kind"`
	Arch            string        `json:"arch"`
	Components      int           `json:"components"`
	Data            string        `json:"data"`
	Seed            uint64        `json:"seed"`
	Objective       string        `json:"objective,omitempty"`
	SigmaMin        float64       `json:"sigma_min,omitempty"`
	SigmaMax        float64       `json:"sigma_max,omitempty"`
	BaseSigma       float64       `json:"base_sigma,omitempty"`
	Init            string        `json:"init,omitempty"`
	Whiten          float64       `json:"whiten,omitempty"`
	WhitenEps       float64       `json:"whiten_eps,omitempty"`
	BatchSize       int           `json:"batch_size"`
	LR              float64       `json:"lr"`
	Beta1           float64       `json:"beta1"`
	Beta2           float64       `json:"beta2"`
	AdamEps         float64       `json:"adam_eps"`
	Gamma           float64       `json:"gamma"`
	DataNoise       float64       `json:"data_noise"`
	SGLDSteps       int           `json:"sgld_steps"`
	SGLDStep        float64       `json:"sgld_step"`
	SGLDNoise       float64       `json:"sgld_noise"`
	BufferSize      int           `json:"buffer_size"`
	ReinitProb      float64       `json:"reinit_prob"`
	ReinitFrom      string        `json:"reinit_from"`
	YoungSteps      int           `json:"young_steps"`
	Warmup          int           `json:"warmup"`
	DecaySteps      int           `json:"decay_steps"`
	LRFinal         float64       `json:"lr_final"`
	FreezeConvs     bool          `json:"freeze_convs,omitempty"`
	EMA             float64       `json:"ema"`
	InitShare       float64       `json:"init_share,omitempty"`
	Steps           int           `json:"steps"`
	Duration        time.Duration `json:"duration"`
	CheckpointEvery int           `json:"checkpoint_every"`
	MaxLoss         float64       `json:"max_loss"`
	Threads         int           `json:"threads"`
	Engine          string        `json:"engine,omitempty"`
	TrainLimit      int           `json:"train_limit"`
}

// decodeV1 reads a version-1 payload into a State: the config through its
// JSON, whose keys have not changed, and the replay buffer into the
// objective's state (score matching's, never read, is dropped).
func decodeV1(payload []byte) (*State, error) {
	var old stateV1
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&old); err != nil {
		return nil, err
	}
	// Checkpoints from before these settings existed.
	if old.Config.ReinitFrom == "" {
		old.Config.ReinitFrom = string(objective.FromUniform)
	}
	if old.Config.Objective == "" {
		old.Config.Objective = string(objective.CD)
	}
	js, err := json.Marshal(old.Config)
	if err != nil {
		return nil, err
	}
	st := &State{Step: old.Step, Elapsed: old.Elapsed, Params: old.Params, EMA: old.EMA,
		EMAStart: old.EMAStart, EMAFromInit: old.EMAFromInit, AdamM: old.AdamM, AdamV: old.AdamV, RNG: old.RNG}
	if err := json.Unmarshal(js, &st.Config); err != nil {
		return nil, err
	}
	if st.Config.Objective.Name == objective.CD {
		st.Objective.Buffer = old.Buffer
	}
	return st, nil
}
