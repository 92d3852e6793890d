"""Golden vectors for the Android app: what Python computes for a few real faces.

    python -m faceage_tf.golden --model faceage_tf/assets/faceage.tflite --faces FACE_DIR \
        [--photos PHOTO_DIR] --out DIR

For each face it writes the crop at the model's input size as ARGB ints (what the app reads from
a scaled Bitmap), the preprocessed input tensor, the raw model outputs and the decoded results.
It also writes the steps before the model, from real images (the face crops, with
`--photos` whole photos and a photo with two faces side by side):
- detection: for every pass the runtime's detector may run on an image (short range; full
  range; short range with a border), the image's pixels, the letterboxed BlazeFace input, the
  bundled BlazeFace model's raw outputs (run here by the runtime's interpreter), and the decoded
  detections before and after weighted non-maximum suppression, in input and in image
  coordinates; and the faces the runtime's detector returns for the image;
- alignment: for the best face, its keypoints, the crop transform and the aligned crop
  (`faceage_tf.align.align_face`) with its model input tensor;
- Pillow: resizes and an affine transform of a real face, to check the port of Pillow's
  resampling alone.
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

from PIL import Image

from faceage_tf import align
from faceage_tf.preprocess import normalize, open_image, resize_face
from faceage_tf.runtime import DEFAULT_MODEL, FaceAgePredictor, blazeface, detectors

DECODED = ("gender", "gender_probability", "age_group", "age_group_probability", "age", "age_range")


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


def write_golden(model_path: str, faces: Sequence[str], out_dir: str, photos: Sequence[str] = ()) -> dict:
    """Writes the golden files for `faces` (and `photos`) into `out_dir`; returns the `golden.json` index.

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
    images = detection_images(faces, photos)
    with open(model_path, "rb") as f:
        model_sha256 = hashlib.sha256(f.read()).hexdigest()
    index = {
        "model": os.path.abspath(model_path),
        "model_sha256": model_sha256,
        "schema": predictor.card["schema"],
        "tensors": _tensors(predictor),
        "faces": entries,
        "detection": write_detection_golden(detection_cases(images), predictor, out_dir),
        "detector": write_detector_golden(images),
        "pillow": write_pillow_golden(faces[0], out_dir),
        "pillow_version": Image.__version__,
    }
    with open(os.path.join(out_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    return index


def _write(out_dir: str, name: str, values: np.ndarray, dtype: str) -> str:
    np.ascontiguousarray(values).astype(dtype).tofile(os.path.join(out_dir, name))
    return name


def _floats(values) -> list:
    return np.asarray(values, np.float64).reshape(-1).tolist()


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """Two real photos pasted next to each other on black: a photo with two faces."""
    out = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    out.paste(left, (0, 0))
    out.paste(right, (left.width, 0))
    return out


PASSES = (("short", 0.0), ("full", 0.0), ("short", detectors.BlazeFaceDetector.CROP_MARGIN))


def detection_images(faces: Sequence[str], photos: Sequence[str]) -> list[tuple[str, Image.Image]]:
    """(name, RGB image): tight face crops, whole photos, and two photos side by side."""
    images = [(os.path.basename(p), open_image(p)) for p in list(faces) + list(photos)]
    if len(photos) >= 2:
        first, second = images[len(faces)], images[len(faces) + 1]
        images.append((f"{first[0]}+{second[0]}", side_by_side(first[1], second[1])))
    return images


def detection_cases(images) -> list[tuple[str, Image.Image, str, float]]:
    """(name, image, BlazeFace model, margin): every pass the runtime's detector may run."""
    return [(name, image, model, margin) for name, image in images for model, margin in PASSES]


def write_detector_golden(images) -> list[dict]:
    """What the runtime's detector (`BlazeFaceDetector`, passes chosen per photo) finds in each image."""
    detector = detectors.BlazeFaceDetector(num_threads=1)
    entries = []
    for name, image in images:
        faces = detector.detect(image)
        entries.append({"source": name, "boxes": [list(f.box) for f in faces], "scores": [f.score for f in faces],
                        "keypoints": [np.asarray(f.keypoints, np.float64).reshape(-1).tolist() for f in faces]})
    return entries


def write_detection_golden(cases, predictor: FaceAgePredictor, out_dir: str) -> list[dict]:
    """Detector and alignment golden files for each case (see the module docstring)."""
    models = {}
    pixels_file = {}  # image name -> its pixels' file, written once for all its passes
    schema = predictor.schema
    entries = []
    for i, (name, image, model, margin) in enumerate(cases):
        spec = blazeface.SPECS[model]
        detector = models.setdefault(model, blazeface.BlazeFace(model, num_threads=1))
        tensor, placement = blazeface.letterbox(image, spec.input_size, margin)
        raw_boxes, raw_scores = detector.raw(tensor)
        boxes, keypoints, scores = blazeface.decode(raw_boxes, raw_scores, spec)
        nms_boxes, nms_keypoints, nms_scores = blazeface.weighted_nms(boxes, keypoints, scores)
        image_boxes = placement.to_image(nms_boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        image_keypoints = placement.to_image(nms_keypoints)
        stem = f"detect{i}"
        entry = {
            "source": name, "model": model, "margin": margin,
            "width": image.width, "height": image.height,
            "argb": pixels_file.get(name) or pixels_file.setdefault(
                name, _write(out_dir, f"image{len(pixels_file)}_argb.bin", argb(np.asarray(image.convert("RGB"))), "<i4")),
            "input": _write(out_dir, stem + "_input.bin", tensor, "<f4"),
            "raw_boxes": _write(out_dir, stem + "_raw_boxes.bin", raw_boxes, "<f4"),
            "raw_scores": _write(out_dir, stem + "_raw_scores.bin", raw_scores, "<f4"),
            "letterbox": {"size": placement.size, "scale_x": placement.scale_x, "scale_y": placement.scale_y,
                          "offset_x": placement.offset_x, "offset_y": placement.offset_y},
            "decoded": {"boxes": _floats(boxes), "keypoints": _floats(keypoints), "scores": _floats(scores)},
            "nms": {"boxes": _floats(nms_boxes), "keypoints": _floats(nms_keypoints), "scores": _floats(nms_scores)},
            "image": {"boxes": _floats(image_boxes), "keypoints": _floats(image_keypoints)},
        }
        if len(nms_scores):  # the best face, aligned as the runtime aligns it
            points = image_keypoints[0]
            forward, side = align.crop_transform(points, schema.template, schema.input_size)
            inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))[:2]
            crop = np.asarray(align.crop_with(image, inverse, side, schema.input_size))  # = align_face's
            entry["alignment"] = {
                "template": [list(point) for point in schema.template.keypoints], "size": schema.input_size,
                "keypoints": _floats(points), "forward": _floats(forward), "inverse": _floats(inverse), "side": int(side),
                "crop": _write(out_dir, stem + "_crop.bin", argb(crop), "<i4"),
                "tensor": _write(out_dir, stem + "_crop_tensor.bin", normalize(crop, schema), "<f4"),
            }
        entries.append(entry)
    return entries


def write_pillow_golden(face: str, out_dir: str) -> dict:
    """Pillow's BILINEAR resize (down, up, each axis alone, with and without reducing_gap) and
    AFFINE transform of a real face."""
    image = open_image(face)
    entry = {"source": os.path.basename(face), "width": image.width, "height": image.height,
             "argb": _write(out_dir, "pillow_argb.bin", argb(np.asarray(image)), "<i4"), "resize": [], "affine": []}
    # (width, height, reducing_gap): shrink, stretch, each axis alone; with a reducing gap, integer
    # pre-shrinks (Image.reduce) by 2x3, 3x3 and 6x1, with blocks cut at the edges.
    sizes = [(64, 64, None), (37, 91, None), (301, 257, None), (image.width, 50, None), (97, image.height, None),
             (33, 29, 3.0), (21, 22, 3.0), (13, 190, 2.0)]
    for i, (w, h, gap) in enumerate(sizes):
        resized = np.asarray(image.resize((w, h), Image.BILINEAR, reducing_gap=gap))
        entry["resize"].append({"width": w, "height": h, "reducing_gap": gap,
                                "argb": _write(out_dir, f"pillow_resize{i}.bin", argb(resized), "<i4")})
    for i, (degrees, scale, side) in enumerate([(20.0, 1.3, 150), (-35.0, 0.45, 160)]):
        # output pixel -> source pixel: rotate and scale about the image centre (a bit outside it too)
        angle = np.deg2rad(degrees)
        c, s = np.cos(angle) / scale, np.sin(angle) / scale
        cx, cy = image.width / 2, image.height / 2
        data = (c, -s, cx - c * side / 2 + s * side / 2, s, c, cy - s * side / 2 - c * side / 2)
        out = np.asarray(image.transform((side, side), Image.AFFINE, data, resample=Image.BILINEAR))
        entry["affine"].append({"side": side, "data": [float(v) for v in data],
                                "argb": _write(out_dir, f"pillow_affine{i}.bin", argb(out), "<i4")})
    return entry


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a .tflite with a faceage model card")
    parser.add_argument("--faces", nargs="+", required=True, help="face-crop image files and/or folders")
    parser.add_argument("--photos", nargs="*", default=[],
                        help="whole photos (files and/or folders) for the detector's golden vectors")
    parser.add_argument("--count", type=int, default=4, help="images to take from each folder (default 4)")
    parser.add_argument("--out", required=True, help="output folder (a build folder: the files hold real faces)")
    args = parser.parse_args(argv)
    photos = pick_faces(args.photos, args.count) if args.photos else []
    index = write_golden(args.model, pick_faces(args.faces, args.count), args.out, photos)
    print(f"wrote golden vectors for {len(index['faces'])} faces and {len(index['detection'])} detector cases to {args.out}")


if __name__ == "__main__":
    main()
