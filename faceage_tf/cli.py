"""`faceage`: age and gender of the faces in photos, from the command line.

    faceage predict photo.jpg folder/ 'shots/*.png'      # a table
    faceage predict --json folder/ > results.jsonl      # one JSON line per input, errors included
    faceage annotate photo.jpg annotated.jpg            # boxes and labels drawn on the photo
    faceage bench                                       # per-face latency and peak memory
    faceage info [MODEL]                                # the model card

Exit status: 0 when at least one input was processed, 1 when none could be (every input is
named with its problem), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Iterator

from faceage_tf.preprocess import ImageError, open_image
from faceage_tf.runtime import BackendError, DetectorError, FaceAgePredictor, ModelFileError, read_model
from faceage_tf.runtime import bench
from faceage_tf.runtime.detectors import DETECTOR_CHOICES, resolve

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PROGRESS_MIN_INPUTS = 50  # show progress on stderr for this many inputs even when it is not a terminal


def make_predictor(args) -> FaceAgePredictor:
    return FaceAgePredictor(args.model, detector=args.detector, num_threads=args.threads)


# -- inputs ------------------------------------------------------------------------------------


def expand_inputs(paths: list[str]) -> Iterator[tuple[str, str | None]]:
    """(path, problem) for every input: files as given, image files inside folders (recursively),
    glob matches; a folder without images or a pattern without matches yields its problem."""
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                           if name.lower().endswith(IMAGE_EXTENSIONS))
            yield from ((f, None) for f in found) if found else [(path, "folder has no image files")]
        elif not os.path.exists(path) and glob.has_magic(path):
            found = sorted(glob.glob(path, recursive=True))
            if not found:
                yield path, "no file matches this pattern"
            yield from expand_inputs(found)
        else:
            yield path, None


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.done = total, 0
        self.tty = self.stream.isatty()
        self.enabled = enabled and total > 1 and (self.tty or total >= PROGRESS_MIN_INPUTS)

    def clear(self):
        if self.enabled and self.tty:
            self.stream.write("\r\033[K")

    def step(self):
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            filled = 30 * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
        elif self.done * 10 // self.total > (self.done - 1) * 10 // self.total:
            self.stream.write(f"{self.done}/{self.total} inputs\n")
        self.stream.flush()


# -- predict -----------------------------------------------------------------------------------


def face_row(face) -> str:
    box = ",".join(f"{v:.0f}" for v in face.box)
    return (f"{box:<19} {face.gender:<6} {face.gender_probability:4.2f}  "
            f"{face.age_group:<6} {face.age_group_probability:4.2f}  {face.age:5.1f}")


def json_face(face) -> dict:
    data = face.to_dict()
    return {k: [round(b, 1) for b in v] if k == "box" else round(v, 4) if isinstance(v, float) else v
            for k, v in data.items()}


def cmd_predict(args) -> int:
    inputs = list(expand_inputs(args.paths))
    predictor = make_predictor(args)
    out = sys.stdout
    width = max([4] + [len(p) for p, _ in inputs])
    hint = " (for face crops use --detector none)" if predictor.detector is not None else ""
    if not args.json:
        print(f"model {predictor.card.get('name', predictor.model_name)} via {predictor.backend}, "
              f"detector {resolve(args.detector)}", file=sys.stderr)
        print(f"{'FILE':<{width}} {'FACE':>4} {'BOX':<19} {'GENDER':<11} {'AGE GROUP':<11} {'AGE':>5}", file=out)
    progress = Progress(len(inputs), enabled=not args.no_progress)
    processed = faces_found = 0
    for path, problem in inputs:
        try:
            if problem:
                raise ImageError(f"{path}: {problem}")
            faces = predictor.predict(path)
            processed += 1
            faces_found += len(faces)
            error = None
        except ImageError as e:
            faces, error = [], str(e)
        progress.clear()
        if args.json:
            record = {"file": path, "error": error} if error else {"file": path, "faces": [json_face(f) for f in faces]}
            print(json.dumps(record), file=out)
        elif error:
            print(f"{path:<{width}} {'-':>4} error: {error}", file=out)
        elif not faces:
            print(f"{path:<{width}} {'-':>4} no face found{hint}", file=out)
        else:
            for i, face in enumerate(faces, 1):
                print(f"{path:<{width}} {i:>4} {face_row(face)}", file=out)
        out.flush()
        progress.step()
    errors = len(inputs) - processed
    print(f"{len(inputs)} input(s): {processed} processed, {faces_found} face(s), {errors} error(s)", file=sys.stderr)
    return 0 if processed else 1


# -- annotate ----------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def draw_faces(image, faces):
    """A copy of the RGB image with each face's box, keypoints and 'gender, age group, age' drawn on it."""
    from PIL import ImageDraw
    image = image.copy()
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    font = _font(max(12, round(max(image.size) / 40)))
    for face in faces:
        left, top, right, bottom = face.box
        draw.rectangle((left, top, right - 1, bottom - 1), outline=(255, 200, 0), width=line)
        for x, y in face.keypoints or []:  # the points the crop was aligned by
            draw.ellipse((x - 1.5 * line, y - 1.5 * line, x + 1.5 * line, y + 1.5 * line), fill=(0, 220, 255))
        label = f"{face.gender} {face.gender_probability:.0%}, {face.age_group}, {face.age:.0f}y"
        x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
        text_top = top - (y1 - y0) - 2 * line if top - (y1 - y0) - 2 * line >= 0 else top
        draw.rectangle((left, text_top, left + (x1 - x0) + 2 * line, text_top + (y1 - y0) + 2 * line), fill=(255, 200, 0))
        draw.text((left + line - x0, text_top + line - y0), label, fill=(0, 0, 0), font=font)
    return image


