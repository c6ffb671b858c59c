package api

import (
	"math"
	"math/rand/v2"
	"net/http"

	"github.com/cebm/cebm/index"
)

// RefMap is GET /index/map: a 2-D picture of the reference set, its
// posterior means projected on their first two principal directions
// (computed once when the index is set), a sample of points with their
// labels. A client places any posterior mean on it as
// (axes[0]·(m − mean), axes[1]·(m − mean)).
type RefMap struct {
	Mean     []float32    `json:"mean"`
	Axes     [2][]float32 `json:"axes"`
	Variance [2]float64   `json:"variance"` // along each axis
	Points   []MapPoint   `json:"points"`
}

// MapPoint is one reference item on the map.
type MapPoint struct {
	ID    int     `json:"id"`
	Label int     `json:"label"`
	X     float32 `json:"x"`
	Y     float32 `json:"y"`
}

// mapPoints is how many reference items the map shows: enough to see each
// class's cloud, few enough to send and draw at once (about 60 KB).
const mapPoints = 2000

// referenceMap computes the map of the items live of ix: the mean and
// principal directions of the items' vectors (by power iteration on their
// covariance, from a sample of up to 5,000), and up to mapPoints of them,
// evenly spaced, projected.
func referenceMap(ix *index.Index, live []int) (*RefMap, error) {
	n := len(live)
	if n < 3 {
		return nil, nil
	}
	d := ix.Dim()
	m := min(n, 5000)
	vecs := make([][]float64, m)
	mean := make([]float64, d)
	for i := range vecs {
		v, err := ix.Vector(live[int64(i)*int64(n)/int64(m)])
		if err != nil {
			return nil, err
		}
		vecs[i] = make([]float64, d)
		for j, x := range v {
			vecs[i][j] = float64(x)
			mean[j] += float64(x) / float64(m)
		}
	}
	cov := make([]float64, d*d)
	for _, v := range vecs {
		for a := 0; a < d; a++ {
			da := v[a] - mean[a]
			row := cov[a*d : (a+1)*d]
			for b := range row {
				row[b] += da * (v[b] - mean[b])
			}
		}
	}
	out := &RefMap{Mean: make([]float32, d)}
	for j, x := range mean {
		out.Mean[j] = float32(x)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var found [][]float64
	for k := 0; k < 2; k++ {
		u := make([]float64, d)
		for j := range u {
			u[j] = rng.NormFloat64()
		}
		var lambda float64
		for it := 0; it < 300; it++ {
			w := make([]float64, d)
			for a := 0; a < d; a++ {
				var s float64
				for b, x := range cov[a*d : (a+1)*d] {
					s += x * u[b]
				}
				w[a] = s
			}
			for _, f := range found { // deflate: stay orthogonal to the first axis
				var dot float64
				for j := range w {
					dot += w[j] * f[j]
				}
				for j := range w {
					w[j] -= dot * f[j]
				}
			}
			var norm float64
			for _, x := range w {
				norm += x * x
			}
			norm = math.Sqrt(norm)
			if norm == 0 {
				break
			}
			lambda = norm
			for j := range u {
				u[j] = w[j] / norm
			}
		}
		found = append(found, u)
		out.Axes[k] = make([]float32, d)
		for j, x := range u {
			out.Axes[k][j] = float32(x)
		}
		out.Variance[k] = lambda / float64(m)
	}
	p := min(n, mapPoints)
	out.Points = make([]MapPoint, p)
	for i := range out.Points {
		id := live[int64(i)*int64(n)/int64(p)]
		v, err := ix.Vector(id)
		if err != nil {
			return nil, err
		}
		l, _ := ix.Label(id)
		x, y := project(out, v)
		out.Points[i] = MapPoint{ID: id, Label: l, X: x, Y: y}
	}
	return out, nil
}

// project places vector v on the map.
func project(m *RefMap, v []float32) (x, y float32) {
	var sx, sy float64
	for j, a := range v {
		c := float64(a - m.Mean[j])
		sx += c * float64(m.Axes[0][j])
		sy += c * float64(m.Axes[1][j])
	}
	return float32(sx), float32(sy)
}

// handleMap is GET /index/map.
func (s *Server) handleMap(w http.ResponseWriter, r *http.Request) error {
	st, err := s.reference(r)
	if err != nil {
		return err
	}
	t := st.refTables()
	if t == nil || t.refMap == nil {
		return problem(kindNotFound, "This server has no reference set to map.")
	}
	writeJSON(w, http.StatusOK, t.refMap)
	return nil
}
