package eval

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cebm/cebm/data"
	"github.com/cebm/cebm/encoder"
)

// Options say what a suite evaluates and how.
type Options struct {
	Model     string   // exported model
	Baselines []string // other exported models evaluated beside it (e.g. IGEBM)
	Train     *data.Set
	Test      *data.Set
	// OODSets are other data sets' images (e.g. Fashion-MNIST's test split
	// for an MNIST model), scored besides constant images and noise.
	OODSets []*data.Set

	Probe, OOD, Pictures bool
	Out                  string // folder for the pictures

	Threads     int
	ProbeSeeds  int // subsets per few-label probe (10)
	ProbeLabels []int
	ProbeOpt    ProbeOptions
	// PixelProbeIters caps L-BFGS for the pixel-space probes (784 features
	// make each iteration 6× dearer; MNIST's test accuracy is flat to
	// ±0.05% from 50 to 200 iterations).
	PixelProbeIters int
	// PCAImages is how many reference images, drawn at random (seeded by
	// Seed), the PCA baseline's directions are fitted on; 0 (or more than
	// there are): all of them.
	PCAImages  int
	OODN       int // images per side of each OOD comparison
	TSNEN      int // test latents in the 2-D map
	TSNEOpt    TSNEOptions
	Chains     int // SGLD samples drawn from noise
	ChainSteps int
	Seed       uint64
	Log        io.Writer // progress lines
}

// DefaultOptions: 10 seeds of 1, 10 and 100 labels per class, PCA fitted
// on 20,000 reference images, 2000 images per OOD side and in the t-SNE
// map, 64 SGLD chains of 200 steps.
func DefaultOptions() Options {
	return Options{
		ProbeSeeds: 10, ProbeLabels: []int{1, 10, 100}, ProbeOpt: DefaultProbeOptions(), PixelProbeIters: 100, PCAImages: 20000,
		OODN: 2000, TSNEN: 2000, TSNEOpt: DefaultTSNEOptions(), Chains: 64, ChainSteps: 200, Seed: 1,
		Log: io.Discard,
	}
}

// Report is `cebm eval --json` and results.json. Accuracies and AUROCs are
// fractions.
type Report struct {
	Model             string      `json:"model"`
	Kind              string      `json:"kind"`
	Data              string      `json:"data"`
	Steps             int         `json:"steps"`
	KNN1Accuracy      float64     `json:"knn1_accuracy"`
	PixelKNN1Accuracy float64     `json:"pixel_knn1_accuracy"`
	Confusion         [][]float64 `json:"confusion"`
	PixelConfusion    [][]float64 `json:"pixel_confusion"`
	Classes           []string    `json:"classes"`
	// PCA<k>KNN1Accuracy is the 1-NN accuracy of the pixels' projections
	// onto their k leading principal directions (fitted on the reference
	// split: Settings.PCAImages of its images), the linear baseline.
	PCA30KNN1Accuracy float64 `json:"pca30_knn1_accuracy"`
	PCA50KNN1Accuracy float64 `json:"pca50_knn1_accuracy"`
	PCA80KNN1Accuracy float64 `json:"pca80_knn1_accuracy"`
	Seconds           float64 `json:"seconds"`

	TrainWallTime float64 `json:"train_wall_time_s"` // the model's training time (metadata)
	Digest        string  `json:"sha256"`
	TrainImages   int     `json:"train_images"`
	TestImages    int     `json:"test_images"`
	QuerySplit    string  `json:"query_split"` // the split 1-NN queries: "test", or e.g. "train[50000:60000]" for validation

	// ProbeAccuracy is keyed by labels per class ("1", "10", "100") and
	// "full"; the few-label entries are means over seeded subsets, with
	// their standard deviations in ProbeStd.
	ProbeAccuracy      map[string]float64 `json:"probe_accuracy,omitempty"`
	ProbeStd           map[string]float64 `json:"probe_std,omitempty"`
	PixelProbeAccuracy map[string]float64 `json:"pixel_probe_accuracy,omitempty"`
	PixelProbeStd      map[string]float64 `json:"pixel_probe_std,omitempty"`
	// PCA50ProbeAccuracy and PCA50ProbeStd are the probes on the PCA-50
	// projections, keyed as ProbeAccuracy.
	PCA50ProbeAccuracy map[string]float64 `json:"pca50_probe_accuracy,omitempty"`
	PCA50ProbeStd      map[string]float64 `json:"pca50_probe_std,omitempty"`
	// OODAUROC is keyed by OOD set, then score (neg_energy, neg_grad_norm).
	OODAUROC map[string]OODScore `json:"ood_auroc,omitempty"`
	// OODImages counts the images of each side ("in-distribution" and each
	// OOD set).
	OODImages map[string]int `json:"ood_images,omitempty"`

	Baselines []ModelReport      `json:"baselines,omitempty"`
	Pictures  map[string]string  `json:"pictures,omitempty"` // what → file in the output folder
	Settings  Settings           `json:"settings"`
	Timings   map[string]float64 `json:"timings_s"`
}

