package main

import (
	"context"
	"errors"
	"io"
)

// These subcommands arrive with their issues; until then they say so.

func runServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	return errors.New("serve: the HTTP service is not built yet (see the representation-service issue)")
}

func runTrain(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	return errors.New("train: the trainer is not built yet (see the trainer issue)")
}

func runEval(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	return errors.New("eval: evaluation is not built yet (see the trainer issue)")
}
