"""Compares two `faceage predict --json` outputs of the same inputs: a reference (x86) and an
emulated Raspberry Pi run (arm64 or armhf).

    python tests/pi/compare_outputs.py [--label arm64] [--age-tolerance 0.5] [--age-range-tolerance 2]
        [--probability-tolerance 0.02] [--box-tolerance 1] [--min-iou 0.5] x86.jsonl arm.jsonl

Passes (exit 0) when every input has a result in both, neither has an error, both found the
same number of faces, faces matched by box IoU (>= --min-iou) have the same gender and age group,
and their ages, age ranges, probabilities, detection scores, boxes and keypoints agree within
the tolerances. A label may differ only on a near tie that the tolerance explains (see
labels_agree). Prints the largest differences either way; exit 1 with one line per problem.
Needs numpy only.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def read_jsonl(path: str) -> dict[str, dict]:
    """{file: record} of a `faceage predict --json` output."""
    records = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{number}: not a JSON line ({e}): {line[:80]!r}")
            if "file" not in record:
                raise SystemExit(f"{path}:{number}: no 'file' in {line[:80]!r}")
            records[record["file"]] = record
    return records


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every (left, top, right, bottom) box of a with every one of b."""
    left = np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    top = np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    right = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    bottom = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area(boxes_a)[:, None] + area(boxes_b)[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def match_faces(faces_a: list[dict], faces_b: list[dict]) -> list[tuple[int, int, float]]:
    """(index in a, index in b, IoU) pairs, best overlap first, each face used once."""
    if not faces_a or not faces_b:
        return []
    iou = iou_matrix(np.array([f["box"] for f in faces_a], float), np.array([f["box"] for f in faces_b], float))
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = (int(k) for k in np.unravel_index(flat, iou.shape))
        if i not in used_a and j not in used_b:
            pairs.append((i, j, float(iou[i, j])))
            used_a.add(i)
            used_b.add(j)
    return pairs


def labels_agree(label_a: str, probability_a: float, label_b: str, probability_b: float,
                 tolerance: float) -> bool:
    """Same label, or a near tie the tolerance explains: the two winners' probabilities within the
    tolerance of each other, and summing to at most 1 + tolerance (two classes of one output cannot
    both be far above 1/2, so a flip from 0.9 to another class at 0.9 is no tie)."""
    if label_a == label_b:
        return True
    return abs(probability_a - probability_b) <= tolerance and probability_a + probability_b <= 1 + tolerance


def compare(reference: dict[str, dict], other: dict[str, dict], label: str, age_tolerance: float,
            age_range_tolerance: float, probability_tolerance: float, box_tolerance: float,
            min_iou: float) -> tuple[list[str], dict[str, float], int]:
    """(problems, largest differences, faces compared)."""
    problems = []
    largest = dict.fromkeys(("age", "age_range", "gender_probability", "age_group_probability", "detection_score",
                             "box", "keypoints"), 0.0)
    compared = 0
    for name in sorted(set(reference) - set(other)):
        problems.append(f"{name}: no result on {label}")
    for name in sorted(set(other) - set(reference)):
        problems.append(f"{name}: a result on {label} but none on x86")
    for name in sorted(set(reference) & set(other)):
        ref, oth = reference[name], other[name]
        for side, record in (("x86", ref), (label, oth)):
            if "error" in record:
                problems.append(f"{name}: error on {side}: {record['error']}")
        if "error" in ref or "error" in oth:
            continue
        if len(ref["faces"]) != len(oth["faces"]):
            problems.append(f"{name}: {len(ref['faces'])} face(s) on x86, {len(oth['faces'])} on {label}")
        for i, j, iou in match_faces(ref["faces"], oth["faces"]):
            a, b = ref["faces"][i], oth["faces"][j]
            where = f"{name} face {i}"
            if iou < min_iou:
                problems.append(f"{where}: boxes do not match (IoU {iou:.2f} < {min_iou}): x86 {a['box']}, {label} {b['box']}")
                continue
            compared += 1
            # Fields a newer runtime may add (age_range, detection_score, keypoints) are compared when
            # present; they are null for face crops (--detector none).
            # The ends of the 80% age range are quantiles: where the age distribution is thin, a small
            # change of probability moves them far, hence their own tolerance.
            for key, tolerance, unit in (("box", box_tolerance, " px"), ("keypoints", box_tolerance, " px"),
                                         ("age", age_tolerance, " years"), ("age_range", age_range_tolerance, " years"),
                                         ("detection_score", probability_tolerance, "")):
                if a.get(key) is None and b.get(key) is None:
                    continue
                if a.get(key) is None or b.get(key) is None:
                    problems.append(f"{where}: {key} {a.get(key)} on x86, {b.get(key)} on {label}")
                    continue
                difference = float(np.abs(np.subtract(a[key], b[key], dtype=float)).max())
                largest[key] = max(largest[key], difference)
                if difference > tolerance:
                    problems.append(f"{where}: {key} {a[key]} on x86, {b[key]} on {label} "
                                    f"(differ by more than {tolerance}{unit})")
            for key in ("gender", "age_group"):
                pa, pb = a[f"{key}_probability"], b[f"{key}_probability"]
                largest[f"{key}_probability"] = max(largest[f"{key}_probability"], abs(pa - pb))
                if not labels_agree(a[key], pa, b[key], pb, probability_tolerance):
                    problems.append(f"{where}: {key} {a[key]} ({pa:.4f}) on x86, {b[key]} ({pb:.4f}) on {label}")
                elif a[key] == b[key] and abs(pa - pb) > probability_tolerance:
                    problems.append(f"{where}: {key}_probability {pa:.4f} on x86, {pb:.4f} on {label} "
                                    f"(differ by more than {probability_tolerance})")
                elif a[key] != b[key]:
                    print(f"{where}: near tie, {key} {a[key]} ({pa:.4f}) on x86, {b[key]} ({pb:.4f}) on {label}")
    return problems, largest, compared


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", help="x86 output (JSON lines)")
    parser.add_argument("other", help="emulated output (JSON lines)")
    parser.add_argument("--label", default="arm", help="name of the second run in messages")
    parser.add_argument("--age-tolerance", type=float, default=0.5, help="years")
    parser.add_argument("--age-range-tolerance", type=float, default=2.0, help="years, on each end of the 80%% range")
    parser.add_argument("--probability-tolerance", type=float, default=0.02,
                        help="on gender and age-group probabilities and detection scores")
    parser.add_argument("--box-tolerance", type=float, default=1.0, help="pixels, on box corners and keypoints")
    parser.add_argument("--min-iou", type=float, default=0.5, help="boxes of the same face overlap at least this much")
    args = parser.parse_args(argv)
    reference, other = read_jsonl(args.reference), read_jsonl(args.other)
    if not reference:
        print(f"FAIL: {args.reference} has no results", file=sys.stderr)
        return 1
    problems, largest, compared = compare(reference, other, args.label, args.age_tolerance, args.age_range_tolerance,
                                          args.probability_tolerance, args.box_tolerance, args.min_iou)
    print(f"{args.label} vs x86: {len(reference)} images, {compared} faces compared; largest differences: "
          f"age {largest['age']:.3f} years, 80% age range {largest['age_range']:.3f} years, "
          f"gender probability {largest['gender_probability']:.4f}, "
          f"age-group probability {largest['age_group_probability']:.4f}, "
          f"detection score {largest['detection_score']:.4f}, box {largest['box']:.2f} px, "
          f"keypoints {largest['keypoints']:.2f} px")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
