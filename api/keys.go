package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Scope is what an API key may do: read (encode, classify, look up) or
// also write (add and delete index items, and any model administration).
type Scope int

// The scopes; a write key may do everything a read key may.
const (
	ScopeRead Scope = iota + 1
	ScopeWrite
)

func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeWrite:
		return "write"
	}
	return "none"
}

// Key is one API key and its scope.
type Key struct {
	Secret string
	Scope  Scope
}

// LoadKeys reads a key file: one "KEY SCOPE" per line (SCOPE read or
// write), blank lines and lines starting with # ignored. A key is at least
// 8 characters without spaces; each appears once.
func LoadKeys(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	defer f.Close()
	var keys []Key
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("api keys: %s line %d: want \"KEY SCOPE\" (scope read or write), got %d fields", path, n, len(fields))
		}
		k := Key{Secret: fields[0]}
		switch fields[1] {
		case "read":
			k.Scope = ScopeRead
		case "write":
			k.Scope = ScopeWrite
		default:
			return nil, fmt.Errorf("api keys: %s line %d: scope %q is neither read nor write", path, n, fields[1])
		}
		if len(k.Secret) < 8 {
			return nil, fmt.Errorf("api keys: %s line %d: a key has at least 8 characters", path, n)
		}
		if seen[k.Secret] {
			return nil, fmt.Errorf("api keys: %s line %d: the key appears twice", path, n)
		}
		seen[k.Secret] = true
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("api keys: %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("api keys: %s holds no key", path)
	}
	return keys, nil
}

// keyring is the configured keys by their SHA-256, so that every
// comparison takes the same time whatever the presented key's length.
type keyring struct {
	sums   [][sha256.Size]byte
	scopes []Scope
}

func newKeyring(cfg Config) *keyring {
	kr := &keyring{}
	add := func(secret string, scope Scope) {
		kr.sums = append(kr.sums, sha256.Sum256([]byte(secret)))
		kr.scopes = append(kr.scopes, scope)
	}
	if cfg.APIKey != "" {
		add(cfg.APIKey, ScopeWrite)
	}
	for _, k := range cfg.Keys {
		add(k.Secret, k.Scope)
	}
	return kr
}

// scope is the presented key's scope, 0 for none: every key is compared,
// in constant time.
func (kr *keyring) scope(presented string) Scope {
	sum := sha256.Sum256([]byte(presented))
	var found Scope
	for i, s := range kr.sums {
		eq := subtle.ConstantTimeCompare(sum[:], s[:])
		found = Scope(subtle.ConstantTimeSelect(eq, int(kr.scopes[i]), int(found)))
	}
	return found
}

type scopeKey struct{}

// authenticate requires "Authorization: Bearer KEY" with a configured key
// when any is configured (401 otherwise), and passes the key's scope on to
// requireWrite.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if len(s.keys.sums) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		scope := s.keys.scope(got)
		if !ok || scope == 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cebm"`)
			s.writeProblem(w, r, problem(kindUnauthorized, "Send the API key as 'Authorization: Bearer KEY'."))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, scope)))
	})
}

// requireWrite guards the routes that change state: with keys configured,
// a read key gets 403.
func (s *Server) requireWrite(next http.Handler) http.Handler {
	if len(s.keys.sums) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sc, _ := r.Context().Value(scopeKey{}).(Scope); sc != ScopeWrite {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cebm", error="insufficient_scope", scope="write"`)
			s.writeProblem(w, r, problem(kindReadOnlyKey, "This key may only read; "+r.Method+" "+r.URL.Path+" needs a write key."))
			return
		}
		next.ServeHTTP(w, r)
	})
}
