"""The paper's networks: outputs, the spatial transformer, gradients, saving, TFLite conversion."""

import numpy as np
import pytest

from faceage_tf import export, models
from faceage_tf.keras import keras, tf
from faceage_tf.layers import BilinearSampler, custom_objects
from faceage_tf.schema import Schema

# Small widths keep the tests fast; the defaults are tested at 64 px.
SMALL_OPTIONS = {"attentional": {"width": 8}, "residual": {"widths": (8, 16, 32, 64), "blocks": (1, 1, 1, 1)}}


def _small(architecture, schema, **kwargs):
    return models.build_model(architecture, schema, options=SMALL_OPTIONS, **kwargs)


def _images(n, size, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("architecture", models.architectures())
@pytest.mark.parametrize("size", [32, 48, 96])
def test_outputs_are_named_shaped_and_normalised(architecture, size):
    schema = Schema(input_size=size)
    model = _small(architecture, schema)
    outputs = model(_images(3, size))
    assert sorted(outputs) == sorted(models.OUTPUTS)
    assert outputs["gender"].shape == (3, 2)
    assert outputs["age_group"].shape == (3, 9)
    assert outputs["age"].shape == (3, 1)
    for key in models.OUTPUTS:
        assert outputs[key].dtype == tf.float32
    np.testing.assert_allclose(outputs["gender"].numpy().sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(outputs["age_group"].numpy().sum(-1), 1.0, atol=1e-5)
    assert np.all((outputs["age"].numpy() >= 0) & (outputs["age"].numpy() <= schema.max_age))


def test_default_models_at_64px_and_adience_groups():
    schema = Schema(age_group_preset="adience8")
    for architecture in models.architectures():
        outputs = models.build_model(architecture, schema)(_images(2, 64))
        assert outputs["age_group"].shape == (2, 8)


def test_sampler_identity_returns_the_input():
    image = _images(2, 40)
    identity = np.tile([[1, 0, 0, 0, 1, 0]], (2, 1)).astype(np.float32)
    out = BilinearSampler()([image, identity]).numpy()
    assert np.abs(out - image).max() < 1e-5


def test_sampler_shift_moves_the_image():
    size, shift = 32, 3
    image = _images(1, size)
    theta = np.array([[1, 0, 2 * shift / (size - 1), 0, 1, 0]], np.float32)  # sample 3 px to the right
    out = BilinearSampler()([image, theta]).numpy()
    np.testing.assert_allclose(out[0, :, : size - shift], image[0, :, shift:], atol=1e-5)
    np.testing.assert_allclose(out[0, :, size - shift:], np.repeat(image[0, :, -1:], shift, axis=1), atol=1e-5)


def test_spatial_transformer_starts_as_identity():
    model = _small("attentional", Schema())
    images = _images(2, 64)
    warped = models.attention_model(model)(images)["warped"].numpy()
    assert np.abs(warped - images).max() < 1e-5


def test_a_localisation_net_of_tanh_units_still_tells_faces_apart_where_relu_units_are_silent():
    # Units pushed below zero: ReLU passes nothing, so every face gets the same transform (as the
    # trained models' localisation nets end up); tanh units still pass how far below they are.
    images = _images(4, 32)
    thetas = {}
    for activation in ("relu", "tanh"):
        keras.utils.set_random_seed(0)
        options = dict(SMALL_OPTIONS, attentional={"width": 8, "localisation_activation": activation})
        model = models.build_model("attentional", Schema(input_size=32), options=options)
        fc1, theta = model.get_layer("attn_loc_fc1"), model.get_layer("attn_theta")
        assert fc1.activation.__name__ == activation and model.get_layer("attn_loc_conv1").activation.__name__ == activation
        kernel, bias = fc1.get_weights()
        fc1.set_weights([kernel, bias - 3.0])  # below zero, short of tanh's flat ends
        kernel, bias = theta.get_weights()
        theta.set_weights([np.random.default_rng(0).normal(0, 0.1, kernel.shape).astype(np.float32), bias])
        thetas[activation] = keras.Model(model.inputs, theta.output)(images).numpy()
    assert np.ptp(thetas["relu"], axis=0).max() == 0
    assert np.ptp(thetas["tanh"], axis=0).max() > 1e-4
    assert models.network_options("attentional")["localisation_activation"] == "relu"  # the trained models'


@pytest.mark.parametrize("architecture", models.architectures())
def test_every_weight_gets_a_gradient(architecture):
    """After one training step every trainable weight gets a gradient, the attention branch
    included (before it, the localisation net gets none: its last layer starts at zero so that
    the transform starts as the identity)."""
    keras.utils.set_random_seed(0)  # unseeded, 1 initialisation in 12 of these tiny nets left its
    # localisation net's ReLUs dead on the 8 images, and the test failed by chance
    model = _small(architecture, Schema(input_size=32))
    train_model = models.training_model(model)
    images = _images(8, 32)
    optimizer = keras.optimizers.SGD(0.05)

    def gradients():
        with tf.GradientTape() as tape:
            outputs = train_model(images, training=True)
            loss = sum(tf.reduce_sum(v * tf.random.stateless_normal(v.shape, [1, i]))
                       for i, (k, v) in enumerate(sorted(outputs.items())))
        return tape.gradient(loss, train_model.trainable_weights)

    optimizer.apply_gradients(zip(gradients(), train_model.trainable_weights))
    grads = gradients()
    missing = [w.name for w, g in zip(train_model.trainable_weights, grads) if g is None or not np.any(g.numpy())]
    assert not missing, f"weights without gradient: {missing}"
    if architecture != "residual":
        assert any("attn_loc_conv1" in w.name for w in train_model.trainable_weights)


def test_gender_input_flag_changes_the_age_branch():
    schema = Schema(input_size=32)
    with_gender = _small("residual", schema)
    without = _small("residual", schema, gender_input=False)
    assert with_gender.get_layer("age_hidden").input.shape[-1] == 64 + 2
    assert without.get_layer("age_hidden").input.shape[-1] == 64


@pytest.mark.parametrize("architecture", models.architectures())
def test_save_and_load_round_trip_is_exact(architecture, tmp_path):
    model = _small(architecture, Schema(input_size=32))
    images = _images(4, 32)
    before = model(images)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=custom_objects())
    after = loaded(images)
    for key in models.OUTPUTS:
        np.testing.assert_array_equal(before[key].numpy(), after[key].numpy())


@pytest.mark.parametrize("architecture", models.architectures())
def test_tflite_conversion_is_builtin_only_and_matches_keras(architecture):
    from ai_edge_litert.interpreter import Interpreter

    schema = Schema()
    model = models.build_model(architecture, schema)
    model_bytes = export.convert(model, schema, "float32")
    ops = export.check_builtin_only(model_bytes)
    assert "GATHER" in ops or architecture == "residual"
    images = _images(3, 64)
    runner = Interpreter(model_content=model_bytes).get_signature_runner()
    got = runner(image=images)
    want = model(images)
    for key in models.OUTPUTS:
        assert np.abs(got[key] - want[key].numpy()).max() < 1e-4, key


def test_member_models_share_the_ensemble_weights():
    model = _small("ensemble", Schema(input_size=32))
    members = models.member_models(model)
    assert sorted(members) == ["attentional", "residual"]
    images = _images(2, 32)
    outs = [members[m](images) for m in models.DEFAULT_MEMBERS]
    ensemble_out = model(images)
    for key in models.OUTPUTS:
        np.testing.assert_allclose(ensemble_out[key].numpy(), (outs[0][key] + outs[1][key]).numpy() / 2, atol=1e-6)


def test_flops_and_params_of_the_defaults():
    model = models.build_model("residual", Schema())
    assert 2_000_000 < models.count_params(model) < 4_000_000
    assert models.count_flops(model) > 100e6


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture must be one of"):
        models.build_model("vgg", Schema())