// ModelReport is one model's figures: the evaluated model's, or a
// baseline's.
type ModelReport struct {
	Model         string              `json:"model"`
	Kind          string              `json:"kind"`
	Steps         int                 `json:"steps"`
	TrainWallTime float64             `json:"train_wall_time_s"`
	Digest        string              `json:"sha256"`
	KNN1Accuracy  float64             `json:"knn1_accuracy"`
	Confusion     [][]float64         `json:"confusion"`
	ProbeAccuracy map[string]float64  `json:"probe_accuracy,omitempty"`
	ProbeStd      map[string]float64  `json:"probe_std,omitempty"`
	OODAUROC      map[string]OODScore `json:"ood_auroc,omitempty"`
}

// Settings record how the figures were made.
type Settings struct {
	ProbeL2      float64 `json:"probe_l2"`
	ProbeMaxIter int     `json:"probe_max_iter"`
	PixelMaxIter int     `json:"pixel_probe_max_iter"`
	// PCAImages is how many reference images the PCA directions were
	// fitted on; PCA50Variance the fraction of their variance that the
	// first 50 directions carry.
	PCAImages     int     `json:"pca_fit_images"`
	PCA50Variance float64 `json:"pca50_variance_explained"`
	ProbeSeeds    int     `json:"probe_seeds"`
	OODImages     int     `json:"ood_images_per_side"`
	TSNEPoints    int     `json:"tsne_points"`
	TSNEPerplex   float64 `json:"tsne_perplexity"`
	SGLDChains    int     `json:"sgld_chains"`
	SGLDSteps     int     `json:"sgld_steps"`
	SGLDStep      float64 `json:"sgld_step"`
	SGLDNoise     float64 `json:"sgld_noise"`
	Seed          uint64  `json:"seed"`
}

// Picture files in the output folder.
const (
	ConfusionFile      = "confusion.png"
	PixelConfusionFile = "pixel_confusion.png"
	MapFile            = "tsne.png"
	SamplesFile        = "samples.png"
)

