"""Golden vectors for the Android app: what Python computes for a few real faces.

    python -m faceage_tf.golden --model faceage_tf/assets/faceage.tflite --faces FACE_DIR --out DIR

For each face it writes the crop at the model's input size as ARGB ints (what the app reads from
a scaled Bitmap), the preprocessed input tensor, the raw model outputs and the decoded results.
The Kotlin core tests (`android_demo/core`) start from the same pixels and outputs and must
agree. Files are little-endian (`<i4` pixels, `<f4` tensors) plus one `golden.json` index, so
Kotlin reads them with `java.nio` alone.

Faces are real photos: write the output to a build folder, never commit it.
Needs only the runtime: numpy, Pillow and a TFLite interpreter (no TensorFlow).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from typing import Sequence

import numpy as np

from faceage_tf.preprocess import open_image, resize_face
from faceage_tf.runtime import DEFAULT_MODEL, FaceAgePredictor

DECODED = ("gender", "gender_probability", "age_group", "age_group_probability", "age")


def pick_faces(sources: Sequence[str], count: int) -> list[str]:
    """Image files from files and/or folders; from a folder, `count` evenly spaced sorted names
    (UTKFace names start with the age, so this spreads the sample over ages)."""
    files = []
    for source in sources:
        if os.path.isdir(source):
            names = sorted(n for n in os.listdir(source) if n.lower().endswith((".jpg", ".jpeg", ".png")))
            if not names:
                raise ValueError(f"no .jpg/.png images in folder {source!r}")
            step = max(1, len(names) // count)
            files += [os.path.join(source, n) for n in names[::step][:count]]
        elif os.path.isfile(source):
            files.append(source)
        else:
            raise ValueError(f"faces must be image files or folders. Received: {source!r} (not found)")
    return files


def argb(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB (S, S, 3) to Android's packed ARGB ints (opaque), row-major, as int32."""
    rgb = pixels.astype(np.uint32)
    packed = (0xFF << 24) | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.reshape(-1).view(np.int32)


def _tensors(predictor: FaceAgePredictor) -> dict:
    """The signature's tensors as the interpreter reports them, for the app's card-vs-tensor check."""
    runner = predictor.interpreter.get_signature_runner()

    def describe(details):
        return [{"name": name, "shape": [int(d) for d in t["shape_signature"]], "dtype": np.dtype(t["dtype"]).name}
                for name, t in details.items()]

    return {"inputs": describe(runner.get_input_details()), "outputs": describe(runner.get_output_details())}


def write_golden(model_path: str, faces: Sequence[str], out_dir: str) -> dict:
    """Writes the golden files for `faces` into `out_dir`; returns the `golden.json` index.

    Everything comes from the Python runtime (`FaceAgePredictor`), so the app is compared with
    what users of the Python package get. Each face file is taken as the face crop.
    """
    predictor = FaceAgePredictor(model_path, detector="none", num_threads=1)
    size = predictor.schema.input_size
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for i, path in enumerate(faces):
        pixels = resize_face(open_image(path), size)  # what the app gets from a scaled Bitmap
        tensor = predictor.preprocess(path)
        outputs = predictor.predict_tensor(tensor[None])
        decoded = predictor.predict(path)[0].to_dict()
        stem = f"face{i}"
        argb(pixels).astype("<i4").tofile(os.path.join(out_dir, stem + "_argb.bin"))
        tensor.astype("<f4").tofile(os.path.join(out_dir, stem + "_tensor.bin"))
        entries.append({
            "source": os.path.basename(path),
            "argb": stem + "_argb.bin",
            "tensor": stem + "_tensor.bin",
            "outputs": {key: [float(v) for v in value[0]] for key, value in outputs.items()},
            "decoded": {key: decoded[key] for key in DECODED},
        })
    with open(model_path, "rb") as f:
        model_sha256 = hashlib.sha256(f.read()).hexdigest()
    index = {
        "model": os.path.abspath(model_path),
        "model_sha256": model_sha256,
        "schema": predictor.card["schema"],
        "tensors": _tensors(predictor),
        "faces": entries,
    }
    with open(os.path.join(out_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    return index


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a .tflite with a faceage model card")
    parser.add_argument("--faces", nargs="+", required=True, help="face-crop image files and/or folders")
    parser.add_argument("--count", type=int, default=4, help="faces to take from each folder (default 4)")
    parser.add_argument("--out", required=True, help="output folder (a build folder: the files hold real faces)")
    args = parser.parse_args(argv)
    index = write_golden(args.model, pick_faces(args.faces, args.count), args.out)
    print(f"wrote golden vectors for {len(index['faces'])} faces to {args.out}")


if __name__ == "__main__":
    main()
