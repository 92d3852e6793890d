"""Framing curve: how a model's accuracy depends on how the face is framed in its input crop.

    python benchmarks/framing_curve.py --split configs/splits/default.json [--model default --model small]

Each test face is found once by the runtime's detector (BlazeFace keypoints), then cut again by
the runtime's alignment with the crop zoomed from tight (0.8: less than the model card's template
frames; 1 is the model's served crop) to loose (1.6: much more around the face), and turned by up
to 20 degrees. A model that only knows one framing has a curve with a narrow valley; a robust one
a flat curve. Data: the photos behind the test split of a split file or a training run (as
`photos.py --split` or `--run`): AAF photos, with the context around each face, and UTKFace
crops (zooms above 1 show borders, as any crop of a crop would). Writes docs/framing_curve.png
and benchmarks/results/framing_curve.{md,json}.
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from faceage_tf.align import align_face  # noqa: E402
from faceage_tf.files import atomic_write_text  # noqa: E402
from faceage_tf.preprocess import normalize  # noqa: E402
from faceage_tf.runtime import FaceAgePredictor  # noqa: E402
from faceage_tf.runtime.detectors import BlazeFaceDetector  # noqa: E402
from photos import held_out_data_sets  # noqa: E402

ZOOMS = (0.8, 0.9, 1.0, 1.15, 1.3, 1.45, 1.6)
ANGLES = (-20, -10, 0, 10, 20)


def faces_with_keypoints(rows, detector):
    """(image, keypoints, age, gender) of every photo where a face is found (the largest)."""
    found = []
    for path, age, gender in rows:
        image = Image.open(path).convert("RGB")
        faces = detector.detect(image)
        if faces:
            found.append((image, faces[0].keypoints, age, gender))
    return found


def aligned_outputs(predictor, faces, zoom=1.0, angle=0.0):
    """The model's outputs on each face, aligned to its own card's template (zoom 1: its served crop)."""
    schema = predictor.schema
    return predictor.predict_tensor(np.stack([
        normalize(np.asarray(align_face(image, points, schema.template, schema.input_size, zoom=zoom, angle=angle)), schema)
        for image, points, _, _ in faces]))


def scores(predictor, faces, zoom=1.0, angle=0.0):
    schema = predictor.schema
    out = aligned_outputs(predictor, faces, zoom, angle)
    ages = np.array([f[2] for f in faces])
    genders = [schema.gender_labels[i] for i in out["gender"].argmax(axis=1)]
    return {"gender_accuracy": float(np.mean([g == f[3] for g, f in zip(genders, faces)])),
            "age_mae": float(np.mean(np.abs(out["age"][:, 0] - ages)))}


def plot(results, *, several: bool = True):
    """docs/framing_curve.png: age MAE and gender accuracy against zoom, a line per (model, data set)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (name, data_name), r in results.items():
        label = f"{name}, {data_name}" if several else data_name
        axes[0].plot(ZOOMS, [r["zoom"][str(z)]["age_mae"] for z in ZOOMS], marker="o", label=label)
        axes[1].plot(ZOOMS, [100 * r["zoom"][str(z)]["gender_accuracy"] for z in ZOOMS], marker="o", label=label)
    for axis, title in zip(axes, ("age MAE (years)", "gender accuracy (%)")):
        axis.axvline(1.0, color="grey", lw=0.8, ls="--")
        axis.set_xlabel("zoom of the aligned crop (1: the model's served crop; >1: looser)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(ROOT, "docs", "framing_curve.png"), dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append",
                        help="default, small or a .tflite file (repeat for several; default: the packaged default)")
    parser.add_argument("--run", help="use the photos of this training run's test split (see photos.py)")
    parser.add_argument("--split", help="or the test photos of this split file "
                                        "(configs/splits/default.json: the packaged models')")
    parser.add_argument("--faces", type=int, default=600, help="faces per data set (default 600)")
    args = parser.parse_args()
    import matplotlib  # before minutes of work: the training environment has it, the runtime's not
    matplotlib.use("Agg")
    models = args.model or ["default"]
    detector = BlazeFaceDetector()
    data = {name: faces_with_keypoints(rows, detector) for name, (rows, _) in held_out_data_sets(args.run, args.split, args.faces).items()}
    results = {}
    for model in models:
        predictor = FaceAgePredictor(model, detector="none")
        name = os.path.basename(predictor.model_path)
        for data_name, faces in data.items():
            results[(name, data_name)] = {
                "zoom": {str(z): scores(predictor, faces, zoom=z) for z in ZOOMS},
                "angle": {str(a): scores(predictor, faces, angle=a) for a in ANGLES}}
            print(name, data_name, json.dumps(results[(name, data_name)]), flush=True)

    plot(results, several=len(models) > 1)

    lines = ["# Framing curve (`benchmarks/framing_curve.py`)", "",
             "| model | data set | faces | " + " | ".join(f"zoom {z}" for z in ZOOMS) + " | " +
             " | ".join(f"{a} deg" for a in ANGLES) + " |", "|---|---|---:|" + "---:|" * (len(ZOOMS) + len(ANGLES))]
    for (name, data_name), r in results.items():
        cells = [f"{r['zoom'][str(z)]['age_mae']:.2f}" for z in ZOOMS] + [f"{r['angle'][str(a)]['age_mae']:.2f}" for a in ANGLES]
        lines.append(f"| {name} | {data_name} | {len(data[data_name])} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: age MAE in years; gender accuracy per framing is in framing_curve.json."]
    atomic_write_text(os.path.join(ROOT, "benchmarks", "results", "framing_curve.md"), "\n".join(lines) + "\n")
    atomic_write_text(os.path.join(ROOT, "benchmarks", "results", "framing_curve.json"), json.dumps(
        [dict(model=k[0], data_set=k[1], faces=len(data[k[1]]), **v) for k, v in results.items()], indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
