package api

import (
	"encoding/base64"
	"fmt"
	"github.com/cebm/cebm/api/wire"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// oodKinds are the inputs whose flag rates TestOOD measures, as 28×28 grey
// pixels (drawn light on dark or dark on light: the server inverts the
// latter), with the least (min) or most (max) share of them that may be
// flagged out of distribution. Measured with the shipped model and 10,000
// reference images (the README gives the figures with all 60,000): MNIST
// test 2.2%, inverted MNIST test 2.2% (the server inverts them back),
// Fashion-MNIST test 96.8%, a blank white page, a blank black page,
// constant grey, uniform noise 100%, a single dot 98%.
type oodKind struct {
	name     string
	images   [][]uint8
	min, max float64
}

func oodInputs(t *testing.T) []oodKind {
	fashion := shippedAndFashion(t)
	rng := rand.New(rand.NewPCG(22, 1))
	constant := func(v uint8) []uint8 {
		p := make([]uint8, 784)
		for i := range p {
			p[i] = v
		}
		return p
	}
	var mnist, inverted, fash, grey, noise, dots [][]uint8
	for i := 0; i < 1000; i++ {
		mnist = append(mnist, fixture.test.Pixel(i))
		fash = append(fash, fashion.Pixel(i))
	}
	for i := 0; i < 300; i++ {
		p := append([]uint8(nil), fixture.test.Pixel(1000+i)...)
		for j := range p {
			p[j] = 255 - p[j]
		}
		inverted = append(inverted, p)
	}
	for i := 0; i < 100; i++ {
		grey = append(grey, constant(uint8(1+rng.IntN(254))))
		p := make([]uint8, 784)
		for j := range p {
			p[j] = uint8(rng.IntN(256))
		}
		noise = append(noise, p)
		// A filled disc of radius 1-3 anywhere but the border, white on
		// black or black on white.
		d := make([]uint8, 784)
		r, cx, cy := 1+rng.IntN(3), 4+rng.IntN(20), 4+rng.IntN(20)
		for y := 0; y < 28; y++ {
			for x := 0; x < 28; x++ {
				if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
					d[y*28+x] = 255
				}
			}
		}
		if i%2 == 1 {
			for j := range d {
				d[j] = 255 - d[j]
			}
		}
		dots = append(dots, d)
	}
	return []oodKind{
		{"MNIST test", mnist, 0, 0.05},
		{"inverted MNIST test", inverted, 0, 0.05},
		{"Fashion-MNIST test", fash, 0.9, 1},
		{"blank white", [][]uint8{constant(255)}, 1, 1},
		{"blank black", [][]uint8{constant(0)}, 1, 1},
		{"constant grey", grey, 0.95, 1},
		{"uniform noise", noise, 0.95, 1},
		{"a single dot", dots, 0.95, 1},
	}
}

