"""`faceage`: age and gender of the faces in photos, from the command line.

    faceage predict photo.jpg folder/ 'shots/*.png'      # a table
    faceage predict --json folder/ > results.jsonl      # one JSON line per input, errors included
    faceage predict --detector none crops/              # images that already are face crops
    faceage annotate photo.jpg annotated.jpg            # boxes, keypoints and labels drawn on the photo
    faceage bench                                       # per-face latency and peak memory
    faceage info [MODEL]                                # the model card

Exit status: 0 when at least one input was processed, 1 when none could be (every input is
named with its problem), 2 for bad arguments, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Iterator

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PROGRESS_MIN_INPUTS = 50  # show progress on stderr for this many inputs even when it is not a terminal
NO_FACE = "no face found; if the image is a face crop already, use --detector none"


def make_predictor(args):
    from faceage_tf.runtime import FaceAgePredictor
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


def progress_bar(total: int, enabled: bool):
    """tqdm on stderr: redrawn in place on a terminal; for logs (not a terminal) only when there
    are many inputs, and at most every 10 seconds."""
    from tqdm import tqdm
    tty = sys.stderr.isatty()
    show = enabled and total > 1 and (tty or total >= PROGRESS_MIN_INPUTS)
    return tqdm(total=total, unit="image", disable=not show, file=sys.stderr, mininterval=0.1 if tty else 10,
                leave=False if tty else True)


# -- predict -----------------------------------------------------------------------------------


def face_row(face) -> str:
    box = ",".join(f"{v:.0f}" for v in face.box)
    low, high = face.age_range
    return (f"{box:<19} {face.gender:<6} {face.gender_probability:4.2f}  "
            f"{face.age_group:<6} {face.age_group_probability:4.2f}  {face.age:5.1f}  {low:3.0f}-{high:.0f}")


def json_face(face) -> dict:
    def rounded(value):
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, (list, tuple)):
            return [rounded(v) for v in value]
        return value
    return {k: rounded(v) for k, v in face.to_dict().items()}


def cmd_predict(args) -> int:
    from faceage_tf.preprocess import ImageError
    from faceage_tf.runtime.detectors import resolve
    inputs = list(expand_inputs(args.paths))
    predictor = make_predictor(args)
    out = sys.stdout
    width = max([4] + [len(p) for p, _ in inputs])
    crops = predictor.detector is None
    if not args.json:
        print(f"model {predictor.card.get('name', predictor.model_name)} via {predictor.backend}, "
              f"detector {resolve(args.detector)}", file=sys.stderr)
        print(f"{'FILE':<{width}} {'FACE':>4} {'BOX':<19} {'GENDER':<11} {'AGE GROUP':<11} {'AGE':>5}  80% RANGE", file=out)
    progress = progress_bar(len(inputs), enabled=not args.no_progress)
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
            if not error and not faces:
                record["note"] = NO_FACE if not crops else "no face"
            print(json.dumps(record), file=out)
        elif error:
            print(f"{path:<{width}} {'-':>4} error: {error}", file=out)
        elif not faces:
            print(f"{path:<{width}} {'-':>4} {NO_FACE}", file=out)
        else:
            for i, face in enumerate(faces, 1):
                print(f"{path:<{width}} {i:>4} {face_row(face)}", file=out)
        out.flush()
        progress.update(1)
    progress.close()
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
    """A copy of the RGB image with each face's box, keypoints and 'gender, age group, age (range)' drawn on it."""
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
        low, high = face.age_range
        label = f"{face.gender} {face.gender_probability:.0%}, {face.age_group}, {face.age:.0f}y ({low:.0f}-{high:.0f})"
        x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
        text_top = top - (y1 - y0) - 2 * line if top - (y1 - y0) - 2 * line >= 0 else top
        draw.rectangle((left, text_top, left + (x1 - x0) + 2 * line, text_top + (y1 - y0) + 2 * line), fill=(255, 200, 0))
        draw.text((left + line - x0, text_top + line - y0), label, fill=(0, 0, 0), font=font)
    return image


