package eval

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestCancelled: the long steps of the suite stop with the context's error
// once it has ended.
func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := toy(rng, 3, 50, 4, 3)
	std := FitStandardizer(x, 4)
	for name, f := range map[string]func() error{
		"KNN": func() error { _, err := KNN(ctx, x, y, x, y, 4, 1, 3); return err },
		"TrainProbe": func() error {
			_, err := TrainProbe(ctx, std.Apply(x, nil), y, 3, DefaultProbeOptions())
			return err
		},
		"FewLabelProbe": func() error {
			_, err := FewLabelProbe(ctx, std, x, y, std.Apply(x, nil), y, 3, 1, 2, DefaultProbeOptions())
			return err
		},
		"TSNE": func() error {
			opt := DefaultTSNEOptions()
			opt.Perplexity = 10
			_, err := TSNE(ctx, x, 4, opt)
			return err
		},
	} {
		if err := f(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
	}
}
