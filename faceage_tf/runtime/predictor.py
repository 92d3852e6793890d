"""`FaceAgePredictor`: a `.tflite` model with its model card, preprocessing and face detection.

    from faceage_tf.runtime import FaceAgePredictor
    predictor = FaceAgePredictor()          # the packaged model and the bundled BlazeFace detector
    for face in predictor.predict("photo.jpg"):
        print(face.box, face.gender, face.age_group, round(face.age))

Needs numpy, Pillow and a TFLite interpreter (see `backends`); never TensorFlow unless no other
interpreter is installed.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from faceage_tf import modelcard
from faceage_tf.align import align_face
from faceage_tf.modelcard import ModelFileError
from faceage_tf.preprocess import ImageError, ImageSource, crop, normalize, open_image, read_regular_file, resize_face
from faceage_tf.runtime.backends import load_interpreter
from faceage_tf.runtime.detectors import Box, Face, FaceCrop, check_faces, make_detector
from faceage_tf.schema import OUTPUT_NAMES, output_key

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
# The packaged models by name, each with its model card built in (`faceage info --model NAME`).
PACKAGED_MODELS = {"default": "faceage.tflite", "small": "faceage-small.tflite"}
DEFAULT_MODEL = os.path.join(ASSETS, PACKAGED_MODELS["default"])
MAX_MODEL_BYTES = 100_000_000  # refused before reading: ours are under 5 MB
BATCH_SIZE = 32  # faces per interpreter call in predict_batch


@dataclasses.dataclass
class FacePrediction:
    """One face: where it is in the image and what the model says.

    `box` is (left, top, right, bottom) in pixels; `detection_score` and `keypoints` ((x, y)
    pixels: right eye, left eye, nose tip, mouth, right ear, left ear) come from the detector
    (None when it gives none, or with detector "none").
    """

    box: Box
    gender: str
    gender_probability: float
    age_group: str
    age_group_probability: float
    age: float  # expected age in years
    age_range: tuple[float, float]  # the 80% interval of the age (see `age_interval`)
    detection_score: float | None = None
    keypoints: list[tuple[float, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"box": list(self.box), "age_range": list(self.age_range)}


AGE_RANGE_COVERAGE = 0.8


def age_interval(group_probabilities: np.ndarray, schema, coverage: float = AGE_RANGE_COVERAGE) -> tuple[float, float]:
    """The central `coverage` interval of the age, in years, from the age-group probabilities:
    each group's probability spread evenly over its years (the last group up to `schema.max_age`),
    cut at the (1 - coverage) / 2 and (1 + coverage) / 2 quantiles. How often the true age falls
    inside it is measured per data set in `benchmarks/photos.py` (the README gives the figures)."""
    edges = np.array(list(schema.age_group_edges) + [schema.max_age + 1], np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(group_probabilities, np.float64))])
    cumulative /= cumulative[-1]
    low, high = np.interp([(1 - coverage) / 2, (1 + coverage) / 2], cumulative, edges)
    return float(low), float(high)


def _shape(values) -> list:
    """A shape with unknown dimensions as None (cards write None, interpreters -1)."""
    return [None if v is None or v < 0 else int(v) for v in values]


def model_file(model: str | os.PathLike | None) -> str:
    """The file of `model`: a packaged model's name (`PACKAGED_MODELS`; None is "default") or a
    path (a file named like a packaged model is given as ./NAME)."""
    if model is None or model in PACKAGED_MODELS:
        path = os.path.join(ASSETS, PACKAGED_MODELS[model or "default"])
        if not os.path.exists(path):
            raise ModelFileError(f"{path}: the packaged {model or 'default'} model is missing; reinstall "
                                 "faceage_tf or pass model_path=... (faceage --model ...)")
        return path
    return os.fspath(model)


def read_model(model_path: str | os.PathLike | None) -> tuple[bytes, dict[str, Any], str]:
    """(file bytes, model card, file name) of a faceage `.tflite` file (or packaged model, see
    `model_file`), its card checked and its sha256 verified (`modelcard.verify`).

    Raises:
        ModelFileError: missing or not a regular file, not a TFLite model, truncated or modified,
            no model card or an inconsistent one.
    """
    name = model_file(model_path)
    data = read_regular_file(name, MAX_MODEL_BYTES, ModelFileError, ".tflite model")
    return data, modelcard.verify(data, name), name


class FaceAgePredictor:
    """Age and gender of faces with a faceage `.tflite` model.

    Args:
        model_path: a packaged model, "default" (None) or "small" (see the README for which to
            use when), or a `.tflite` file exported by faceage_tf.
        detector: "auto" or "blazeface" (the bundled BlazeFace, faces aligned by their keypoints),
            "haar" (OpenCV), "none" (every image already is one face crop in the model's framing,
            like UTKFace's), or any object with a `detect(rgb_uint8_array) -> [Face or (left, top,
            right, bottom), ...]` method (see `faceage_tf.runtime.detectors`).
        num_threads: interpreter threads (None: the backend's default).
        backend: force one interpreter backend ("ai-edge-litert", "tflite-runtime", "tf.lite");
            None tries them in that order.

    Attributes:
        card: the model card (dict). schema: its `Schema`. backend: the interpreter in use.

    Raises:
        ModelFileError: the file is not a usable faceage model (the message says why).
        BackendError: no installed interpreter can run it. DetectorError: bad or unavailable detector.
    """

    def __init__(self, model_path=None, detector="auto", num_threads: int | None = None, *, backend: str | None = None):
        data, self.card, self.model_name = read_model(model_path)
        self.model_path = self.model_name
        self.model_bytes = len(data)
        self.schema = modelcard.card_schema(self.card, self.model_name)
        self.num_threads = num_threads
        self.interpreter, self.backend = load_interpreter(data, self.model_name, num_threads, backend)
        self._runner = self._signature_runner()
        self.detector = make_detector(detector, num_threads=num_threads, backend=backend)

    # -- model contract ----------------------------------------------------------------------

    def _signature_runner(self):
        """The model's signature runner, after checking its tensors against the card's (read_card has
        checked the card against its schema)."""
        name = self.model_name
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise ModelFileError(f"{name}: TFLite model has no signature; export it with faceage_tf.export")
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        runner = self.interpreter.get_signature_runner(key)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{name}: expected one input, the model has {sorted(inputs)}")
        self._input_name, self._input = next(iter(inputs.items()))
        self._outputs = {output_key(k): v for k, v in outputs.items()}
        self._output_names = {output_key(k): k for k in outputs}
        found = {"inputs": {output_key(self._input_name): _shape(self._input["shape_signature"])},
                 "outputs": {k: _shape(v["shape_signature"]) for k, v in self._outputs.items()}}
        found = {part: {k: [None] + v[1:] for k, v in tensors.items()} for part, tensors in found.items()}
        if found != self.schema.tensor_shapes():
            raise ModelFileError(f"{name}: model card does not match the model: card says "
                                 f"{self.schema.tensor_shapes()}, model has {found}")
        return runner

    # -- preprocessing -----------------------------------------------------------------------

    def preprocess(self, image: ImageSource) -> np.ndarray:
        """A face crop (file, bytes, Pillow image or uint8 array) as the model's float32 input (S, S, 3)."""
        return normalize(resize_face(open_image(image), self.schema.input_size), self.schema)

    # -- inference ---------------------------------------------------------------------------

    def predict_tensor(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs for preprocessed faces (N, S, S, 3): {"gender": (N, 2), "age_group": (N, G), "age": (N, 1)}."""
        size = self.schema.input_size
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(f"batch must have shape (N, {size}, {size}, 3). Received: shape={batch.shape}")
        if len(batch) == 0:
            return {k: np.zeros((0, v["shape_signature"][-1]), np.float32) for k, v in self._outputs.items()}
        fixed = int(self._input["shape_signature"][0])
        step = fixed if fixed > 0 else len(batch)
        parts = [self._invoke(batch[i:i + step], step if fixed > 0 else None) for i in range(0, len(batch), step)]
        return {k: np.concatenate([p[k] for p in parts]) for k in OUTPUT_NAMES}

    def _invoke(self, batch: np.ndarray, fixed_batch: int | None) -> dict[str, np.ndarray]:
        count = len(batch)
        if fixed_batch and count < fixed_batch:  # a model with a fixed batch size: pad the last chunk
            batch = np.concatenate([batch, np.zeros((fixed_batch - count,) + batch.shape[1:], batch.dtype)])
        raw = self._runner(**{self._input_name: _quantize(batch, self._input)})
        return {k: _dequantize(raw[self._output_names[k]], self._outputs[k])[:count] for k in OUTPUT_NAMES}

    def predict(self, image: ImageSource) -> list[FacePrediction]:
        """Every face in an image (with detector "none": the image is one face crop)."""
        picture = open_image(image)
        width, height = picture.size
        if self.detector is None:
            faces = [Face((0.0, 0.0, float(width), float(height)))]
            crops = [resize_face(picture, self.schema.input_size)]
        else:
            found = self.detector.detect(picture if getattr(self.detector, "takes_pil", False) else np.asarray(picture))
            faces = check_faces(found, width, height)
            crops = [self.face_crop(picture, face) for face in faces]
        return self._predictions([normalize(c, self.schema) for c in crops], faces)

    def face_crop(self, picture, face: Face) -> np.ndarray:
        """The model's uint8 input crop (S, S, 3) of a detected face: aligned to the card's template
        by its keypoints, or cut by the detector's box convention when it gives none."""
        size = self.schema.input_size
        if face.keypoints is not None:
            return np.asarray(align_face(picture, face.keypoints, self.schema.template, size))
        box_crop = getattr(self.detector, "box_crop", FaceCrop())
        return resize_face(crop(picture, box_crop.expand(face.box)), size)

    def predict_batch(self, crops: Sequence[ImageSource], *, errors: str = "raise") -> list:
        """One prediction per face crop, run in batches (the detector is not used).

        Args:
            crops: files, bytes, Pillow images or uint8 arrays, each one face crop.
            errors: "raise" (default) raises `ImageError` at the first bad crop; "return" puts the
                `ImageError` in that crop's place and predicts the rest.
        """
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return'. Received: errors={errors!r}")
        tensors, faces, problems = [], [], {}
        for index, source in enumerate(crops):
            try:
                picture = open_image(source)
            except ImageError as e:
                if errors == "raise":
                    raise
                problems[index] = e
                continue
            faces.append(Face((0.0, 0.0, float(picture.width), float(picture.height))))
            tensors.append(normalize(resize_face(picture, self.schema.input_size), self.schema))
        predictions = iter(self._predictions(tensors, faces))
        return [problems[i] if i in problems else next(predictions) for i in range(len(faces) + len(problems))]

    def _predictions(self, tensors: list[np.ndarray], faces: list[Face]) -> list[FacePrediction]:
        results = []
        for start in range(0, len(tensors), BATCH_SIZE):
            out = self.predict_tensor(np.stack(tensors[start:start + BATCH_SIZE]))
            for i, face in enumerate(faces[start:start + BATCH_SIZE]):
                gender, group = int(np.argmax(out["gender"][i])), int(np.argmax(out["age_group"][i]))
                results.append(FacePrediction(
                    box=tuple(float(v) for v in face.box),
                    gender=self.schema.gender_labels[gender],
                    gender_probability=float(out["gender"][i, gender]),
                    age_group=self.schema.age_group_labels[group],
                    age_group_probability=float(out["age_group"][i, group]),
                    age=float(out["age"][i, 0]),
                    age_range=age_interval(out["age_group"][i], self.schema),
                    detection_score=face.score,
                    keypoints=None if face.keypoints is None else [(float(x), float(y)) for x, y in face.keypoints],
                ))
        return results


def _quantize(batch: np.ndarray, details: dict) -> np.ndarray:
    """Float input for a float model; quantised with the tensor's scale/zero point for an integer one."""
    dtype = details["dtype"]
    if np.issubdtype(dtype, np.floating):
        return batch.astype(dtype)
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
