"""The two packaged models, by name: `default` and `small` (issue 15), in the API and the CLI."""

import dataclasses
import json
import os

import numpy as np
import pytest

from faceage_tf.modelcard import ModelFileError
from faceage_tf.runtime import PACKAGED_MODELS, FaceAgePredictor
from faceage_tf.runtime import predictor as predictor_module


def test_each_packaged_model_loads_by_name_with_its_own_card():
    default, small = FaceAgePredictor("default", detector="none"), FaceAgePredictor("small", detector="none")
    assert os.path.basename(default.model_path) == PACKAGED_MODELS["default"]
    assert FaceAgePredictor(detector="none").model_path == default.model_path  # None is "default"
    assert os.path.basename(small.model_path) == PACKAGED_MODELS["small"]
    assert small.card["variant"] == "int8-qat" and not small.card.get("flip_tta")
    assert small.card["architecture"] == "attentional" and default.card["architecture"] == "ensemble"
    assert small.model_bytes <= 1_000_000 < default.model_bytes  # the small model's size limit, card included
    # Same input and labels, and the same training template: the default's card serves it looser.
    zoom = default.card["serving_zoom"]
    assert zoom == 1.05 and small.card.get("serving_zoom", 1.0) == 1.0
    assert dataclasses.replace(small.schema, template=small.schema.template.zoomed(zoom)) == default.schema


def test_both_models_agree_on_real_faces(faces):
    default, small = FaceAgePredictor("default", detector="none"), FaceAgePredictor("small", detector="none")
    ages = np.array([[model.predict(path)[0].age for model in (default, small)] for path in faces])
    assert np.median(np.abs(ages[:, 0] - ages[:, 1])) < 8.0, ages
    assert np.corrcoef(ages.T)[0, 1] > 0.7, ages


def test_cli_takes_a_packaged_model_name(faces, run_cli):
    result = run_cli("predict", "--json", "--model", "small", "--detector", "none", faces[0])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["faces"] and 0 <= record["faces"][0]["age"] <= 100
    info = run_cli("info", "small")
    assert info.returncode == 0 and PACKAGED_MODELS["small"] in info.stdout


def test_a_missing_packaged_model_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(predictor_module, "ASSETS", str(tmp_path))
    with pytest.raises(ModelFileError, match=r"faceage-small\.tflite: the packaged small model is missing"):
        FaceAgePredictor("small")
