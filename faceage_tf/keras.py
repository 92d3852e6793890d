"""The one place that imports TensorFlow and Keras for model code.

tensorflow-model-optimization (QAT) only works with Keras 2 (`tf_keras`), and importing it flips
`TF_USE_LEGACY_KERAS` behind our back, so we set the variable here, before TensorFlow is first
imported, and all model code says `from faceage_tf.keras import keras, tf`.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide the CUDA-not-found noise on CPU hosts

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
