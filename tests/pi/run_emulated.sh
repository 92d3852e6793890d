#!/usr/bin/env bash
# The runtime on emulated Raspberry Pi OS: Debian bookworm arm64 (64-bit Raspberry Pi OS) and armhf
# (32-bit), run through qemu-user-static, compared with this machine's x86 outputs.
#
#   tests/pi/run_emulated.sh ARCH...        ARCH: arm64 | armhf (several run in parallel)
#
# For each ARCH: installs qemu-user-static and debootstrap with apt-get if missing, registers the
# binfmt handler, builds a bookworm minbase root with debootstrap (cached in
# ${FACEAGE_PI_CACHE:-$HOME/.cache/faceage_tf/pi}/ARCH, rebuilt when missing or incomplete),
# copies this checkout into it, installs the runtime with the README's commands for that OS in a
# new venv (kept while setup.py, pyproject.toml and the commands are unchanged; then only the
# project is reinstalled), runs `faceage predict --json` on UTKFace crops (--detector none) and on photos (the
# default detector), runs the same here with $PYTHON (default: .venv-runtime/bin/python, else
# /work/main/.venv-runtime/bin/python) and compares the two with tests/pi/compare_outputs.py.
#
# Exit 0 when every ARCH passed; 1 when one failed or emulation could not be set up (the reason
# is printed). It skips (exit 0, "SKIP: reason") only when FACEAGE_PI=skip is set or when not run
# as root (debootstrap, chroot and binfmt need root).
# Environment: FACEAGE_PI_CACHE, FACEAGE_PI_MIRROR (Debian mirror; default: this machine's),
# FACEAGE_UTKFACE, FACEAGE_AAF, PYTHON, FACEAGE_PI_KEEP=1 (keep the work folder).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${FACEAGE_PI_CACHE:-$HOME/.cache/faceage_tf/pi}
SUITE=bookworm
CROPS=6    # UTKFace crops, run with --detector none
PHOTOS=3   # AAF photos (+ examples/astronaut.jpg), run with the default detector
BOX_TOLERANCE=1.0  # pixels, on boxes and keypoints of the default detector (float: measured 0.0001)

if [ $# -eq 0 ]; then
  echo "usage: $0 ARCH...   (ARCH: arm64 | armhf)" >&2
  exit 2
fi
for arch in "$@"; do
  case $arch in arm64|armhf) ;; *) echo "error: unknown ARCH '$arch' (expected arm64 or armhf)" >&2; exit 2 ;; esac
done

if [ "${FACEAGE_PI:-}" = skip ]; then
  echo "[pi] SKIP: FACEAGE_PI=skip is set; the runtime was not tried on emulated Raspberry Pi OS" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "[pi] SKIP: not root; building and entering a Debian root with debootstrap, chroot and binfmt needs root" >&2
  exit 0
fi

# Several architectures: one child per ARCH, in parallel (a cold run's two debootstraps overlap),
# each line prefixed by its ARCH by the child itself.
if [ $# -gt 1 ]; then
  arches=("$@")
  pids=()
  for arch in "${arches[@]}"; do
    "$0" "$arch" &
    pids+=($!)
  done
  status=0
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "[pi] FAIL: ${arches[$i]} did not pass (see its lines above)" >&2; status=1; }
  done
  exit $status
fi

ARCH=$1
ROOT=$CACHE/$ARCH
START=$SECONDS
say() { echo "[pi $ARCH +$((SECONDS - START))s] $*" >&2; }
fail() { echo "[pi $ARCH] FAIL: $*" >&2; exit 1; }
skip() { echo "[pi $ARCH] SKIP: $*" >&2; exit 0; }

# Tolerances against x86, 2.5x or more the largest differences measured (docs/experiments.md,
# "Raspberry Pi: the emulated check against x86").
# arm64 runs the same LiteRT 2.3.0 as x86; armhf runs tflite-runtime 2.14, whose int8 kernels
# round differently. AGE_RANGE: the ends of the 80% age range (quantiles: they move more).
case $ARCH in
  arm64) QEMU=qemu-aarch64; MACHINE=aarch64; INCLUDE=python3,python3-venv
         AGE_TOLERANCE=0.5; AGE_RANGE_TOLERANCE=2.0; PROBABILITY_TOLERANCE=0.02 ;;
  armhf) QEMU=qemu-arm; MACHINE=armv7l; INCLUDE=python3,python3-venv,python3-numpy,python3-pil
         AGE_TOLERANCE=1.0; AGE_RANGE_TOLERANCE=7.0; PROBABILITY_TOLERANCE=0.05 ;;
