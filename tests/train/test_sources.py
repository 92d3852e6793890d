"""Training on what the runtime serves: several sources of crops cut by `faceage_tf.prepare` in one
run, each split on its own; augmentation across framing in tf.data; a whole source as the test
split; figures per source. Real faces: UTKFace crops and AAF photos, cut by the real detector."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from faceage_tf import datasets, evaluation, pipeline, prepare, training
from faceage_tf.keras import tf
from faceage_tf.schema import Schema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AAF = os.environ.get("FACEAGE_AAF", os.path.join(ROOT, "..", "shared", "data", "aaf"))
FACES = 96  # of each source


@pytest.fixture(scope="module")
def crops(utkface_dir, tmp_path_factory):
    """Prepared crops of 96 real UTKFace faces and 96 real AAF photos: {name: folder}."""
    if not os.path.isfile(os.path.join(AAF, "labels.csv")):
        pytest.skip(f"AAF not found at {AAF} (set FACEAGE_AAF to the AAF folder)")
    out = tmp_path_factory.mktemp("crops")
    utkface = []
    for name in sorted(n for n in os.listdir(utkface_dir) if n.endswith(".jpg"))[::150][:FACES]:
        age, gender, race = datasets.parse_utkface_name(name)
        utkface.append(datasets.FaceRecord(os.path.join(utkface_dir, name), float(age), gender, race))
    aaf, _ = prepare.load_aaf(AAF)
    folders = {}
    for name, records in (("utkface", utkface), ("aaf", aaf[::len(aaf) // FACES][:FACES])):
        folders[name] = str(out / name)
        report = prepare.prepare_source(records, name, folders[name], Schema())
        assert report.total - len(report.left_out) >= FACES - 4, report.summary()
    return folders


def test_prepared_crops_say_how_they_were_cut_and_another_cut_is_refused(crops):
    info = datasets.check_prepared(crops["aaf"], Schema())
    assert info["zoom"] == prepare.ZOOM and info["size"] == 96 and info["input_size"] == 64
    with pytest.raises(ValueError, match=r"input_size is 64 in .*info.json but 96 here"):
        datasets.check_prepared(crops["aaf"], Schema(input_size=96))
    with pytest.raises(ValueError, match=r"zoom is 1.5 in .*info.json but 1.2 here"):
        datasets.check_prepared(crops["aaf"], Schema(), zoom=1.2)
    result = subprocess.run([sys.executable, "training/train.py", "--sources", f"prepared:{crops['aaf']}",
                             "--input-size", "96", "--out", os.path.join(crops["aaf"], "..", "refused")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2 and "input_size is 64 in" in result.stderr and "but 96 here" in result.stderr


def test_each_source_is_split_on_its_own_and_keeps_its_name(crops, tmp_path):
    sources = [{"kind": "prepared", "path": crops["utkface"], "name": "utkface"},
               {"kind": "prepared", "path": crops["aaf"], "name": "aaf"}]
    config = training.TrainConfig(sources=sources, val_fraction=0.2, test_fraction=0.2)
    splits = training.prepare_splits(config, str(tmp_path))
    paths = {name: {r.path for r in recs} for name, recs in splits.items()}
    assert not (paths["train"] & paths["val"] or paths["train"] & paths["test"] or paths["val"] & paths["test"])
    for name in ("utkface", "aaf"):
        counts = {split: sum(r.source == name for r in recs) for split, recs in splits.items()}
        total = sum(counts.values())
        assert total >= FACES - 4 and abs(counts["test"] - 0.2 * total) <= 6, (name, counts)
    assert {r.zoom for recs in splits.values() for r in recs} == {prepare.ZOOM}
    assert datasets.read_manifest(str(tmp_path / "manifest.json")) == splits

    cross = training.TrainConfig(sources=sources, test_source="aaf")
    splits = training.prepare_splits(cross, str(tmp_path / "cross"))
    assert {r.source for r in splits["test"]} == {"aaf"} and len(splits["test"]) >= FACES - 4
    assert {r.source for r in splits["train"] + splits["val"]} == {"utkface"}
    with pytest.raises(ValueError, match="test_source must name one of the sources"):
        training.TrainConfig(sources=sources, test_source="fgnet")


def test_a_split_file_fixes_the_held_out_photos_whatever_the_crops_bytes(crops, tmp_path):
    sources = [{"kind": "prepared", "path": crops["utkface"], "name": "utkface"},
               {"kind": "prepared", "path": crops["aaf"], "name": "aaf"}]
    by_seed = training.prepare_splits(training.TrainConfig(sources=sources, val_fraction=0.2, test_fraction=0.2),
                                      str(tmp_path / "by_seed"))
    # A crop is grouped by its photo's sha1, read from its name, not by its own bytes.
    face = next(r for r in by_seed["test"] if r.source == "aaf")
    aaf = prepare.load_aaf(AAF)[0]
    cut_from = {datasets.content_hash(r.path) for r in aaf[::len(aaf) // FACES][:FACES]}  # as the fixture
    assert datasets.photo_hash(face) in cut_from and datasets.photo_hash(face) != datasets.content_hash(face.path)

    split_file = tmp_path / "split.json"
    subprocess.run([sys.executable, "training/write_split.py", "--run", str(tmp_path / "by_seed"), "--out", str(split_file)],
                   check=True, cwd=ROOT, timeout=120)
    assert json.loads(split_file.read_text()) == datasets.held_out_photos(by_seed)
    # The same split from the file, with another seed and other fractions.
    config = training.TrainConfig(sources=sources, split_file=str(split_file), seed=7, val_fraction=0.4)
    by_file = training.prepare_splits(config, str(tmp_path / "by_file"))
    assert by_file == by_seed
    assert json.loads((tmp_path / "by_file" / "manifest.json").read_text())["split_file"] == str(split_file)

    with pytest.raises(ValueError, match="fixes the test split; test_source 'aaf' would replace it"):
        training.TrainConfig(sources=sources, split_file=str(split_file), test_source="aaf")
    one_source = tmp_path / "one_source.json"
    one_source.write_text(json.dumps({"sources": {"aaf": datasets.held_out_photos(by_seed)["sources"]["aaf"]}}))
    with pytest.raises(ValueError, match=r"one_source.json: no held-out photos of source 'utkface' \(it lists \['aaf'\]\)"):
        training.prepare_splits(dataclasses.replace(config, split_file=str(one_source)), str(tmp_path / "refused"))
    both = datasets.held_out_photos(by_seed)
    both["sources"]["aaf"]["val"].append(both["sources"]["aaf"]["test"][0])
    split_file.write_text(json.dumps(both))
    with pytest.raises(ValueError, match=r"split.json: source 'aaf' lists 1 photo\(s\) in both val and test"):
        datasets.read_split_file(str(split_file))
    split_file.write_text('{"aaf": []}')
    with pytest.raises(ValueError, match=r"split.json: not a split file"):
        datasets.read_split_file(str(split_file))


def test_framing_augmentation_draws_around_the_serving_crop(crops):
    schema = Schema()
    records, _ = datasets.load_dataset("prepared", crops["aaf"], schema=schema)
    records = records[:32]
    served = pipeline.decode_faces(records, schema).numpy()
    margin = pipeline.decode_faces(records, schema, margin=True)
    assert served.shape == (32, 64, 64, 3) and margin.shape == (32, 96, 96, 3)
    seed = tf.constant([0, 7], tf.int64)
    still = pipeline.augment_framing(margin, seed, size=64, zoom=prepare.ZOOM, scale_range=(1.0, 1.0),
                                     max_rotation=0.0, max_shift=0.0, brightness=0.0, contrast=0.0).numpy()
    unflipped = np.abs(still - served).reshape(32, -1).max(axis=1)
    flipped = np.abs(still - served[:, :, ::-1]).reshape(32, -1).max(axis=1)
    assert np.minimum(unflipped, flipped).max() == 0.0  # the identity draw is the serving crop, exactly
    drawn = pipeline.augment_framing(margin, seed, size=64, zoom=prepare.ZOOM).numpy()
    again = pipeline.augment_framing(margin, seed, size=64, zoom=prepare.ZOOM).numpy()
    other = pipeline.augment_framing(margin, tf.constant([0, 8], tf.int64), size=64, zoom=prepare.ZOOM).numpy()
    assert drawn.shape == (32, 64, 64, 3) and np.array_equal(drawn, again) and not np.array_equal(drawn, other)
    # Zoomed out to 1.3 template sides, the face fills less of the crop: the centre resembles a
    # shrunken serving crop more than the serving crop itself.
    wide = pipeline.augment_framing(margin, seed, size=64, zoom=prepare.ZOOM, scale_range=(1.3, 1.3),
                                    max_rotation=0.0, max_shift=0.0, brightness=0.0, contrast=0.0).numpy()
    shrunk = tf.image.resize(served, (49, 49)).numpy()
    centre = wide[:, 8:57, 8:57]
    diff = lambda a, b: min(np.abs(a - b).mean(), np.abs(a - b[:, ::-1]).mean())  # noqa: E731
    assert np.mean([diff(c, s) for c, s in zip(centre, shrunk)]) < np.mean([diff(c, s[8:57, 8:57]) for c, s in zip(centre, served)])


def augmented(crops, source, seed, *option_sets):
    """32 prepared crops of `source` (decoded once) through `augment_framing` with each of
    `option_sets`, as numpy arrays."""
    records, _ = datasets.load_dataset("prepared", crops[source], schema=Schema())
    margin = pipeline.decode_faces(records[:32], Schema(), margin=True)
    seed = tf.constant(seed, tf.int64)
    return [pipeline.augment_framing(margin, seed, size=64, zoom=prepare.ZOOM, **options).numpy()
            for options in option_sets]


def test_greyscale_and_blur_come_with_their_probabilities_and_leave_the_other_draws_alone(crops):
    plain, grey, blurred = augmented(crops, "utkface", [3, 5], {}, {"greyscale": 1.0}, {"blur": 1.0})
    assert np.abs(grey[..., 0] - grey[..., 2]).max() < 1e-3 and np.abs(plain[..., 0] - plain[..., 2]).mean() > 5
    assert np.abs(grey.mean(axis=-1) - plain.mean(axis=-1)).mean() < 5  # the same framing, only grey

    def detail(x):  # mean absolute difference between neighbouring pixels
        return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()

    assert detail(blurred) < 0.8 * detail(plain)
    with pytest.raises(ValueError, match=r"augmentation blur is a probability \(0..1\). Received: 2"):
        training.TrainConfig(augmentation={"blur": 2})
    with pytest.raises(ValueError, match=r"Received: \['sepia'\]"):
        training.TrainConfig(augmentation={"sepia": 0.5})
    stored = training.TrainConfig(augmentation={"greyscale": 0.2}).to_dict()["augmentation"]
    assert stored == {"scale_range": [0.85, 1.3], "max_rotation": 12.0, "max_shift": 0.08, "greyscale": 0.2, "blur": 0.0,
                      "jpeg": 0.0, "input_noise": 0.0}


def test_input_noise_moves_every_value_by_at_most_its_levels_and_nothing_else(crops):
    plain, noisy, again = augmented(crops, "utkface", [6, 1], {}, {"input_noise": 1.5}, {"input_noise": 1.5})
    assert np.array_equal(noisy, again)  # seeded
    change = (noisy - plain)[(plain > 2) & (plain < 253)]  # away from the clipped ends
    assert np.abs(change).max() <= 1.5 + 1e-4 and np.abs(change).mean() > 0.6  # uniform on [-1.5, 1.5]: mean 0.75
    assert abs(change.mean()) < 0.02
    with pytest.raises(ValueError, match=r"input_noise is in 8-bit levels \(0..8\). Received: -1"):
        training.TrainConfig(augmentation={"input_noise": -1})


def test_jpeg_recompression_is_a_real_jpeg_round_trip_of_the_same_framing(crops):
    plain, compressed, again, some = augmented(crops, "aaf", [4, 2], {}, {"jpeg": 1.0}, {"jpeg": 1.0}, {"jpeg": 0.5})
    assert np.array_equal(compressed, again)
    assert np.array_equal(compressed, np.round(compressed))  # decoded from a JPEG: whole numbers
    error = np.abs(compressed - plain).reshape(32, -1).mean(axis=1)
    assert (error > 0.5).all() and (error < 12).all(), error  # artefacts on every face, the same face
    replaced = [np.array_equal(s, c) for s, c in zip(some, compressed)]
    kept = [np.array_equal(s, p) for s, p in zip(some, plain)]
    assert all(r or k for r, k in zip(replaced, kept)) and 4 < sum(replaced) < 28


def test_prepared_and_plain_crops_do_not_mix_in_training(crops, utkface_files):
    records, _ = datasets.load_dataset("prepared", crops["aaf"], schema=Schema())
    plain = datasets.FaceRecord(utkface_files[0], 30.0, 0, source="plain")
    with pytest.raises(ValueError, match=r"mix crops of different framing: zoom 1.0 \(plain: .*zoom 1.5"):
        pipeline.decode_faces(records[:4] + [plain], Schema(), margin=True)


def test_age_bias_per_band_is_the_mean_signed_error():
    records = [datasets.FaceRecord(f"f{i}", age, 0, source=src)
               for i, (age, src) in enumerate([(5, "a"), (10, "b"), (15, "a"), (30, "b"), (70, "a")])]
    predicted = np.array([9.0, 12.0, 14.0, 30.0, 60.0])
    predictions = {"gender": np.tile([[0.9, 0.1]], (5, 1)), "age_group": np.eye(9)[[1, 2, 2, 4, 7]], "age": predicted}
    result = evaluation.evaluate(predictions, records, Schema())
    assert result["age_bias"]["0-12"] == {"n": 2, "mean_signed_error": 3.0}
    assert result["age_bias"]["60+"] == {"n": 1, "mean_signed_error": -10.0}
    assert result["age_bias"]["40-59"] == {"n": 0, "mean_signed_error": None}
    assert result["by_source"]["a"]["n"] == 3 and result["by_source"]["a"]["age_bias"]["0-12"]["mean_signed_error"] == 4.0
    report = evaluation.markdown_report(result, Schema())
    assert "### By source" in report and "| a | 3 |" in report and "+4.00 (1)" in report


def test_two_prepared_sources_train_one_epoch_and_evaluate_per_source(crops, tmp_path):
    run = str(tmp_path / "run")
    config = {"sources": [{"kind": "prepared", "path": crops["utkface"], "name": "utkface"},
                          {"kind": "prepared", "path": crops["aaf"], "name": "aaf"}],
              "augmentation": {"greyscale": 0.1, "blur": 0.1}, "serving_zoom": 1.05}
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    train = subprocess.run([sys.executable, "training/train.py", "--config", str(config_path), "--architecture",
                            "residual", "--residual-widths", "16,32,64,128", "--residual-blocks", "1,1,1,1",
                            "--batch-size", "32", "--epochs", "1", "--cache", "false", "--progress", "epochs",
                            "--test-fraction", "0.25", "--out", run], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    evaluate = subprocess.run([sys.executable, "training/evaluate.py", "--run", run, "--attention", "0"],
                              capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    with open(os.path.join(run, "eval", "summary.json")) as f:
        summary = json.load(f)["residual"]
    assert set(summary["by_source"]) == {"utkface", "aaf"}
    assert summary["n"] == sum(s["n"] for s in summary["by_source"].values())
    for figures in [summary] + list(summary["by_source"].values()):
        assert 0 <= figures["gender_accuracy"] <= 1 and figures["age_mae"] > 0
        assert set(figures["age_bias"]) == set(evaluation.AGE_BANDS)
    assert "## By source" in evaluate.stdout and "residual, aaf" in evaluate.stdout
    # The export's card frames the face as the run serves it: the template drawn 1 / 1.05 inward.
    exported = subprocess.run([sys.executable, "export/export_tflite.py", "--run", run, "--variants", "float32",
                               "--out", str(tmp_path / "export")],
                              capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    with open(tmp_path / "export" / "faceage-float32.json") as f:
        card = json.load(f)
    assert card["serving_zoom"] == 1.05
    assert Schema.from_dict(card["schema"]).template == Schema().template.zoomed(1.05)
    # The batch-norm step takes its statistics from the template's framing, the crop the runtime
    # cuts pixel for pixel, not from the resampled 1.05 crop.
    training.serve_batch_norm(run)
    model, config = training.load_run(run, training.TRAINED_WEIGHTS, unweighted=False)
    records = datasets.read_manifest(os.path.join(run, "manifest.json"))["train"]
    template_framed = pipeline.decode_faces(records, config.schema)
    training.recalibrate_batch_norm(model, template_framed, config.schema, seed=config.seed)
    served = training.load_run(run, unweighted=False)[0]
    moving = [(w.name, w.numpy()) for w in served.weights if "moving_mean" in w.name]
    for (name, value), expected in zip(moving, [w.numpy() for w in model.weights if "moving_mean" in w.name]):
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def test_the_served_crop_frames_serving_zoom_template_sides(crops, utkface_files):
    """Cut from the prepared crop's margin, the served crop at zoom 1.05 is augmentation's draw
    of 1.05 template sides (no turn, no shift), and differs from the crop at zoom 1."""
    schema = Schema()
    records, _ = datasets.load_dataset("prepared", crops["aaf"], schema=schema)
    records = records[:32]
    served = pipeline.decode_faces(records, schema, serving_zoom=1.05).numpy().astype(np.float64)
    margin = pipeline.decode_faces(records, schema, margin=True)
    drawn = pipeline.augment_framing(margin, tf.constant([0, 7], tf.int64), size=64, zoom=prepare.ZOOM,
                                     scale_range=(1.05, 1.05), max_rotation=0.0, max_shift=0.0, brightness=0.0,
                                     contrast=0.0).numpy().astype(np.float64)
    tight = pipeline.decode_faces(records, schema).numpy().astype(np.float64)
    error = [min(np.abs(d - s).mean(), np.abs(d - s[:, ::-1]).mean()) for d, s in zip(drawn, served)]
    off = [min(np.abs(d - s).mean(), np.abs(d - s[:, ::-1]).mean()) for d, s in zip(drawn, tight)]
    assert np.mean(error) < 1.5 and np.mean(off) > 3 * np.mean(error), (np.mean(error), np.mean(off))
    plain = datasets.FaceRecord(utkface_files[0], 30.0, 0)
    with pytest.raises(ValueError, match=f"{os.path.basename(utkface_files[0])}: a plain face crop has no margin"):
        pipeline.decode_faces([plain], schema, serving_zoom=1.05)
    with pytest.raises(ValueError, match=r"serving_zoom 1.6 must lie in \(0, 1.5\]"):
        pipeline.decode_faces(records[:1], schema, serving_zoom=1.6)


def test_race_gap_comes_with_a_bootstrap_interval_that_widens_for_small_groups():
    rng = np.random.default_rng(1)

    def gap_for(small):
        races = np.array([0] * 2000 + [1] * small)
        correct = rng.random(len(races)) < np.where(races == 0, 0.95, 0.90)
        records = [datasets.FaceRecord(f"f{i}", 30.0, 0, race=int(r)) for i, r in enumerate(races)]
        predictions = {"gender": np.where(correct[:, None], [[0.9, 0.1]], [[0.1, 0.9]]),
                       "age_group": np.tile(np.eye(9)[4], (len(races), 1)), "age": np.full(len(races), 30.0)}
        return evaluation.evaluate(predictions, records, Schema())["race_gap"]

    small, large = gap_for(100), gap_for(2000)
    for gap in (small, large):
        low, high = gap["gender_accuracy_ci95"]
        assert low <= gap["gender_accuracy"] <= high
    assert np.diff(small["gender_accuracy_ci95"]) > 2 * np.diff(large["gender_accuracy_ci95"])
    assert large["gender_accuracy_ci95"][0] > 0.03  # 2,000 faces each: the 5-point gap is clear


def test_race_gap_at_the_same_ages_takes_out_what_the_age_mix_explains(tmp_path):
    # Two groups read gender equally well at every age (60% of babies, 96% of adults), but one has
    # half its faces babies: its plain accuracy is lower; at the same ages the gap is gone. A third
    # group is worse at every age: that gap stays.
    rng = np.random.default_rng(2)
    faces = []  # (race, age, correct)
    for race, babies, adults, skill in ((0, 100, 900, 0.0), (1, 500, 500, 0.0), (2, 200, 800, 0.08)):
        for age, n, rate in ((1.0, babies, 0.60), (30.0, adults, 0.96)):
            faces += [(race, age, hit) for hit in rng.random(n) < rate - skill]
    records = [datasets.FaceRecord(f"f{i}", age, 0, race=race) for i, (race, age, _) in enumerate(faces)]
    correct = np.array([hit for *_, hit in faces])
    predictions = {"gender": np.where(correct[:, None], [[0.9, 0.1]], [[0.1, 0.9]]),
                   "age_group": np.tile(np.eye(9)[4], (len(faces), 1)), "age": np.full(len(faces), 30.0)}
    result = evaluation.evaluate(predictions, records, Schema())
    gap, by_race = result["race_gap"], result["race_gap"]["gender_accuracy_same_ages_by_race"]
    white, black, asian = (by_race[name] for name in ("White", "Black", "Asian"))
    plain = {name: result["by_race"][name]["gender_accuracy"] for name in ("White", "Black")}
    assert plain["White"] - plain["Black"] > 0.12  # 0.92 against 0.78: the babies' share
    assert abs(white - black) < 0.04  # at the same ages: level
    assert white - asian > 0.05 and gap["gender_accuracy_same_ages"] > 0.05  # worse at every age: kept
    low, high = gap["gender_accuracy_same_ages_ci95"]
    assert low <= gap["gender_accuracy_same_ages"] <= high and low > 0.03
    cells = result["by_race_and_age_group"]["Black"]
    assert cells["0-2"]["n"] == 500 and cells["30-39"]["n"] == 500 and cells["70+"] == {"n": 0}
    evaluation.write_report(result, Schema(), str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "At the same ages" in report and "| Black | " in report.split("by race and age group")[1]


def test_source_weights_weigh_every_loss_of_a_sources_faces(crops, tmp_path):
    sources = [{"kind": "prepared", "path": crops["utkface"], "name": "utkface"},
               {"kind": "prepared", "path": crops["aaf"], "name": "aaf"}]
    with pytest.raises(ValueError, match=r"source_weights name source\(s\) \['fgnet'\]"):
        training.TrainConfig(sources=sources, source_weights={"fgnet": 2.0})
    with pytest.raises(ValueError, match="source_weights must be positive"):
        training.TrainConfig(sources=sources, source_weights={"aaf": 0.0})
    config = training.TrainConfig(sources=sources, source_weights={"aaf": 3.0}, test_fraction=0.2)
    records = training.prepare_splits(config, str(tmp_path))["train"]
    weights = training.source_face_weights(records, config.source_weights)
    is_aaf = np.array([r.source == "aaf" for r in records])
    assert weights.mean() == pytest.approx(1.0)
    assert weights[is_aaf] == pytest.approx(3.0 * weights[~is_aaf][0]) and np.ptp(weights[~is_aaf]) == 0
    assert training.source_face_weights(records, {}) is None

    # Each batch's weights are its faces' own: the source's on every output, times the age
    # group's on the age outputs and the gender weight on the gender outputs. The face is told
    # by its label (here its index).
    schema = Schema()
    n = len(records)
    age_weights = np.linspace(0.5, 2.0, n).astype(np.float32)
    gender_weights = np.linspace(3.0, 1.0, n).astype(np.float32)
    labels = {key: np.arange(n) for key in ("gender", "age_group", "age_dist", "age")}
    faces = tf.zeros([n, schema.input_size, schema.input_size, 3], tf.uint8)
    ds = pipeline.training_dataset(faces, labels, ["gender", "age_group", "age"], schema, batch_size=16, epochs=1,
                                   sample_weights=age_weights, gender_weights=gender_weights, face_weights=weights)
    seen = 0
    for _, ys, ws in ds:
        face = ys["age"].numpy()
        np.testing.assert_allclose(ws["gender"].numpy(), weights[face] * gender_weights[face], rtol=1e-6)
        np.testing.assert_allclose(ws["age"].numpy(), weights[face], rtol=1e-6)
        np.testing.assert_allclose(ws["age_group"].numpy(), weights[face] * age_weights[face], rtol=1e-6)
        seen += len(face)
    assert seen == pipeline.steps_per_epoch(n, 16) * 16
