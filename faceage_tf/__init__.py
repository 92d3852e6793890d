"""faceage_tf: age and gender from face images, trained in Keras, run anywhere with LiteRT.

Importing this package never imports TensorFlow: the runtime (`faceage_tf.runtime`) needs only
numpy, Pillow and a TFLite interpreter. Model code lives in `faceage_tf.models` (TensorFlow).
"""

from faceage_tf.schema import AGE_GROUP_PRESETS, GENDER_LABELS, FaceTemplate, Schema, preset

__version__ = "0.1.0"

__all__ = ["AGE_GROUP_PRESETS", "GENDER_LABELS", "FaceTemplate", "Schema", "preset", "__version__"]
