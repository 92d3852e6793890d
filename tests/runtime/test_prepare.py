"""Training faces cut by the serving path (`faceage_tf.prepare`): the runtime's detector and
alignment with a margin, AAF's label rules, misses reported, crops cached."""

import csv
import os
import shutil

import numpy as np
from PIL import Image

from faceage_tf import prepare
from faceage_tf.align import align_face
from faceage_tf.datasets import FaceRecord
from faceage_tf.runtime import FaceAgePredictor
from faceage_tf.schema import Schema


def centre(crop: Image.Image, size: int) -> np.ndarray:
    """The template's framing inside a cached crop: its centre 1 / ZOOM, at the input size."""
    side = crop.width / prepare.ZOOM
    margin = (crop.width - side) / 2
    return np.asarray(crop.resize((size, size), Image.BILINEAR, box=(margin, margin, margin + side, margin + side)), np.float64)


def test_cached_crops_hold_the_serving_crop_with_a_margin(tmp_path, aaf_photos, utkface_files):
    schema = Schema()
    records = [FaceRecord(p, 30.0, 0) for p in aaf_photos[:4] + utkface_files[:4]]
    kept, report = prepare.prepare(records, "mixed", str(tmp_path / "cache"), schema)
    assert len(kept) == 8 and report.left_out == []
    predictor = FaceAgePredictor()
    for record, original in zip(kept, records[:4]):  # photos: the margin comes from the photo itself
        crop = Image.open(record.path)
        assert crop.size == (96, 96)
        image = Image.open(original.path).convert("RGB")
        served = np.asarray(align_face(image, predictor.detector.detect(image)[0].keypoints, schema.template, 64), np.float64)
        assert np.abs(centre(crop, 64) - served).mean() < 6  # the same face, framed the same way
    for record in kept[4:]:  # UTKFace crops end at the face: the margin is reflected, never black
        pixels = np.asarray(Image.open(record.path))
        assert (pixels.reshape(-1, 3).max(axis=1) < 8).mean() < 0.02


def test_a_face_the_detector_misses_is_listed_and_crops_are_reused(tmp_path, aaf_photos):
    sky = tmp_path / "sky.png"
    Image.new("RGB", (300, 340), (90, 140, 220)).save(sky)
    records = [FaceRecord(str(sky), 20.0, 1), FaceRecord(aaf_photos[0], 2.0, 1)]
    kept, report = prepare.prepare(records, "aaf", str(tmp_path / "cache"), Schema())
    assert [r.age for r in kept] == [2.0]
    assert report.left_out == [(str(sky), "no face found by the runtime's detector")]
    written = os.path.getmtime(kept[0].path)
    again, _ = prepare.prepare(records[1:], "aaf", str(tmp_path / "cache"), Schema())
    assert again == kept and os.path.getmtime(kept[0].path) == written
    wider, _ = prepare.prepare(records[1:], "aaf", str(tmp_path / "cache"), Schema(), zoom=1.8)
    assert wider[0].path != kept[0].path and Image.open(wider[0].path).size == (115, 115)  # cut anew


def test_crops_for_another_input_size_are_cut_at_that_size(tmp_path, utkface_dir):
    out = tmp_path / "crops96"
    assert prepare.main(["--source", f"utkface:{utkface_dir}", "--out", str(out), "--limit", "3", "--input-size", "96"]) == 0
    with open(out / "utkface" / "info.json") as f:
        assert '"input_size": 96' in f.read()
    crops = [n for n in os.listdir(out / "utkface") if n.endswith(".png")]
    assert len(crops) == 3 and all(Image.open(out / "utkface" / n).size == (144, 144) for n in crops)


def test_aaf_labels_drop_conflicts_and_keep_one_file_per_duplicate_group(tmp_path, aaf_photos):
    (tmp_path / "images").mkdir()
    rows = [("a.jpg", 20, "female", "", 0), ("b.jpg", 31, "male", "g1", 0), ("c.jpg", 31, "male", "g1", 0),
            ("d.jpg", 5, "female", "g2", 1), ("e.jpg", 40, "robot", "", 0)]
    for (name, *_), photo in zip(rows, aaf_photos):
        shutil.copy(photo, tmp_path / "images" / name)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "age", "gender", "dup_group", "label_conflict"])
        writer.writerows(rows)
    records, left_out = prepare.load_aaf(str(tmp_path))
    assert [(os.path.basename(r.path), r.age, r.gender) for r in records] == [("a.jpg", 20.0, 1), ("b.jpg", 31.0, 0)]
    reasons = {os.path.basename(p): r for p, r in left_out}
    assert reasons["c.jpg"].startswith("duplicate") and reasons["d.jpg"].startswith("label conflict")
    assert reasons["e.jpg"] == "unknown gender label 'robot'"
