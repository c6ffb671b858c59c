package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cebm/cebm/data"
)

const dataUsage = `usage:
  cebm data list                   the known data sets, where each is looked for, whether present
  cebm data verify NAME...         read every split: counts per split and class, checksums
  cebm data show NAME [flags] --out grid.png
                                   write a PNG grid of sample images with their labels

NAME is mnist, fashion-mnist, cifar10:DIR, svhn:DIR or folder:DIR.
`

// runData dispatches the data subcommands.
func runData(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dataUsage)
		return errors.New("data: missing subcommand (list, verify or show)")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dataUsage)
		return nil
	case "list":
		return dataList(args[1:], env, stdout, stderr)
	case "verify":
		return dataVerify(ctx, args[1:], env, stdout, stderr)
	case "show":
		return dataShow(args[1:], env, stdout, stderr)
	}
	fmt.Fprint(stderr, dataUsage)
	return fmt.Errorf("data: unknown subcommand %q", args[0])
}

// parseInterleaved parses flags that may come before or after positional
// arguments (flag.FlagSet stops at the first positional one) and returns the
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseQuietly(strings.TrimPrefix(fs.Name(), "cebm "), fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints its usage to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cebm data "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cebm data %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// helpOrErr turns -h into a clean exit.
func helpOrErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dataList(args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list", "list", stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return helpOrErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("data list: unexpected arguments %q", pos)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tWHERE")
	var missing []error
	for _, name := range data.Builtins() {
		loc, err := data.Locate(name, env)
		if err != nil {
			return err
		}
		status := "present"
		if loc.Err != nil {
			status = "missing"
			missing = append(missing, loc.Err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s overrides)\n", name, status, loc.Dir, loc.EnvVar)
	}
	fmt.Fprintln(tw, "cifar10:DIR\t-\tDIR/data_batch_{1..5}.bin, DIR/test_batch.bin, DIR/batches.meta.txt (CIFAR-10 binary version)")
	fmt.Fprintln(tw, "svhn:DIR\t-\tDIR/train_32x32.mat, DIR/test_32x32.mat (SVHN cropped digits)")
	fmt.Fprintln(tw, "folder:DIR\t-\tDIR/CLASS/*.png|jpg, or DIR/train/CLASS/… and DIR/test/CLASS/…")
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, err := range missing {
		fmt.Fprintln(stdout, "  ", err)
	}
	return nil
}

func dataVerify(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "verify NAME...", stderr)
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return helpOrErr(err)
	}
	if len(names) == 0 {
		fs.Usage()
		return errors.New("data verify: no data set named")
	}
	faults := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		faults += verifyOne(name, env, stdout)
	}
	if faults > 0 {
		return fmt.Errorf("data verify: %d fault(s)", faults)
	}
	return nil
}

// verifyOne loads every split of a data set, prints what it found and
// returns the number of faults.
func verifyOne(name string, env func(string) string, w io.Writer) int {
	fmt.Fprintf(w, "%s\n", name)
	if err := data.CheckName(name); err != nil {
		fmt.Fprintf(w, "  FAULT: %v\n%s: 1 fault(s)\n", err, name)
		return 1
	}
	faults := 0
	var sets []*data.Set
	files := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(files, "  FILE\tSHA256")
	for _, split := range []string{"train", "test"} {
		set, err := data.LoadEnv(name, split, env)
		switch {
		case errors.Is(err, data.ErrNoSplit):
			fmt.Fprintf(files, "  (%s split)\tabsent\n", split)
			continue
		case err != nil:
			fmt.Fprintf(files, "  (%s split)\tFAULT: %v\n", split, err)
			faults++
			continue
		}
		sets = append(sets, set)
		for _, f := range set.Files {
			status := "no reference sum"
			if f.Verified {
				status = "OK"
			}
			fmt.Fprintf(files, "  %s\t%s\n", f.Path, status)
		}
	}
	files.Flush()
	if len(sets) > 0 {
		printCounts(w, sets)
	}
	if faults == 0 {
		fmt.Fprintf(w, "%s: OK\n", name)
	} else {
		fmt.Fprintf(w, "%s: %d fault(s)\n", name, faults)
	}
	return faults
}

// printCounts prints images per split and per class, one column per split.
func printCounts(w io.Writer, sets []*data.Set) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(first string, cells []string) {
		fmt.Fprintf(tw, "  %s\t%s\n", first, strings.Join(cells, "\t"))
	}
	var head, total, shape []string
	for _, s := range sets {
		head = append(head, fmt.Sprintf("%7s", s.Split))
		total = append(total, fmt.Sprintf("%7d", s.N))
		shape = append(shape, fmt.Sprintf("%7s", fmt.Sprintf("%d×%d×%d", s.C, s.H, s.W)))
	}
	row("SPLIT", head)
	row("images", total)
	row("C×H×W", shape)
	counts := make([][]int, len(sets))
	for i, s := range sets {
		counts[i] = s.ClassCounts()
	}
	for c, class := range sets[0].Classes {
		name := fmt.Sprintf("class %d", c)
		if class != fmt.Sprint(c) {
			name += " " + class
		}
		var cells []string
		for i := range sets {
			cells = append(cells, fmt.Sprintf("%7d", counts[i][c]))
		}
		row(name, cells)
	}
	tw.Flush()
}

func dataShow(args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("show", "show NAME [--split train] [--n 64] [--from 0] [--cols 0] --out grid.png", stderr)
	split := fs.String("split", "train", "split to show: train or test")
	n := fs.Int("n", 64, "number of images")
	from := fs.Int("from", 0, "index of the first image")
	cols := fs.Int("cols", 0, "grid columns (0: near-square)")
	out := fs.String("out", "", "PNG file to write (required)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return helpOrErr(err)
	}
	switch {
	case len(pos) != 1:
		fs.Usage()
		return errors.New("data show: name exactly one data set")
	case *out == "":
		fs.Usage()
		return errors.New("data show: --out is required")
	case *n <= 0 || *from < 0:
		return fmt.Errorf("data show: --n must be positive and --from non-negative")
	}
	set, err := data.LoadEnv(pos[0], *split, env)
	if err != nil {
		return err
	}
	if *from >= set.N {
		return fmt.Errorf("data show: --from %d, but %s %s has %d images", *from, set.Name, set.Split, set.N)
	}
	count := min(*n, set.N-*from)
	labels := make([]string, count)
	for i := range labels {
		labels[i] = set.Classes[set.Labels[*from+i]]
	}
	size := set.Size()
	images := set.Images[*from*size : (*from+count)*size]
	if err := data.SaveGrid(*out, images, count, set.C, set.H, set.W, labels, *cols); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: images %d..%d of %s %s\n", *out, *from, *from+count-1, set.Name, set.Split)
	return nil
}
