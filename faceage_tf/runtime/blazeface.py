"""MediaPipe's BlazeFace face detector: the bundled `.tflite` models and our own decoding of them.

The models (`faceage_tf/assets/blazeface/`, Apache-2.0, see NOTICE there) take a square RGB image
in [-1, 1] and return, for every anchor, 16 regression values (box centre and size, then six
keypoints: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion, the
subject's right and left) and one score logit. Everything here is numpy and Pillow: letterboxing
so that any aspect ratio works, anchors, sigmoid scores and MediaPipe's weighted non-maximum
suppression. The Android core (`android_demo/core`) implements the same steps and is checked
against golden vectors from this module.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
from PIL import Image

from faceage_tf.runtime.backends import load_interpreter

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "blazeface")
NUM_KEYPOINTS = 6
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for both models


@dataclasses.dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model: its file, square input side and anchor layout.

    `anchor_layers` lists (stride, anchors per cell) per feature map, in output order; MediaPipe's
    SSD anchor options reduce to this for BlazeFace (fixed anchor size, offset 0.5).
    """

    name: str
    file: str
    input_size: int
    anchor_layers: tuple[tuple[int, int], ...]
    min_score: float  # MediaPipe's min_score_thresh for the model

    @property
    def path(self) -> str:
        return os.path.join(ASSETS, self.file)


