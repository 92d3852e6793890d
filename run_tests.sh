#!/usr/bin/env bash
# Sets up what the tests need (idempotent) and runs every test suite:
#   1. the whole suite in .venv (training stack: TensorFlow, tf_keras, tfmot + runtime);
#   2. the runtime tests again in .venv-runtime, which has only the `runtime` extra (no TensorFlow);
#   3. the Android demo's plain-Kotlin core tests;
#   4. the runtime on Raspberry Pi OS under emulation (arm64, armhf), compared with this machine.
# Extra arguments go to the first pytest run (e.g. ./run_tests.sh -k tflite).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup_venv() {  # setup_venv DIR EXTRAS WHAT
  local start=$SECONDS
  if [ -x "$1/bin/python" ]; then
    echo "== $1: checking its packages ($3)"
  else
    echo "== $1: creating it and installing $3; the first time this downloads and takes minutes"
    "$PY" -m venv "$1"
  fi
  # pip's own status decides (pipefail); a failed install stops here, not at a missing pytest later.
  "$1/bin/python" -m pip install -q --disable-pip-version-check -e ".[$2]" 2>&1 \
    | { grep -v "^WARNING: Location" || true; } \
    || { echo "error: pip could not install .[$2] into $1 (above); free disk: $(df -Ph . | awk 'NR == 2 {print $4}')"; exit 1; }
  echo "   $1 ready ($(( SECONDS - start )) s)"
}

setup_venv .venv train,dev,detect "TensorFlow, tf_keras, tfmot, LiteRT, OpenCV, pytest: about 2.3 GB"
setup_venv .venv-runtime runtime,dev "numpy, Pillow, LiteRT, pytest; no TensorFlow"

echo "== full suite (training stack) =="
.venv/bin/python -m pytest tests "$@"

echo "== runtime suite without TensorFlow =="
.venv-runtime/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" \
  || { echo "error: .venv-runtime must not have TensorFlow"; exit 1; }
.venv-runtime/bin/python -m pytest tests/runtime -p no:cacheprovider

if [ -x android_demo/run_core_tests.sh ]; then
  echo "== Android core (Kotlin/JVM) =="
  PYTHON=.venv-runtime/bin/python android_demo/run_core_tests.sh
fi

echo "== Raspberry Pi OS under emulation (arm64, armhf; FACEAGE_PI=skip skips) =="
PYTHON=.venv-runtime/bin/python tests/pi/run_emulated.sh arm64 armhf
