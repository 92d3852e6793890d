"""`python -m faceage_tf.golden` writes the vectors the Android core tests compare against."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from faceage_tf import golden
from faceage_tf.preprocess import load_face

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


def test_pick_faces_spreads_over_a_folder(utkface_dir):
    picked = golden.pick_faces([utkface_dir], 5)
    assert len(picked) == 5 and len(set(picked)) == 5


def test_missing_faces_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        golden.pick_faces([str(tmp_path / "nope.jpg")], 4)