def cmd_annotate(args) -> int:
    predictor = make_predictor(args)
    try:
        image = open_image(args.input)
        faces = predictor.predict(image)
    except ImageError as e:
        print(f"faceage: error: {e}", file=sys.stderr)
        return 1
    try:
        draw_faces(image, faces).save(args.output)
    except (ValueError, OSError) as e:
        print(f"faceage: error: {args.output}: cannot write the annotated image ({e})", file=sys.stderr)
        return 1
    for i, face in enumerate(faces, 1):
        print(f"{i:>4} {face_row(face)}")
    print(f"{args.output}: {len(faces)} face(s) annotated", file=sys.stderr)
    return 0


# -- bench and info ----------------------------------------------------------------------------


def cmd_bench(args) -> int:
    if args.image:
        try:
            image = open_image(args.image)
        except ImageError as e:
            print(f"faceage: error: {e}", file=sys.stderr)
            return 1
    else:
        image = bench.sample_face()
    rows = []
    for threads in args.threads:
        predictor = FaceAgePredictor(args.model, num_threads=threads)
        timing = bench.face_latency(predictor, image, args.runs)
        rows.append({"threads": threads, **timing, "peak_memory_mib": bench.peak_memory_mib()})
    summary = {"model": predictor.model_path, "name": predictor.card.get("name"), "model_bytes": predictor.model_bytes,
               "backend": predictor.backend, "results": rows}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"model {summary['name']} ({predictor.model_bytes / 2**20:.2f} MiB) via {predictor.backend}; "
          f"per face, preprocessing included, median of {args.runs} runs")
    print(f"{'threads':>7} {'median ms':>10} {'p90 ms':>8} {'faces/s':>8} {'peak RSS MiB':>13}")
    for row in rows:
        memory = f"{row['peak_memory_mib']:.0f}" if row["peak_memory_mib"] is not None else "n/a"
        print(f"{row['threads']:>7} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
              f"{1e3 / row['median_ms']:>8.0f} {memory:>13}")
    print("(peak RSS is the whole process's peak so far: Python, numpy, Pillow, interpreter and model)")
    return 0


def cmd_info(args) -> int:
    data, card, name = read_model(args.model)
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    schema = card["schema"]
    print(f"{'file':<18} {name} ({len(data):,} bytes, sha256 matches the card)")
    for key in ("name", "status", "architecture", "variant", "created", "faceage_tf_version", "tensorflow_version",
                "training_data", "licence"):
        if key in card:
            print(f"{key:<18} {card[key]}")
    print(f"{'inputs':<18} {json.dumps(card.get('inputs'))}")
    print(f"{'outputs':<18} {json.dumps(card.get('outputs'))}")
    print(f"{'input_size':<18} {schema['input_size']} px, normalised (pixel - {schema['mean']}) / {schema['std']}")
    print(f"{'genders':<18} {', '.join(schema['gender_labels'])}")
    print(f"{'age groups':<18} {', '.join(schema.get('age_group_labels', []))}")
    print(f"{'face template':<18} {json.dumps(schema.get('template'))}")
    print(f"{'metrics':<18} {json.dumps(card.get('metrics', {}), sort_keys=True)}")
    return 0


# -- arguments ---------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_options(sub, detector=True):
        sub.add_argument("--model", help="a faceage .tflite model (default: the packaged model)")
        if detector:
            sub.add_argument("--threads", type=positive_int, help="interpreter threads (default: the backend's choice)")
            sub.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                             help="face detector: auto = blazeface (bundled, faces aligned by their keypoints; "
                                  "default), haar (OpenCV, needs opencv-python-headless), none (each image already "
                                  "is one face crop in the model's framing, like UTKFace's)")

    sub = commands.add_parser("predict", help="predict gender and age for the faces in images")
    sub.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    sub.add_argument("--json", action="store_true", help="one JSON line per input (errors included)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    model_options(sub)
    sub.set_defaults(run=cmd_predict)

    sub = commands.add_parser("annotate", help="draw boxes and labels on a photo")
    sub.add_argument("input", metavar="IN", help="the photo")
    sub.add_argument("output", metavar="OUT", help="where to write the annotated image (format from the extension)")
    model_options(sub)
    sub.set_defaults(run=cmd_annotate)

    sub = commands.add_parser("bench", help="per-face latency and peak memory at 1 and 2 threads")
    sub.add_argument("--runs", type=positive_int, default=200, help="timed runs per setting (default 200)")
    sub.add_argument("--image", help="a face-crop image to time (default: a synthetic 200x200 image)")
    sub.add_argument("--json", action="store_true", help="print the results as one JSON object")
    sub.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    model_options(sub, detector=False)
    sub.set_defaults(run=cmd_bench)

    sub = commands.add_parser("info", help="show a model's card")
    sub.add_argument("model", nargs="?", metavar="MODEL", help="a faceage .tflite model (default: the packaged model)")
    sub.add_argument("--json", action="store_true", help="print the card as JSON")
    sub.set_defaults(run=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `faceage` with `argv` (default: the command line) and returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ModelFileError, BackendError, DetectorError) as e:
        print(f"faceage: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("faceage: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
