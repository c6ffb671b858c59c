package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Every command reads its settings the same way: a config struct whose
// fields are bound to flags, and each flag also read from the environment
// as CEBM_<FLAG> (capitals, - as _) when the command line does not give it.

// envName is the environment variable of a flag.
func envName(flag string) string {
	return "CEBM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parseFlags parses args into fs, then sets every flag the command line
// did not give from its environment variable. It returns the names of the
// flags set either way, and flag.ErrHelp for -h.
func parseFlags(cmd string, fs *flag.FlagSet, args []string, env func(string) string) (map[string]bool, error) {
	if err := parseQuietly(cmd, fs, args); err != nil {
		return nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := env(envName(f.Name))
		if v == "" || given[f.Name] || err != nil {
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("%s: %s=%q: %w", cmd, envName(f.Name), v, e)
			return
		}
		given[f.Name] = true
	})
	return given, err
}

// parseQuietly parses args into fs. -h prints the command's usage; any
// other mistake prints nothing and returns one line: what was wrong, the
// flag that was probably meant, and where the flags are listed (not the
// whole usage, in which the mistake scrolls away).
func parseQuietly(cmd string, fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "usage: cebm %s [flags]\n", cmd)
			fs.PrintDefaults()
		}
		return err
	case err != nil:
		hint := ""
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			if s := closestFlag(fs, name); s != "" {
				hint = fmt.Sprintf("; did you mean --%s?", s)
			}
		}
		return fmt.Errorf("%s: %w%s (cebm %s -h lists the flags)", cmd, err, hint, cmd)
	}
	return nil
}

// flagAliases are names people reach for that a command spells otherwise.
var flagAliases = map[string]string{"port": "addr", "host": "addr", "listen": "addr", "bind": "addr", "key": "api-key", "url": "server"}

// closestFlag is the flag of fs that an unknown name most likely meant:
// its alias, or the flag within a third of its length in edits (at least
// two); "" if none.
func closestFlag(fs *flag.FlagSet, name string) string {
	name = strings.TrimLeft(name, "-")
	if a, ok := flagAliases[name]; ok && fs.Lookup(a) != nil {
		return a
	}
	best, bestD := "", max(2, len(name)/3)+1
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// deprecatedFlag keeps an old flag name working for one release: setting
// it warns on w and sets the flag that replaced it (through set, which may
// translate the value).
func deprecatedFlag(fs *flag.FlagSet, old, replacement string, w io.Writer, set func(string) error) {
	fs.Func(old, "deprecated: use --"+replacement, func(v string) error {
		fmt.Fprintf(w, "cebm: --%s is deprecated and will be removed; use --%s\n", old, replacement)
		return set(v)
	})
}
