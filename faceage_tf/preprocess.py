"""Image loading and preprocessing shared by training and the runtime (numpy + Pillow only).

Training decodes faces with `load_face` inside its tf.data pipeline, the runtime calls the same
functions, so a face gives the same input tensor in both (tested on real images).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from faceage_tf.align import reflected_box
from faceage_tf.schema import Schema

# Refuse images over this many pixels before decoding them (decompression bombs). 50 MP is more
# than any phone photo; a face model needs far less.
MAX_PIXELS = 50_000_000
# Refuse image files over this many bytes before reading them (a 50 MP PNG is about 150 MB).
MAX_IMAGE_BYTES = 200_000_000

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


class ImageError(ValueError):
    """An input image that cannot be used; the message names the file and the problem."""


def _name(source) -> str:
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<image>"
    if isinstance(source, np.ndarray):
        return "<array>"
    return os.fspath(source)


def read_regular_file(path, max_bytes: int, error=ImageError, what: str = "image") -> bytes:
    """The bytes of a regular file of at most `max_bytes`, checked before reading: a FIFO, a device
    (/dev/zero) or a huge sparse file would otherwise hang the reader or fill its memory.

    Raises:
        `error` (ImageError by default): naming the file and the problem.
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{name}: is a directory, not {'an' if what[0] in 'aeiou' else 'a'} {what}")
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or \
                stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a special file"
            raise error(f"{name}: not a regular file ({kind}); refused")
        if info.st_size > max_bytes:
            raise error(f"{name}: file too large ({info.st_size:,} bytes, limit {max_bytes:,}); refused")
        with open(name, "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:  # it grew after the check
            raise error(f"{name}: file too large (over {max_bytes:,} bytes); refused")
        return data
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except PermissionError:
        raise error(f"{name}: permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(f"{name}: symbolic link loop (too many levels of symbolic links)") from None
        raise error(f"{name}: cannot read the file ({e.strerror or e})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode (1, L, LA, P, RGBA, CMYK, I;16, I, F, ...) to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16/32-bit and float greyscale: scale the value range the data uses (0..1 for floats,
        # 0..255, 0..65535, or up to its maximum) to 0..255 instead of clipping.
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageError("float image holds non-finite values (inf or NaN); expected 0..1 or 0..255")
        if values.min() < 0:
            raise ImageError(f"{image.mode}-mode image holds negative values (min {values.min():g}); "
                             "expected 0..1, 0..255 or 0..65535")
        peak = float(values.max())
        if image.mode.startswith("I;16"):
            top = 65535.0
        elif image.mode == "F" and peak <= 1.0:
            top = 1.0
        elif peak <= 255.0:
            top = 255.0
        else:
            top = 65535.0 if peak <= 65535.0 else peak
        values = np.clip(values / top * 255.0, 0, 255)
        image = Image.fromarray(np.round(values).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def open_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Opens a file, bytes, Pillow image or uint8 array (H, W) / (H, W, 3|4) as an upright RGB
    image (EXIF orientation applied).

    Raises:
        ImageError: naming the file and the problem (missing, empty, not an image, truncated,
            too large).
    """
    name = _name(source)
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, np.ndarray):
            if source.dtype != np.uint8 or source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (3, 4)):
                raise ImageError(f"{name}: arrays must be uint8 (H, W), (H, W, 3) RGB or (H, W, 4) RGBA. "
                                 f"Received: dtype={source.dtype}, shape={source.shape}")
            image = Image.fromarray(source)
        else:
            data = bytes(source) if isinstance(source, (bytes, bytearray)) else read_regular_file(source, MAX_IMAGE_BYTES)
            if not data:
                raise ImageError(f"{name}: empty file")
            image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageError(f"{name}: image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageError(
                f"{name}: image too large ({width}x{height} = {width * height} pixels, limit {max_pixels}); "
                "refused as a possible decompression bomb"
            )
        image.load()
        image = ImageOps.exif_transpose(image)
        try:
            return to_rgb(image)
        except ImageError as e:
            raise ImageError(f"{name}: {e}") from None
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: refused as a decompression bomb ({e})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: truncated or corrupt image ({e})") from None


def resize_face(image: Image.Image, size: int) -> np.ndarray:
    """A face crop resized to `size` x `size`, as uint8 RGB `(size, size, 3)`."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def crop(image: Image.Image, box) -> Image.Image:
    """Crops (left, top, right, bottom). Where the box reaches past the image, the image is
    reflected at its edges, as the alignment does (`align.reflected_box`), not filled black."""
    left, top, right, bottom = (int(round(v)) for v in box)
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    if left >= 0 and top >= 0 and right <= image.width and bottom <= image.height:
        return image.crop((left, top, right, bottom))
    return reflected_box(image, (left, top, right, bottom))


def normalize(pixels: np.ndarray, schema: Schema) -> np.ndarray:
    """uint8 RGB pixels to the model's float32 input: `(pixels - mean) / std`."""
    return (pixels.astype(np.float32) - np.float32(schema.mean)) / np.float32(schema.std)


def load_face(source: ImageSource, size: int) -> np.ndarray:
    """A face-crop file (like UTKFace's) as uint8 RGB at the model's input size."""
    return resize_face(open_image(source), size)
