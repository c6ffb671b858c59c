package index

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

// bruteForce is the reference: float64 distances, ties to the lowest id.
func bruteForce(vecs []float32, labels []int, dim int, q []float32, k int) []Neighbor {
	n := len(labels)
	all := make([]Neighbor, n)
	ds := make([]float64, n)
	for i := 0; i < n; i++ {
		var d float64
		for p := 0; p < dim; p++ {
			e := float64(q[p]) - float64(vecs[i*dim+p])
			d += e * e
		}
		ds[i] = d
		all[i] = Neighbor{ID: i, Label: labels[i], Distance: float32(d)}
	}
	sort.SliceStable(all, func(a, b int) bool { return ds[all[a].ID] < ds[all[b].ID] })
	return all[:min(k, n)]
}

// randomData returns n vectors; with ties, values are small integers and
// every fourth vector repeats an earlier one, so exact ties are common.
func randomData(r *rand.Rand, n, dim int, ties bool) ([]float32, []int) {
	v := make([]float32, n*dim)
	l := make([]int, n)
	for i := 0; i < n; i++ {
		l[i] = r.IntN(10)
		if i%7 == 3 {
			l[i] = -1
		}
		if ties && i > 0 && i%4 == 0 {
			copy(v[i*dim:(i+1)*dim], v[r.IntN(i)*dim:])
			continue
		}
		for p := 0; p < dim; p++ {
			if ties {
				v[i*dim+p] = float32(r.IntN(3))
			} else {
				v[i*dim+p] = float32(r.NormFloat64())
			}
		}
	}
	return v, l
}

func sameNeighbors(t *testing.T, what string, got, want []Neighbor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d neighbours, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: neighbour %d = %+v, want %+v\ngot  %+v\nwant %+v", what, i, got[i], want[i], got, want)
		}
	}
}

func TestSearchMatchesBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n, dim, k int
		ties      bool
	}{
		{"k=1", 1000, 16, 1, false},
		{"k=5", 1000, 16, 5, false},
		{"k=1 ties", 700, 8, 1, true},
		{"k=5 ties", 700, 8, 5, true},
		{"k=5 odd dim", 531, 13, 5, false},
		{"k=40 ties", 300, 3, 40, true},
		{"k>n", 10, 5, 20, false},
		{"dim=1", 300, 1, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.n)))
			vecs, labels := randomData(r, tc.n, tc.dim, tc.ties)
			ix := New(tc.dim, "m")
			// Add in uneven pieces to cross chunk boundaries.
			for i := 0; i < tc.n; {
				j := min(tc.n, i+1+r.IntN(300))
				if id, err := ix.Add(vecs[i*tc.dim:j*tc.dim], labels[i:j]); err != nil || id != i {
					t.Fatalf("Add: id %d, %v", id, err)
				}
				i = j
			}
			nq := 50
			qs, _ := randomData(r, nq, tc.dim, tc.ties)
			// Some queries equal stored items.
			copy(qs[:tc.dim], vecs[:tc.dim])
			batch, err := ix.SearchBatch(qs, tc.k)
			if err != nil {
				t.Fatal(err)
			}
			for qi := 0; qi < nq; qi++ {
				q := qs[qi*tc.dim : (qi+1)*tc.dim]
				want := bruteForce(vecs, labels, tc.dim, q, tc.k)
				got, err := ix.Search(q, tc.k)
				if err != nil {
					t.Fatal(err)
				}
				sameNeighbors(t, "Search", got, want)
				sameNeighbors(t, "SearchBatch", batch[qi], want)
			}
		})
	}
}

// TestBatchSizes covers partial tiles and the chunk-split path for small batches.
func TestBatchSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const n, dim, k = 2000, 10, 3
	vecs, labels := randomData(r, n, dim, false)
	ix := New(dim, "m")
	if _, err := ix.Add(vecs, labels); err != nil {
		t.Fatal(err)
	}
	for _, nq := range []int{1, 2, 5, 6, 7, 97, 200} {
		qs, _ := randomData(r, nq, dim, false)
		res, err := ix.SearchBatch(qs, k)
		if err != nil {
			t.Fatal(err)
		}
		for qi := range nq {
			sameNeighbors(t, "batch", res[qi], bruteForce(vecs, labels, dim, qs[qi*dim:(qi+1)*dim], k))
		}
	}
}

