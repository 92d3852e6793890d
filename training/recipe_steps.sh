# Shared by the recipe scripts (sourced): PY and train().
PY=${PYTHON:-.venv/bin/python}

train() {  # train RUN_DIR ARGS...: skipped when finished, resumed when interrupted
  local run=$1; shift
  if [ -f "$run/final_weights.h5" ]; then echo "== $run: done"; return; fi
  local resume=""
  [ -f "$run/config.json" ] && resume="--resume"  # started: continue it
  echo "== $run $resume"
  "$PY" training/train.py --out "$run" $resume --progress epochs "$@"
}

serving_bn() {  # serving_bn RUN_DIR: batch-norm statistics of the serving crops; skipped when done
  if [ -f "$1/serving_batch_norm.json" ]; then echo "== $1: serving batch norm done"; return; fi
  echo "== $1: serving batch norm"
  "$PY" training/serving_batch_norm.py --run "$1"
}
