"""Per-face latency of the runtime (preprocessing included) at 1 and 2 threads, and model size.

For each model: the median time of `FaceAgePredictor.predict(face_crop)` (resize a 200x200 crop,
normalise, run the interpreter, read the outputs), and as the baseline the bare interpreter
(`invoke()` on an already preprocessed tensor, same model and threads); the ratio says what the
runtime adds around the model.

    .venv-runtime/bin/python benchmarks/runtime_latency.py [--model a.tflite --model b.tflite] [--runs 300]
"""

import argparse
import os

import numpy as np

from faceage_tf.runtime import FaceAgePredictor
from faceage_tf.runtime import bench
from faceage_tf.runtime.backends import load_interpreter


def bare_invoke(predictor: FaceAgePredictor, face: np.ndarray):
    """The baseline: `invoke()` of a fresh interpreter (same backend, model and threads) on a
    preprocessed face, without preprocessing or output handling."""
    with open(predictor.model_path, "rb") as f:
        interpreter, _ = load_interpreter(f.read(), predictor.model_path, predictor.num_threads, predictor.backend)
    (details,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(details["index"], [1, *face.shape])
    interpreter.allocate_tensors()
    interpreter.set_tensor(details["index"], face[None].astype(details["dtype"]))
    return interpreter.invoke


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="a .tflite model (repeatable; default: the packaged model)")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    face = bench.sample_face()
    print(f"per face, median of {args.runs} runs; 'runtime' includes preprocessing of a 200x200 crop")
    print(f"{'model':<34} {'MiB':>5} {'backend':<15} {'threads':>7} {'runtime ms':>10} {'bare ms':>8} {'ratio':>6}")
    for path in args.model or [None]:
        for threads in args.threads:
            predictor = FaceAgePredictor(path, detector="none", num_threads=threads)
            runtime = bench.face_latency(predictor, face, args.runs)["median_ms"]
            bare = bench.median_ms(bare_invoke(predictor, predictor.preprocess(face)), args.runs)["median_ms"]
            name = os.path.basename(predictor.model_path)
            print(f"{name:<34} {predictor.model_bytes / 2**20:5.2f} {predictor.backend:<15} {threads:>7} "
                  f"{runtime:10.2f} {bare:8.2f} {runtime / bare:6.2f}")
    print(f"peak resident memory of this process: {bench.peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
