"""The one schema: labels, age groups, input size, normalisation, crop convention."""

import json

import pytest

from faceage_tf.runtime.detectors import FaceCrop
from faceage_tf.schema import AGE_GROUP_PRESETS, FaceTemplate, Schema, preset


def test_default_is_fairface_nine_groups():
    schema = Schema()
    assert schema.age_group_labels == ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
    assert schema.gender_labels == ("male", "female")
    assert [schema.age_group(a) for a in (0, 2, 2.9, 3, 19, 20, 69, 70, 116)] == [0, 0, 0, 1, 2, 3, 7, 8, 8]


def test_adience_preset():
    schema = preset("adience8")
    assert schema.num_age_groups == 8
    assert schema.age_group_labels[-1] == "60+"
    assert schema.age_group(28.5) == schema.age_group(25) == 4


def test_json_round_trip_is_equal():
    template = FaceTemplate(((0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.5, 0.7)))
    schema = Schema(input_size=96, age_group_preset="adience8", template=template)
    text = schema.to_json()
    assert Schema.from_json(text) == schema
    data = json.loads(text)
    assert data["age_group_labels"][0] == "0-3"
    assert data["template"] == {"keypoints": [[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.5, 0.7]]}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"input_size": 31}, "input_size"),
        ({"input_size": 64.0}, "input_size"),
        ({"age_group_preset": "utk5"}, "age_group_preset"),
        ({"age_group_preset": "custom"}, "age_group_edges"),
        ({"age_group_preset": "custom", "age_group_edges": (0, 10, 10)}, "age_group_edges"),
        ({"age_group_preset": "custom", "age_group_edges": (0, 20, 10)}, "age_group_edges"),
        ({"age_group_preset": "custom", "age_group_edges": (5, 10)}, "age_group_edges"),
        ({"gender_labels": ("a", "b", "c")}, "gender_labels"),
        ({"std": 0}, "std"),
        ({"template": {"keypoints": [[0.3, 0.3], [0.7, 0.3]]}}, "template.keypoints"),
        ({"template": {"keypoints": [[0.3, 0.3], [0.7, 0.3], [0.5, 0.5], [0.5, 1.4]]}}, "template.keypoints"),
        ({"template": {"keypoints": [[0.7, 0.3], [0.3, 0.3], [0.5, 0.5], [0.5, 0.7]]}}, "template.keypoints"),
        ({"template": "utkface"}, "template"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Schema(**kwargs)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="Unknown preset"):
        preset("imdb")


def test_crop_expands_a_box_to_a_centred_square():
    crop = FaceCrop(scale=2.0, shift_y=0.1)
    left, top, right, bottom = crop.expand((10, 20, 30, 60))  # 20 x 40 box, centre (20, 40)
    assert right - left == bottom - top == 80
    assert (left + right) / 2 == 20
    assert (top + bottom) / 2 == pytest.approx(40 + 8)
    with pytest.raises(ValueError, match="scale"):
        FaceCrop(scale=0)


def test_presets_are_increasing_from_zero():
    for edges in AGE_GROUP_PRESETS.values():
        assert edges[0] == 0 and list(edges) == sorted(set(edges))