esac

mkdir -p "$CACHE"
# One run per ARCH at a time (two engineers, or two checkouts, share the cache).
exec 9>"$CACHE/$ARCH.lock"
flock 9

# -- tools and binfmt (shared by all ARCHs: one at a time) -----------------------------------------

setup_host() {
  if ! command -v debootstrap >/dev/null || ! command -v "$QEMU-static" >/dev/null; then
    say "installing qemu-user-static and debootstrap with apt-get"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        qemu-user-static debootstrap; } > "$CACHE/apt.log" 2>&1 \
      || fail "apt-get could not install qemu-user-static and debootstrap (no network to the Debian mirror?); last lines of $CACHE/apt.log:
$(tail -5 "$CACHE/apt.log")"
  fi
  local binfmt=/proc/sys/fs/binfmt_misc
  if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
      || fail "cannot mount binfmt_misc on $binfmt (a container without that privilege?): no emulation of $ARCH"
  fi
  if [ ! -e "$binfmt/$QEMU" ]; then
    local conf=/usr/lib/binfmt.d/$QEMU.conf
    [ -r "$conf" ] || fail "$conf is missing (qemu-user-static should install it): cannot register the $ARCH emulator"
    cat "$conf" > "$binfmt/register" 2>/dev/null || fail "cannot register $conf in $binfmt/register: no emulation of $ARCH"
  fi
  [ "$(head -1 "$binfmt/$QEMU")" = enabled ] || echo 1 > "$binfmt/$QEMU" \
    || fail "the binfmt handler $binfmt/$QEMU is disabled and cannot be enabled"
}
( flock 8; setup_host ) 8>"$CACHE/host.lock" || exit 1
# Without the F flag the kernel looks for the emulator inside the chroot: copy it in below.
FIX_BINARY=no
grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/$QEMU" && FIX_BINARY=yes

# -- the Debian root --------------------------------------------------------------------------------

# Unmounts whatever is mounted under $1 (left by a killed run), then deletes it, never crossing
# into another file system.
remove_tree() {
  local dir=$1
  [ -e "$dir" ] || return 0
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
  if awk -v d="$dir/" 'index($2, d) == 1 {found=1} END {exit !found}' /proc/mounts; then
    fail "cannot unmount everything under $dir; remove it by hand"
  fi
  rm -rf --one-file-system "$dir"
}

mirror() {
  if [ -n "${FACEAGE_PI_MIRROR:-}" ]; then echo "$FACEAGE_PI_MIRROR"; return; fi
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 ~ /^http/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

ROOT_KEY="$SUITE minbase $INCLUDE"
STAMP=.faceage-root-complete
if [ "$(cat "$ROOT/$STAMP" 2>/dev/null)" != "$ROOT_KEY" ]; then
  partial=$CACHE/$ARCH.partial
  remove_tree "$partial"
  say "building a $SUITE $ARCH root with debootstrap (a few minutes; log: $CACHE/$ARCH.debootstrap.log)"
  debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" "$SUITE" "$partial" "$(mirror)" \
      > "$CACHE/$ARCH.debootstrap.log" 2>&1 \
    || fail "debootstrap of $SUITE $ARCH from $(mirror) failed (no network to the mirror, or no emulation?); last lines of $CACHE/$ARCH.debootstrap.log:
$(tail -5 "$CACHE/$ARCH.debootstrap.log")"
  echo "$ROOT_KEY" > "$partial/$STAMP"
  remove_tree "$ROOT"
  mv "$partial" "$ROOT"
  say "root ready: $ROOT"
else
  say "root cached: $ROOT"
fi

[ "$FIX_BINARY" = yes ] || cp "$(command -v "$QEMU-static")" "$ROOT/usr/bin/"
# DNS and this machine's certificate authorities, so pip inside reaches the registry as pip here does.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
ROOT_CA=
if [ -r "$HOST_CA" ]; then
  cp "$HOST_CA" "$ROOT/etc/faceage-host-ca.crt"
  ROOT_CA=/etc/faceage-host-ca.crt
fi

mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/faceage-pi-$ARCH.XXXXXX")
cleanup() {
  if mountpoint -q "$ROOT/proc"; then umount -l "$ROOT/proc"; fi
  if [ "${FACEAGE_PI_KEEP:-}" = 1 ]; then say "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# A command inside the root, with a clean environment (none of this machine's pip settings).
in_root() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=60 \
    ${ROOT_CA:+PIP_CERT=$ROOT_CA} "$@"
}

machine=$(in_root uname -m 2>&1) || fail "cannot run a program of the $ARCH root under emulation: $machine"
[ "$machine" = "$MACHINE" ] || fail "the $ARCH root reports machine '$machine', expected $MACHINE"

# -- install the runtime as a Raspberry Pi user would (the README's commands) -----------------------

# The venv is made with the README's commands whenever it is missing or what it depends on
# (setup.py, pyproject.toml, the commands) changed; otherwise only the project is reinstalled
# from this checkout, as a user updating it would (this keeps a warm run within minutes).
case $ARCH in
  arm64) INSTALL="python3 -m venv ~/faceage