def cmd_annotate(args) -> int:
    import io
    from faceage_tf.files import atomic_write_bytes
    from faceage_tf.preprocess import ImageError, open_image
    from PIL import Image
    if os.path.exists(args.output) and os.path.exists(args.input) and os.path.samefile(args.input, args.output) \
            and not args.overwrite:
        print(f"faceage: error: {args.output}: is the input photo; refusing to overwrite it (add --overwrite)",
              file=sys.stderr)
        return 1
    extension = os.path.splitext(args.output)[1].lower()
    if extension not in Image.registered_extensions():
        print(f"faceage: error: {args.output}: cannot write the annotated image (unknown extension "
              f"{extension or '(none)'!r}; use .jpg or .png)", file=sys.stderr)
        return 1
    predictor = make_predictor(args)
    try:
        image = open_image(args.input)
        faces = predictor.predict(image)
    except ImageError as e:
        print(f"faceage: error: {e}", file=sys.stderr)
        return 1
    try:
        buffer = io.BytesIO()
        draw_faces(image, faces).save(buffer, format=Image.registered_extensions()[extension])
        atomic_write_bytes(args.output, buffer.getvalue())  # a failed write leaves nothing behind
    except (ValueError, OSError) as e:
        print(f"faceage: error: {args.output}: cannot write the annotated image ({e})", file=sys.stderr)
        return 1
    for i, face in enumerate(faces, 1):
        print(f"{i:>4} {face_row(face)}")
    print(f"{args.output}: {len(faces)} face(s) annotated" + ("" if faces else f" ({NO_FACE})"), file=sys.stderr)
    return 0


# -- bench and info ----------------------------------------------------------------------------


def cmd_bench(args) -> int:
    from faceage_tf.preprocess import ImageError, open_image
    from faceage_tf.runtime import FaceAgePredictor, bench
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
        predictor = FaceAgePredictor(args.model, detector="none", num_threads=threads)
        timing = bench.face_latency(predictor, image, args.runs)
        rows.append({"threads": threads, **timing, "peak_memory_mib": bench.peak_memory_mib()})
    summary = {"model": predictor.model_path, "name": predictor.card.get("name"), "model_bytes": predictor.model_bytes,
               "backend": predictor.backend, "results": rows}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"model {summary['name']} ({predictor.model_bytes / 2**20:.2f} MiB) via {predictor.backend}; "
          f"per face crop, preprocessing included, median of {args.runs} runs")
    print(f"{'threads':>7} {'median ms':>10} {'p90 ms':>8} {'faces/s':>8} {'peak RSS MiB':>13}")
    for row in rows:
        memory = f"{row['peak_memory_mib']:.0f}" if row["peak_memory_mib"] is not None else "n/a"
        print(f"{row['threads']:>7} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
              f"{1e3 / row['median_ms']:>8.0f} {memory:>13}")
    print("(peak RSS is the whole process's peak so far: Python, numpy, Pillow, interpreter and model)")
    return 0


def _percent(value) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


def cmd_info(args) -> int:
    from faceage_tf.runtime import read_model
    data, card, name = read_model(args.model)
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    schema = card["schema"]
    rows = [("file", f"{name} ({len(data):,} bytes, sha256 matches the card)")]
    rows += [(key.replace("_", " "), card[key]) for key in ("name", "architecture", "variant", "created",
                                                            "faceage_tf_version", "tensorflow_version") if key in card]
    rows += [("input", f"{schema['input_size']}x{schema['input_size']} RGB, (pixel - {schema['mean']}) / {schema['std']}"),
             ("genders", ", ".join(schema["gender_labels"])),
             ("age groups", ", ".join(schema.get("age_group_labels", []))),
             ("face template", "keypoints (right eye, left eye, nose, mouth) at "
              + ", ".join(f"({x:.3f}, {y:.3f})" for x, y in schema["template"]["keypoints"]))]
    training = card.get("training_data")
    if isinstance(training, dict):
        faces = training.get("faces", {})
        counts = ", ".join(f"{k} {v:,}" for k, v in faces.items()) if isinstance(faces, dict) else faces
        rows.append(("training data", f"{training.get('dataset', '?')}: {counts}; split {training.get('split', '?')}"))
    for split, metrics in (card.get("metrics") or {}).items():
        if isinstance(metrics, dict):
            rows.append((f"{split} split", f"{metrics.get('n', '?')} faces: gender {_percent(metrics.get('gender_accuracy'))}, "
                                           f"age group {_percent(metrics.get('age_group_accuracy'))}, "
                                           f"age MAE {metrics.get('age_mae', float('nan')):.2f} years"))
    if "licence" in card:
        rows.append(("licence", card["licence"]))
    for key, value in rows:
        print(f"{key:<19} {value}")
    for weakness in card.get("known_weaknesses", []):
        print(f"{'weakness':<19} {weakness}")
    print("(faceage info --json prints the whole card, per-group metrics included)")
    return 0