func TestKernelsAgree(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 3))
	for _, dim := range []int{1, 3, 4, 5, 128, 131} {
		const npanels = 3
		x := make([]float32, npanels*dim*panelItems)
		norms := make([]float32, npanels*panelItems)
		q := make([]float32, dim*tileQueries)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for i := range norms {
			norms[i] = float32(r.NormFloat64())
		}
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		stride := npanels*panelItems + 5
		a := make([]float32, tileQueries*stride)
		b := make([]float32, tileQueries*stride)
		kernel6Asm(&q[0], &x[0], &norms[0], &a[0], dim, npanels, stride)
		kernel6Go(q, x, norms, b, dim, npanels, stride)
		closeAll(t, "kernel6", a, b)
		if use512 {
			c := make([]float32, tileQueries*stride)
			thr := []float32{-1e9, 1e9, 0, 0.5, -0.5, b[5*stride+20]}
			var flags [tileQueries]byte
			kernel6Asm512(&q[0], &x[0], &norms[0], &c[0], dim, segPanels, stride, &thr[0], &flags[0])
			for r := range tileQueries {
				row, ref := c[r*stride:r*stride+segItems], b[r*stride:r*stride+segItems]
				closeAll(t, "kernel6 AVX-512", row, ref)
				below := false
				for _, v := range row {
					below = below || v < thr[r]
				}
				if (flags[r] != 0) != below {
					t.Errorf("dim %d row %d: flag %d, any below %v: %v", dim, r, flags[r], below, below)
				}
			}
		}
		a1 := make([]float32, npanels*panelItems)
		b1 := make([]float32, npanels*panelItems)
		kernel1Asm(&q[0], &x[0], &norms[0], &a1[0], dim, npanels)
		kernel1Go(q[:dim], x, norms, b1, dim, npanels)
		closeAll(t, "kernel1", a1, b1)
	}
}

func closeAll(t *testing.T, what string, a, b []float32) {
	t.Helper()
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-4*(1+math.Abs(float64(b[i]))) {
			t.Fatalf("%s: [%d] asm %v, Go %v", what, i, a[i], b[i])
		}
	}
}

// TestPortableKernels runs the search, single and batched, with the
// plain-Go kernels whatever the CPU has.
func TestPortableKernels(t *testing.T) {
	asm, asm512 := useAsm, use512
	useAsm, use512 = false, false
	defer func() { useAsm, use512 = asm, asm512 }()
	r := rand.New(rand.NewPCG(4, 4))
	const n, dim, k = 600, 7, 5
	vecs, labels := randomData(r, n, dim, true)
	ix := New(dim, "m")
	if _, err := ix.Add(vecs, labels); err != nil {
		t.Fatal(err)
	}
	qs, _ := randomData(r, 20, dim, true)
	res, err := ix.SearchBatch(qs, k)
	if err != nil {
		t.Fatal(err)
	}
	for qi := range 20 {
		q := qs[qi*dim : (qi+1)*dim]
		want := bruteForce(vecs, labels, dim, q, k)
		sameNeighbors(t, "batch", res[qi], want)
		got, _ := ix.Search(q, k)
		sameNeighbors(t, "single", got, want)
	}
}

func TestInvalidInput(t *testing.T) {
	ix := New(3, "m")
	if _, err := ix.Search([]float32{1, 2, 3}, 1); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty index: %v", err)
	}
	if _, err := ix.Add([]float32{1, 2, 3, 4, 5, 6}, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		err  error
		f    func() error
	}{
		{"add dim", ErrDim, func() error { _, err := ix.Add([]float32{1, 2}, []int{0}); return err }},
		{"add NaN", ErrNotFinite, func() error { _, err := ix.Add([]float32{1, nan, 2}, []int{0}); return err }},
		{"add Inf", ErrNotFinite, func() error { _, err := ix.Add([]float32{1, inf, 2}, []int{0}); return err }},
		{"add huge", ErrNotFinite, func() error { _, err := ix.Add([]float32{3e38, 3e38, 0}, []int{0}); return err }},
		{"add label", ErrLabel, func() error { _, err := ix.Add([]float32{1, 2, 3}, []int{-2}); return err }},
		{"search dim", ErrDim, func() error { _, err := ix.Search([]float32{1, 2}, 1); return err }},
		{"search 2 rows", ErrDim, func() error { _, err := ix.Search([]float32{1, 2, 3, 4, 5, 6}, 1); return err }},
		{"search k", ErrK, func() error { _, err := ix.Search([]float32{1, 2, 3}, 0); return err }},
		{"search NaN", ErrNotFinite, func() error { _, err := ix.Search([]float32{1, nan, 3}, 1); return err }},
		{"batch empty", ErrDim, func() error { _, err := ix.SearchBatch(nil, 1); return err }},
		{"batch dim", ErrDim, func() error { _, err := ix.SearchBatch([]float32{1, 2, 3, 4}, 1); return err }},
		{"batch k", ErrK, func() error { _, err := ix.SearchBatch([]float32{1, 2, 3}, -1); return err }},
		{"classify k", ErrK, func() error { _, err := ix.Classify([]float32{1, 2, 3}, 0); return err }},
		{"label id", ErrID, func() error { _, err := ix.Label(2); return err }},
		{"vector id", ErrID, func() error { _, err := ix.Vector(-1); return err }},
	} {
		if err := tc.f(); !errors.Is(err, tc.err) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
		}
	}
	if ix.Len() != 2 {
		t.Errorf("Len %d after rejected adds, want 2", ix.Len())
	}
	if v, err := ix.Vector(1); err != nil || v[0] != 4 || v[2] != 6 {
		t.Errorf("Vector(1) = %v, %v", v, err)
	}
	if l, err := ix.Label(1); err != nil || l != 1 {
		t.Errorf("Label(1) = %v, %v", l, err)
	}
}