~/faceage/bin/pip install '.[runtime]'" ;;
  armhf) INSTALL="python3 -m venv --system-site-packages ~/faceage
~/faceage/bin/pip install tflite-runtime==2.14.0 ." ;;
esac
UPDATE="~/faceage/bin/pip install --no-deps --force-reinstall ."
VENV_KEY=$( { cat "$REPO/setup.py" "$REPO/pyproject.toml" 2>/dev/null; echo "$INSTALL"; } | sha256sum | cut -c1-16)
VENV_STAMP=$ROOT/root/faceage/.faceage-venv-key

rm -rf "$ROOT/root/faceage_tf" "$ROOT/root/faceage-inputs"
mkdir -p "$ROOT/root/faceage_tf"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$ROOT/root/faceage_tf"
else
  tar -C "$REPO" --exclude='./.venv*' --exclude=./.git -cf - . | tar -xf - -C "$ROOT/root/faceage_tf"
fi

if [ "$(cat "$VENV_STAMP" 2>/dev/null)" = "$VENV_KEY" ]; then
  say "reinstalling the project into the cached venv: $UPDATE"
  COMMANDS=$UPDATE
else
  say "installing the runtime in a new venv:$(echo; echo "$INSTALL" | sed 's/^/    /')"
  rm -rf "$ROOT/root/faceage"
  COMMANDS=$INSTALL
fi
if ! in_root sh -ec "cd ~/faceage_tf; $COMMANDS" > "$WORK/install.log" 2>&1; then
  if [ "$ARCH" = armhf ] && grep -q "No matching distribution found for tflite-runtime" "$WORK/install.log"; then
    skip "PyPI has no tflite-runtime==2.14.0 wheel for armv7l here: 32-bit Raspberry Pi OS not tried"
  fi
  fail "installing the runtime in the $ARCH root failed; last lines:
$(tail -15 "$WORK/install.log")"
fi
echo "$VENV_KEY" > "$VENV_STAMP"
# pip 23 (bookworm's) warns about the deprecated 'setup.py install' path when there is no pyproject.toml.
if grep -iE "DEPRECATION|setup\.py install" "$WORK/install.log" >&2; then
  fail "pip printed a deprecation warning while installing the project (lines above)"
fi
info=$(in_root /root/faceage/bin/python -c '
import importlib.metadata as m, platform, numpy, PIL
from faceage_tf.runtime import FaceAgePredictor
p = FaceAgePredictor()
installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in m.distributions()}
names = ("numpy", "pillow", "tqdm", "ai-edge-litert", "tflite-runtime")
versions = [f"{n} {installed[n]}" for n in names if n in installed]
print(f"Python {platform.python_version()} on {platform.machine()}, backend {p.backend}, " + ", ".join(versions))
print(numpy.__file__, PIL.__file__)
' 2>&1 | grep -v '^Error in cpuinfo') || fail "the runtime installed in the $ARCH root does not load:
$info"
say "installed: $(echo "$info" | head -1)"
# 32-bit: numpy and Pillow must be Debian's (PyPI has no armv7l wheels; pip would build them for hours).
if [ "$ARCH" = armhf ] && [ "$(echo "$info" | tail -1 | grep -o /usr/lib/python3/dist-packages/ | wc -l)" != 2 ]; then
  fail "numpy or Pillow in the armhf venv is not Debian's: $(echo "$info" | tail -1)"
fi

# -- the same inputs here and in the root -----------------------------------------------------------

