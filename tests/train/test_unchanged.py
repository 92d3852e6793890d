"""Behaviour kept across refactors: the packaged model's outputs on real faces, and the layers and
seeded initial weights of the default networks, equal bit for bit to what the code gave when
`unchanged.json` was written (`python tests/train/test_unchanged.py` rewrites it: only do that
for a change that is meant to alter behaviour, and say so in the commit)."""

import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "unchanged.json")
FACES = 16  # real UTKFace crops, every 1,300th name


def _face_files(utkface_dir):
    names = sorted(n for n in os.listdir(utkface_dir) if n.endswith(".jpg"))
    return [os.path.join(utkface_dir, n) for n in names[::1300][:FACES]]


def packaged_outputs(utkface_dir) -> dict:
    """The packaged model's raw outputs on real crops, and a digest of the input tensor (so that
    a failure says whether preprocessing or the model changed)."""
    from faceage_tf import preprocess
    from faceage_tf.runtime import FaceAgePredictor

    predictor = FaceAgePredictor()
    faces = np.stack([preprocess.load_face(path, predictor.schema.input_size) for path in _face_files(utkface_dir)])
    images = preprocess.normalize(faces, predictor.schema).astype(np.float32)
    outputs = predictor.predict_tensor(images)
    return {"files": [os.path.basename(p) for p in _face_files(utkface_dir)],
            "input_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
            "outputs": {k: v.astype(np.float32).tolist() for k, v in sorted(outputs.items())}}


def default_networks() -> dict:
    """Per default network: its layer names, weight names and shapes, and a sha256 of its
    weights as initialised under seed 0."""
    from faceage_tf import models
    from faceage_tf.keras import keras
    from faceage_tf.schema import Schema
    from faceage_tf.training import weights_digest

    result = {}
    for name in ("attentional", "residual", "ensemble"):
        keras.utils.set_random_seed(0)
        model = models.build_model(name, Schema())
        result[name] = {"layers": [layer.name for layer in model.layers],
                        "weights": [[w.name, list(w.shape)] for w in model.weights],
                        "init_sha256": weights_digest(model)}
    return result


def test_packaged_model_outputs_are_bit_identical(utkface_dir):
    with open(EXPECTED) as f:
        expected = json.load(f)["packaged_model"]
    got = packaged_outputs(utkface_dir)
    assert got["files"] == expected["files"]
    assert got["input_sha256"] == expected["input_sha256"], "preprocessing of real crops changed"
    for key, values in expected["outputs"].items():
        np.testing.assert_array_equal(np.array(got["outputs"][key], np.float32), np.array(values, np.float32), key)


def test_default_networks_are_unchanged():
    with open(EXPECTED) as f:
        expected = json.load(f)["networks"]
    got = default_networks()
    for name, want in expected.items():
        assert got[name]["layers"] == want["layers"], name
        assert got[name]["weights"] == want["weights"], name
        assert got[name]["init_sha256"] == want["init_sha256"], name


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    from tests.conftest import UTKFACE

    data = {"packaged_model": packaged_outputs(UTKFACE), "networks": default_networks()}
    with open(EXPECTED, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {EXPECTED}")
