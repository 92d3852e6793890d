"""Fixtures of the runtime tests: the packaged model, real faces, and helpers to run `faceage`.

Everything here runs without TensorFlow (the suite also runs in .venv-runtime).
"""

import io
import os
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from faceage_tf.runtime import DEFAULT_MODEL, FaceAgePredictor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def predictor():
    """The packaged model for face crops (detector "none": each image is one face)."""
    return FaceAgePredictor(detector="none")


@pytest.fixture(scope="session")
def photo_predictor():
    """The packaged model with its default detector (the bundled BlazeFace), for photos."""
    return FaceAgePredictor()


@pytest.fixture(scope="session")
def aaf_photos():
    """A fixed sample of 40 real head-and-shoulder photos from AAF (skipped when absent)."""
    folder = os.environ.get("FACEAGE_AAF", os.path.join(ROOT, "..", "shared", "data", "aaf"))
    images = os.path.join(folder, "images")
    if not os.path.isdir(images):
        pytest.skip(f"AAF photos not found at {images} (set FACEAGE_AAF to the AAF folder)")
    names = sorted(os.listdir(images))
    return [os.path.join(images, n) for n in names[::len(names) // 40][:40]]


@pytest.fixture(scope="session")
def model_bytes():
    with open(DEFAULT_MODEL, "rb") as f:
        return f.read()


@pytest.fixture(scope="session")
def faces(utkface_files):
    """Eight real face crops (paths)."""
    return utkface_files[::8]


def _run_cli(*args, timeout=120):
    """Runs `faceage ARGS...` as a real subprocess of this Python; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "faceage_tf.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels but holds almost no data (a decompression
    bomb's signature: refused before decoding)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def run_cli():
    return _run_cli


@pytest.fixture(scope="session")
def png_header_only():
    return _png_header_only


@pytest.fixture(scope="session")
def encode():
    return _encode
