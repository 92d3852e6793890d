"""Training faces cut by the serving path: the runtime's detector and alignment, cached once per data set.

    python -m faceage_tf.prepare --source utkface:../shared/data/utkface --source aaf:../shared/data/aaf \\
        --out ~/.cache/faceage_tf/crops

The model should see in training what `faceage predict` gives it: faces found by the bundled
BlazeFace and aligned to the card's template. Each face is aligned once, with a margin around
it (`ZOOM` times the template's framing, at `ZOOM` times the input size), so that augmentation
can zoom out as well as in and turn the face; the template's own crop is the centre
1 / `ZOOM` of each cached image. Where a source image ends (UTKFace's crops end just around the
face) the alignment reflects the image at its edges, as the runtime does, so no black border is
invented.

A face the detector misses in its own image is left out and listed in the report with the
reason: the runtime would not find it in a user's photo either, and a crop cut another way
would teach a framing the runtime never serves. Cached crops are PNG files named by the source
file's content hash and the way it was cut, written atomically; a second run reuses them. Each source's folder gets
`records.json` (the kept faces, pointing at their crops), `info.json` (zoom, input size, crop
size and template: training refuses crops cut for another schema) and `report.json`.

Pure numpy and Pillow with the runtime's interpreter (no TensorFlow).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
import sys
from typing import Sequence

from PIL import Image

from faceage_tf.align import align_face
from faceage_tf.datasets import (PREPARED_INFO, PREPARED_RECORDS, PREPARED_ZOOM, FaceRecord, content_hash,
                                 load_utkface, prepared_crop_name)
from faceage_tf.files import atomic_write_bytes, atomic_write_text
from faceage_tf.preprocess import ImageError, open_image
from faceage_tf.runtime.detectors import BlazeFaceDetector
from faceage_tf.schema import Schema

ZOOM = PREPARED_ZOOM  # 1.5: the cached crop frames 1.5x the template's side: room to zoom out to 1.5 and turn
AAF_GENDERS = {"male": 0, "female": 1}  # to the schema's order (0 = male)


def load_aaf(root: str) -> tuple[list[FaceRecord], list[tuple[str, str]]]:
    """AAF's labelled photos (`labels.csv`): label conflicts dropped, one file per duplicate group.

    Returns:
        (records, left out as (path, reason)).
    """
    records, left_out, groups = [], [], set()
    with open(os.path.join(root, "labels.csv"), newline="") as f:
        for row in csv.DictReader(f):
            path = os.path.join(root, "images", row["file"])
            if row["label_conflict"] == "1":
                left_out.append((path, "label conflict with a byte-identical copy"))
            elif row["dup_group"] and row["dup_group"] in groups:
                left_out.append((path, f"duplicate of an earlier file (group {row['dup_group']})"))
            elif row["gender"] not in AAF_GENDERS:
                left_out.append((path, f"unknown gender label {row['gender']!r}"))
            else:
                groups.add(row["dup_group"])
                records.append(FaceRecord(path, float(row["age"]), AAF_GENDERS[row["gender"]]))
    return records, left_out


@dataclasses.dataclass
class PrepareReport:
    source: str
    total: int = 0
    left_out: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "total": self.total, "kept": self.total - len(self.left_out),
                "left_out": [{"path": p, "reason": r} for p, r in self.left_out]}

    def summary(self) -> str:
        return f"{self.source}: {self.total - len(self.left_out)} of {self.total} faces cut, {len(self.left_out)} left out"


def cut_face(path: str, detector, schema: Schema, zoom: float = ZOOM) -> Image.Image:
    """The serving path's crop of the largest face in `path`, with the margin `zoom`.

    Raises:
        ImageError: unreadable image, or no face found.
    """
    image = open_image(path)
    faces = detector.detect(image)
    if not faces:
        raise ImageError(f"{path}: no face found by the runtime's detector")
    return align_face(image, faces[0].keypoints, schema.template, round(schema.input_size * zoom), zoom=zoom)


def prepare(records: Sequence[FaceRecord], source: str, out_dir: str, schema: Schema, *,
            zoom: float = ZOOM) -> tuple[list[FaceRecord], PrepareReport]:
    """Cuts every record's face into `out_dir` (reusing crops cut before); returns the records
    pointing at their crops, and the report of faces left out."""
    os.makedirs(out_dir, exist_ok=True)
    detector = BlazeFaceDetector(num_threads=1)
    report = PrepareReport(source, total=len(records))
    # A crop is reused only if cut from the same bytes the same way (zoom, size, template).
    cut = hashlib.sha1(json.dumps(info(schema, zoom), sort_keys=True).encode()).hexdigest()[:8]
    kept = []
    for record in records:
        target = os.path.join(out_dir, prepared_crop_name(content_hash(record.path), cut))
        if not os.path.exists(target):
            try:
                crop = cut_face(record.path, detector, schema, zoom)
            except ImageError as e:
                report.left_out.append((record.path, str(e).split(": ", 1)[-1]))
                continue
            buffer = io.BytesIO()
            crop.save(buffer, "PNG")
            atomic_write_bytes(target, buffer.getvalue())
        kept.append(dataclasses.replace(record, path=target, zoom=zoom))
    return kept, report


def info(schema: Schema, zoom: float = ZOOM) -> dict:
    """How crops are cut (written as `info.json`; training refuses crops cut another way)."""
    return {"zoom": zoom, "input_size": schema.input_size, "size": round(schema.input_size * zoom),
            "template": [list(p) for p in schema.template.keypoints]}


def prepare_source(records: Sequence[FaceRecord], source: str, out_dir: str, schema: Schema, *,
                   unusable: Sequence[tuple[str, str]] = (), zoom: float = ZOOM) -> PrepareReport:
    """Cuts a source's faces into `out_dir` and writes what training reads there: `records.json`
    (the kept faces, pointing at their crops), `info.json` (how they were cut) and `report.json`
    (faces left out and why, `unusable` ones of the loader included)."""
    kept, report = prepare(records, source, out_dir, schema, zoom=zoom)
    report.left_out += list(unusable)
    report.total += len(unusable)
    atomic_write_text(os.path.join(out_dir, PREPARED_RECORDS), json.dumps([dataclasses.asdict(r) for r in kept], indent=1))
    atomic_write_text(os.path.join(out_dir, PREPARED_INFO), json.dumps(info(schema, zoom), indent=1))
    atomic_write_text(os.path.join(out_dir, "report.json"), json.dumps(report.to_dict(), indent=1))
    return report


def _utkface(root: str) -> tuple[list[FaceRecord], list[tuple[str, str]]]:
    records, report = load_utkface(root)
    return records, report.problems


LOADERS = {"utkface": _utkface, "aaf": load_aaf}  # kind -> (records, left out as (path, reason))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", required=True, metavar="KIND:PATH",
                        help=f"a data set to cut, KIND one of {sorted(LOADERS)} (repeat for several)")
    parser.add_argument("--out", required=True, help="cache folder: one sub-folder per source")
    parser.add_argument("--limit", type=int, default=0, help="cut only the first N faces of each source (0: all)")
    parser.add_argument("--input-size", type=int, default=Schema().input_size,
                        help="the model's input side in pixels (default %(default)s); crops are 1.5x that")
    args = parser.parse_args(argv)
    schema = Schema(input_size=args.input_size)
    for spec in args.source:
        kind, _, root = spec.partition(":")
        if kind not in LOADERS or not root:
            parser.error(f"--source must be KIND:PATH with KIND in {sorted(LOADERS)}. Received: {spec!r}")
        records, unusable = LOADERS[kind](root)
        records = records[:args.limit] if args.limit else records
        report = prepare_source(records, kind, os.path.join(args.out, kind), schema, unusable=unusable)
        print(report.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
