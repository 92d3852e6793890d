"""Face detectors: where the faces are in a photo, as `Face`s (box, score, keypoints) in pixels.

A detector is anything with a `detect(image) -> faces` method, `image` being an RGB uint8 numpy
array (H, W, 3) (or the RGB Pillow image itself for a detector whose `takes_pil` is True, which
spares converting each photo twice) and each face a `Face` or a plain box (left, top, right, bottom). Faces with
keypoints are aligned to the model card's template (`faceage_tf.align`); box-only faces are cut
by the detector's `box_crop` convention (`FaceCrop`).

`DETECTORS` maps each name to its class; "auto" is the bundled BlazeFace, which needs no OpenCV.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from PIL import Image

from faceage_tf.runtime import blazeface

Box = tuple[float, float, float, float]


class DetectorError(RuntimeError):
    """A detector that cannot be used here (unknown name, OpenCV not installed, malformed output)."""


@dataclasses.dataclass(frozen=True)
class Face:
    """A detected face: box (left, top, right, bottom) in pixels, the detector's score (None when
    it gives none), and keypoints (6, 2) in pixels in BlazeFace's order (None for box-only detectors)."""

    box: Box
    score: Optional[float] = None
    keypoints: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """How a box-only detector's face box becomes the model's input crop: a square of side
    `scale * max(box width, box height)`, centred on the box centre moved down by `shift_y * side`."""

    scale: float = 1.0
    shift_y: float = 0.0

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"crop.scale must be positive. Received: scale={self.scale!r}")
        if not -1.0 < self.shift_y < 1.0:
            raise ValueError(f"crop.shift_y must be in (-1, 1). Received: shift_y={self.shift_y!r}")

    def expand(self, box: Box) -> Box:
        """The crop (left, top, right, bottom) for a face box (left, top, right, bottom)."""
        left, top, right, bottom = box
        side = self.scale * max(right - left, bottom - top)
        cx = (left + right) / 2
        cy = (top + bottom) / 2 + self.shift_y * side
        return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


