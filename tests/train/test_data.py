"""Datasets (UTKFace, Adience, CSV), bad-data reports, content splits, and the tf.data pipeline."""

import collections
import os
import shutil

import numpy as np
import pytest

from faceage_tf import datasets, pipeline, prepare, preprocess
from faceage_tf.schema import Schema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_utkface_loads_every_real_face_including_odd_names(utkface_dir):
    records, report = datasets.load_utkface(utkface_dir)
    assert report.total == len(os.listdir(utkface_dir)) - ("README.md" in os.listdir(utkface_dir))
    assert report.problems == []
    by_name = {os.path.basename(r.path): r for r in records}
    assert by_name["39_1_20170116174525125.jpg.chip.jpg"].race == -1  # no race field
    assert by_name["55_0_0_20170116232725357jpg.chip.jpg"].age == 55  # odd timestamp
    assert by_name["24_0_1_20170116220224657 .jpg.chip.jpg"].race == 1  # space before .jpg
    assert all(0 <= r.age <= datasets.MAX_VALID_AGE and r.gender in (0, 1) for r in records)


def _copy_faces(files, folder, names):
    os.makedirs(folder, exist_ok=True)
    for src, name in zip(files, names):
        shutil.copy(src, os.path.join(folder, name))


def test_bad_files_are_reported_and_the_rest_kept(utkface_files, tmp_path):
    good = [os.path.basename(f) for f in utkface_files[:5]]
    _copy_faces(utkface_files[:5], tmp_path, good)
    data = open(utkface_files[5], "rb").read()
    (tmp_path / "30_1_0_20170109150557335.jpg.chip.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (tmp_path / "31_1_0_20170109150557336.jpg.chip.jpg").write_bytes(b"")  # empty
    (tmp_path / "32_1_0_20170109150557337.jpg.chip.jpg").write_text("not a jpeg")  # not an image
    (tmp_path / "130_0_0_20170109150557338.jpg.chip.jpg").write_bytes(data)  # age out of range
    (tmp_path / "33_7_0_20170109150557339.jpg.chip.jpg").write_bytes(data)  # gender out of range
    (tmp_path / "face.jpg").write_bytes(data)  # name without labels
    records, report = datasets.load_utkface(str(tmp_path))
    assert sorted(os.path.basename(r.path) for r in records) == sorted(good)
    assert report.total == 11 and report.kept == 5
    reasons = {os.path.basename(p): r for p, r in report.problems}
    assert reasons["30_1_0_20170109150557335.jpg.chip.jpg"].startswith("truncated or corrupt image")
    assert reasons["31_1_0_20170109150557336.jpg.chip.jpg"] == "empty file"
    assert reasons["32_1_0_20170109150557337.jpg.chip.jpg"].startswith("not an image")
    assert reasons["130_0_0_20170109150557338.jpg.chip.jpg"].startswith("age out of range")
    assert reasons["33_7_0_20170109150557339.jpg.chip.jpg"].startswith("gender out of range")
    assert reasons["face.jpg"].startswith("name does not parse")
    assert "6 left out" in report.summary()


def test_adience_folds_and_labels(utkface_files, tmp_path):
    header = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score\n"
    rows = {0: [("u1", "a.jpg", 1, "(25, 32)", "f"), ("u1", "b.jpg", 2, "(0, 2)", "m"), ("u1", "c.jpg", 3, "None", "f")],
            1: [("u2", "d.jpg", 4, "35", "m"), ("u2", "e.jpg", 5, "(60, 100)", "u"), ("u2", "gone.jpg", 6, "(8, 12)", "f")]}
    files = iter(utkface_files)
    for fold, entries in rows.items():
        lines = [header]
        for user, image, face_id, age, gender in entries:
            if image != "gone.jpg":
                _copy_faces([next(files)], tmp_path / "aligned" / user, [f"landmark_aligned_face.{face_id}.{image}"])
            lines.append(f"{user}\t{image}\t{face_id}\t{age}\t{gender}\t0\t0\t10\t10\t0\t0\t1\n")
        (tmp_path / f"fold_{fold}_data.txt").write_text("".join(lines))
    records, report = datasets.load_adience(str(tmp_path))
    assert [(r.age, r.gender, r.fold) for r in records] == [(28.5, 1, 0), (1.0, 0, 0), (35.0, 0, 1)]
    reasons = sorted(r.split(":")[0] for _, r in report.problems)
    assert reasons == ["no age label", "no gender label", "no such file"]
    schema = Schema(age_group_preset="adience8")
    assert [schema.age_group(r.age) for r in records] == [4, 0, 4]
    splits = datasets.split_by_fold(records, test_fold=1)
    assert len(splits["test"]) == 1 and len(splits["val"]) == 2 and splits["train"] == []


def test_csv_loader(utkface_files, tmp_path):
    _copy_faces(utkface_files[:3], tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "faces.csv").write_text(
        "path,age,gender\nimg/a.jpg,23,female\nimg/b.jpg,7,m\nimg/c.jpg,old,f\nimg/x.jpg,40,0\nimg/a.jpg,30,x\n")
    records, report = datasets.load_csv(str(tmp_path / "faces.csv"))
    assert [(os.path.basename(r.path), r.age, r.gender) for r in records] == [("a.jpg", 23.0, 1), ("b.jpg", 7.0, 0)]
    assert sorted(r.split(":")[0] for _, r in report.problems) == ["bad age", "bad gender", "no such file"]
    (tmp_path / "bad.csv").write_text("file,years\n")
    with pytest.raises(ValueError, match="lacks column"):
        datasets.load_csv(str(tmp_path / "bad.csv"))


def test_split_keeps_duplicates_together_and_is_stratified_and_seeded(utkface_dir, tmp_path):
    records, _ = datasets.load_utkface(utkface_dir, validate=False)
    schema = Schema()
    splits = datasets.split_by_content(records, schema, seed=3)
    hashes = {name: {datasets.content_hash(r.path) for r in recs} for name, recs in splits.items()}
    assert not hashes["train"] & hashes["test"] and not hashes["train"] & hashes["val"] and not hashes["val"] & hashes["test"]
    unique = len(hashes["train"] | hashes["val"] | hashes["test"])
    assert len(records) - unique > 300  # the real set has hundreds of byte-identical duplicates
    assert sum(len(v) for v in splits.values()) == len(records)
    for name in ("val", "test"):
        assert abs(len(splits[name]) / len(records) - 0.1) < 0.01
        female = np.mean([r.gender for r in splits[name]])
        assert abs(female - np.mean([r.gender for r in records])) < 0.02
    again = datasets.split_by_content(records, schema, seed=3)
    assert again == splits
    assert datasets.split_by_content(records, schema, seed=4)["test"] != splits["test"]
    path = str(tmp_path / "manifest.json")
    datasets.write_manifest(path, splits, seed=3)
    assert datasets.read_manifest(path) == splits


def test_the_packaged_models_split_file_holds_out_a_stratified_tenth_of_each_data_set(utkface_dir):
    """configs/splits/default.json: the packaged default model's held-out photos, found in the real
    data sets, each (gender, age group) stratum held out a tenth for validation and a tenth for test."""
    aaf_dir = os.environ.get("FACEAGE_AAF", os.path.join(ROOT, "..", "shared", "data", "aaf"))
    if not os.path.isfile(os.path.join(aaf_dir, "labels.csv")):
        pytest.skip(f"AAF not found at {aaf_dir} (set FACEAGE_AAF to the AAF folder)")
    held_out = datasets.read_split_file(os.path.join(ROOT, "configs", "splits", "default.json"))
    schema = Schema()
    faces = {"utkface": datasets.load_utkface(utkface_dir, validate=False)[0], "aaf": prepare.load_aaf(aaf_dir)[0]}
    counts = {}
    for source, records in faces.items():
        strata = collections.defaultdict(lambda: collections.Counter())
        photos = set()
        for record in records:
            digest = datasets.content_hash(record.path)
            split = "test" if digest in held_out[source]["test"] else "val" if digest in held_out[source]["val"] else "train"
            if digest not in photos:  # a photo counts once (UTKFace has byte-identical copies)
                strata[(record.gender, schema.age_group(record.age))][split] += 1
            photos.add(digest)
            counts[(source, split)] = counts.get((source, split), 0) + 1
        assert held_out[source]["val"] | held_out[source]["test"] <= photos  # every listed photo is in the data set
        for stratum, split_counts in strata.items():
            total = sum(split_counts.values())
            for split in ("val", "test"):
                assert abs(split_counts[split] - 0.1 * total) <= 1.5, (source, stratum, split_counts)
    # The faces of the README's test split (the 10 UTKFace crops without a face found train nowhere).
    assert (counts["utkface", "test"], counts["aaf", "test"], counts["utkface", "val"], counts["aaf", "val"]) == \
        (2071, 644, 2066, 644)


def test_pipeline_decodes_like_the_runtime_and_is_deterministic(utkface_files):
    schema = Schema(input_size=48)
    records = [datasets.FaceRecord(p, *datasets.parse_utkface_name(os.path.basename(p))) for p in utkface_files[:40]]
    faces = pipeline.decode_faces(records, schema)
    expected = np.stack([preprocess.load_face(r.path, 48) for r in records])
    np.testing.assert_array_equal(faces.numpy(), expected)
    np.testing.assert_array_equal(pipeline.normalize(faces, schema).numpy(), preprocess.normalize(expected, schema))

    labels = pipeline.label_arrays(records, schema)
    keys = ["gender", "age_group", "age_dist", "age", "residual_gender"]

    def batches(start_epoch):
        ds = pipeline.training_dataset(faces, labels, keys, schema, batch_size=16, epochs=3, start_epoch=start_epoch, seed=7)
        return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y, w in ds]

    full, resumed = batches(0), batches(2)
    assert len(full) == 3 * 2 and len(resumed) == 2
    for (x1, y1), (x2, y2) in zip(full[4:], resumed):  # epoch 2 alone equals epoch 2 of the whole run
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1["age"], y2["age"])
    assert not np.array_equal(full[0][0], full[2][0])  # epochs differ in order and augmentation
    x, y = full[0]
    assert x.shape == (16, 48, 48, 3) and x.min() >= -1.0 and x.max() <= 1.0
    assert set(y) == set(keys) and np.array_equal(y["gender"], y["residual_gender"])


