#!/usr/bin/env bash
# Runs one training recipe in increments and evaluates 1-NN after each:
#   scripts/experiment.sh NAME "MINUTES..." [cebm train flags...]
# e.g. scripts/experiment.sh l20-lr5e-4 "3 6 10" --sgld-steps 20 --lr 5e-4
#
# Recipes are chosen on the validation split: the run trains on the first
# 50,000 MNIST training images (--train-limit) and each evaluation is 1-NN of
# the last 10,000 against those 50,000 (cebm eval --split val). SPLIT=test
# trains on all 60,000 and evaluates on the test split (for shipped models).
#
# Run folders live in $CEBM_RUNS (default $HOME/cebm-runs), outside the work
# tree, so a later session on the same machine can resume them. One line per
# evaluation is appended to $CEBM_RUNS/experiments.tsv:
#   name  train_minutes  steps  knn1  pixel_knn1  split  flags
# INIT_SHARES="0.1 0.2" also evaluates, after each increment, the
# trajectory's average (the moving average with its start taken out; the
# last parameters without --ema) blended with the initial parameters at
# each share (cebm train --export-only --init-share), as "NAME(init 0.1)".
set -euo pipefail
name=$1; shift
marks=$1; shift
bin=${CEBM_BIN:-bin/cebm}
runs=${CEBM_RUNS:-$HOME/cebm-runs}
split=${SPLIT:-val}
data=${DATA:-mnist}
dir=$runs/exp-$name
mkdir -p "$runs"
limit=()
[ "$split" = val ] && limit=(--train-limit 50000)
prev=0
for m in $marks; do
  resume=""
  [ -f "$dir/checkpoint.ckpt" ] && resume=--resume
  # THREADS_FILE, if set, may change the thread count between increments.
  threads=()
  [ -n "${THREADS_FILE:-}" ] && [ -f "$THREADS_FILE" ] && threads=(--threads "$(cat "$THREADS_FILE")")
  rm -f "$dir/model-last.onnx" "$dir"/model-init*.onnx
  "$bin" train --quiet --no-eval --data "$data" --out "$dir" --steps 0 --duration "$((m - prev))m" $resume "${limit[@]}" "$@" "${threads[@]}" >>"$dir.log" 2>&1
  prev=$m
  # Training minutes so far, from the last metrics line (evaluations excluded).
  mins=$(tail -n 1 "$dir/metrics.jsonl" | sed -n 's/.*"elapsed_s":\([0-9.]*\).*/\1/p' | awk '{printf "%.1f", $1/60}')
  # With --ema the run also exports its last parameters: evaluate both.
  models=("$dir/model.onnx" "$dir/model-last.onnx")
  for b in ${INIT_SHARES:-}; do
    "$bin" train --quiet --out "$dir" --export-only --init-share "$b" --export "$dir/model-init$b.onnx" >>"$dir.log" 2>&1
    models+=("$dir/model-init$b.onnx")
  done
  for model in "${models[@]}"; do
    [ -f "$model" ] || continue
    json=$("$bin" eval --model "$model" --data "$data" --split "$split" --json "${threads[@]}" 2>>"$dir.log")
    knn=$(printf '%s' "$json" | sed -n 's/.*"knn1_accuracy": \([0-9.]*\).*/\1/p')
    pix=$(printf '%s' "$json" | sed -n 's/.*"pixel_knn1_accuracy": \([0-9.]*\).*/\1/p')
    steps=$(printf '%s' "$json" | sed -n 's/.*"steps": \([0-9]*\).*/\1/p')
    label=$name
    case $model in
      */model-last.onnx) label="$name(last)" ;;
      */model-init*.onnx) b=${model##*/model-init}; label="$name(init ${b%.onnx})" ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$mins" "$steps" "$knn" "$pix" "$split" "$*" | tee -a "$runs/experiments.tsv"
  done
done
