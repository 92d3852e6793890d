"""Preprocessing of real images: EXIF orientation, every Pillow mode, tiny and huge images, and clear
errors (naming the file) for missing, empty, non-image, truncated and decompression-bomb inputs."""

import numpy as np
import pytest
from PIL import Image

from faceage_tf.preprocess import MAX_PIXELS, ImageError, crop, load_face, normalize, open_image


@pytest.fixture(scope="module")
def face(faces):
    return Image.open(faces[0]).convert("RGB")


def test_preprocess_is_the_training_code_path(predictor, faces):
    for path in faces:
        expected = normalize(load_face(path, predictor.schema.input_size), predictor.schema)
        actual = predictor.preprocess(path)
        assert actual.dtype == np.float32 and actual.shape == (64, 64, 3)
        np.testing.assert_array_equal(actual, expected)
        assert -1.0 <= actual.min() and actual.max() <= 1.0


def test_sources_give_the_same_input(predictor, faces):
    with open(faces[0], "rb") as f:
        data = f.read()
    from_path = predictor.preprocess(faces[0])
    for source in (data, Image.open(faces[0]), np.asarray(Image.open(faces[0]))):
        np.testing.assert_array_equal(predictor.preprocess(source), from_path)


@pytest.mark.parametrize("orientation, stored", [
    (3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
    (2, Image.Transpose.FLIP_LEFT_RIGHT),
])
def test_exif_orientation_is_applied(predictor, face, encode, orientation, stored):
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored_image = face.transpose(stored)  # what a camera writes; the EXIF tag says how to show it
    data = encode(stored_image, "PNG", exif=exif.tobytes())
    np.testing.assert_array_equal(np.asarray(open_image(data)), np.asarray(face))
    jpeg = encode(stored_image, "JPEG", quality=95, exif=exif.tobytes())
    difference = np.abs(predictor.preprocess(jpeg) - predictor.preprocess(face))
    assert difference.mean() < 0.02  # only JPEG re-encoding noise (in units of the [-1, 1] input)


@pytest.mark.parametrize("mode, fmt", [
    ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("CMYK", "TIFF"),
    ("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF"), ("1", "PNG"), ("YCbCr", "JPEG"),
])
def test_every_pillow_mode_becomes_rgb(predictor, face, encode, mode, fmt):
    if mode == "I;16":
        image = Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257)
        assert image.mode == "I;16"
    else:
        image = face.convert(mode)
    opened = open_image(encode(image, fmt))
    assert opened.mode == "RGB" and opened.size == face.size
    x = predictor.preprocess(encode(image, fmt))
    assert x.shape == (64, 64, 3) and np.isfinite(x).all()
    if mode in ("L", "I;16", "I"):  # greyscale at any bit depth: the same grey levels
        grey = np.asarray(face.convert("L"), np.int32)
        assert np.abs(np.asarray(opened)[..., 0].astype(np.int32) - grey).max() <= 1


def test_transparent_palette_image(predictor, encode):
    image = Image.new("P", (40, 50))
    image.info["transparency"] = 0
    assert predictor.preprocess(encode(image, "PNG")).shape == (64, 64, 3)


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 2), (7, 5)])
def test_tiny_and_thin_images(predictor, size, encode):
    image = Image.new("RGB", size, (200, 100, 50))
    x = predictor.preprocess(encode(image))
    assert x.shape == (64, 64, 3)
    np.testing.assert_allclose(x[0, 0], (np.array([200, 100, 50]) - 127.5) / 127.5, atol=1e-6)


def test_huge_image_within_the_limit(predictor, face, encode):
    huge = face.resize((6000, 4000))
    assert len(predictor.predict(encode(huge, "JPEG", quality=80))) == 1


def test_decompression_bombs_are_refused(tmp_path, predictor, encode, png_header_only):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))
    with pytest.raises(ImageError, match="decompression bomb") as info:
        predictor.predict(path)
    assert str(path) in str(info.value)
    side = int(MAX_PIXELS ** 0.5) + 1
    with pytest.raises(ImageError, match="too large"):
        open_image(encode(Image.new("1", (side, side))))


def expect_error(tmp_path, data, match, name="face.jpg"):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ImageError, match=match) as info:
        open_image(path)
    assert str(info.value).startswith(str(path) + ":"), "the error must start with the file name"


def test_bad_files_name_the_file_and_problem(tmp_path, faces):
    with open(faces[0], "rb") as f:
        jpeg = f.read()
    expect_error(tmp_path, None, "no such file", "missing.jpg")
    expect_error(tmp_path, b"", "empty file")
    expect_error(tmp_path, b"GIF89a but not really", "not an image|truncated")
    expect_error(tmp_path, b"plain text", "not an image")
    expect_error(tmp_path, jpeg[: len(jpeg) // 2], "truncated")
    expect_error(tmp_path, jpeg[:200], "truncated")
    with pytest.raises(ImageError, match="is a directory"):
        open_image(tmp_path)


def test_bad_arrays_are_refused():
    with pytest.raises(ImageError, match="uint8"):
        open_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ImageError, match="no pixels"):
        open_image(np.zeros((0, 10, 3), np.uint8))


def test_a_box_past_the_image_is_filled_by_reflection_not_black(faces):
    """The box crop (Haar's path) extends a face crop as the alignment does."""
    pixels = np.asarray(Image.open(faces[0]).convert("RGB"))
    image = Image.fromarray(pixels)
    inside = (4, 6, 40, 50)
    assert np.array_equal(np.asarray(crop(image, inside)), np.asarray(image.crop(inside)))
    side = image.width
    past = (-10, -5, side + 7, side + 3)
    padded = np.pad(pixels, ((10, 10), (10, 10), (0, 0)), mode="reflect")
    assert np.array_equal(np.asarray(crop(image, past)), padded[5:10 + image.height + 3, 0:10 + side + 7])
