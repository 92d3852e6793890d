"""Fuzzing (hypothesis): random and corrupted bytes and random images into the preprocessing and the
CLI. Each must give a result or a clear `ImageError` naming the input: no other exception, no hang."""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from faceage_tf.cli import main
from faceage_tf.preprocess import ImageError, open_image

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F")


@pytest.fixture(scope="module")
def real_files(faces):
    """Real encodings to corrupt: a UTKFace JPEG and the same face in other formats."""
    face = Image.open(faces[0]).convert("RGB").resize((48, 48))
    encoded = []
    for fmt in FORMATS:
        buffer = io.BytesIO()
        face.save(buffer, fmt)
        encoded.append(buffer.getvalue())
    with open(faces[0], "rb") as f:
        return [f.read()] + encoded


def preprocess_or_clear_error(predictor, data, name="<bytes>"):
    try:
        x = predictor.preprocess(data)
    except ImageError as e:
        assert str(e).startswith(name + ":") and len(str(e)) > len(name) + 5
        return None
    assert x.shape == (64, 64, 3) and x.dtype == np.float32 and np.isfinite(x).all()
    return x


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(predictor, data):
    preprocess_or_clear_error(predictor, data)


@FUZZ
@given(st.data())
def test_corrupted_real_files(predictor, real_files, data):
    original = data.draw(st.sampled_from(real_files))
    corrupted = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        corrupted[data.draw(st.integers(0, len(corrupted) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(corrupted)))
    preprocess_or_clear_error(predictor, bytes(corrupted[:cut]))


@FUZZ
@given(mode=st.sampled_from(MODES), fmt=st.sampled_from(FORMATS), width=st.integers(1, 300),
       height=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_random_images(predictor, mode, fmt, width, height, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format
    assert preprocess_or_clear_error(predictor, buffer.getvalue()) is not None
    assert open_image(image).mode == "RGB"


@settings(max_examples=15, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_cli_always_reports_each_input(tmp_path_factory, real_files, capsys, data):
    folder = tmp_path_factory.mktemp("fuzz")
    paths = []
    for i in range(data.draw(st.integers(1, 3))):
        content = data.draw(st.one_of(st.binary(max_size=512), st.sampled_from(real_files)))
        cut = data.draw(st.integers(0, len(content)))
        path = folder / f"input{i}.jpg"
        path.write_bytes(content[:cut] if data.draw(st.booleans()) else content)
        paths.append(str(path))
    status = main(["predict", "--json", "--detector", "none", "--no-progress", *paths])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in records] == paths
    assert all(("faces" in r) != ("error" in r) for r in records)
    assert all(r["error"].startswith(r["file"] + ":") for r in records if "error" in r)
    assert status == (0 if any("faces" in r for r in records) else 1)
