package eval

import (
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestPicturesArePNGs(t *testing.T) {
	dir := t.TempDir()
	if d := os.Getenv("CEBM_EVAL_PLOT_DIR"); d != "" {
		dir = d // to look at them
	}
	classes := []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	rng := rand.New(rand.NewPCG(1, 2))
	var truth, pred []int
	for i := 0; i < 1000; i++ {
		c := rng.IntN(10)
		truth = append(truth, c)
		if rng.Float64() < 0.8 {
			pred = append(pred, c)
		} else {
			pred = append(pred, rng.IntN(10))
		}
	}
	conf := Score(pred, truth, 10).Confusion
	cpath := filepath.Join(dir, "confusion.png")
	if err := ConfusionPNG(cpath, conf, classes, "1-NN confusion (test)"); err != nil {
		t.Fatal(err)
	}
	xy := make([]float64, 2*len(truth))
	for i, c := range truth {
		xy[2*i] = float64(c%4)*5 + rng.NormFloat64()
		xy[2*i+1] = float64(c/4)*5 + rng.NormFloat64()
	}
	spath := filepath.Join(dir, "scatter.png")
	if err := ScatterPNG(spath, xy, truth, classes, "t-SNE", "t-SNE 1", "t-SNE 2"); err != nil {
		t.Fatal(err)
	}
	x := UniformNoise(64, 28*28, rng)
	for i := range x[:32*28*28] {
		x[i] = -1
	}
	gpath := filepath.Join(dir, "samples.png")
	if err := SamplesPNG(gpath, x, 64, 1, 28, 28, 8, "64 SGLD samples from U(−1, 1) noise: 200 steps, step 1, noise 0.0075"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cpath, spath, gpath} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 500 {
			t.Errorf("%s is only %v", p, b)
		}
	}
}
