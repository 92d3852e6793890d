"""TFLite interpreter backends, tried in order: ai-edge-litert, tflite-runtime, then `tf.lite`.

Only the backend that is used gets imported; TensorFlow (`tf.lite`) is the last resort and is
imported lazily, so the runtime stays light wherever LiteRT or tflite-runtime is installed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile

BACKENDS = ("ai-edge-litert", "tflite-runtime", "tf.lite")

_MODULES = {
    "ai-edge-litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite-runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tf.lite": ("tensorflow", "lite.Interpreter"),
}

# Backends older than the TensorFlow that made the model: a kernel they lack can end the whole
# process natively (SIGABRT, no Python exception) instead of raising. They first load and run the
# model once in a child process, so that such a crash becomes an error message. (Measured with
# tflite-runtime 2.14.0 and numpy 1.26: it runs the packaged int8 model on x86-64 and on emulated
# armv7l; it refuses dynamic-range models made by TF 2.21 with an error.)
PROBED_BACKENDS = ("tflite-runtime",)

_PROBE = """
import importlib, sys, numpy as np
Interpreter = importlib.import_module("{module}")
for part in "{attribute}".split("."):
    Interpreter = getattr(Interpreter, part)
interpreter = Interpreter(model_content=sys.stdin.buffer.read(), num_threads=1)
interpreter.allocate_tensors()
for d in interpreter.get_input_details():
    interpreter.set_tensor(d["index"], np.zeros([max(1, n) for n in d["shape_signature"]], d["dtype"]))
interpreter.invoke()
"""

INSTALL_HINT = "pip install 'faceage_tf[runtime]' (ai-edge-litert), or tflite-runtime with numpy<2"
MAX_THREADS = 64
# The interpreters' native code prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
# on every load; it is dropped unless FACEAGE_VERBOSE is set (`faceage --verbose` sets it).
VERBOSE_ENV = "FACEAGE_VERBOSE"


@contextlib.contextmanager
def quiet_native_stderr():
    """Holds back what native code writes to file descriptor 2 inside the block, then writes back
    every line but the interpreters' INFO lines (all of it when FACEAGE_VERBOSE is set)."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode("utf-8", "replace").splitlines(True) if not line.startswith("INFO: ")]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class BackendError(RuntimeError):
    """No TFLite interpreter is installed, or none of them can run the model."""


def _interpreter_class(backend: str):
    module_name, attribute = _MODULES[backend]
    module = importlib.import_module(module_name)
    for part in attribute.split("."):
        module = getattr(module, part)
    return module


def load_interpreter(model_content: bytes, name: str, num_threads: int | None = None, backend: str | None = None):
    """Creates an interpreter for TFLite bytes with the first backend that can run them.

    Args:
        model_content: the `.tflite` file's bytes.
        name: the file name, for error messages.
        num_threads: interpreter threads (None: the backend's default).
        backend: one of `BACKENDS` to use only that one (None: try them in order).

    Returns:
        (interpreter with tensors allocated, backend name).

    Raises:
        BackendError: no backend is installed, or every installed one failed to load the model
            (the message lists each backend and its error).
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")
    if num_threads is not None and (not isinstance(num_threads, int) or not 1 <= num_threads <= MAX_THREADS):
        raise ValueError(f"num_threads must be an integer from 1 to {MAX_THREADS}, or None. "
                         f"Received: num_threads={num_threads!r}")
    problems = []
    for candidate in [backend] if backend else BACKENDS:
        try:
            interpreter_class = _interpreter_class(candidate)
        except ImportError as e:
            problems.append(f"{candidate}: not installed ({e.__class__.__name__}: {e})")
            continue
        except Exception as e:  # e.g. tflite-runtime's "_ARRAY_API not found" under numpy 2
            problems.append(f"{candidate}: cannot be imported ({e.__class__.__name__}: {e})")
            continue
        if candidate in PROBED_BACKENDS:
            failure = probe_in_child(candidate, model_content)
            if failure:
                problems.append(f"{candidate}: cannot load the model ({failure})")
                continue
        try:
            with quiet_native_stderr():
                interpreter = interpreter_class(model_content=model_content, num_threads=num_threads)
                interpreter.allocate_tensors()
        except Exception as e:  # e.g. an op version this backend does not have
            problems.append(f"{candidate}: cannot load the model ({e.__class__.__name__}: {_short(str(e))})")
            continue
        return interpreter, candidate
    raise BackendError(f"{name}: no TFLite interpreter could run this model:\n  " + "\n  ".join(problems)
                       + f"\nInstall one: {INSTALL_HINT}")


def _short(text: str, limit: int = 300) -> str:
    """An error message cut to `limit` characters: some embed the model's bytes."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def first_installed() -> str | None:
    """The first of `BACKENDS` that is installed: the one `load_interpreter` tries first."""
    for backend in BACKENDS:
        if importlib.util.find_spec(_MODULES[backend][0].split(".")[0]) is not None:
            return backend
    return None


def probe_in_child(backend: str, model_content: bytes) -> str | None:
    """Loads and runs the model once in a child process; what went wrong, or None if it worked."""
    module, attribute = _MODULES[backend]
    try:
        child = subprocess.run([sys.executable, "-c", _PROBE.format(module=module, attribute=attribute)],
                               input=model_content, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "loading it in a child process took over 120 s"
    if child.returncode == 0:
        return None
    lines = [line for line in child.stderr.decode("utf-8", "replace").splitlines() if line.strip() and not line.startswith("INFO:")]
    if child.returncode < 0:  # native code's last words, e.g. "free(): double free detected", say why
        said = f" ({_short(lines[-1])})" if lines else ""
        return f"a test process loading it was killed by {signal.Signals(-child.returncode).name}{said}"
    return "a test process loading it failed" + (f": {_short(lines[-1])}" if lines else f" (exit status {child.returncode})")