// TestOOD: /encode flags out of distribution what the shipped MNIST model
// was not trained on, blank and simple images included (whose energies are
// the lowest of all), and not MNIST digits; /classify-knn and
// GET /posterior/{id} give the same flag. It logs the rate of each kind
// (CEBM_OOD_REFERENCE=60000 measures them with all the reference images
// cebm serve uses).
func TestOOD(t *testing.T) {
	kinds := oodInputs(t)
	nRef := 10000
	if n, err := strconv.Atoi(os.Getenv("CEBM_OOD_REFERENCE")); err == nil && n > 0 {
		nRef = n // 60000 gives the README's figures
	}
	s, _ := newTestServer(t, shippedModel, nRef, DefaultConfig())
	const batch = 100
	var table strings.Builder
	for _, k := range kinds {
		flagged, reasons := 0, map[string]int{}
		for from := 0; from < len(k.images); from += batch {
			var imgs []string
			for _, p := range k.images[from:min(len(k.images), from+batch)] {
				imgs = append(imgs, base64.StdEncoding.EncodeToString(grayPNG(t, p)))
			}
			w := do(t, s, req("POST", "/encode", "application/json", jsonBodyOf(t, map[string]any{"images": imgs})))
			if w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			for _, p := range decode[wire.EncodeResponse](t, w).Results {
				if p.OOD == nil || p.OOD.ThresholdPercentile != 99.5 || p.OOD.DistanceThresholdPercentile != 99 || p.OOD.DistancePercentile == nil {
					t.Fatalf("%s: no ood score: %+v", k.name, p.OOD)
				}
				if p.OOD.OutOfDistribution != (p.OOD.Reason != "") {
					t.Errorf("%s: flag %v with reason %q", k.name, p.OOD.OutOfDistribution, p.OOD.Reason)
				}
				if p.OOD.OutOfDistribution {
					flagged++
					reasons[p.OOD.Reason]++
				}
			}
		}
		rate := float64(flagged) / float64(len(k.images))
		fmt.Fprintf(&table, "\n| %s | %d | %.1f%% | %v |", k.name, len(k.images), 100*rate, reasons)
		if rate < k.min || rate > k.max {
			t.Errorf("%s: %.1f%% flagged out of distribution, want %.0f-%.0f%%", k.name, 100*rate, 100*k.min, 100*k.max)
		}
	}
	t.Logf("flag rates with %d reference images:\n| input | images | flagged | why |%s", nRef, table.String())

	// A blank page has the lowest energy of all; it is flagged on /classify-knn
	// and GET /posterior/{id} too, and an MNIST digit is not.
	blank := make([]uint8, 784)
	for i := range blank {
		blank[i] = 255
	}
	for _, c := range []struct {
		png  []byte
		want bool
	}{{grayPNG(t, blank), true}, {digitPNG(t, 0), false}} {
		w := do(t, s, req("POST", "/classify-knn", "image/png", c.png))
		cl := decode[wire.ClassifyResponse](t, w).Results[0]
		if cl.OOD == nil || cl.OOD.OutOfDistribution != c.want {
			t.Errorf("classify-knn: ood %+v, want out of distribution %v", cl.OOD, c.want)
		}
		w = do(t, s, req("GET", "/posterior/"+cl.ID, "", nil))
		if p := decode[wire.Posterior](t, w); p.OOD == nil || p.OOD.OutOfDistribution != c.want {
			t.Errorf("GET /posterior: ood %+v, want out of distribution %v", p.OOD, c.want)
		}
	}
}

// TestReferenceMap: GET /index/map gives the reference set's first two
// principal directions (orthonormal, the first with the larger variance)
// and 2,000 labelled points; the map separates the classes: for most
// points, the nearest other point on the map has the same label far more
// often than chance (10%).
func TestReferenceMap(t *testing.T) {
	setup(t)
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	s, _ := newTestServer(t, shippedModel, 5000, DefaultConfig())
	w := do(t, s, req("GET", "/index/map", "", nil))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	m := decode[RefMap](t, w)
	dot := func(a, b []float32) (s float64) {
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	if len(m.Points) != 2000 || len(m.Mean) != 128 || math.Abs(dot(m.Axes[0], m.Axes[0])-1) > 1e-4 ||
		math.Abs(dot(m.Axes[1], m.Axes[1])-1) > 1e-4 || math.Abs(dot(m.Axes[0], m.Axes[1])) > 1e-3 || m.Variance[0] < m.Variance[1] {
		t.Fatalf("map: %d points, mean of %d, axes %.4f %.4f %.4f, variance %v", len(m.Points), len(m.Mean),
			dot(m.Axes[0], m.Axes[0]), dot(m.Axes[1], m.Axes[1]), dot(m.Axes[0], m.Axes[1]), m.Variance)
	}
	same := 0
	for i, p := range m.Points {
		best, bd := -1, math.Inf(1)
		for j, q := range m.Points {
			if d := math.Hypot(float64(p.X-q.X), float64(p.Y-q.Y)); j != i && d < bd {
				best, bd = j, d
			}
		}
		if m.Points[best].Label == p.Label {
			same++
		}
	}
	t.Logf("nearest map neighbour of the same class: %.1f%% of %d points; variance along the axes %v", 100*float64(same)/2000, len(m.Points), m.Variance)
	if same < 2000*3/10 {
		t.Errorf("only %d of 2000 points have a nearest map neighbour of their class", same)
	}
	// Without a reference set there is no map.
	s2, _ := newTestServer(t, fixture.cebm, 100, DefaultConfig())
	s2.served().st.tables.Store(&refTables{})
	w = do(t, s2, req("GET", "/index/map", "", nil))
	checkProblem(t, w, 404, "not-found")
}
