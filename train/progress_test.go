package train

import (
	"testing"
	"time"
)

// TestProgressTotal: the progress bar's total follows --duration when one
// is given (a 2-minute run at 4 steps/s ends near step 480, not at the
// default step budget), and the step budget when it comes first.
func TestProgressTotal(t *testing.T) {
	for _, c := range []struct {
		name            string
		steps           int
		duration        time.Duration
		startStep, step int
		ran             time.Duration
		want            int64
	}{
		{"steps only", 90000, 0, 0, 40, 10 * time.Second, 90000},
		{"duration, before the first step", 0, 2 * time.Minute, 0, 0, 0, -1},
		{"duration, before the first step, with a budget", 90000, 2 * time.Minute, 0, 0, 0, 90000},
		{"duration: 4 steps/s for 2 min", 90000, 2 * time.Minute, 0, 40, 10 * time.Second, 480},
		{"duration, no budget", 0, 2 * time.Minute, 0, 40, 10 * time.Second, 480},
		{"resumed at step 1000", 90000, 2 * time.Minute, 1000, 1040, 10 * time.Second, 1480},
		{"the budget comes first", 300, 2 * time.Minute, 0, 40, 10 * time.Second, 300},
		{"time is up", 0, 2 * time.Minute, 0, 500, 3 * time.Minute, 500},
	} {
		cfg := RunConfig{Steps: c.steps, Duration: c.duration}
		if got := progressTotal(cfg, c.startStep, c.step, c.ran); got != c.want {
			t.Errorf("%s: total %d, want %d", c.name, got, c.want)
		}
	}
}
