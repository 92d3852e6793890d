"""model.fit training on real faces: the loss falls, checkpoints restore, a killed run resumes
where an uninterrupted one would end, two real worker processes train as one, evaluation reports."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from faceage_tf import datasets, pipeline
from faceage_tf.training import TrainConfig, load_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = [sys.executable, os.path.join(ROOT, "training", "train.py")]
# A small but real run: 1,000 real faces at 32 px, a narrow residual net.
SMALL = ["--architecture", "residual", "--input-size", "32", "--residual-widths", "16,32,64,128",
         "--residual-blocks", "1,1,1,1", "--batch-size", "32", "--progress", "epochs", "--cache", "false"]


def _run(args, **kwargs):
    return subprocess.run(TRAIN + args, capture_output=True, text=True, timeout=600, cwd=ROOT, **kwargs)


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def _final_weights(run_dir):
    model, _ = load_run(run_dir, weights="final_weights.h5")
    return model.get_weights()


@pytest.fixture(scope="module")
def small_run(utkface_dir, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    result = _run(SMALL + ["--data", utkface_dir, "--limit", "1000", "--epochs", "3", "--out", run_dir])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_loss_falls_and_the_run_is_recorded(small_run):
    losses = [float(row["loss"]) for row in _history(small_run)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    for name in ("config.json", "manifest.json", "data_report.json", "best_weights.h5", "final_weights.h5",
                 "metrics.json"):
        assert os.path.exists(os.path.join(small_run, name)), name
    assert os.listdir(os.path.join(small_run, "tensorboard"))
    config = TrainConfig.from_file(os.path.join(small_run, "config.json"))
    assert config.architecture == "residual" and config.epochs == 3


def test_checkpoint_restores_the_trained_model(small_run):
    model, config = load_run(small_run)
    schema = config.schema
    with open(os.path.join(small_run, "manifest.json")) as f:
        manifest = json.load(f)
    assert sum(len(v) for v in manifest["splits"].values()) == 1000
    from faceage_tf.datasets import read_manifest

    val = read_manifest(os.path.join(small_run, "manifest.json"))["val"]
    faces = pipeline.decode_faces(val, schema)
    predictions = pipeline.predict(model, faces, schema, flip=False)
    accuracy = np.mean(np.argmax(predictions["gender"], -1) == [r.gender for r in val])
    best_epoch = min(_history(small_run), key=lambda row: float(row["val_loss"]))
    assert accuracy == pytest.approx(float(best_epoch["val_gender_acc"]), abs=1e-6)


def test_served_model_divides_the_age_group_loss_weights_out(small_run):
    """The run trained with `age_balance`; as served, its age heads give the trained
    probabilities divided by each age group's loss weight, renormalised."""
    from faceage_tf import models
    from faceage_tf.datasets import read_manifest
    from faceage_tf.keras import keras

    trained, config = load_run(small_run, unweighted=False)
    served, _ = load_run(small_run)
    schema = config.schema
    splits = read_manifest(os.path.join(small_run, "manifest.json"))
    weights = pipeline.group_loss_weights(pipeline.label_arrays(splits["train"], schema)["age_group"],
                                          schema.num_age_groups, config.age_balance)
    assert config.age_balance > 0 and weights.max() / weights.min() > 1.5
    faces = pipeline.normalize(pipeline.decode_faces(splits["val"][:64], schema), schema)

    def heads(model):
        names = ("gender", "age_group", "age_dist", "age")
        outputs = keras.Model(model.inputs, [models.find_layer(model, n).output for n in names])(faces)
        return {name: np.asarray(output) for name, output in zip(names, outputs)}

    before, after = heads(trained), heads(served)
    np.testing.assert_array_equal(after["gender"], before["gender"])
    expected_groups = before["age_group"] / weights
    np.testing.assert_allclose(after["age_group"], expected_groups / expected_groups.sum(-1, keepdims=True), atol=1e-5)
    ages = np.arange(schema.max_age + 1)
    expected_ages = before["age_dist"] / weights[[schema.age_group(a) for a in ages]]
    expected_ages /= expected_ages.sum(-1, keepdims=True)
    np.testing.assert_allclose(after["age_dist"], expected_ages, atol=1e-5)
    np.testing.assert_allclose(np.ravel(after["age"]), expected_ages @ ages, rtol=1e-4)


