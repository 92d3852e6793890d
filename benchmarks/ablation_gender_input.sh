#!/usr/bin/env bash
# Ablation of the paper's gender-augmented age branch: the attentional network trained twice with
# the same data, split (seed 0, the default model's) and budget, with and without the predicted
# gender fed to the age branch; both scored on the test split (flip TTA).
#   benchmarks/ablation_gender_input.sh [OUT=runs/ablation] [EPOCHS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/ablation}
EPOCHS=${2:-8}
PY=${PYTHON:-.venv/bin/python}
for gender_input in true false; do
  run="$OUT/gender_input_$gender_input"
  if [ ! -f "$run/final_weights.h5" ]; then
    resume=""
    [ -f "$run/config.json" ] && resume="--resume"  # started: continue it
    "$PY" training/train.py --config configs/default.json --architecture attentional --epochs "$EPOCHS" \
      --gender-input "$gender_input" --out "$run" $resume --progress epochs
  fi
  "$PY" training/evaluate.py --run "$run" --attention 0 --out "$run/eval" | grep "^| attentional"
done
