"""`python -m faceage_tf.golden` writes the vectors the Android core tests compare against."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from faceage_tf import golden
from faceage_tf.preprocess import load_face, open_image
from faceage_tf.runtime import blazeface

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_golden_vectors_from_real_faces(utkface_files, tmp_path):
    faces = utkface_files[:3]
    out = tmp_path / "golden"
    result = subprocess.run([sys.executable, "-m", "faceage_tf.golden", "--model", golden.DEFAULT_MODEL,
                             "--faces", *faces, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "golden.json").read_text())
    schema = index["schema"]
    size = schema["input_size"]
    assert [f["source"] for f in index["faces"]] == [os.path.basename(f) for f in faces]
    for face, path in zip(index["faces"], faces):
        argb = np.fromfile(out / face["argb"], dtype="<i4").view(np.uint32).reshape(size, size)
        rgb = np.stack([(argb >> 16) & 255, (argb >> 8) & 255, argb & 255], axis=-1)
        assert (argb >> 24 == 255).all()
        np.testing.assert_array_equal(rgb, load_face(path, size))  # the pixels are the face, packed
        tensor = np.fromfile(out / face["tensor"], dtype="<f4").reshape(size, size, 3)
        np.testing.assert_array_equal(tensor, (rgb.astype(np.float32) - schema["mean"]) / np.float32(schema["std"]))
        outputs, decoded = face["outputs"], face["decoded"]
        assert len(outputs["gender"]) == 2 and len(outputs["age_group"]) == len(schema["age_group_labels"])
        assert decoded["gender"] == schema["gender_labels"][int(np.argmax(outputs["gender"]))]
        assert decoded["age_group"] == schema["age_group_labels"][int(np.argmax(outputs["age_group"]))]
        assert 0 <= decoded["age"] <= schema["max_age"]
    assert {t["name"].removeprefix("quant_") for t in index["tensors"]["outputs"]} == {"gender", "age_group", "age"}


def _argb_to_rgb(values: np.ndarray, height: int, width: int) -> np.ndarray:
    argb = values.view(np.uint32).reshape(height, width)
    return np.stack([(argb >> 16) & 255, (argb >> 8) & 255, argb & 255], axis=-1).astype(np.uint8)


def test_detector_and_alignment_vectors_from_real_photos(utkface_files, aaf_photos, tmp_path):
    faces, photos = utkface_files[:2], aaf_photos[:2]
    out = tmp_path / "golden"
    result = subprocess.run([sys.executable, "-m", "faceage_tf.golden", "--model", golden.DEFAULT_MODEL,
                             "--faces", *faces, "--photos", *photos, "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "golden.json").read_text())
    cases = index["detection"]
    # Every pass the runtime may run, for each face crop, each photo and the two photos side by side.
    sources = [os.path.basename(p) for p in faces + photos] + [f"{os.path.basename(photos[0])}+{os.path.basename(photos[1])}"]
    assert [(c["source"], c["model"], c["margin"]) for c in cases] == [
        (source, model, margin) for source in sources for model, margin in golden.PASSES]
    for case, source in zip(cases, [p for p in faces + photos for _ in golden.PASSES]):
        pixels = _argb_to_rgb(np.fromfile(out / case["argb"], "<i4"), case["height"], case["width"])
        np.testing.assert_array_equal(pixels, np.asarray(open_image(source)))
    for case in cases:
        spec = blazeface.SPECS[case["model"]]
        raw_boxes = np.fromfile(out / case["raw_boxes"], "<f4").reshape(-1, 16)
        raw_scores = np.fromfile(out / case["raw_scores"], "<f4")
        assert len(raw_boxes) == len(raw_scores) == len(blazeface.anchor_centres(spec))
        assert np.fromfile(out / case["input"], "<f4").size == spec.input_size ** 2 * 3
        assert ("alignment" in case) == (len(case["nms"]["scores"]) > 0)
        if "alignment" in case:
            align = case["alignment"]
            size = align["size"]
            crop = _argb_to_rgb(np.fromfile(out / align["crop"], "<i4"), size, size)
            tensor = np.fromfile(out / align["tensor"], "<f4").reshape(size, size, 3)
            np.testing.assert_array_equal(tensor, (crop.astype(np.float32) - 127.5) / np.float32(127.5))
            assert size <= align["side"] <= 2 * size
    assert sum("alignment" in c for c in cases) >= len(sources)
    # Overlapping anchors were merged by the NMS (so the Kotlin tests exercise it).
    assert sum(len(c["decoded"]["scores"]) for c in cases) > sum(len(c["nms"]["scores"]) for c in cases)
    # The runtime's detector finds a face in every image, and two in the side-by-side photo, one in each half.
    found = index["detector"]
    assert [f["source"] for f in found] == sources
    assert all(len(f["scores"]) >= 1 for f in found)
    boxes = np.array(found[-1]["boxes"])
    left_width = cases[len(faces) * len(golden.PASSES)]["width"]
    assert len(boxes) == 2 and sorted((b[0] + b[2]) / 2 < left_width for b in boxes) == [False, True]
    pillow = index["pillow"]
    assert len(pillow["resize"]) == 8 and len(pillow["affine"]) == 2
    assert any(r["reducing_gap"] for r in pillow["resize"])
    assert index["pillow_version"]


def test_pick_faces_spreads_over_a_folder(utkface_dir):
    picked = golden.pick_faces([utkface_dir], 5)
    assert len(picked) == 5 and len(set(picked)) == 5


def test_missing_faces_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        golden.pick_faces([str(tmp_path / "nope.jpg")], 4)