SHORT_RANGE = BlazeFaceSpec("short", "face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), 0.5)
FULL_RANGE = BlazeFaceSpec("full", "face_detection_full_range.tflite", 192, ((4, 1),), 0.6)
SPECS = {spec.name: spec for spec in (SHORT_RANGE, FULL_RANGE)}


@functools.lru_cache(maxsize=None)
def anchor_centres(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres (N, 2) as x, y in [0, 1] of the square input: cells row by row, the anchors
    of one cell next to each other, layers in output order."""
    centres = []
    for stride, per_cell in spec.anchor_layers:
        cells = -(-spec.input_size // stride)
        y, x = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(x + 0.5) / cells, (y + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    centres = np.concatenate(centres).astype(np.float32)
    centres.setflags(write=False)  # cached: shared by every call
    return centres


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """Where the image sits in the detector's square input: image pixel = (input pixel - offset) / scale."""

    size: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 2) in normalised input coordinates [0, 1] to image pixels."""
        points = np.asarray(points, dtype=np.float64) * self.size
        return np.stack([(points[..., 0] - self.offset_x) / self.scale_x,
                         (points[..., 1] - self.offset_y) / self.scale_y], axis=-1)


def letterbox(image: Image.Image, size: int, margin: float = 0.0) -> tuple[np.ndarray, Letterbox]:
    """The image scaled to fit a `size` x `size` square (aspect ratio kept, Pillow BILINEAR),
    centred, the rest black, as the detector's input (1, size, size, 3) float32 in [-1, 1].

    `margin` adds a black border of that fraction of the image's longer side on every side
    first, so that a face that fills the whole image (a tight crop) is seen with its surroundings,
    as the detector was trained.
    """
    width, height = image.size
    span = max(width, height) * (1.0 + 2.0 * margin)
    new_w, new_h = max(1, round(width * size / span)), max(1, round(height * size / span))
    offset_x, offset_y = (size - new_w) // 2, (size - new_h) // 2
    pixels = np.zeros((size, size, 3), np.float32)
    # reducing_gap: a large photo is first shrunk by an integer factor (box filter), which makes a
    # 12 MP photo's letterbox many times faster and changes the result by about one grey level.
    resized = np.asarray(image.resize((new_w, new_h), Image.BILINEAR, reducing_gap=3.0), dtype=np.float32)
    pixels[offset_y:offset_y + new_h, offset_x:offset_x + new_w] = resized
    tensor = (pixels / 127.5 - 1.0)[None]
    return tensor, Letterbox(size, new_w / width, new_h / height, offset_x, offset_y)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, spec: BlazeFaceSpec, min_score: float | None = None):
    """The model's raw outputs to detections above `min_score` (default: the model's own).

    Returns:
        boxes (M, 4) as left, top, right, bottom; keypoints (M, 6, 2); scores (M,): all in
        normalised input coordinates, in anchor order.
    """
    min_score = spec.min_score if min_score is None else min_score
    anchors = anchor_centres(spec)
    raw_boxes = np.asarray(raw_boxes, np.float32).reshape(len(anchors), 4 + 2 * NUM_KEYPOINTS)
    logits = np.clip(np.asarray(raw_scores, np.float64).reshape(len(anchors)), -100.0, 100.0)
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    keep = scores >= min_score
    values, centres = raw_boxes[keep] / np.float32(spec.input_size), anchors[keep]
    cx, cy = values[:, 0] + centres[:, 0], values[:, 1] + centres[:, 1]
    half_w, half_h = values[:, 2] / 2, values[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
    keypoints = values[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centres[:, None, :]
    return boxes, keypoints, scores[keep]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with each of `boxes` (N, 4)."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU):
    """MediaPipe's weighted non-maximum suppression: the best remaining detection and every
    remaining one that overlaps it by IoU > `iou_threshold` form a cluster; the cluster's box and
    keypoints are their score-weighted mean, its score the best one's. Returns the same triple
    as `decode`, best first."""
    remaining = np.argsort(-scores, kind="stable")
    out_boxes, out_keypoints, out_scores = [], [], []
    while len(remaining):
        best = remaining[0]
        overlap = box_iou(boxes[best], boxes[remaining]) > iou_threshold
        overlap[0] = True
        cluster = remaining[overlap]
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(np.tensordot(weights, boxes[cluster], axes=1))
        out_keypoints.append(np.tensordot(weights, keypoints[cluster], axes=1))
        out_scores.append(scores[best])
        remaining = remaining[~overlap]
    return (np.array(out_boxes, np.float32).reshape(-1, 4), np.array(out_keypoints, np.float32).reshape(-1, NUM_KEYPOINTS, 2),
            np.array(out_scores, np.float32))


class BlazeFace:
    """Runs one bundled BlazeFace model with the runtime's interpreter backends.

    Args:
        model: "short" (128 px, faces that fill a good part of the photo) or "full" (192 px,
            also small, distant faces).
        num_threads, backend: as for `FaceAgePredictor`.
    """

    def __init__(self, model: str = "short", *, num_threads: int | None = None, backend: str | None = None):
        if model not in SPECS:
            raise ValueError(f"BlazeFace model must be one of {sorted(SPECS)}. Received: model={model!r}")
        self.spec = SPECS[model]
        with open(self.spec.path, "rb") as f:
            data = f.read()
        self.interpreter, self.backend = load_interpreter(data, self.spec.path, num_threads, backend)
        self._input = self.interpreter.get_input_details()[0]["index"]
        # Outputs are told apart by their last dimension: 16 regression values, 1 score.
        by_width = {int(d["shape"][-1]): d["index"] for d in self.interpreter.get_output_details()}
        self._boxes, self._scores = by_width[4 + 2 * NUM_KEYPOINTS], by_width[1]

    def raw(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's raw outputs for one letterboxed input tensor: (N, 16) and (N, 1)."""
        self.interpreter.set_tensor(self._input, tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._boxes)[0], self.interpreter.get_tensor(self._scores)[0]

    def detect(self, image: Image.Image, *, margin: float = 0.0, min_score: float | None = None):
        """Faces in an RGB image: boxes (M, 4), keypoints (M, 6, 2) in image pixels and scores (M,),
        best first."""
        tensor, placement = letterbox(image, self.spec.input_size, margin)
        boxes, keypoints, scores = weighted_nms(*decode(*self.raw(tensor), self.spec, min_score))
        boxes = placement.to_image(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return boxes, placement.to_image(keypoints), scores
