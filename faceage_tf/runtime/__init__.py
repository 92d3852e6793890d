"""The on-device runtime: numpy, Pillow and a TFLite interpreter only (never TensorFlow at import).

`FaceAgePredictor` loads a faceage `.tflite` model, checks it against its model card, and
predicts gender, age group and expected age for face crops or for every face in a photo.
"""

from faceage_tf.modelcard import ModelFileError
from faceage_tf.preprocess import ImageError
from faceage_tf.runtime.backends import BACKENDS, BackendError
from faceage_tf.runtime.detectors import DETECTOR_CHOICES, DETECTORS, BlazeFaceDetector, DetectorError, Face, FaceCrop, HaarDetector
from faceage_tf.runtime.predictor import DEFAULT_MODEL, PACKAGED_MODELS, FaceAgePredictor, FacePrediction, read_model

__all__ = ["BACKENDS", "DEFAULT_MODEL", "PACKAGED_MODELS", "DETECTOR_CHOICES", "DETECTORS", "BackendError", "BlazeFaceDetector",
           "DetectorError", "Face", "FaceAgePredictor", "FaceCrop", "FacePrediction", "HaarDetector", "ImageError",
           "ModelFileError", "read_model"]
