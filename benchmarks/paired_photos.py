"""Paired comparison of model files on the same photos, the whole job (detector, alignment, model).

    python benchmarks/paired_photos.py --split configs/splits/default.json --part val \
        --model default --model runs/other/export/faceage-int8-qat.tflite [--average]

Each photo's largest face is found once by the runtime's detector (BlazeFace) and cut by the
runtime's alignment at each file's own served crop. Every model after the first is compared with
the first on the same faces: gender accuracy, accuracy of the age group it reports (its group
head, what `faceage predict` prints) and age MAE, each with the difference to the first and a 95%
paired bootstrap interval (`evaluation.paired_bootstrap`: 2,000 draws of the faces), so a change
is told from the noise of one test set. `--average` adds the mean of all the models' outputs: an
ensemble of the files, as one file holding them all would serve it. Choose on `--part val`;
`--part test` reports. Data as `photos.py --split`. Writes paired_photos.{md,json} to --out.
"""

import argparse
import json
import os
import sys
from types import SimpleNamespace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from faceage_tf import evaluation  # noqa: E402
from faceage_tf.files import atomic_write_text  # noqa: E402
from faceage_tf.runtime import FaceAgePredictor  # noqa: E402
from faceage_tf.runtime.detectors import BlazeFaceDetector  # noqa: E402
from framing_curve import aligned_outputs, faces_with_keypoints  # noqa: E402
from photos import held_out_data_sets  # noqa: E402

FIGURES = (("gender_accuracy", "gender %", 100), ("age_group_accuracy", "age group %", 100), ("age_mae", "age MAE", 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", required=True, help="a split file, such as configs/splits/default.json")
    parser.add_argument("--part", choices=("val", "test"), default="val", help="its validation or test photos")
    parser.add_argument("--model", action="append", required=True,
                        help="default, small or a .tflite file (repeat; the first is the reference)")
    parser.add_argument("--average", action="store_true", help="also score the mean of all the models' outputs")
    parser.add_argument("--limit", type=int, help="photos per data set, evenly spaced (default: all of the part)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    if len(args.model) < 2:
        parser.error("give two models or more: the first is the reference")

    predictors = [FaceAgePredictor(model, detector="none", num_threads=2) for model in args.model]
    names = [os.path.basename(model) for model in args.model]
    if len(set(names)) < len(names):
        parser.error(f"the models need distinct file names (they name the rows): {names}")
    schema = predictors[0].schema
    for name, predictor in zip(names, predictors):
        if (predictor.schema.gender_labels, predictor.schema.age_group_labels) != (schema.gender_labels, schema.age_group_labels):
            parser.error(f"{name}: its labels differ from {names[0]}'s, so its outputs cannot be compared or averaged")
    detector = BlazeFaceDetector()
    results, lines = {}, [f"# Paired comparison on the {args.part} photos of {os.path.basename(args.split)} "
                          "(`benchmarks/paired_photos.py`)", "",
                          "Whole job: BlazeFace, alignment at each file's served crop, the model; largest face "
                          f"per photo. Difference to {names[0]} with its 95% paired bootstrap interval.", "",
                          "| data set | model | faces | " + " | ".join(label for _, label, _ in FIGURES) + " |",
                          "|---|---|---:|" + "---|" * len(FIGURES)]
    for data_set, (rows, _) in held_out_data_sets(None, args.split, args.limit, args.part).items():
        faces = faces_with_keypoints(rows, detector)
        truth = [SimpleNamespace(age=age, gender=schema.gender_labels.index(gender), race=-1, source="")
                 for _, _, age, gender in faces]  # the labels as `evaluation` reads them
        runs = {name: aligned_outputs(predictor, faces) for name, predictor in zip(names, predictors)}
        if args.average:
            runs["average of all"] = {key: np.mean([run[key] for run in runs.values()], axis=0) for key in runs[names[0]]}
        results[data_set] = {}
        for name, run in runs.items():
            summary = evaluation.summary(evaluation.evaluate(run, truth, schema))
            row = {key: summary[key] for key, _, _ in FIGURES}
            if name != names[0]:
                row["against_reference"] = evaluation.paired_bootstrap(runs[names[0]], run, truth, schema)
            results[data_set][name] = row
            cells = []
            for key, _, scale in FIGURES:
                cell = f"{scale * row[key]:.2f}"
                if "against_reference" in row:
                    d = row["against_reference"][key]
                    cell += f" ({scale * d['difference']:+.2f} [{scale * d['ci95'][0]:+.2f}, {scale * d['ci95'][1]:+.2f}])"
                cells.append(cell)
            lines.append(f"| {data_set} | {name} | {len(faces)} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "paired_photos.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(args.out, "paired_photos.json"), json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
