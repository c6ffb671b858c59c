#!/usr/bin/env bash
# Runs one training recipe in increments and evaluates 1-NN after each:
#   scripts/experiment.sh NAME "MINUTES..." [cebm train flags...]
# e.g. scripts/experiment.sh l20-lr5e-4 "3 6 10" --sgld-steps 20 --lr 5e-4
# Appends one line per evaluation to runs/experiments.tsv:
#   name  train_minutes  steps  knn1  pixel_knn1  flags
set -euo pipefail
name=$1; shift
marks=$1; shift
bin=${CEBM_BIN:-bin/cebm}
dir=runs/exp-$name
mkdir -p runs
prev=0
for m in $marks; do
  resume=""
  [ -f "$dir/checkpoint.ckpt" ] && resume=--resume
  # THREADS_FILE, if set, may change the thread count between increments.
  threads=()
  [ -n "${THREADS_FILE:-}" ] && [ -f "$THREADS_FILE" ] && threads=(--threads "$(cat "$THREADS_FILE")")
  rm -f "$dir/model-last.onnx"
  "$bin" train --quiet --out "$dir" --steps 0 --duration "$((m - prev))m" $resume "$@" "${threads[@]}" >>"$dir.log" 2>&1
  prev=$m
  # With --ema the run also exports its last parameters: evaluate both.
  for model in "$dir/model.onnx" "$dir/model-last.onnx"; do
    [ -f "$model" ] || continue
    json=$("$bin" eval --model "$model" --data mnist --json "${threads[@]}" 2>>"$dir.log")
    knn=$(printf '%s' "$json" | sed -n 's/.*"knn1_accuracy": \([0-9.]*\).*/\1/p')
    pix=$(printf '%s' "$json" | sed -n 's/.*"pixel_knn1_accuracy": \([0-9.]*\).*/\1/p')
    steps=$(printf '%s' "$json" | sed -n 's/.*"steps": \([0-9]*\).*/\1/p')
    label=$name; [ "$model" = "$dir/model-last.onnx" ] && label="$name(last)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$m" "$steps" "$knn" "$pix" "$*" | tee -a runs/experiments.tsv
  done
done