def test_batch_norm_statistics_become_the_mean_over_the_served_faces(utkface_files):
    from faceage_tf.keras import keras
    from faceage_tf.schema import Schema
    from faceage_tf.training import recalibrate_batch_norm

    schema = Schema(input_size=32)
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(conv))
    faces = pipeline.decode_faces([pipeline.FaceRecord(path, 30.0, 0) for path in utkface_files[:40]], schema)
    assert recalibrate_batch_norm(model, faces, schema, batch_size=16, seed=3) == 32  # 2 whole batches

    order = np.random.default_rng(3).permutation(40)[:32]
    images = faces.numpy()[order]
    images[16:] = images[16:, :, ::-1]  # the second batch is mirrored
    features = keras.Model(inputs, conv)(pipeline.normalize(images, schema)).numpy()
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    batch_variances = [features[i:i + 16].var(axis=(0, 1, 2)) for i in (0, 16)]
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean(batch_variances, axis=0), rtol=0.01)
    assert bn.momentum == 0.99  # restored


def test_serving_batch_norm_keeps_the_trained_weights_and_repeats_exactly(small_run, tmp_path):
    from faceage_tf.training import TRAINED_WEIGHTS

    run = str(tmp_path / "run")
    shutil.copytree(small_run, run)
    trained = [w.copy() for w in load_run(run, unweighted=False)[0].get_weights()]
    step = [sys.executable, os.path.join(ROOT, "training", "serving_batch_norm.py"), "--run", run]
    result = subprocess.run(step, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    with open(os.path.join(run, "manifest.json")) as f:
        train_faces = len(json.load(f)["splits"]["train"])
    assert report == {"faces": train_faces // 64 * 64, "of": train_faces, "from": TRAINED_WEIGHTS}
    model, _ = load_run(run, unweighted=False)
    names = [w.name for w in model.weights]
    after = model.get_weights()
    for name, before, now in zip(names, trained, after):
        if "moving_" in name:
            assert not np.allclose(before, now), name
        else:
            np.testing.assert_array_equal(before, now, err_msg=name)
    for before, kept in zip(trained, load_run(run, TRAINED_WEIGHTS, unweighted=False)[0].get_weights()):
        np.testing.assert_array_equal(before, kept)
    again = subprocess.run(step, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    for first, second in zip(after, load_run(run, unweighted=False)[0].get_weights()):
        np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
    missing = subprocess.run(step[:-1] + [str(tmp_path / "none")], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert missing.returncode == 1 and "not a training run" in missing.stderr


def test_evaluation_report_has_every_field(small_run, tmp_path):
    out = str(tmp_path / "eval")
    script = os.path.join(ROOT, "training", "evaluate.py")
    result = subprocess.run([sys.executable, script, "--run", small_run, "--out", out, "--split", "val+test"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "residual", "metrics.json")) as f:
        metrics = json.load(f)
    for key in ("n", "gender_accuracy", "age_group_accuracy", "age_group_off_by_one", "age_mae", "confusion",
                "by_gender", "by_age_group", "by_race", "race_gap", "by_race_and_age_group"):
        assert key in metrics, key
    manifest = datasets.read_manifest(os.path.join(small_run, "manifest.json"))
    assert metrics["n"] == len(manifest["val"]) + len(manifest["test"])
    assert set(metrics["by_gender"]) == {"male", "female"}
    assert len(metrics["by_age_group"]) == 9
    assert np.sum(metrics["confusion"]["age_group"]) == metrics["n"]
    for name in ("report.md", "confusion_gender.png", "confusion_age_group.png"):
        assert os.path.getsize(os.path.join(out, "residual", name)) > 0
    assert "| residual |" in open(os.path.join(out, "summary.md")).read()


def test_interrupted_run_is_refused_without_the_flag(small_run, tmp_path):
    backup = os.path.join(str(tmp_path), "backup")
    os.makedirs(backup)
    open(os.path.join(backup, "checkpoint"), "w").close()
    result = _run(SMALL + ["--limit", "100", "--out", str(tmp_path)])
    assert result.returncode != 0 and "--resume" in result.stderr


def test_a_finished_run_is_refused_unless_overwritten(small_run, tmp_path):
    for extra, says in (([], "finished run: pass --overwrite"), (["--resume"], "nothing to resume")):
        result = _run(SMALL + ["--limit", "100", "--out", small_run] + extra)
        assert result.returncode != 0 and says in result.stderr, result.stderr[-2000:]
    assert len(_history(small_run)) == 3  # untouched

    again = str(tmp_path / "again")
    shutil.copytree(small_run, again)
    result = _run(SMALL + ["--data", os.path.dirname(_any_face(small_run)), "--limit", "100", "--epochs", "1",
                           "--seed", "5", "--out", again, "--overwrite"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["epoch"] for row in _history(again)] == ["0"]  # a new history, not appended
    assert TrainConfig.from_file(os.path.join(again, "config.json")).seed == 5
    with open(os.path.join(again, "manifest.json")) as f:
        assert sum(len(v) for v in json.load(f)["splits"].values()) == 100
    # The log says how many faces are used, and each epoch is one short line of watched metrics.
    assert "--limit 100: using 100 of the" in result.stdout
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch 1/1")]
    assert len(epochs) == 1 and len(epochs[0]) < 200 and "gender" in epochs[0] and "val: loss" in epochs[0]
    assert "age_dist_loss" in _history(again)[0]  # every metric still goes to history.csv


def _any_face(run_dir):
    with open(os.path.join(run_dir, "manifest.json")) as f:
        return json.load(f)["splits"]["train"][0]["path"]


def test_resume_after_kill_ends_where_an_uninterrupted_run_would(utkface_dir, tmp_path):
    args = SMALL + ["--data", utkface_dir, "--limit", "2000", "--epochs", "3", "--residual-widths", "32,64,128,256"]
    reference = str(tmp_path / "reference")
    result = _run(args + ["--out", reference])
    assert result.returncode == 0, result.stderr[-3000:]

    killed = str(tmp_path / "killed")
    process = subprocess.Popen(TRAIN + args + ["--out", killed], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    history = os.path.join(killed, "history.csv")
    deadline = time.time() + 300
    while time.time() < deadline and not (os.path.exists(history) and len(_history(killed)) >= 1):
        time.sleep(0.1)
    time.sleep(1.0)  # into the second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(_history(killed)) == 1, "the run was not killed during its second epoch"

    result = _run(args + ["--out", killed, "--resume"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["epoch"] for row in _history(killed)] == ["0", "1", "2"]
    for got, want in zip(_final_weights(killed), _final_weights(reference)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multiworker_two_processes_train_as_one(utkface_dir, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dirs = [str(tmp_path / f"worker{i}") for i in range(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        args = SMALL + ["--data", utkface_dir, "--limit", "640", "--epochs", "1", "--distribute", "multiworker",
                        "--out", run_dirs[index]]
        processes.append(subprocess.Popen(TRAIN + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for p, out in zip(processes, outputs):
        assert p.returncode == 0, out[-3000:]
    digests = [line.split()[-1] for out in outputs for line in out.splitlines() if "final weights sha256" in line]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert os.path.exists(os.path.join(run_dirs[0], "best_weights.h5"))
    assert os.path.exists(os.path.join(run_dirs[0], "final_weights.h5"))
    assert not os.path.exists(os.path.join(run_dirs[1], "best_weights.h5"))
    assert not os.path.exists(os.path.join(run_dirs[1], "final_weights.h5"))
