package index

import "unsafe"

const (
	segPanels = 2                      // panels per threshold-test segment
	segItems  = segPanels * panelItems // items per segment
)

// The scoring kernels. For item x and query q each writes ‖x‖² − 2q·x
// (float32), which ranks items as ‖q − x‖² does. Items come in panels of 16,
// dimension-major (see chunk); norms holds ‖x‖² per item.
//
// kernel1 scores one query q (dim values) against npanels panels into
// out[0 : npanels*16].
//
// kernel6 scores a tile of six queries, packed dimension-major
// (q[p*6+r] is element p of query r), against npanels panels into
// out[r*stride : r*stride+npanels*16] for r = 0…5.
//
// kernel6 also sets flags[s*6+r], for each segment s of segItems items, to
// false only if none of row r's scores in that segment is below thr[r]
// (implementations without that test set every flag).
//
// Both check their slice lengths and then call the fastest implementation
// this CPU has (useAsm, set per platform).

func kernel1(q, x, norms, out []float32, dim, npanels int) {
	_ = q[dim-1]
	_ = x[npanels*dim*panelItems-1]
	_ = norms[npanels*panelItems-1]
	_ = out[npanels*panelItems-1]
	if useAsm {
		kernel1Asm(&q[0], &x[0], &norms[0], &out[0], dim, npanels)
		return
	}
	kernel1Go(q, x, norms, out, dim, npanels)
}

func kernel6(q, x, norms, out []float32, dim, npanels, stride int, thr []float32, flags []bool) {
	_ = thr[tileQueries-1]
	_ = flags[npanels/segPanels*tileQueries-1]
	_ = q[dim*tileQueries-1]
	_ = x[npanels*dim*panelItems-1]
	_ = norms[npanels*panelItems-1]
	_ = out[(tileQueries-1)*stride+npanels*panelItems-1]
	if stride < npanels*panelItems {
		panic("index: kernel6 stride too small")
	}
	if use512 && npanels%segPanels == 0 {
		kernel6Asm512(&q[0], &x[0], &norms[0], &out[0], dim, npanels, stride, &thr[0], (*byte)(unsafe.Pointer(&flags[0])))
		return
	}
	for i := range flags[:npanels/segPanels*tileQueries] {
		flags[i] = true
	}
	if useAsm {
		kernel6Asm(&q[0], &x[0], &norms[0], &out[0], dim, npanels, stride)
		return
	}
	kernel6Go(q, x, norms, out, dim, npanels, stride)
}

// kernel1Go is the portable kernel1.
func kernel1Go(q, x, norms, out []float32, dim, npanels int) {
	var acc [panelItems]float32
	for pn := 0; pn < npanels; pn++ {
		panel := x[pn*dim*panelItems : (pn+1)*dim*panelItems]
		acc = [panelItems]float32{}
		for p, qv := range q[:dim] {
			row := panel[p*panelItems : p*panelItems+panelItems]
			for j := range acc {
				acc[j] += qv * row[j]
			}
		}
		o := out[pn*panelItems : (pn+1)*panelItems]
		nm := norms[pn*panelItems : (pn+1)*panelItems]
		for j := range acc {
			o[j] = nm[j] - 2*acc[j]
		}
	}
}

// kernel6Go is the portable kernel6.
func kernel6Go(q, x, norms, out []float32, dim, npanels, stride int) {
	var acc [tileQueries][panelItems]float32
	for pn := 0; pn < npanels; pn++ {
		panel := x[pn*dim*panelItems : (pn+1)*dim*panelItems]
		acc = [tileQueries][panelItems]float32{}
		for p := 0; p < dim; p++ {
			row := panel[p*panelItems : p*panelItems+panelItems]
			qs := q[p*tileQueries : p*tileQueries+tileQueries]
			for r, qv := range qs {
				a := &acc[r]
				for j := range a {
					a[j] += qv * row[j]
				}
			}
		}
		nm := norms[pn*panelItems : (pn+1)*panelItems]
		for r := range acc {
			o := out[r*stride+pn*panelItems : r*stride+(pn+1)*panelItems]
			for j := range o {
				o[j] = nm[j] - 2*acc[r][j]
			}
		}
	}
}
