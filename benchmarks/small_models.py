"""The small model's design space: size, speed and accuracy of each candidate, next to the default.

    python benchmarks/small_models.py --default runs/default/export/faceage-int8-qat.tflite \\
        --candidate runs/small/w16_kd --candidate runs/small/w24_kd ...

Each candidate is a training run (a network of the registry, trained by `configs/small.json`
with or without a teacher) that has been exported (`RUN/export/faceage-small-*.tflite`, the
int8 QAT variant if there is one, else int8 post-training). Per candidate: parameters and
multiply-adds of the network, the int8 file's size, and its per-face time through the runtime
on one core (preprocessing of a 200x200 crop included), taken in turns with the default model in
the same process (5 rounds of 200 faces; the ratio is the median of the rounds' ratios); then
gender accuracy, 9-group accuracy and age MAE of the int8 file on the run's test split, per
source, next to the default model's on the same faces. Writes benchmarks/results/small_models.{md,json}.
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from faceage_tf import datasets, evaluation, models, pipeline  # noqa: E402
from faceage_tf.files import atomic_write_text  # noqa: E402
from faceage_tf.runtime import FaceAgePredictor  # noqa: E402
from faceage_tf.runtime.bench import sample_face  # noqa: E402
from faceage_tf.training import load_config  # noqa: E402


def exported(run):
    """The candidate's int8 file: QAT if exported, else post-training."""
    for variant in ("int8-qat", "int8-ptq"):
        paths = glob.glob(os.path.join(run, "export", f"*-{variant}.tflite"))
        if paths:
            return paths[0]
    raise SystemExit(f"{run}: no int8 export in {run}/export (run export/export_tflite.py --run {run} ...)")


def per_face_ms(predictors, face, rounds=5, per_round=200):
    """Median ms per face of each predictor, taking turns; and each one's ratio to the first."""
    times = {name: [] for name in predictors}
    for _ in range(rounds):
        for name, predictor in predictors.items():
            predictor.predict(face)  # warm
            start = time.perf_counter()
            for _ in range(per_round):
                predictor.predict(face)
            times[name].append(1e3 * (time.perf_counter() - start) / per_round)
    base = next(iter(times.values()))
    return {name: {"ms": float(np.median(t)), "ratio": float(np.median(np.array(t) / np.array(base)))}
            for name, t in times.items()}


def name_of(path):
    """A run's or a file's name in the table."""
    return os.path.basename(os.path.normpath(path))


def shown(path):
    """A path as the results show it: inside the project relative to it, elsewhere its name only
    (a local run directory means nothing on another machine)."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else name_of(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default", default="default", help="the default model (default: the packaged one)")
    parser.add_argument("--candidate", action="append", required=True,
                        help="an exported training run, or a .tflite file such as the packaged small model (repeat)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    runs = [run for run in args.candidate if not run.endswith(".tflite")]
    if not runs:
        parser.error("give at least one training run: its test split is the one measured")
    os.sched_setaffinity(0, {0})

    predictors, rows = {}, {}
    for name, path in [("default", args.default)] + [(name_of(c), c if c.endswith(".tflite") else exported(c))
                                                      for c in args.candidate]:
        predictors[name] = FaceAgePredictor(path, detector="none", num_threads=1)
        rows[name] = {"file": shown(predictors[name].model_path), "bytes": predictors[name].model_bytes,
                      "variant": predictors[name].card.get("variant")}
    for run in runs:  # a .tflite file without its run has no network to count
        config = load_config(run)
        network = models.build_model(config.architecture, config.schema, members=config.members,
                                     options=config.network_options)
        rows[name_of(run)].update(teacher=name_of(config.teacher) if config.teacher else "none",
                                  network_options=config.network_options, parameters=models.count_params(network),
                                  flops=models.count_flops(network))
    speed = per_face_ms(predictors, sample_face())

    records = datasets.read_manifest(os.path.join(runs[0], "manifest.json"))["test"]
    schema = predictors["default"].schema
    faces = {}  # by the framing each file serves (its card's serving_zoom)
    for name, predictor in predictors.items():
        zoom = predictor.card.get("serving_zoom", 1.0)
        if zoom not in faces:
            faces[zoom] = pipeline.decode_faces(records, schema, serving_zoom=zoom)
        result = evaluation.evaluate(pipeline.predict(predictor, faces[zoom], schema, flip=False), records, schema)
        rows[name].update(speed[name], test=evaluation.summary(result))
        print(name, json.dumps({k: v for k, v in rows[name].items() if k != "test"}), flush=True)

    sources = list(rows["default"]["test"].get("by_source", {}))
    lines = ["# The small model's design space (`benchmarks/small_models.py`)", "",
             f"Test split of run {name_of(runs[0])} ({len(records)} faces), int8 files through the runtime, no test-time "
             "flip unless built in (the default has it); time per face on one core, 200x200 crop preprocessing "
             "included, in turns with the default model.", "",
             "| model | teacher | parameters | MFLOPs | int8 file (bytes) | ms/face | x default | "
             + " | ".join(f"{s}: gender % / 9-group % / MAE" for s in ["all", *sources]) + " |",
             "|---|---|---:|---:|---:|---:|---:|" + "---|" * (1 + len(sources))]
    for name, r in rows.items():
        parts = [r["test"]] + [r["test"]["by_source"][s] for s in sources]
        cells = [f"{100 * p['gender_accuracy']:.1f} / {100 * p['age_group_accuracy']:.1f} / {p['age_mae']:.2f}" for p in parts]
        teacher = r.get("teacher", "")
        size = "" if r.get("parameters") is None else f"{r['parameters'] / 1e3:.0f}k"
        flops = "" if r.get("flops") is None else f"{r['flops'] / 1e6:.1f}"
        lines.append(f"| {name} ({r['variant']}) | {teacher} | {size} | {flops} | {r['bytes']:,} | {r['ms']:.2f} | "
                     f"{r['ratio']:.2f} | " + " | ".join(cells) + " |")
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "small_models.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(args.out, "small_models.json"), json.dumps(rows, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
