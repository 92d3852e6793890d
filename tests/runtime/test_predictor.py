"""`FaceAgePredictor` on real face crops: raw outputs, per-face predictions, batches."""

import json

import numpy as np
import pytest
from PIL import Image

from faceage_tf.runtime import FacePrediction


def test_predict_tensor_outputs(predictor, faces):
    batch = np.stack([predictor.preprocess(f) for f in faces])
    out = predictor.predict_tensor(batch)
    n = len(faces)
    assert {k: v.shape for k, v in out.items()} == {"gender": (n, 2), "age_group": (n, 9), "age": (n, 1)}
    np.testing.assert_allclose(out["gender"].sum(axis=1), 1, atol=1e-3)
    np.testing.assert_allclose(out["age_group"].sum(axis=1), 1, atol=1e-3)
    assert ((0 <= out["age"]) & (out["age"] <= 100)).all()
    single = predictor.predict_tensor(batch[:1])
    np.testing.assert_allclose(single["age"], out["age"][:1], atol=1e-3)
    empty = predictor.predict_tensor(np.zeros((0, 64, 64, 3), np.float32))
    assert empty["age_group"].shape == (0, 9)


def test_predict_tensor_refuses_wrong_shapes(predictor):
    with pytest.raises(ValueError, match=r"shape \(N, 64, 64, 3\)"):
        predictor.predict_tensor(np.zeros((2, 96, 96, 3), np.float32))


def test_predict_a_face_crop(predictor, faces):
    (face,) = predictor.predict(faces[0])
    assert isinstance(face, FacePrediction)
    assert face.box == (0.0, 0.0, 200.0, 200.0)
    assert face.gender in ("male", "female") and 0.5 <= face.gender_probability <= 1
    assert face.age_group in predictor.schema.age_group_labels and 0 < face.age_group_probability <= 1
    assert 0 <= face.age <= 100
    data = json.loads(json.dumps(face.to_dict()))
    assert set(data) == {"box", "gender", "gender_probability", "age_group", "age_group_probability", "age",
                         "age_range", "detection_score", "keypoints"}
    low, high = face.age_range
    assert 0 <= low < face.age < high <= 101
    assert data["detection_score"] is None and data["keypoints"] is None  # detector "none"


def test_batch_equals_one_by_one(predictor, faces):
    batch = predictor.predict_batch(faces)
    assert len(batch) == len(faces)
    for path, from_batch in zip(faces, batch):
        (alone,) = predictor.predict(path)
        assert (alone.gender, alone.age_group) == (from_batch.gender, from_batch.age_group)
        assert alone.age == pytest.approx(from_batch.age, abs=1e-3)
    assert predictor.predict_batch([]) == []


def test_predict_accepts_files_bytes_images_and_arrays(predictor, faces):
    (expected,) = predictor.predict(faces[1])
    with open(faces[1], "rb") as f:
        data = f.read()
    image = Image.open(faces[1])
    for source in (data, image, np.asarray(image.convert("RGB"))):
        (face,) = predictor.predict(source)
        assert face.age == pytest.approx(expected.age, abs=1e-4)


def test_many_crops_in_one_batch(predictor, faces):
    crops = (faces * 5)[:37]  # more than one interpreter batch (32)
    ages = [p.age for p in predictor.predict_batch(crops)]
    assert len(ages) == 37 and ages[:len(faces)] == pytest.approx(ages[len(faces):2 * len(faces)], abs=1e-4)


def test_the_age_range_spreads_each_group_over_its_years(predictor):
    from faceage_tf.runtime.predictor import age_interval
    schema = predictor.schema
    assert age_interval(np.eye(9)[3], schema) == pytest.approx((21.0, 29.0))  # all in 20-29: its middle 80%
    assert age_interval(np.eye(9)[8], schema) == pytest.approx((73.1, 97.9))  # 70+ runs to max_age
    low, high = age_interval(np.full(9, 1 / 9), schema)
    assert low < 5 and high > 65
