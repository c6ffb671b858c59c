package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/cebm/cebm/api/wire"
)

// The answer of POST /encode written by hand: the same bytes as
// json.NewEncoder(w).Encode (TestFastJSON holds them equal), without
// reflection, into a pooled buffer. A CEBM posterior is 512 float32s
// (η1, η2, mean, variance), and encoding/json spent ~29 µs on each.

// jsonBufs holds answer buffers for reuse.
var jsonBufs = sync.Pool{New: func() any { return new([]byte) }}

// writeEncodeJSON answers 200 with out, as writeJSON would, with a
// Content-Length.
func writeEncodeJSON(w http.ResponseWriter, out *wire.EncodeResponse) {
	bp := jsonBufs.Get().(*[]byte)
	b, ok := appendEncodeResponse((*bp)[:0], out)
	if !ok {
		jsonBufs.Put(bp)
		writeJSON(w, http.StatusOK, out)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= 1<<20 {
		*bp = b
		jsonBufs.Put(bp)
	}
}

// appendEncodeResponse appends out as encoding/json's Encoder writes it
// (with its newline); false for what it leaves to encoding/json: mixture
// components and numbers JSON cannot hold.
func appendEncodeResponse(b []byte, out *wire.EncodeResponse) ([]byte, bool) {
	b = append(b, `{"model":`...)
	b = appendString(b, out.Model)
	b = append(b, `,"results":`...)
	if out.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range out.Results {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendPosterior(b, &out.Results[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...), true
}

// appendPosterior appends one wire.Posterior's JSON.
func appendPosterior(b []byte, p *wire.Posterior) ([]byte, bool) {
	if len(p.Components) > 0 {
		return b, false
	}
	b = append(b, `{"id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"energy":`...)
	b, ok := appendFloat(b, p.Energy, 64)
	if p.NaturalParams != nil {
		b = append(b, `,"natural_params":{"eta1":`...)
		b = appendFloats32(b, p.NaturalParams.Eta1, &ok)
		b = append(b, `,"eta2":`...)
		b = appendFloats32(b, p.NaturalParams.Eta2, &ok)
		b = append(b, '}')
	}
	b = append(b, `,"mean":`...)
	b = appendFloats32(b, p.Mean, &ok)
	if len(p.Variance) > 0 {
		b = append(b, `,"variance":`...)
		b = appendFloats32(b, p.Variance, &ok)
	}
	if len(p.Responsibilities) > 0 {
		b = append(b, `,"responsibilities":[`...)
		for i, x := range p.Responsibilities {
			if i > 0 {
				b = append(b, ',')
			}
			var fine bool
			b, fine = appendFloat(b, x, 64)
			ok = ok && fine
		}
		b = append(b, ']')
	}
	b = append(b, `,"inverted":`...)
	b = strconv.AppendBool(b, p.Inverted)
	if p.OOD != nil {
		o, err := json.Marshal(p.OOD)
		if err != nil {
			return b, false
		}
		b = append(b, `,"ood":`...)
		b = append(b, o...)
	}
	return append(b, '}'), ok
}

// appendFloats32 appends v as a JSON array (null for nil), clearing *ok at
// a number JSON cannot hold.
func appendFloats32(b []byte, v []float32, ok *bool) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		var fine bool
		b, fine = appendFloat(b, float64(x), 32)
		*ok = *ok && fine
	}
	return append(b, ']')
}

// appendFloat appends f as encoding/json writes a float of that many
// bits: the shortest representation that reads back, in exponent form
// below 1e-6 and from 1e21 on, with a two-digit exponent at least; false
// for NaN and ±Inf, which encoding/json refuses.
func appendFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// e-09 as e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendString appends s quoted as encoding/json quotes it: plain ASCII
// directly, anything else (escapes, HTML characters, non-ASCII) through
// json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
