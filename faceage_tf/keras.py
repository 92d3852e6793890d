"""The one place that imports TensorFlow and Keras for model code.

tensorflow-model-optimization (QAT) only works with Keras 2 (`tf_keras`), and importing it flips
`TF_USE_LEGACY_KERAS` behind our back, so we set the variable here, before TensorFlow is first
imported, and all model code says `from faceage_tf.keras import keras, tf`.

TensorFlow 2.21 logs oneDNN, CPU-feature and "Could not find cuda drivers" lines, and an
`E0000 ... failed call to cuInit` line where there is no GPU, from C++ before its logging is set
up, so `TF_CPP_MIN_LOG_LEVEL` does not hide them (measured here). They are hidden by closing
stderr while TensorFlow is imported and finds its devices; set `FACEAGE_VERBOSE=1` (the
scripts' `--verbose`) to see them. Disabling oneDNN (`TF_ENABLE_ONEDNN_OPTS=0`) would hide its
line too, but changes the numbers, so it is left on.
"""

import contextlib
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
VERBOSE = os.environ.get("FACEAGE_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def quiet_stderr():
    """Sends file descriptor 2 (C++ logs too) to /dev/null, restoring it even if the body raises;
    does nothing when `VERBOSE`."""
    if VERBOSE:
        yield
        return
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


if not VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ logs after start-up: errors are raised, not logged

with quiet_stderr():
    import tensorflow as tf
    import tf_keras as keras

    tf.config.list_physical_devices()  # the CUDA probe logs its failure here

if not VERBOSE:
    tf.get_logger().setLevel("ERROR")  # TensorFlow's Python warnings (absl), e.g. during TFLite conversion

__all__ = ["keras", "tf", "VERBOSE", "quiet_stderr"]