def test_age_group_weights_balance_rare_groups():
    groups = np.array([0] * 90 + [1] * 10)
    weights = pipeline.age_group_weights(groups, 2, power=1.0)
    assert weights[groups == 1].sum() == pytest.approx(weights[groups == 0].sum())
    assert np.all(pipeline.age_group_weights(groups, 2, power=0.0) == 1.0)


def _bomb_png(width=100_000, height=100_000) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's header)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


@pytest.fixture
def folder_with_bad_images(utkface_files, tmp_path):
    """70 real faces and, under valid UTKFace names, a decompression-bomb header, a 64-megapixel
    image (over what the pipeline decodes) and a dangling symbolic link."""
    from PIL import Image

    good = [os.path.basename(f) for f in utkface_files[:70]]
    _copy_faces(utkface_files[:70], tmp_path, good)
    bad = {"bomb": "40_0_0_20170109150557001.jpg.chip.jpg", "huge": "41_1_1_20170109150557002.jpg.chip.jpg",
           "link": "42_0_2_20170109150557003.jpg.chip.jpg"}
    (tmp_path / bad["bomb"]).write_bytes(_bomb_png())
    Image.new("RGB", (8000, 8000), (120, 100, 90)).save(tmp_path / bad["huge"], "JPEG", quality=30)
    os.symlink(tmp_path / "gone.jpg", tmp_path / bad["link"])
    return tmp_path, good, bad


