"""A network registered here alone (not in faceage_tf) joins an ensemble: it trains inside it on
real faces, gets QAT and converts to an int8 TFLite file, with nothing else to change."""

import os

import numpy as np
import pytest

from faceage_tf import datasets, export, models, pipeline
from faceage_tf.keras import keras
from faceage_tf.training import TrainConfig, load_run, train


def tiny_features(x, *, filters):
    """One strided conv and global pooling: the smallest network that learns anything."""
    x = keras.layers.Conv2D(filters, 3, strides=4, padding="same", activation="relu", name="tiny_conv")(x)
    return keras.layers.GlobalAveragePooling2D(name="tiny_gap")(x)


@pytest.fixture
def tiny_network(monkeypatch):
    monkeypatch.setitem(models.NETWORKS, "tiny", models.Network(tiny_features, {"filters": 4}))


def test_a_third_network_trains_in_an_ensemble_gets_qat_and_exports(tiny_network, utkface_dir, tmp_path):
    float_run, qat_run = str(tmp_path / "float"), str(tmp_path / "qat")
    common = dict(data=utkface_dir, limit=48, batch_size=32, cache=False, epochs=1)
    config = TrainConfig(architecture="ensemble", members=("residual", "tiny"), schema={"input_size": 32},
                         network_options={"residual": {"widths": (8, 8, 8, 8), "blocks": (1, 1, 1, 1)},
                                          "tiny": {"filters": 6}}, **common)
    model, history = train(config, float_run, progress="none")
    assert len(history["loss"]) == 1
    assert models.head_prefixes(model) == ["residual_", "tiny_"]
    assert model.get_layer("tiny_conv").filters == 6
    assert sorted(models.member_models(model)) == ["residual", "tiny"]

    train(TrainConfig.resolve(dict(common, init_from=float_run, qat=True, learning_rate=1e-4)), qat_run, progress="none")
    qat_model, qat_config = load_run(qat_run)
    assert qat_config.members == ("residual", "tiny")
    assert "quant_tiny_conv" in {layer.name for layer in qat_model.layers}
    assert "quant_tiny_age_dist" in {layer.name for layer in qat_model.layers}  # the head stays float

    schema = qat_config.schema
    model_bytes = export.convert(qat_model, schema, "int8-qat")
    assert "CONV_2D" in export.check_builtin_only(model_bytes)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    conv = [t for t in interpreter.get_tensor_details() if "tiny_conv" in t["name"] and t["dtype"] == np.int8]
    assert conv, "the third network's conv must run int8"
    records = datasets.read_manifest(os.path.join(qat_run, "manifest.json"))["train"]
    images = pipeline.normalize(pipeline.decode_faces(records, schema), schema).numpy()
    got = interpreter.get_signature_runner()(image=images)
    want = qat_model.predict(images, verbose=0)
    for key in ("gender", "age_group"):
        assert np.abs(got[key] - want[key]).max() < 0.05, key
    assert np.abs(got["age"] - want["age"]).max() < 1.0
