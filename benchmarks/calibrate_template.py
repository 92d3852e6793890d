"""Measures the alignment template (`FaceTemplate` in faceage_tf/schema.py) on UTKFace crops.

UTKFace's crops are the framing the model was trained on. BlazeFace finds each crop's keypoints;
their median position, as fractions of the crop's side, is the template. Aligning a crop with
it should give back the crop itself: the residuals say how well one similarity transform
reproduces UTKFace's framing (keypoint distance after the fit, as a fraction of the crop side,
and the IoU of the aligned crop with the original frame, both in the photo's pixels).

    python benchmarks/calibrate_template.py [--faces 2000] [--utkface DIR] [--json OUT]
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from faceage_tf.align import crop_corners, similarity_transform  # noqa: E402
from faceage_tf.runtime.detectors import BlazeFaceDetector  # noqa: E402
from faceage_tf.schema import ALIGNMENT_KEYPOINTS, FaceTemplate  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "utkface")


def polygon_iou(corners: np.ndarray, side: int, scale: int = 4) -> float:
    """IoU of a polygon (image pixels) with the image frame [0, side]^2, rasterised at `scale`x."""
    pad = side  # room for the parts of the polygon outside the frame
    canvas = (3 * side * scale, 3 * side * scale)
    polygon, frame = Image.new("1", canvas), Image.new("1", canvas)
    ImageDraw.Draw(polygon).polygon([((x + pad) * scale, (y + pad) * scale) for x, y in corners], fill=1)
    ImageDraw.Draw(frame).rectangle([pad * scale, pad * scale, (pad + side) * scale - 1, (pad + side) * scale - 1], fill=1)
    a, b = np.asarray(polygon, bool), np.asarray(frame, bool)
    return float((a & b).sum() / (a | b).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utkface", default=os.environ.get("FACEAGE_UTKFACE", SHARED))
    parser.add_argument("--faces", type=int, default=2000, help="crops to measure, evenly spaced over the sorted names")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    names = sorted(n for n in os.listdir(args.utkface) if n.endswith(".jpg"))
    files = [os.path.join(args.utkface, n) for n in names[::max(1, len(names) // args.faces)][:args.faces]]
    detector = BlazeFaceDetector(num_threads=1)
    found, sides = [], []
    for path in files:
        image = Image.open(path).convert("RGB")
        faces = detector.detect(image)
        if faces:
            found.append(faces[0].keypoints[:len(ALIGNMENT_KEYPOINTS)] / np.array(image.size, np.float64))
            sides.append(image.size[0])
    points = np.stack(found)
    template = FaceTemplate(tuple(tuple(round(float(v), 4) for v in p) for p in np.median(points, axis=0)))
    residuals, ious = [], []
    target = np.asarray(template.keypoints)
    for normalised, side in zip(points, sides):
        fit = similarity_transform(normalised, target)
        mapped = normalised @ fit[:, :2].T + fit[:, 2]
        residuals.append(float(np.sqrt(((mapped - target) ** 2).sum(axis=1)).mean()))
        ious.append(polygon_iou(crop_corners(normalised * side, template, side), side))
    report = {
        "faces": len(files), "detected": len(found), "template": [list(p) for p in template.keypoints],
        "keypoints": list(ALIGNMENT_KEYPOINTS),
        "keypoint_residual_median": float(np.median(residuals)), "keypoint_residual_p90": float(np.percentile(residuals, 90)),
        "crop_iou_median": float(np.median(ious)), "crop_iou_p10": float(np.percentile(ious, 10)),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
