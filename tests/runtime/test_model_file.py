"""Loading a model: backends, the model card, and clear refusals of files that are not usable models."""

import os

import numpy as np
import pytest

from faceage_tf import modelcard
from faceage_tf.runtime import BACKENDS, BackendError, FaceAgePredictor, ModelFileError
from faceage_tf.schema import output_key


def test_default_model_loads_with_its_card(predictor):
    assert predictor.backend in BACKENDS
    assert predictor.card["format"] == modelcard.CARD_FORMAT
    assert predictor.schema.input_size == predictor.card["schema"]["input_size"] == 64
    assert predictor.schema.gender_labels == ("male", "female")
    assert len(predictor.schema.age_group_labels) == 9


def test_num_threads_is_a_parameter(faces):
    one, two = FaceAgePredictor(num_threads=1), FaceAgePredictor(num_threads=2)
    batch = np.stack([one.preprocess(f) for f in faces])
    a, b = one.predict_tensor(batch), two.predict_tensor(batch)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-4)
    with pytest.raises(ValueError, match="num_threads"):
        FaceAgePredictor(num_threads=0)


def test_unknown_or_missing_backend_is_named():
    with pytest.raises(ValueError, match="backend must be one of"):
        FaceAgePredictor(backend="onnx")
    try:
        import tflite_runtime  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="tflite-runtime: not installed"):
            FaceAgePredictor(backend="tflite-runtime")


def test_output_names_of_qat_models_are_normalised():
    assert [output_key(n) for n in ("quant_gender", "quant_age_group", "age", "age_group")] == \
        ["gender", "age_group", "age", "age_group"]


def refused(tmp_path, data: bytes, match: str, name="model.tflite"):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ModelFileError, match=match) as info:
        FaceAgePredictor(path)
    assert str(path) in str(info.value), "the error must name the file"
    return str(info.value)


def test_refuses_missing_file_and_folder(tmp_path):
    refused(tmp_path, None, "no such file")
    with pytest.raises(ModelFileError, match="is a directory"):
        FaceAgePredictor(tmp_path)


def test_refuses_files_that_are_not_tflite(tmp_path, faces):
    with open(faces[0], "rb") as f:
        refused(tmp_path, f.read(), "not a TFLite model")
    refused(tmp_path, b"", "not a TFLite model")
    refused(tmp_path, b"hello world, not a model", "not a TFLite model")


@pytest.mark.parametrize("keep", [12, 300, 2000, 0.5, -1])
def test_refuses_truncated_files(tmp_path, model_bytes, keep):
    size = int(len(model_bytes) * keep) if isinstance(keep, float) else keep
    refused(tmp_path, model_bytes[:size], "truncated")


def test_refuses_a_changed_file(tmp_path, model_bytes):
    changed = bytearray(model_bytes)
    changed[len(changed) // 2] ^= 0xFF
    refused(tmp_path, bytes(changed), "truncated or was changed after export")


def test_refuses_a_model_without_card(tmp_path, model_bytes):
    renamed = model_bytes.replace(modelcard.CARD_NAME.encode(), b"faceage_model_XXXX")
    assert len(renamed) == len(model_bytes)
    refused(tmp_path, renamed, "has no faceage model card")


def with_card(model_bytes, **changes):
    card = modelcard.read_card(model_bytes)
    card.update(changes)
    return modelcard.embed_card(model_bytes, card)


def test_refuses_a_card_that_does_not_match_the_model(tmp_path, model_bytes):
    card = modelcard.read_card(model_bytes)
    adience = dict(card["schema"], age_group_preset="adience8", age_group_edges=[0, 4, 8, 15, 25, 38, 48, 60])
    outputs = dict(card["outputs"], age_group=[None, 8])  # a consistent card, for another model
    message = refused(tmp_path, with_card(model_bytes, schema=adience, outputs=outputs), "model card does not match the model")
    assert "'age_group': [None, 8]" in message and "'age_group': [None, 9]" in message


def test_refuses_a_card_that_contradicts_itself(tmp_path, model_bytes):
    card = modelcard.read_card(model_bytes)
    adience = dict(card["schema"], age_group_preset="adience8", age_group_edges=[0, 4, 8, 15, 25, 38, 48, 60])
    refused(tmp_path, with_card(model_bytes, schema=adience), "do not fit its schema")
    refused(tmp_path, with_card(model_bytes, inputs={"image": [None, 96, 96, 3]}), "do not fit its schema")
    refused(tmp_path, with_card(model_bytes, schema=dict(card["schema"], input_size=8)), "invalid schema")
    refused(tmp_path, with_card(model_bytes, schema="fairface9"), "schema must be a JSON object, got str")
    lacking = {k: v for k, v in card["schema"].items() if k not in ("mean", "template")}
    refused(tmp_path, with_card(model_bytes, schema=lacking), "schema lacks mean, template")


def test_an_edited_card_breaks_the_hash(tmp_path, model_bytes):
    """Swapping the gender labels inside the card (same length) must not pass as the same model."""
    swapped = model_bytes.replace(b'"gender_labels": ["male", "female"]', b'"gender_labels": ["female", "male"]')
    assert swapped != model_bytes and len(swapped) == len(model_bytes)
    refused(tmp_path, swapped, "changed after export")
    smaller_std = model_bytes.replace(b'"std": 127.5', b'"std": 127.0')
    assert smaller_std != model_bytes
    refused(tmp_path, smaller_std, "changed after export")


def test_an_older_card_format_is_named(tmp_path, model_bytes):
    old = model_bytes.replace(modelcard.CARD_FORMAT.encode(), modelcard.CARD_FORMAT[:-1].encode() + b"1")
    refused(tmp_path, old, "export the model again")


def test_a_re_embedded_matching_card_is_accepted(tmp_path, model_bytes):
    path = tmp_path / "copy.tflite"
    path.write_bytes(with_card(model_bytes, name="copy"))
    assert FaceAgePredictor(path).card["name"] == "copy"
    assert os.path.getsize(path) > 0