// Run evaluates opt.Model (and its baselines) on opt.Train/opt.Test. When
// ctx ends it stops within about a second with ctx's error; pictures
// already drawn stay in opt.Out (cebm eval writes into a folder of its own
// and removes it).
func Run(ctx context.Context, opt Options) (*Report, error) {
	start := time.Now()
	logf := func(format string, a ...any) { fmt.Fprintf(opt.Log, format+"\n", a...) }
	r := &Report{Data: opt.Train.Name, Classes: opt.Train.Classes, TrainImages: opt.Train.N, TestImages: opt.Test.N, QuerySplit: opt.Test.Split,
		Timings: map[string]float64{}}
	r.Settings = Settings{ProbeL2: opt.ProbeOpt.L2, ProbeMaxIter: opt.ProbeOpt.MaxIter, PixelMaxIter: opt.PixelProbeIters, ProbeSeeds: opt.ProbeSeeds, Seed: opt.Seed}
	lap := time.Now()
	timing := func(what string) {
		r.Timings[what] = time.Since(lap).Seconds()
		lap = time.Now()
	}

	mr, em, zTest, err := evalModel(ctx, opt, opt.Model, opt.OOD || opt.Pictures, logf)
	if em != nil {
		defer em.Close()
	}
	if err != nil {
		return nil, err
	}
	timing("model: latents, 1-NN, probes, OOD")
	r.Model, r.Kind, r.Steps, r.TrainWallTime, r.Digest = mr.Model, mr.Kind, mr.Steps, mr.TrainWallTime, mr.Digest
	r.KNN1Accuracy, r.Confusion = mr.KNN1Accuracy, mr.Confusion
	r.ProbeAccuracy, r.ProbeStd, r.OODAUROC = mr.ProbeAccuracy, mr.ProbeStd, mr.OODAUROC
	if opt.OOD {
		r.Settings.OODImages = opt.OODN
		r.OODImages = map[string]int{"in-distribution": min(opt.OODN, opt.Test.N)}
		for name := range r.OODAUROC {
			r.OODImages[name] = opt.OODN
			if s := findSet(opt.OODSets, name); s != nil {
				r.OODImages[name] = min(opt.OODN, s.N)
			}
		}
	}

	classes := len(opt.Train.Classes)
	t0 := time.Now()
	pixel, err := KNN(ctx, opt.Train.Images, opt.Train.Labels, opt.Test.Images, opt.Test.Labels, opt.Train.Size(), 1, classes)
	if err != nil {
		return nil, err
	}
	r.PixelKNN1Accuracy, r.PixelConfusion = pixel.Accuracy, pixel.Confusion
	logf("1-NN, pixel space: %.1f s", time.Since(t0).Seconds())
	timing("pixel_knn")
	if opt.Probe {
		po := opt
		po.ProbeOpt.MaxIter = opt.PixelProbeIters
		r.PixelProbeAccuracy, r.PixelProbeStd, err = probes(ctx, po, opt.Train.Images, opt.Test.Images, opt.Train.Size(), "pixels", logf)
		if err != nil {
			return nil, err
		}
		timing("pixel_probe")
	}
	if err := pcaBaseline(ctx, opt, r, logf); err != nil {
		return nil, err
	}
	timing("pca")

	for _, b := range opt.Baselines {
		br, bem, _, err := evalModel(ctx, opt, b, false, logf)
		if bem != nil {
			bem.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("baseline %s: %w", b, err)
		}
		r.Baselines = append(r.Baselines, br)
		timing("baseline " + b)
	}

	if opt.Pictures {
		if err := pictures(ctx, opt, r, em, zTest, logf); err != nil {
			return nil, err
		}
		timing("pictures")
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

func findSet(sets []*data.Set, name string) *data.Set {
	for _, s := range sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// PCAComponents are the PCA baselines' sizes for 1-NN (the fields
// pca<k>_knn1_accuracy); the probes run on PCAProbeComponents.
var PCAComponents = [...]int{30, 50, 80}

// PCAProbeComponents is the PCA baseline the probes run on.
const PCAProbeComponents = 50

// pcaBaseline fits principal directions on the reference split's images
// (opt.PCAImages of them, drawn at random) and scores 1-NN of the test
// split's projections against the reference split's for each of
// PCAComponents, and with opt.Probe the probes on PCA-50.
func pcaBaseline(ctx context.Context, opt Options, r *Report, logf func(string, ...any)) error {
	per, classes := opt.Train.Size(), len(opt.Train.Classes)
	kMax := PCAComponents[len(PCAComponents)-1]
	if per < kMax {
		logf("PCA: images of %d values, fewer than %d: no PCA baseline", per, kMax)
		return nil
	}
	fit := opt.Train.Images
	if opt.PCAImages > 0 && opt.PCAImages < opt.Train.N {
		fit = subset(fit, opt.Train.N, per, opt.PCAImages, rand.New(rand.NewPCG(opt.Seed, 0x9ca)))
	}
	t0 := time.Now()
	p, err := FitPCA(ctx, fit, per, kMax)
	if err != nil {
		return err
	}
	r.Settings.PCAImages = len(fit) / per
	zTrain, err := p.Project(ctx, opt.Train.Images, kMax)
	if err != nil {
		return err
	}
	zTest, err := p.Project(ctx, opt.Test.Images, kMax)
	if err != nil {
		return err
	}
	logf("PCA: %d directions fitted on %d images and %d images projected in %.1f s", kMax, r.Settings.PCAImages, opt.Train.N+opt.Test.N, time.Since(t0).Seconds())
	t0 = time.Now()
	field := map[int]*float64{30: &r.PCA30KNN1Accuracy, 50: &r.PCA50KNN1Accuracy, 80: &r.PCA80KNN1Accuracy}
	for _, k := range PCAComponents {
		knn, err := KNN(ctx, prefix(zTrain, kMax, k), opt.Train.Labels, prefix(zTest, kMax, k), opt.Test.Labels, k, 1, classes)
		if err != nil {
			return err
		}
		*field[k] = knn.Accuracy
	}
	logf("1-NN, PCA-30/50/80 of pixels: %.1f s", time.Since(t0).Seconds())
	k := PCAProbeComponents
	var top float64
	for _, v := range p.Variances[:k] {
		top += v
	}
	r.Settings.PCA50Variance = top / p.TotalVariance
	if opt.Probe {
		z := prefix(zTrain, kMax, k)
		r.PCA50ProbeAccuracy, r.PCA50ProbeStd, err = probes(ctx, opt, z, prefix(zTest, kMax, k), k, fmt.Sprintf("PCA-%d", k), logf)
		if err != nil {
			return err
		}
	}
	return nil
}

// prefix keeps the first k of every dim values of z.
func prefix(z []float32, dim, k int) []float32 {
	if k == dim {
		return z
	}
	n := len(z) / dim
	out := make([]float32, n*k)
	for i := range n {
		copy(out[i*k:(i+1)*k], z[i*dim:i*dim+k])
	}
	return out
}

// evalModel runs 1-NN, the probes and the OOD scores of one exported model.
// It returns the energy model when needEnergy (or OOD) asks for it, and the
// test latents.
func evalModel(ctx context.Context, opt Options, path string, needEnergy bool, logf func(string, ...any)) (ModelReport, *EnergyModel, []float32, error) {
	var mr ModelReport
	m, err := encoder.Load(path, opt.Threads)
	if err != nil {
		return mr, nil, nil, err
	}
	defer m.Close()
	if opt.Train.Size() != m.InputSize() {
		return mr, nil, nil, fmt.Errorf("%s has %d×%d×%d images; %s expects %v", opt.Train.Name, opt.Train.C, opt.Train.H, opt.Train.W, path, m.InputShape)
	}
	mr.Model, mr.Kind, mr.Steps, mr.TrainWallTime, mr.Digest = path, string(m.Kind), m.Steps, m.WallTime, m.Digest
	const batch = 500
	t0 := time.Now()
	zTrain, err := m.Latents(ctx, opt.Train.Images, opt.Train.N, batch)
	if err != nil {
		return mr, nil, nil, err
	}
	zTest, err := m.Latents(ctx, opt.Test.Images, opt.Test.N, batch)
	if err != nil {
		return mr, nil, nil, err
	}
	classes := len(opt.Train.Classes)
	knn, err := KNN(ctx, zTrain, opt.Train.Labels, zTest, opt.Test.Labels, m.LatentDim, 1, classes)
	if err != nil {
		return mr, nil, nil, err
	}
	mr.KNN1Accuracy, mr.Confusion = knn.Accuracy, knn.Confusion
	logf("%s: latents of %d images and their 1-NN: %.1f s", path, opt.Train.N+opt.Test.N, time.Since(t0).Seconds())
	if opt.Probe {
		mr.ProbeAccuracy, mr.ProbeStd, err = probes(ctx, opt, zTrain, zTest, m.LatentDim, path, logf)
		if err != nil {
			return mr, nil, nil, err
		}
	}
	if !opt.OOD && !needEnergy {
		return mr, nil, zTest, nil
	}
	if len(m.Config) == 0 {
		logf("%s: no training config in its metadata: no energy gradient, so no OOD scores or samples", path)
		return mr, nil, zTest, nil
	}
	em, err := LoadEnergyModel(path, m.Config, opt.Threads)
	if err != nil {
		return mr, nil, nil, err
	}
	if opt.OOD {
		if mr.OODAUROC, err = ood(ctx, opt, em, logf); err != nil {
			return mr, em, nil, err
		}
	}
	return mr, em, zTest, nil
}

// probes fits the few-label probes and the full-training-set probe.
func probes(ctx context.Context, opt Options, train, test []float32, dim int, what string, logf func(string, ...any)) (acc, std map[string]float64, err error) {
	classes := len(opt.Train.Classes)
	st := FitStandardizer(train, dim)
	xTest := st.Apply(test, nil)
	acc, std = map[string]float64{}, map[string]float64{}
	t0 := time.Now()
	for _, k := range opt.ProbeLabels {
		sc, err := FewLabelProbe(ctx, st, train, opt.Train.Labels, xTest, opt.Test.Labels, classes, k, opt.ProbeSeeds, opt.ProbeOpt)
		if err != nil {
			return nil, nil, err
		}
		key := strconv.Itoa(k)
		acc[key], std[key] = sc.Mean, sc.Std
		logf("%s: probes, %d labels per class: %.1f s", what, k, time.Since(t0).Seconds())
		t0 = time.Now()
	}
	p, err := TrainProbe(ctx, st.Apply(train, nil), opt.Train.Labels, classes, opt.ProbeOpt)
	if err != nil {
		return nil, nil, err
	}
	acc["full"] = p.Accuracy(xTest, opt.Test.Labels)
	logf("%s: probe, full training set: %.1f s", what, time.Since(t0).Seconds())
	return acc, std, nil
}

// ood scores a seeded subset of the test split against the other data sets,
// constant images and uniform noise.
func ood(ctx context.Context, opt Options, em *EnergyModel, logf func(string, ...any)) (map[string]OODScore, error) {
	rng := rand.New(rand.NewPCG(opt.Seed, 0x00d))
	per := opt.Test.Size()
	in := subset(opt.Test.Images, opt.Test.N, per, opt.OODN, rng)
	var sets []OODSet
	for _, s := range opt.OODSets {
		if s.Size() != per {
			return nil, fmt.Errorf("OOD set %s has %d×%d×%d images, the model %d values", s.Name, s.C, s.H, s.W, per)
		}
		sets = append(sets, OODSet{Name: s.Name, X: subset(s.Images, s.N, per, opt.OODN, rng)})
	}
	sets = append(sets,
		OODSet{Name: "constant", X: ConstantImages(opt.OODN, per, rng)},
		OODSet{Name: "uniform", X: UniformNoise(opt.OODN, per, rng)})
	t0 := time.Now()
	res, err := em.OOD(ctx, in, sets, 100)
	if err != nil {
		return nil, err
	}
	logf("OOD scores against %d sets: %.1f s", len(sets), time.Since(t0).Seconds())
	return res, nil
}

// subset copies k images drawn without replacement (all when k ≥ n).
func subset(x []float32, n, per, k int, rng *rand.Rand) []float32 {
	idx := rng.Perm(n)[:min(k, n)]
	out := make([]float32, 0, len(idx)*per)
	for _, i := range idx {
		out = append(out, x[i*per:(i+1)*per]...)
	}
	return out
}

// pictures draws the confusion matrices, the t-SNE map of test latents and
// SGLD samples into opt.Out.
func pictures(ctx context.Context, opt Options, r *Report, em *EnergyModel, zTest []float32, logf func(string, ...any)) error {
	if opt.Out == "" {
		return fmt.Errorf("pictures need an output folder (--out)")
	}
	r.Pictures = map[string]string{}
	base := filepath.Base(opt.Model)
	if err := ConfusionPNG(filepath.Join(opt.Out, ConfusionFile), r.Confusion, r.Classes,
		fmt.Sprintf("1-NN confusion, %s latent space, %s %s (accuracy %.4f)", base, r.Data, r.querySplit(), r.KNN1Accuracy)); err != nil {
		return err
	}
	r.Pictures["confusion"] = ConfusionFile
	if err := ConfusionPNG(filepath.Join(opt.Out, PixelConfusionFile), r.PixelConfusion, r.Classes,
		fmt.Sprintf("1-NN confusion, pixel space, %s %s (accuracy %.4f)", r.Data, r.querySplit(), r.PixelKNN1Accuracy)); err != nil {
		return err
	}
	r.Pictures["pixel_confusion"] = PixelConfusionFile

	t0 := time.Now()
	rng := rand.New(rand.NewPCG(opt.Seed, 0x75e))
	dim := len(zTest) / opt.Test.N
	k := min(opt.TSNEN, opt.Test.N)
	idx := rng.Perm(opt.Test.N)[:k]
	z := make([]float32, 0, k*dim)
	labels := make([]int, k)
	for j, i := range idx {
		z = append(z, zTest[i*dim:(i+1)*dim]...)
		labels[j] = opt.Test.Labels[i]
	}
	to := opt.TSNEOpt
	to.Seed = opt.Seed
	to.Perplexity = min(to.Perplexity, float64(k-1)/3)
	xy, err := TSNE(ctx, z, dim, to)
	if err != nil {
		return err
	}
	r.Settings.TSNEPoints, r.Settings.TSNEPerplex = k, to.Perplexity
	if err := ScatterPNG(filepath.Join(opt.Out, MapFile), xy, labels, r.Classes,
		fmt.Sprintf("t-SNE of %d %s %s posterior means (%s, perplexity %g)", k, r.Data, r.querySplit(), base, to.Perplexity),
		"t-SNE 1", "t-SNE 2"); err != nil {
		return err
	}
	r.Pictures["latent_map"] = MapFile
	logf("t-SNE of %d latents: %.1f s", k, time.Since(t0).Seconds())

	if em == nil {
		return nil
	}
	t0 = time.Now()
	a := em.Model.Arch
	x, err := em.Sample(ctx, opt.Chains, opt.ChainSteps, opt.Seed)
	if err != nil {
		return err
	}
	r.Settings.SGLDChains, r.Settings.SGLDSteps = opt.Chains, opt.ChainSteps
	r.Settings.SGLDStep, r.Settings.SGLDNoise = em.Config.Objective.CD.SGLDStep, em.Config.Objective.CD.SGLDNoise
	for i, v := range x { // the chains are not clamped; the picture is
		x[i] = max(-1, min(1, v))
	}
	title := fmt.Sprintf("%d SGLD samples of %s from U(−1, 1) noise: %d steps, step %g, noise %g", opt.Chains, base, opt.ChainSteps, em.Config.Objective.CD.SGLDStep, em.Config.Objective.CD.SGLDNoise)
	if err := SamplesPNG(filepath.Join(opt.Out, SamplesFile), x, opt.Chains, a.C, a.H, a.W, 8, title); err != nil {
		return err
	}
	r.Pictures["samples"] = SamplesFile
	logf("%d SGLD samples × %d steps: %.1f s", opt.Chains, opt.ChainSteps, time.Since(t0).Seconds())
	return nil
}
