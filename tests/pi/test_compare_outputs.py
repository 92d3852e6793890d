"""The comparison behind tests/pi/run_emulated.sh, on real `faceage predict --json` outputs made
here: it passes equal outputs and fails each kind of difference it is meant to catch."""

import copy
import importlib.util
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
spec = importlib.util.spec_from_file_location("compare_outputs", os.path.join(HERE, "compare_outputs.py"))
compare_outputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_outputs)

TOLERANCES = dict(label="arm64", age_tolerance=0.5, age_range_tolerance=2.0, probability_tolerance=0.02,
                  box_tolerance=1.0, min_iou=0.5)


def predict_json(*args: str) -> list[dict]:
    child = subprocess.run([sys.executable, "-m", "faceage_tf.cli", "predict", "--json", "--no-progress", *args],
                           capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert child.returncode == 0, child.stderr
    return [json.loads(line) for line in child.stdout.splitlines()]


@pytest.fixture(scope="module")
def reference(utkface_files):
    """{file: record}: two real crops (no detector) and the example photo (default detector)."""
    records = predict_json("--detector", "none", *utkface_files[:2]) + predict_json("examples/astronaut.jpg")
    assert all(r.get("faces") for r in records), records
    assert records[-1]["faces"][0]["keypoints"], "the default detector gives keypoints"
    return {r["file"]: r for r in records}


def problems_with(reference, change) -> list[str]:
    other = copy.deepcopy(reference)
    change(other)
    problems, _, compared = compare_outputs.compare(reference, other, **TOLERANCES)
    assert compared >= 1
    return problems


def photo_face(records) -> dict:
    return records["examples/astronaut.jpg"]["faces"][0]


def first_crop_face(records) -> dict:
    return next(iter(records.values()))["faces"][0]


def test_equal_outputs_pass(reference):
    problems, largest, compared = compare_outputs.compare(reference, copy.deepcopy(reference), **TOLERANCES)
    assert problems == [] and compared == 3
    assert max(largest.values()) == 0


def test_differences_within_tolerance_pass(reference):
    def small(records):
        face = photo_face(records)
        face["age"] += 0.4
        face["gender_probability"] -= 0.01
        face["box"] = [v + 0.5 for v in face["box"]]
    assert problems_with(reference, small) == []


@pytest.mark.parametrize("what, change", [
    ("age", lambda r: first_crop_face(r).update(age=first_crop_face(r)["age"] + 0.6)),
    ("age_range", lambda r: first_crop_face(r).update(age_range=[v + 3 for v in first_crop_face(r)["age_range"]])),
    ("gender_probability", lambda r: first_crop_face(r).update(gender_probability=first_crop_face(r)["gender_probability"] - 0.05)),
    ("box", lambda r: photo_face(r).update(box=[v + 3 for v in photo_face(r)["box"]])),
    ("keypoints", lambda r: photo_face(r).update(keypoints=[[x + 2, y] for x, y in photo_face(r)["keypoints"]])),
    ("detection_score", lambda r: photo_face(r).update(detection_score=photo_face(r)["detection_score"] - 0.1)),
    ("face(s)", lambda r: r["examples/astronaut.jpg"].update(faces=[])),
    ("error on arm64", lambda r: r["examples/astronaut.jpg"].update(error="cannot read", faces=None)),
    ("no result on arm64", lambda r: r.pop("examples/astronaut.jpg")),
    ("IoU", lambda r: photo_face(r).update(box=[0.0, 0.0, 10.0, 10.0])),
])
def test_each_difference_fails(reference, what, change):
    problems = problems_with(reference, change)
    assert problems and what in " ".join(problems), problems


def test_a_flipped_label_fails_unless_a_near_tie(reference):
    def flip(probability):
        def change(records):
            face = first_crop_face(records)
            face["gender"] = "female" if face["gender"] == "male" else "male"
            face["gender_probability"] = probability
        return change
    confident = copy.deepcopy(reference)
    first_crop_face(confident)["gender_probability"] = 0.9
    assert any("gender" in p for p in problems_with(confident, flip(0.9)))
    tie = copy.deepcopy(reference)
    first_crop_face(tie)["gender_probability"] = 0.505
    assert problems_with(tie, flip(0.503)) == []


def test_command_exit_status(reference, tmp_path):
    good, bad = tmp_path / "x86.jsonl", tmp_path / "arm.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in reference.values()))
    changed = copy.deepcopy(reference)
    first_crop_face(changed)["age"] += 5
    bad.write_text("".join(json.dumps(r) + "\n" for r in changed.values()))
    script = os.path.join(HERE, "compare_outputs.py")
    assert subprocess.run([sys.executable, script, str(good), str(good)], capture_output=True).returncode == 0
    failed = subprocess.run([sys.executable, script, "--label", "armhf", str(good), str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and "differ by more than 0.5 years" in failed.stderr
