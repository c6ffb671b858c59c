package main

import (
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
	if err := fs.Parse(args); err != nil {
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

// deprecatedFlag keeps an old flag name working for one release: setting
// it warns on w and sets the flag that replaced it (through set, which may
// translate the value).
func deprecatedFlag(fs *flag.FlagSet, old, replacement string, w io.Writer, set func(string) error) {
	fs.Func(old, "deprecated: use --"+replacement, func(v string) error {
		fmt.Fprintf(w, "cebm: --%s is deprecated and will be removed; use --%s\n", old, replacement)
		return set(v)
	})
}