# -- arguments ---------------------------------------------------------------------------------


def thread_count(text: str) -> int:
    from faceage_tf.runtime.backends import MAX_THREADS
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_THREADS}, got {text!r}") from None
    if not 1 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_THREADS}, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from faceage_tf.runtime.detectors import DETECTOR_CHOICES
    parser = argparse.ArgumentParser(prog="faceage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="also show the interpreters' own log lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_options(sub, detector=True):
        sub.add_argument("--model", metavar="MODEL", help="default (the packaged model; the default), small (the "
                         "packaged small model, for a Pi Zero or a low-end phone) or a faceage .tflite file")
        if detector:
            sub.add_argument("--threads", type=thread_count, help="interpreter threads, 1 to 64 (default: the backend's choice)")
            sub.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                             help="face detector: auto = blazeface (bundled; faces aligned by their keypoints; "
                                  "the default), haar (OpenCV, needs opencv-python-headless), none (each image "
                                  "already is one face crop in the model's framing, like UTKFace's)")

    sub = commands.add_parser("predict", help="predict gender and age for the faces in images")
    sub.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    sub.add_argument("--json", action="store_true", help="one JSON line per input (errors included)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    model_options(sub)
    sub.set_defaults(run=cmd_predict)

    sub = commands.add_parser("annotate", help="draw boxes, keypoints and labels on a photo")
    sub.add_argument("input", metavar="IN", help="the photo")
    sub.add_argument("output", metavar="OUT", help="where to write the annotated image (format from the extension)")
    sub.add_argument("--overwrite", action="store_true", help="allow OUT to be the input photo itself")
    model_options(sub)
    sub.set_defaults(run=cmd_annotate)

    sub = commands.add_parser("bench", help="per-face latency and peak memory at 1 and 2 threads")
    sub.add_argument("--runs", type=positive_int, default=200, help="timed runs per setting (default 200)")
    sub.add_argument("--image", help="a face-crop image to time (default: a synthetic 200x200 image)")
    sub.add_argument("--json", action="store_true", help="print the results as one JSON object")
    sub.add_argument("--threads", type=thread_count, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    model_options(sub, detector=False)
    sub.set_defaults(run=cmd_bench)

    sub = commands.add_parser("info", help="show a model's card")
    sub.add_argument("model", nargs="?", metavar="MODEL",
                     help="default or small (the packaged models), or a faceage .tflite file (default: default)")
    sub.add_argument("--json", action="store_true", help="print the whole card as JSON")
    sub.set_defaults(run=cmd_info)
    return parser


def _run(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["FACEAGE_VERBOSE"] = "1"
    from faceage_tf.runtime import BackendError, DetectorError, ModelFileError
    try:
        return args.run(args)
    except (ModelFileError, BackendError, DetectorError) as e:
        print(f"faceage: error: {e}", file=sys.stderr)
        return 1


def _quiet_interrupt_in_finalizer(unraisable) -> None:
    # Ctrl-C that lands while an interpreter is being freed (after the summary, say) is raised
    # inside its __del__, where Python would print it as "Exception ignored ... Traceback".
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> int:
    """Runs `faceage` with `argv` (default: the command line) and returns the exit status.

    Heavy modules are imported inside, so that Ctrl-C at any time ends quietly (status 130) and
    a reader that goes away (`faceage predict ... | head`) ends the command quietly (status 0).
    """
    sys.unraisablehook = _quiet_interrupt_in_finalizer
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("faceage: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Python flushes stdout at exit: point it at /dev/null so that flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
