"""Face alignment: a similarity transform from detected keypoints to the model's template crop.

Written once, numpy + Pillow only, and used by the runtime (`FaceAgePredictor`), by training-data
preparation and by the Android core's golden vectors, so that a face gives the same crop
everywhere. Coordinates are continuous pixels (a pixel's centre is at +0.5), as Pillow's
transforms use them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from faceage_tf.schema import ALIGNMENT_KEYPOINTS, FaceTemplate

# The intermediate crop is at most this many times the input side: large faces are first
# resampled by the affine transform to this size, then shrunk by Pillow's antialiased resize
# (as training shrinks UTKFace's 200 px crops), so a 2,000 px face costs no more than a 128 px one.
MAX_INTERMEDIATE = 2


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation, uniform scale and shift (no reflection) that maps `src` (K, 2) onto `dst`
    (K, 2) with the least squared error, as a (2, 3) matrix [A | t] with dst = A @ src + t.

    In complex numbers z = x + iy the transform is dst = a * src + b; the least-squares a is
    sum(conj(s) * d) / sum(|s|^2) over the centred points (the closed form of Umeyama's method
    for 2-D similarities).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"src and dst must both be (K, 2) with K >= 2. Received: {src.shape} and {dst.shape}")
    s = src[:, 0] - src[:, 0].mean() + 1j * (src[:, 1] - src[:, 1].mean())
    d = dst[:, 0] - dst[:, 0].mean() + 1j * (dst[:, 1] - dst[:, 1].mean())
    norm = float(np.sum(np.abs(s) ** 2))
    if not norm > 0:
        raise ValueError(f"src points must not all coincide. Received: {src.tolist()}")
    a = np.sum(np.conj(s) * d) / norm
    linear = np.array([[a.real, -a.imag], [a.imag, a.real]])
    shift = dst.mean(axis=0) - linear @ src.mean(axis=0)
    return np.hstack([linear, shift[:, None]])


def crop_transform(keypoints: np.ndarray, template: FaceTemplate, size: int, *, zoom: float = 1.0,
                   angle: float = 0.0) -> tuple[np.ndarray, int]:
    """The transform from image pixels to the intermediate crop's pixels, and that crop's side.

    The side is the face's crop side in image pixels, clipped to [size, MAX_INTERMEDIATE * size].
    `zoom` > 1 frames the face looser (more of the photo around it), < 1 tighter; `angle` turns
    the crop counter-clockwise by that many degrees (both about the crop's centre): for framing
    benchmarks and for data with a margin to augment from.
    """
    points = np.asarray(keypoints, np.float64)[:len(ALIGNMENT_KEYPOINTS)]
    to_unit = similarity_transform(points, np.asarray(template.keypoints, np.float64))
    if zoom != 1.0 or angle != 0.0:
        theta = np.deg2rad(angle)
        turn = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]) / zoom
        centre = np.array([0.5, 0.5])
        to_unit = np.hstack([turn @ to_unit[:, :2], (turn @ (to_unit[:, 2] - centre) + centre)[:, None]])
    source_side = 1.0 / np.hypot(to_unit[0, 0], to_unit[1, 0])  # image pixels per crop side
    side = int(np.clip(round(source_side), size, MAX_INTERMEDIATE * size))
    return to_unit * side, side


def align_face(image: Image.Image, keypoints, template: FaceTemplate, size: int, *, zoom: float = 1.0,
               angle: float = 0.0) -> Image.Image:
    """The model's `size` x `size` input crop of the face whose keypoints (6 or 4, (x, y) image
    pixels in the detector's order) are given. Parts outside the image are black. `zoom` and
    `angle` as in `crop_transform` (the runtime uses neither)."""
    forward, side = crop_transform(keypoints, template, size, zoom=zoom, angle=angle)
    matrix = np.vstack([forward, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(matrix)[:2]  # Pillow maps output pixels back to input pixels
    crop = image.transform((side, side), Image.AFFINE, tuple(inverse.reshape(-1)), resample=Image.BILINEAR)
    if side != size:
        crop = crop.resize((size, size), Image.BILINEAR)
    return crop


def crop_corners(keypoints, template: FaceTemplate, size: int, *, zoom: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """The aligned crop's four corners (top-left, top-right, bottom-right, bottom-left) in image
    pixels: where the crop lies in the photo (for drawing and for measuring alignment)."""
    forward, side = crop_transform(keypoints, template, size, zoom=zoom, angle=angle)
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))
    corners = np.array([[0, 0, 1], [side, 0, 1], [side, side, 1], [0, side, 1]], np.float64)
    return (inverse @ corners.T).T[:, :2]
