#!/usr/bin/env bash
# Builds and tests the plain-Kotlin core of the Android demo (no Android SDK needed):
#   1. says what is missing and installs it: a JDK and JUnit 4 (apt-get, needs root), Kotlin (npm
#      kotlin-compiler, into tools/); stops with what to do when it cannot;
#   2. writes golden vectors from real faces with `$PYTHON -m faceage_tf.golden` into build/golden
#      (skipped, with the reason, when the faces are absent);
#   3. compiles core + tests with kotlinc (jars cached by source hash) and runs them with JUnit.
# Environment: PYTHON (default ../.venv-runtime/bin/python, else ../.venv/bin/python),
#              FACEAGE_MODEL (default ../faceage_tf/assets/faceage.tflite),
#              FACEAGE_UTKFACE (default ../../shared/data/utkface),
#              FACEAGE_AAF (default ../../shared/data/aaf: whole photos for the detector's vectors).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$HERE/build
TOOLS=$HERE/tools
mkdir -p "$BUILD" "$TOOLS"

# --- 1. tools: say what will be installed, install it, or stop with what to do ------------------
KOTLIN_HOME=$TOOLS/node_modules/kotlin-compiler
APT_MISSING=()
command -v javac >/dev/null || APT_MISSING+=(default-jdk-headless)
[ -f /usr/share/java/junit4.jar ] || APT_MISSING+=(junit4)
NPM_MISSING=""
[ -x "$KOTLIN_HOME/bin/kotlinc-jvm" ] || NPM_MISSING=kotlin-compiler
if [ ${#APT_MISSING[@]} -gt 0 ] || [ -n "$NPM_MISSING" ]; then
  echo "run_core_tests.sh installs what the Kotlin core tests need and this machine lacks:"
  [ ${#APT_MISSING[@]} -eq 0 ] || echo "  - ${APT_MISSING[*]} with apt-get (system packages: needs root and the network)"
  [ -z "$NPM_MISSING" ] || echo "  - the npm package kotlin-compiler (about 90 MB) into $TOOLS (needs npm and the network)"
fi
if [ ${#APT_MISSING[@]} -gt 0 ]; then
  HINT="install them yourself (sudo apt-get install ${APT_MISSING[*]}) and run this again"
  if [ "$(id -u)" != 0 ]; then
    echo "error: cannot install ${APT_MISSING[*]}: apt-get needs root; $HINT" >&2; exit 1
  fi
  if ! apt-get install -y -q "${APT_MISSING[@]}" >"$BUILD/apt.log" 2>&1; then
    tail -n 5 "$BUILD/apt.log" >&2
    echo "error: apt-get could not install ${APT_MISSING[*]} (full log: $BUILD/apt.log); $HINT" >&2; exit 1
  fi
fi
if [ -n "$NPM_MISSING" ]; then
  if ! command -v npm >/dev/null; then
    echo "error: cannot install Kotlin: npm not found; install Node.js and npm (apt-get install npm) and run this again" >&2; exit 1
  fi
  if ! npm install --prefix "$TOOLS" --no-audit --no-fund --silent kotlin-compiler >"$BUILD/npm.log" 2>&1 \
     || [ ! -x "$KOTLIN_HOME/bin/kotlinc-jvm" ]; then
    tail -n 5 "$BUILD/npm.log" >&2
    echo "error: npm could not install kotlin-compiler into $TOOLS (full log: $BUILD/npm.log); check the network or the npm registry setting" >&2; exit 1
  fi
fi
KOTLINC=$KOTLIN_HOME/bin/kotlinc-jvm
LIB=$KOTLIN_HOME/lib
JUNIT=/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar
TEST_LIBS=$LIB/kotlin-test.jar:$LIB/kotlin-test-junit.jar:$JUNIT

# --- 2. golden vectors from real faces --------------------------------------------------------
MODEL=${FACEAGE_MODEL:-$ROOT/faceage_tf/assets/faceage.tflite}
FACES=${FACEAGE_UTKFACE:-$ROOT/../shared/data/utkface}
AAF=${FACEAGE_AAF:-$ROOT/../shared/data/aaf}
PHOTOS=()  # whole photos for the detector's golden vectors, when the AAF photos are there
[ -d "$AAF/images" ] && PHOTOS=(--photos "$AAF/images")
if [ -z "${PYTHON:-}" ]; then
  for candidate in "$ROOT/.venv-runtime/bin/python" "$ROOT/.venv/bin/python"; do
    if [ -x "$candidate" ]; then PYTHON=$candidate; break; fi
  done
fi
GOLDEN=$BUILD/golden
GOLDEN_SKIP=""
rm -rf "$GOLDEN"
if [ ! -d "$FACES" ]; then
  GOLDEN_SKIP="real faces not found at $FACES (set FACEAGE_UTKFACE to a UTKFace folder)"
elif [ -z "${PYTHON:-}" ]; then
  GOLDEN_SKIP="no Python environment found (set PYTHON to one with faceage_tf's runtime extra)"
else
  # Runs from the repo root so `faceage_tf` imports whether or not it is installed.
  if ! (cd "$ROOT" && "$PYTHON" -m faceage_tf.golden --model "$MODEL" --faces "$FACES" "${PHOTOS[@]}" --out "$GOLDEN") \
       >"$BUILD/golden.log" 2>&1; then
    cat "$BUILD/golden.log"; echo "error: golden vectors could not be written"; exit 1
  fi
  tail -n 1 "$BUILD/golden.log"
fi
[ -z "$GOLDEN_SKIP" ] || echo "golden vectors skipped: $GOLDEN_SKIP"

# --- 3. compile (cached by source hash) and test -----------------------------------------------
hash_of() { find "$@" -name '*.kt' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16; }
CORE_SRC=$HERE/core/src/main/kotlin
TEST_SRC=$HERE/core/src/test/kotlin
CORE_JAR=$BUILD/core-$(hash_of "$CORE_SRC").jar
TEST_JAR=$BUILD/core-tests-$(hash_of "$CORE_SRC" "$TEST_SRC").jar
export JAVA_OPTS="-Xss4m"
if [ ! -f "$CORE_JAR" ]; then
  echo "compiling core"
  rm -f "$BUILD"/core-*.jar
  "$KOTLINC" -nowarn "$CORE_SRC" -d "$CORE_JAR"
fi
if [ ! -f "$TEST_JAR" ]; then
  echo "compiling core tests"
  rm -f "$BUILD"/core-tests-*.jar
  "$KOTLINC" -nowarn -cp "$CORE_JAR:$TEST_LIBS" "$TEST_SRC" -d "$TEST_JAR"
fi

# Every *Test class in the test jar (not nested or synthetic classes).
CLASSES=$(jar tf "$TEST_JAR" | grep -E '^dev/faceage/core/[A-Za-z]+Test\.class$' | sed 's/\.class$//; s#/#.#g')
cd "$HERE/core"
java -cp "$TEST_JAR:$CORE_JAR:$LIB/kotlin-stdlib.jar:$TEST_LIBS" \
  -Dfaceage.model="$MODEL" -Dfaceage.golden="$GOLDEN" -Dfaceage.goldenSkip="$GOLDEN_SKIP" \
  dev.faceage.core.CoreTestRunnerKt $CLASSES