def test_bombs_huge_images_and_dangling_links_are_reported(folder_with_bad_images):
    folder, good, bad = folder_with_bad_images
    records, report = datasets.load_utkface(str(folder))
    assert sorted(os.path.basename(r.path) for r in records) == sorted(good)
    reasons = {os.path.basename(p): r for p, r in report.problems}
    assert "decompression bomb" in reasons[bad["bomb"]]
    assert reasons[bad["huge"]].startswith("image too large (8000x8000")
    assert reasons[bad["link"]] == "dangling symbolic link"
    assert report.total == len(good) + 3 and report.kept == len(good)


def test_training_goes_on_past_bad_images_and_lists_them(folder_with_bad_images, tmp_path):
    import json

    from faceage_tf.training import TrainConfig, train

    folder, good, bad = folder_with_bad_images
    run = str(tmp_path / "run")
    config = TrainConfig(architecture="residual", data=str(folder), schema={"input_size": 32}, batch_size=32,
                         epochs=1, cache=False, network_options={"residual": {"widths": (8, 8, 8, 8),
                                                                             "blocks": (1, 1, 1, 1)}})
    train(config, run, progress="none")
    assert os.path.exists(os.path.join(run, "final_weights.h5"))
    with open(os.path.join(run, "data_report.json")) as f:
        listed = {os.path.basename(p["path"]) for p in json.load(f)["problems"]}
    assert listed == set(bad.values())


def test_a_face_the_pipeline_cannot_decode_is_named_in_a_clear_error(folder_with_bad_images):
    folder, good, bad = folder_with_bad_images
    records = [datasets.FaceRecord(str(folder / name), 30.0, 0) for name in (good[0], bad["huge"])]
    with pytest.raises(ValueError, match=f"decoding the faces failed: .*{bad['huge']}: image too large"):
        pipeline.decode_faces(records, Schema(input_size=32))
