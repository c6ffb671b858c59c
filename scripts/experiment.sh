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
  "$bin" train --quiet --out "$dir" --steps 0 --duration "$((m - prev))m" $resume "$@" "${threads[@]}" >>"$dir.log" 2>&1
  prev=$m
  json=$("$bin" eval --model "$dir/model.onnx" --data mnist --json "${threads[@]}" 2>>"$dir.log")
  knn=$(printf '%s' "$json" | sed -n 's/.*"knn1_accuracy": \([0-9.]*\).*/\1/p')
  pix=$(printf '%s' "$json" | sed -n 's/.*"pixel_knn1_accuracy": \([0-9.]*\).*/\1/p')
  steps=$(printf '%s' "$json" | sed -n 's/.*"steps": \([0-9]*\).*/\1/p')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$m" "$steps" "$knn" "$pix" "$*" | tee -a runs/experiments.tsv
done
