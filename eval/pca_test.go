package eval

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/cebm/cebm/data"
)

// Data whose variance lies along known orthonormal axes (standard
// deviations 8, 4, 2, 1, then 0.1): FitPCA recovers the axes in that order
// and their variances, and the projections have those variances.
func TestPCASyntheticDirections(t *testing.T) {
	const dim, n = 12, 20000
	rng := rand.New(rand.NewPCG(7, 8))
	g := mat.NewDense(dim, dim, nil)
	for i := range dim {
		for j := range dim {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense // columns: the axes
	qr.QTo(&q)
	sd := []float64{8, 4, 2, 1}
	for len(sd) < dim {
		sd = append(sd, 0.1)
	}
	centre := make([]float64, dim)
	for j := range centre {
		centre[j] = 3 * rng.NormFloat64()
	}
	x := make([]float32, 0, n*dim)
	row := make([]float64, dim)
	for range n {
		copy(row, centre)
		for a := range dim {
			z := sd[a] * rng.NormFloat64()
			for j := range dim {
				row[j] += z * q.At(j, a)
			}
		}
		for _, v := range row {
			x = append(x, float32(v))
		}
	}
	const k = 4
	p, err := FitPCA(t.Context(), x, dim, k)
	if err != nil {
		t.Fatal(err)
	}
	if p.K() != k || len(p.Directions) != k*dim {
		t.Fatalf("%d directions (%d values), want %d", p.K(), len(p.Directions), k)
	}
	for j, m := range p.Mean {
		if math.Abs(m-centre[j]) > 0.2 {
			t.Errorf("mean[%d] = %.3f, want ≈ %.3f", j, m, centre[j])
		}
	}
	for i := range k {
		d := p.Directions[i*dim : (i+1)*dim]
		var dot, norm, big float64
		for j, v := range d {
			dot += v * q.At(j, i)
			norm += v * v
			if math.Abs(v) > math.Abs(big) {
				big = v
			}
		}
		if math.Abs(norm-1) > 1e-9 {
			t.Errorf("direction %d has norm² %v", i, norm)
		}
		if math.Abs(dot) < 0.999 {
			t.Errorf("direction %d: |cos| with axis %d is %.5f", i, i, math.Abs(dot))
		}
		if big < 0 {
			t.Errorf("direction %d: its largest component %v is negative", i, big)
		}
		for i2 := range i {
			var c float64
			for j, v := range d {
				c += v * p.Directions[i2*dim+j]
			}
			if math.Abs(c) > 1e-9 {
				t.Errorf("directions %d and %d: dot %v", i2, i, c)
			}
		}
		// The sample variance along an axis is within a few per cent of
		// the true one at n = 20000 (its relative sd is √(2/n) = 1 %).
		if want := sd[i] * sd[i]; math.Abs(p.Variances[i]/want-1) > 0.04 {
			t.Errorf("variance %d = %.4f, want ≈ %.4f", i, p.Variances[i], want)
		}
	}
	var total float64
	for _, s := range sd {
		total += s * s
	}
	if math.Abs(p.TotalVariance/total-1) > 0.04 {
		t.Errorf("total variance %.3f, want ≈ %.3f", p.TotalVariance, total)
	}

	z, err := p.Project(t.Context(), x, k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range k {
		var s, s2 float64
		for r := range n {
			v := float64(z[r*k+i])
			s += v
			s2 += v * v
		}
		mean := s / n
		v := (s2 - n*mean*mean) / (n - 1)
		if math.Abs(mean) > 1e-3*sd[i] || math.Abs(v/p.Variances[i]-1) > 1e-4 {
			t.Errorf("projection %d: mean %.5f, variance %.5f, want 0 and %.5f", i, mean, v, p.Variances[i])
		}
	}
	z2, err := p.Project(t.Context(), x[:10*dim], 2)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 10 {
		for i := range 2 {
			if z2[r*2+i] != z[r*k+i] {
				t.Fatalf("projection onto 2 directions differs from the first 2 of %d at (%d, %d)", k, r, i)
			}
		}
	}
	if _, err := p.Project(t.Context(), x, k+1); err == nil {
		t.Error("projected onto more directions than fitted")
	}
	if _, err := FitPCA(t.Context(), x[:dim], dim, 1); err == nil {
		t.Error("fitted one vector")
	}
	if _, err := FitPCA(t.Context(), x, dim, dim+1); err == nil {
		t.Error("fitted more directions than dimensions")
	}
}

// PCA-50 1-NN on an MNIST subset (2000 reference images, 1000 queries):
// FitPCA, Project and KNN give the accuracy of an independent computation
// (the SVD of the centred reference images, brute-force 1-NN in float64),
// and the same variances.
func TestPCAMNISTAgainstSVD(t *testing.T) {
	set, err := data.LoadEnv("mnist", "train", os.Getenv)
	if err != nil {
		t.Skipf("MNIST not installed (make setup): %v", err)
	}
	const nRef, nQuery, k = 2000, 1000, 50
	per := set.Size()
	ref, query := set.Images[:nRef*per], set.Images[nRef*per:(nRef+nQuery)*per]
	refL, queryL := set.Labels[:nRef], set.Labels[nRef:nRef+nQuery]

	p, err := FitPCA(t.Context(), ref, per, k)
	if err != nil {
		t.Fatal(err)
	}
	zRef, err := p.Project(t.Context(), ref, k)
	if err != nil {
		t.Fatal(err)
	}
	zQuery, err := p.Project(t.Context(), query, k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := KNN(t.Context(), zRef, refL, zQuery, queryL, k, 1, 10)
	if err != nil {
		t.Fatal(err)
	}

	// Independently: the right singular vectors of the centred images.
	mean := make([]float64, per)
	for i := range nRef {
		for j := range per {
			mean[j] += float64(ref[i*per+j]) / nRef
		}
	}
	a := mat.NewDense(nRef, per, nil)
	for i := range nRef {
		for j := range per {
			a.Set(i, j, float64(ref[i*per+j])-mean[j])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		t.Fatal("SVD did not converge")
	}
	sv := svd.Values(nil)
	var v mat.Dense
	svd.VTo(&v)
	for i := range k {
		if want := sv[i] * sv[i] / (nRef - 1); math.Abs(p.Variances[i]/want-1) > 1e-6 {
			t.Errorf("variance %d = %v, the SVD's %v", i, p.Variances[i], want)
		}
	}
	project := func(x []float32, n int) [][]float64 {
		out := make([][]float64, n)
		for i := range n {
			out[i] = make([]float64, k)
			for c := range k {
				var s float64
				for j := range per {
					s += (float64(x[i*per+j]) - mean[j]) * v.At(j, c)
				}
				out[i][c] = s
			}
		}
		return out
	}
	pr, pq := project(ref, nRef), project(query, nQuery)
	correct := 0
	for i, q := range pq {
		best, label := math.Inf(1), -1
		for r, x := range pr {
			var d float64
			for c := range k {
				d += (q[c] - x[c]) * (q[c] - x[c])
			}
			if d < best {
				best, label = d, refL[r]
			}
		}
		if label == queryL[i] {
			correct++
		}
	}
	want := float64(correct) / nQuery
	t.Logf("PCA-50 1-NN, %d against %d MNIST training images: %.4f (SVD, brute force: %.4f)", nQuery, nRef, got.Accuracy, want)
	// Near-ties may flip a few queries between float32 and float64.
	if math.Abs(got.Accuracy-want) > 0.003 {
		t.Errorf("1-NN %.4f, the independent computation %.4f", got.Accuracy, want)
	}
	// PCA-50 keeps what 1-NN needs on MNIST: with 2000 reference images
	// it scores about as pixels do (≈ 0.9), far above chance.
	if got.Accuracy < 0.85 {
		t.Errorf("1-NN %.4f, below the floor 0.85", got.Accuracy)
	}
}
