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
    pixels in the detector's order) are given. Parts outside the image are filled by reflecting
    the image at its edges (as training's crops are: `reflected_source`). `zoom` and `angle` as in
    `crop_transform` (the runtime uses neither)."""
    forward, side = crop_transform(keypoints, template, size, zoom=zoom, angle=angle)
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))[:2]  # output pixel -> image pixel
    return crop_with(image, inverse, side, size)


def crop_with(image: Image.Image, inverse: np.ndarray, side: int, size: int) -> Image.Image:
    """The crop from an affine transform (`inverse`: intermediate crop pixel -> image pixel, 2x3)
    for a `side` x `side` intermediate crop, resized to `size`."""
    source, inverse = reflected_source(image, inverse, side)
    crop = source.transform((side, side), Image.AFFINE, tuple(np.asarray(inverse).reshape(-1)), resample=Image.BILINEAR)
    if side != size:
        crop = crop.resize((size, size), Image.BILINEAR)
    return crop


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Indexes into an axis of `length`, mirrored at its ends without repeating the edge pixel
    (numpy's "reflect" padding, repeated as often as needed)."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    index = np.mod(index, period)
    return np.where(index < length, index, period - index)


# Reflection is skipped (parts outside stay black) when the region the crop reads would hold more
# than this many times the image's pixels, or lies wholly outside it: keypoints no detector gives.
MAX_REFLECTED_AREA = 4


def reflected_source(image: Image.Image, inverse: np.ndarray, side: int) -> tuple[Image.Image, np.ndarray]:
    """The image region a `side` x `side` crop through `inverse` reads (with a pixel to spare for
    bilinear sampling), and the transform into it. Where the region reaches past the image, its
    pixels are the image reflected at its edges, so a face at the border of a photo, or a tight
    face crop, gets the mirrored face around it instead of black, as in training. A region inside
    the image is the image itself (the crop is then unchanged)."""
    a0, a1, a2, b0, b1, b2 = np.asarray(inverse, np.float64).reshape(-1)
    corners_x = np.array([0.0, side, side, 0.0])
    corners_y = np.array([0.0, 0.0, side, side])
    xs = a0 * corners_x + a1 * corners_y + a2  # written out, as the Kotlin port computes them
    ys = b0 * corners_x + b1 * corners_y + b2
    left, right = np.floor(xs.min()) - 1.0, np.ceil(xs.max()) + 1.0
    top, bottom = np.floor(ys.min()) - 1.0, np.ceil(ys.max()) + 1.0
    width, height = image.size
    if left >= 0 and top >= 0 and right <= width and bottom <= height:
        return image, inverse
    overlaps = right > 0 and left < width and bottom > 0 and top < height
    if not overlaps or (right - left) * (bottom - top) > MAX_REFLECTED_AREA * width * height:
        return image, inverse
    left, right, top, bottom = int(left), int(right), int(top), int(bottom)
    return reflected_box(image, (left, top, right, bottom)), np.array([[a0, a1, a2 - left], [b0, b1, b2 - top]])


def reflected_box(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The pixels of `image` in the box (left, top, right, bottom), the image reflected at its
    edges where the box reaches past them."""
    left, top, right, bottom = box
    rows = reflect_index(np.arange(top, bottom), image.height)
    columns = reflect_index(np.arange(left, right), image.width)
    return Image.fromarray(np.asarray(image).take(rows, axis=0).take(columns, axis=1))


def crop_corners(keypoints, template: FaceTemplate, size: int, *, zoom: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """The aligned crop's four corners (top-left, top-right, bottom-right, bottom-left) in image
    pixels: where the crop lies in the photo (for drawing and for measuring alignment)."""
    forward, side = crop_transform(keypoints, template, size, zoom=zoom, angle=angle)
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))
    corners = np.array([[0, 0, 1], [side, 0, 1], [side, side, 1], [0, side, 1]], np.float64)
    return (inverse @ corners.T).T[:, :2]
