"""Face detectors: where the faces are in a photo, as boxes (left, top, right, bottom) in pixels.

A detector is anything with a `detect(image) -> boxes` method, `image` being an RGB uint8 numpy
array (H, W, 3). The predictor expands each box to the model's crop convention
(`Schema.crop`, measured for the Haar boxes below by `benchmarks/calibrate_crop.py`).
"""

from __future__ import annotations


import numpy as np

Box = tuple[float, float, float, float]

DETECTORS = ("none", "haar")


class DetectorError(RuntimeError):
    """A detector that cannot be used here (unknown name, OpenCV not installed)."""


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (`opencv-python-headless<5`, `pip install 'faceage_tf[detect]'`).

    Large photos are scaled down to at most `max_side` pixels for detection (faster; the boxes are
    scaled back). Weak on tight face crops: use `detector="none"` for those.
    """

    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 max_side: int = 800):
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

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes in an RGB uint8 image (H, W, 3), largest first."""
        cv2 = self._cv2
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        shrink = min(1.0, self.max_side / max(grey.shape))
        if shrink < 1.0:
            grey = cv2.resize(grey, (round(grey.shape[1] * shrink), round(grey.shape[0] * shrink)),
                              interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        boxes = [(x / shrink, y / shrink, (x + w) / shrink, (y + h) / shrink) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def make_detector(detector):
    """A detector from a name ('none' -> None, 'haar') or an object with a `detect` method."""
    if detector is None or detector == "none":
        return None
    if detector == "haar":
        return HaarDetector()
    if hasattr(detector, "detect") and callable(detector.detect):
        return detector
    raise DetectorError(f"detector must be one of {DETECTORS} or an object with a detect(image) -> boxes method. "
                        f"Received: detector={detector!r}")


def check_boxes(boxes, width: int, height: int) -> list[Box]:
    """A detector's output as a list of float boxes; raises DetectorError on malformed ones."""
    result = []
    for box in boxes if boxes is not None else []:
        values = tuple(float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1))
        if len(values) != 4 or not all(np.isfinite(values)) or values[2] <= values[0] or values[3] <= values[1]:
            raise DetectorError(f"detector returned an invalid box {box!r}; expected (left, top, right, bottom) "
                                f"with right > left and bottom > top, in pixels of the {width}x{height} image")
        result.append(values)
    return result
