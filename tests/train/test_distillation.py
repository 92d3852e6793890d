"""Knowledge distillation in model.fit: a student learns from a teacher run's soft targets
beside the labels, keeps the teacher's split, and loads back like any run."""

import os

import numpy as np
import pytest

from faceage_tf import datasets, models, pipeline
from faceage_tf.training import TrainConfig, load_run, teacher_targets, train

COMMON = dict(limit=96, batch_size=32, cache=False, epochs=1, schema={"input_size": 32})


@pytest.fixture(scope="module")
def teacher_run(utkface_dir, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("teacher"))
    config = TrainConfig(architecture="ensemble", data=utkface_dir, **COMMON,
                         network_options={"residual": {"widths": (8, 8, 8, 8), "blocks": (1, 1, 1, 1)},
                                          "attentional": {"width": 4}})
    train(config, run, progress="none")
    return run


def test_a_student_learns_from_the_teachers_soft_targets(teacher_run, utkface_dir, tmp_path):
    student_run = str(tmp_path / "student")
    config = TrainConfig(architecture="attentional", data=utkface_dir, teacher=teacher_run, distill_weight=0.7,
                         network_options={"attentional": {"width": 4, "separable": True}}, **COMMON)
    model, history = train(config, student_run, progress="none")

    # Same split as the teacher: the student's test faces are the teacher's.
    splits = datasets.read_manifest(os.path.join(student_run, "manifest.json"))
    assert splits == datasets.read_manifest(os.path.join(teacher_run, "manifest.json"))

    # The soft targets are the teacher's own predictions (with flip) on the serving crops, as
    # trained: their age heads lean by the age weights that the student's label losses share.
    teacher, teacher_config = load_run(teacher_run, unweighted=False)
    faces = pipeline.decode_faces(splits["val"], teacher_config.schema)
    targets = teacher_targets(teacher_run, faces, teacher_config.schema, age_balance=config.age_balance,
                              cache=os.path.join(student_run, "teacher_val.npz"))
    _assert_targets_are(targets, pipeline.predict(teacher, faces, teacher_config.schema, flip=True), teacher_config)
    # A student without age weights learns from the teacher as served, its weights taken out.
    served = pipeline.predict(load_run(teacher_run)[0], faces, teacher_config.schema, flip=True)
    _assert_targets_are(teacher_targets(teacher_run, faces, teacher_config.schema, age_balance=0.0), served,
                        teacher_config)
    assert np.abs(served["age_group"] - targets["teacher_age_group"]).max() > 0.01

    # Each head's loss is shared 0.3 (labels) / 0.7 (teacher).
    label_loss = sum(history[key + "_loss"][0] for key in models.SOFT_TARGETS)
    teacher_loss = sum(history[models.TEACHER_PREFIX + key + "_loss"][0] for key in models.SOFT_TARGETS)
    assert history["loss"][0] == pytest.approx(0.3 * label_loss + 0.7 * teacher_loss, rel=1e-3)

    # The student's weights files are its own: it loads back, exports and fine-tunes as any run.
    loaded, loaded_config = load_run(student_run, unweighted=False)  # as trained, like `model`
    assert loaded_config.teacher == teacher_run
    assert type(loaded.get_layer("attn_stage4_2_conv")).__name__ == "SeparableConv2D"
    np.testing.assert_array_equal(loaded.predict(faces.numpy()[:4] / 127.5 - 1, verbose=0)["age"],
                                  model.predict(faces.numpy()[:4] / 127.5 - 1, verbose=0)["age"])


def _assert_targets_are(targets, predicted, config):
    for key in ("gender", "age_group"):
        np.testing.assert_allclose(targets[models.TEACHER_PREFIX + key], predicted[key], atol=1e-5)
    ages = np.arange(config.schema.max_age + 1)
    np.testing.assert_allclose(targets["teacher_age_dist"] @ ages, predicted["age"][:, 0], atol=1e-3)


def test_separable_convolutions_shrink_the_attentional_network():
    full = models.network("attentional", options={"width": 16})
    separable = models.network("attentional", options={"width": 16, "separable": True})
    assert models.count_params(separable) < 0.5 * models.count_params(full)
    assert models.count_flops(separable) < 0.3 * models.count_flops(full)


def test_capping_the_last_stage_moves_weights_to_where_the_multiply_adds_are():
    narrow = models.network("attentional", options={"width": 24})
    capped = models.network("attentional", options={"width": 32, "multipliers": (1, 2, 4, 4)})
    assert capped.get_layer("attn_stage1_1_conv").filters == 32
    assert capped.get_layer("attn_stage4_2_conv").filters == 128
    # Fewer weights than the narrow network, more multiply-adds on the larger maps.
    assert models.count_params(capped) < models.count_params(narrow)
    assert models.count_flops(capped) > 1.4 * models.count_flops(narrow)
    with pytest.raises(ValueError, match="4 stages"):
        models.network("attentional", options={"multipliers": (1, 2, 4)})


def test_distillation_refuses_a_bad_share_and_a_teacher_of_another_schema(teacher_run, utkface_dir, tmp_path):
    with pytest.raises(ValueError, match="distill_weight is a share of the loss"):
        TrainConfig(teacher=teacher_run, distill_weight=1.5)
    config = TrainConfig(architecture="attentional", data=utkface_dir, teacher=teacher_run,
                         **dict(COMMON, schema={"input_size": 48}))
    with pytest.raises(ValueError, match=f"teacher {teacher_run} was trained with another schema"):
        train(config, str(tmp_path / "student"), progress="none")
