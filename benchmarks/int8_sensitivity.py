"""How far single faces move under rounding: one 8-bit level of input noise, and another interpreter.

    python benchmarks/int8_sensitivity.py --run runs/default/polish --model default --model small \
        [--model runs/default/export/faceage-float32.tflite] [--other-python /tmp/tflrt/bin/python]

On every third face of the run's test split (the served crop, as the runtime normalises it):
1. each input value moved one 8-bit level up or down at random, through this Python's interpreter;
2. with --other-python (say, a venv with tflite-runtime 2.14, the 32-bit Raspberry Pi's
   interpreter), the same inputs through that one's interpreter.
Prints, per model, the median, 95th percentile and largest change of the reported age, the share
of faces that move over 1 year, and the age MAE under each. Int8 kernels of two interpreters
already round the input differently by one level, so (1) is what (2) looks like on a model.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ONE_LEVEL = 2.0 / 255.0  # one 8-bit level of the runtime's [-1, 1] input


def predicted_ages(model: str, inputs: np.ndarray) -> np.ndarray:
    from faceage_tf.runtime import FaceAgePredictor
    return FaceAgePredictor(model, detector="none").predict_tensor(inputs)["age"][:, 0]


def test_inputs(run: str) -> tuple[np.ndarray, np.ndarray]:
    from faceage_tf import datasets, pipeline
    from faceage_tf.training import load_config
    config = load_config(run)
    records = datasets.read_manifest(os.path.join(run, "manifest.json"))["test"][::3]
    faces = pipeline.decode_faces(records, config.schema, serving_zoom=config.serving_zoom)
    return pipeline.normalize(faces, config.schema).numpy(), np.array([r.age for r in records], float)


def row(name: str, reference: np.ndarray, moved: np.ndarray, true: np.ndarray) -> str:
    change = np.abs(reference - moved)
    return (f"| {name} | {np.median(change):.2f} | {np.percentile(change, 95):.2f} | {change.max():.2f} | "
            f"{100 * (change > 1).mean():.1f}% | {np.abs(reference - true).mean():.2f} / {np.abs(moved - true).mean():.2f} |")


def main():
    if sys.argv[1:2] == ["--child"]:  # under --other-python: ages of saved inputs, as JSON
        print(json.dumps(predicted_ages(sys.argv[2], np.load(sys.argv[3])).tolist()))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="training run whose test split is used")
    parser.add_argument("--model", action="append", help="default, small or a .tflite file (repeat)")
    parser.add_argument("--other-python", help="a Python whose TFLite interpreter is compared with this one's")
    args = parser.parse_args()
    models = args.model or ["default"]
    inputs, true = test_inputs(args.run)
    noisy = inputs + np.random.default_rng(0).choice([-ONE_LEVEL, ONE_LEVEL], size=inputs.shape).astype(np.float32)
    header = "| model | median age change | 95th percentile | largest | faces over 1 year | age MAE, before / after |\n|---|---:|---:|---:|---:|---:|"
    print(f"One level of input noise ({len(true)} faces of {args.run})\n\n{header}")
    ages = {model: predicted_ages(model, inputs) for model in models}
    for model in models:
        print(row(model, ages[model], predicted_ages(model, noisy), true))
    if args.other_python:
        print(f"\nThis interpreter against {args.other_python}'s\n\n{header}")
        with tempfile.TemporaryDirectory() as scratch:
            saved = os.path.join(scratch, "inputs.npy")
            np.save(saved, inputs)
            env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            for model in models:
                child = subprocess.run([args.other_python, os.path.abspath(__file__), "--child", model, saved],
                                       env=env, capture_output=True, text=True, check=True)
                print(row(model, ages[model], np.array(json.loads(child.stdout)), true))


if __name__ == "__main__":
    main()
