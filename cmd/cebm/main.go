// Command cebm trains conjugate energy-based models, evaluates them and
// serves their encoders.
//
//	cebm serve   serve an exported encoder over HTTP
//	cebm train   train a CEBM, GMM-CEBM or IGEBM and export it to ONNX
//	cebm eval    evaluate an exported model (1-NN, probes, OOD)
//	cebm data    list, verify and look at the data sets
//	cebm experiment  train a recipe in increments, 1-NN after each, into the lab book
//	cebm encode, cebm classify   ask a running server about image files
//	cebm version the build, ONNX Runtime and the training engines compiled in
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cebm:", err)
		os.Exit(1)
	}
}

// command is one subcommand of cebm.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "serve an exported encoder over HTTP", runServe},
		{"train", "train a model and export its encoder to ONNX", runTrain},
		{"eval", "evaluate an exported model", runEval},
		{"data", "list, verify and show data sets", runData},
		{"experiment", "train a recipe in increments, 1-NN after each, into the lab book", runExperiment},
		{"encode", "posteriors of image files, from a running server", runEncode},
		{"classify", "k-NN labels of image files, from a running server", runClassify},
		{"version", "the build, ONNX Runtime and the training engines in this binary", runVersion},
	}
}

func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], env, stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cebm <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'cebm <command> -h' for a command's flags.")
}