class BlazeFaceDetector:
    """MediaPipe's BlazeFace, bundled (`faceage_tf/assets/blazeface/`): boxes, scores and six keypoints.

    Which of the two models runs is chosen per photo, from measurements of both on real faces of
    all sizes (`benchmarks/detector_sizes.py`; figures in docs/experiments.md, "Which detector
    model when"):
    1. The short-range model (128 px, about 1 ms) on the whole photo, keeping faces that score at
       least `CONFIDENT`. It finds faces whose box is at least about a seventh of the photo's
       longer side: portraits, head-and-shoulder photos, selfies. When the largest face it finds
       is at least `LARGE_FACE` of that side, that is the answer.
    2. Otherwise (no face, or only small ones: a wider shot) the full-range model (192 px, about
       3.5 ms) runs too; it finds faces down to about a tenth of the longer side, and the
       detections of both are merged by weighted non-maximum suppression.
    3. If neither finds a face, the short-range model again at its own threshold with a black
       border of `CROP_MARGIN` around the photo: a tight face crop (like UTKFace's) lacks the
       context the detector was trained with, and the border gives it back.

    Args:
        min_score: the lowest score kept by steps 2 and 3 (default: each model's own, 0.5 short /
            0.6 full).
        num_threads, backend: as for `FaceAgePredictor`.
    """

    LARGE_FACE = 0.2  # box width / longer side from which the short-range pass alone is trusted
    # Step 1's threshold: faces in photos score at least 0.86 (1st percentile over 545 AAF photos);
    # blurred backgrounds give whole-photo false faces scoring 0.5-0.65 at the model's own 0.5.
    CONFIDENT = 0.75
    CROP_MARGIN = 0.25  # border added in step 3, as a fraction of the longer side
    takes_pil = True

    def __init__(self, *, min_score: float | None = None, num_threads: int | None = None, backend: str | None = None):
        self.min_score, self.num_threads, self.backend = min_score, num_threads, backend
        self._models: dict[str, blazeface.BlazeFace] = {}

    def _run(self, model: str, picture: Image.Image, margin: float = 0.0, min_score: float | None = None):
        if model not in self._models:  # loaded on first use: most photos never need the full-range model
            self._models[model] = blazeface.BlazeFace(model, num_threads=self.num_threads, backend=self.backend)
        return self._models[model].detect(picture, margin=margin, min_score=min_score or self.min_score)

    def detect(self, image) -> list[Face]:
        """Faces in an RGB image (uint8 array (H, W, 3) or Pillow image), largest first."""
        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
        boxes, keypoints, scores = self._run("short", picture, min_score=max(self.CONFIDENT, self.min_score or 0))
        widest = float((boxes[:, 2] - boxes[:, 0]).max()) if len(scores) else 0.0
        if widest < self.LARGE_FACE * max(picture.size):
            full = self._run("full", picture)
            boxes, keypoints, scores = blazeface.weighted_nms(*(np.concatenate([a, b]) for a, b in
                                                                zip((boxes, keypoints, scores), full)))
        if not len(scores):
            boxes, keypoints, scores = self._run("short", picture, self.CROP_MARGIN)
        faces = [Face(tuple(float(v) for v in box), float(score), points)
                 for box, points, score in zip(boxes, keypoints, scores)]
        return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (`opencv-python-headless<5`, `pip install 'faceage_tf[detect]'`).

    Box-only: its boxes are cut by `box_crop`, measured to match UTKFace's framing on UTKFace crops
    (median scale 0.97, shift_y 0.087 over 600 faces; `benchmarks/calibrate_crop.py` in git history).
    Large photos are scaled down to at most `max_side` pixels for detection (faster; the boxes are
    scaled back). Weak on tight face crops and 25x slower than BlazeFace: kept for comparison.
    """

    CASCADE = "haarcascade_frontalface_default.xml"
    box_crop = FaceCrop(scale=0.97, shift_y=0.09)

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 max_side: int = 800, num_threads: int | None = None, backend: str | None = None):
        try:
            import cv2
        except ImportError as e:
            raise DetectorError(
                "detector 'haar' needs OpenCV: pip install 'faceage_tf[detect]' "
                f"(opencv-python-headless<5). Import failed: {e}") from None
        path = cv2.data.haarcascades + self.CASCADE
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorError(f"OpenCV could not load its Haar cascade {path} (OpenCV 5 no longer ships it; use <5)")
        self._cv2 = cv2
        self.scale_factor, self.min_neighbors, self.min_size, self.max_side = scale_factor, min_neighbors, min_size, max_side

    def detect(self, image) -> list[Face]:
        """Face boxes in an RGB uint8 image (H, W, 3), largest first."""
        cv2 = self._cv2
        grey = cv2.cvtColor(np.ascontiguousarray(np.asarray(image, np.uint8)), cv2.COLOR_RGB2GRAY)
        shrink = min(1.0, self.max_side / max(grey.shape))
        size = (round(grey.shape[1] * shrink), round(grey.shape[0] * shrink))
        if min(size) < self.min_size:  # smaller than the smallest face it looks for (1xN images too)
            return []
        if shrink < 1.0:
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        boxes = [(x / shrink, y / shrink, (x + w) / shrink, (y + h) / shrink) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
        return [Face(box) for box in sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))]


# Name -> class. "none" means every image already is one face crop in the model's framing.
DETECTORS = {"blazeface": BlazeFaceDetector, "haar": HaarDetector}
AUTO = "blazeface"  # what "auto" resolves to: needs nothing beyond the runtime
DETECTOR_CHOICES = ("auto", "none", *DETECTORS)


def resolve(name: str) -> str:
    """A detector name with "auto" resolved."""
    return AUTO if name == "auto" else name


def make_detector(detector, *, num_threads: int | None = None, backend: str | None = None):
    """A detector from a name in `DETECTOR_CHOICES` ("none" -> None) or an object with a `detect` method."""
    if detector is None or detector == "none":
        return None
    if isinstance(detector, str):
        if resolve(detector) not in DETECTORS:
            raise DetectorError(f"detector must be one of {DETECTOR_CHOICES} or an object with a "
                                f"detect(image) -> faces method. Received: detector={detector!r}")
        return DETECTORS[resolve(detector)](num_threads=num_threads, backend=backend)
    if hasattr(detector, "detect") and callable(detector.detect):
        return detector
    raise DetectorError(f"detector must be one of {DETECTOR_CHOICES} or an object with a detect(image) -> faces "
                        f"method. Received: detector={detector!r}")


def check_faces(found, width: int, height: int) -> list[Face]:
    """A detector's output as a list of `Face`s; plain boxes are accepted. Raises DetectorError on
    malformed boxes or keypoints."""
    result = []
    for item in found if found is not None else []:
        face = item if isinstance(item, Face) else Face(item)
        box = tuple(float(v) for v in np.asarray(face.box, dtype=np.float64).reshape(-1))
        if len(box) != 4 or not all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise DetectorError(f"detector returned an invalid box {face.box!r}; expected (left, top, right, bottom) "
                                f"with right > left and bottom > top, in pixels of the {width}x{height} image")
        keypoints = None
        if face.keypoints is not None:
            keypoints = np.asarray(face.keypoints, np.float64)
            if keypoints.ndim != 2 or keypoints.shape[1] != 2 or len(keypoints) < 4 or not np.isfinite(keypoints).all():
                raise DetectorError(f"detector returned invalid keypoints {face.keypoints!r}; expected (K >= 4, 2) "
                                    "finite pixels: right eye, left eye, nose tip, mouth, ...")
        result.append(Face(box, face.score, keypoints))
    return result