UTKFACE=${FACEAGE_UTKFACE:-$REPO/../shared/data/utkface}
AAF=${FACEAGE_AAF:-$REPO/../shared/data/aaf}
mkdir -p "$WORK/inputs/crops" "$WORK/inputs/photos"
# Evenly spaced through the sorted names: the same files on every run, a spread of ages.
pick() {  # pick DIR COUNT
  find "$1" -maxdepth 1 -name '*.jpg' -printf '%f\n' | sort | awk -v n="$2" '{a[NR] = $0} END {for (i = 0; i < n && NR > 0; i++) print a[int(i * NR / n) + 1]}'
}
if [ -d "$UTKFACE" ]; then
  pick "$UTKFACE" "$CROPS" | while read -r f; do cp "$UTKFACE/$f" "$WORK/inputs/crops/"; done
else
  say "UTKFace crops not found at $UTKFACE (set FACEAGE_UTKFACE): crops not compared"
fi
if [ -d "$AAF/images" ]; then
  pick "$AAF/images" "$PHOTOS" | while read -r f; do cp "$AAF/images/$f" "$WORK/inputs/photos/"; done
else
  say "AAF photos not found at $AAF/images (set FACEAGE_AAF): only the example photo compared"
fi
cp "$REPO/examples/astronaut.jpg" "$WORK/inputs/photos/"
cp -r "$WORK/inputs/photos" "$WORK/inputs/photos-small"  # the same photos, for the small model (outputs are keyed by path)
cp -r "$WORK/inputs" "$ROOT/root/faceage-inputs"

# Each line of RUNS: the arguments of one `faceage predict` run, paths relative to inputs/.
RUNS=()
[ -n "$(ls "$WORK/inputs/crops")" ] && RUNS+=("--detector none crops")
RUNS+=("photos" "--model small photos-small")

HOST_PY=${PYTHON:-}
if [ -z "$HOST_PY" ]; then
  if [ -x "$REPO/.venv-runtime/bin/python" ]; then HOST_PY=$REPO/.venv-runtime/bin/python
  elif [ -x /work/main/.venv-runtime/bin/python ]; then HOST_PY=/work/main/.venv-runtime/bin/python
  else HOST_PY=python3; fi
fi
# A relative path (PYTHON=.venv-runtime/bin/python) made absolute, its venv symlink kept.
if [[ $HOST_PY == */* ]]; then
  [ -x "$HOST_PY" ] || fail "PYTHON=$HOST_PY is not an executable"
  HOST_PY=$(cd "$(dirname "$HOST_PY")" && pwd)/$(basename "$HOST_PY")
fi

say "running faceage predict on $(find "$WORK/inputs" -name '*.jpg' | wc -l) images under emulation and here ($HOST_PY)"
: > "$WORK/arm.jsonl"
: > "$WORK/x86.jsonl"
for run in "${RUNS[@]}"; do
  in_root sh -c "cd ~/faceage-inputs && exec ~/faceage/bin/faceage predict --json --no-progress $run" \
      >> "$WORK/arm.jsonl" 2> "$WORK/arm.err" \
    || fail "faceage predict --json $run failed in the $ARCH root:
$(grep -v '^Error in cpuinfo' "$WORK/arm.err" | tail -15)"
  (cd "$WORK/inputs" && PYTHONPATH=$REPO exec "$HOST_PY" -m faceage_tf.cli predict --json --no-progress $run) \
      >> "$WORK/x86.jsonl" 2> "$WORK/x86.err" \
    || fail "faceage predict --json $run failed here with $HOST_PY:
$(tail -15 "$WORK/x86.err")"
done

"$HOST_PY" "$HERE/compare_outputs.py" --label "$ARCH" --age-tolerance "$AGE_TOLERANCE" \
    --age-range-tolerance "$AGE_RANGE_TOLERANCE" --probability-tolerance "$PROBABILITY_TOLERANCE" \
    --box-tolerance "$BOX_TOLERANCE" "$WORK/x86.jsonl" "$WORK/arm.jsonl" \
  || fail "the $ARCH outputs differ from the x86 ones (above)"
say "PASS: same faces, genders and age groups as on x86 (or near ties, listed above); ages within $AGE_TOLERANCE years (80% ranges within $AGE_RANGE_TOLERANCE), probabilities within $PROBABILITY_TOLERANCE, boxes within $BOX_TOLERANCE px"
