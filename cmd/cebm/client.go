package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/client"
)

// clientConfig is every setting of `cebm encode` and `cebm classify`.
type clientConfig struct {
	Server string
	APIKey string
	JSON   bool
	K      int
}

// parseClientFlags reads a client command's flags (each also CEBM_<FLAG>)
// and its image files, in order.
func parseClientFlags(cmd string, args []string, env func(string) string, stderr io.Writer) (*clientConfig, [][]byte, []string, error) {
	c := &clientConfig{}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Server, "server", "http://127.0.0.1:8080", "base URL of a cebm server")
	fs.StringVar(&c.APIKey, "api-key", "", "the server's API key, if it has one")
	fs.BoolVar(&c.JSON, "json", false, "print the server's JSON answer instead of a table")
	if cmd == "classify" {
		fs.IntVar(&c.K, "k", 1, "neighbours per image (as POST /classify-knn's default)")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cebm %s [flags] FILE...\n\nFILEs are PNG or JPEG images. Every flag is also read from CEBM_<FLAG> (e.g. CEBM_SERVER).\n", cmd)
		fs.PrintDefaults()
	}
	// Flags may follow the files: cebm classify a.png b.png --k 3.
	var files []string
	rest := args
	for {
		if _, err := parseFlags(cmd, fs, rest, env); err != nil {
			return nil, nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) == 0 {
		fs.Usage()
		return nil, nil, nil, fmt.Errorf("%s: no image files given", cmd)
	}
	images := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cmd, err)
		}
		images[i] = b
	}
	return c, images, files, nil
}

func (c *clientConfig) client() (*client.Client, error) {
	return client.New(c.Server, client.WithAPIKey(c.APIKey))
}

// runEncode is `cebm encode FILE...`: each image's posterior from a server.
func runEncode(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, images, files, err := parseClientFlags("encode", args, env, stderr)
	if err != nil {
		return helpIsNoError(err)
	}
	c, err := cfg.client()
	if err != nil {
		return err
	}
	res, err := c.Encode(ctx, images...)
	if err != nil {
		return clientError("encode", err)
	}
	if cfg.JSON {
		return printJSON(stdout, res)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FILE\tID\tENERGY\tOOD PERCENTILE\tOUT OF DISTRIBUTION\tMEAN")
	for i, p := range res.Results {
		pct, flagged := "-", "-"
		if p.OOD != nil {
			pct, flagged = fmt.Sprintf("%.1f", p.OOD.EnergyPercentile), oodText(p.OOD)
		}
		fmt.Fprintf(w, "%s\t%s\t%.4f\t%s\t%s\t%s\n", files[i], p.ID, p.Energy, pct, flagged, head(p.Mean, 3))
	}
	return w.Flush()
}

// runClassify is `cebm classify FILE...`: each image's k-NN label.
func runClassify(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cfg, images, files, err := parseClientFlags("classify", args, env, stderr)
	if err != nil {
		return helpIsNoError(err)
	}
	c, err := cfg.client()
	if err != nil {
		return err
	}
	res, err := c.Classify(ctx, cfg.K, images...)
	if err != nil {
		return clientError("classify", err)
	}
	if cfg.JSON {
		return printJSON(stdout, res)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FILE\tLABEL\tVOTES\tNEAREST (ID:LABEL)\tOUT OF DISTRIBUTION")
	for i, r := range res.Results {
		label := r.Class
		if label == "" {
			label = fmt.Sprint(r.Label)
		}
		var votes, near []string
		for _, v := range r.Votes {
			votes = append(votes, fmt.Sprintf("%d×%d", v.Label, v.Count))
		}
		for _, n := range r.Neighbors {
			near = append(near, fmt.Sprintf("%d:%d", n.ID, n.Label))
		}
		flagged := "-"
		if r.OOD != nil {
			flagged = oodText(r.OOD)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", files[i], label, strings.Join(votes, " "), strings.Join(near, " "), flagged)
	}
	return w.Flush()
}

// oodText is "no", or "yes: " and why the image is flagged.
func oodText(o *wire.OOD) string {
	if !o.OutOfDistribution {
		return "no"
	}
	return "yes: " + o.Reason
}

func head(v []float32, n int) string {
	var s []string
	for _, x := range v[:min(n, len(v))] {
		s = append(s, fmt.Sprintf("%.3f", x))
	}
	if len(v) > n {
		s = append(s, "…")
	}
	return "[" + strings.Join(s, " ") + "]"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// clientError words a server's problem for the command line.
func clientError(cmd string, err error) error {
	var p *wire.Problem
	if errors.As(err, &p) {
		msg := fmt.Sprintf("%s: the server answered %d %s: %s", cmd, p.Status, p.Title, p.Detail)
		if p.RetryAfter > 0 {
			msg += fmt.Sprintf(" (retry after %d s)", p.RetryAfter)
		}
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

func helpIsNoError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