func TestVote(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ns           []Neighbor
		label, votes int
	}{
		{"majority", []Neighbor{{Label: 1, Distance: 1}, {Label: 2, Distance: 2}, {Label: 2, Distance: 3}}, 2, 2},
		{"tie by summed distance", []Neighbor{{Label: 3, Distance: 1}, {Label: 1, Distance: 1.5}, {Label: 1, Distance: 2}, {Label: 3, Distance: 3}}, 1, 2},
		{"full tie to lower label", []Neighbor{{Label: 4, Distance: 1}, {Label: 2, Distance: 1}}, 2, 1},
		{"unlabelled do not vote", []Neighbor{{Label: -1}, {Label: -1}, {Label: 5, Distance: 9}}, 5, 1},
		{"none labelled", []Neighbor{{Label: -1}}, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 5 { // map order must not matter
				if l, v := Vote(tc.ns); l != tc.label || v != tc.votes {
					t.Fatalf("Vote = %d, %d; want %d, %d", l, v, tc.label, tc.votes)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	ix := New(1, "m")
	if _, err := ix.Add([]float32{0, 1, 2, 10, 11}, []int{7, 7, -1, 3, 3}); err != nil {
		t.Fatal(err)
	}
	res, err := ix.Classify([]float32{1.2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Label != 7 || res.Votes != 2 || len(res.Neighbors) != 3 || res.Neighbors[0].ID != 1 {
		t.Fatalf("Classify = %+v", res)
	}
	batch, err := ix.ClassifyBatch([]float32{1.2, 10.9}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if batch[0].Label != 7 || batch[1].Label != 3 || batch[1].Votes != 2 {
		t.Fatalf("ClassifyBatch = %+v", batch)
	}
}

// TestConcurrentAddSearch adds items while searches run; every search must
// see a consistent prefix of the items (run with -race).
func TestConcurrentAddSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const n, dim, k = 3000, 8, 3
	vecs, labels := randomData(r, n, dim, false)
	ix := New(dim, "m")
	qs, _ := randomData(r, 8, dim, false)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				seen := ix.Len()
				res, err := ix.SearchBatch(qs, k)
				if errors.Is(err, ErrEmpty) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				for qi, ns := range res {
					// The result must be the exact answer over some prefix of at
					// least `seen` items.
					last := 0
					for _, nb := range ns {
						last = max(last, nb.ID+1)
					}
					m := max(seen, last)
					want := bruteForce(vecs[:m*dim], labels[:m], dim, qs[qi*dim:(qi+1)*dim], k)
					if want[len(want)-1].Distance < ns[len(ns)-1].Distance {
						t.Errorf("query %d saw %d items but missed a nearer one: %+v vs %+v", qi, seen, ns, want)
						return
					}
				}
				if _, err := ix.Search(qs[:dim], k); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < n; {
		j := min(n, i+1+r.IntN(40))
		if id, err := ix.Add(vecs[i*dim:j*dim], labels[i:j]); err != nil || id != i {
			t.Fatalf("Add: %d, %v", id, err)
		}
		i = j
	}
	close(stop)
	wg.Wait()
	for qi := 0; qi < 8; qi++ {
		got, _ := ix.Search(qs[qi*dim:(qi+1)*dim], k)
		sameNeighbors(t, "after adds", got, bruteForce(vecs, labels, dim, qs[qi*dim:(qi+1)*dim], k))
	}
}
