"""Measures the face-crop convention (`FaceCrop.scale`, `FaceCrop.shift_y` in faceage_tf/schema.py)
that turns OpenCV Haar boxes into UTKFace-like crops.

UTKFace's aligned crops are 200x200 and tight: the Haar detector misses faces that touch the
border, so each crop is padded (three ways, to show the padding does not matter) before
detection. For the detected box nearest the centre:

    scale   = crop side / max(box width, box height)
    shift_y = (crop centre y - box centre y) / crop side      (positive: crop lower than box)

The medians over all faces and paddings are the defaults in `FaceCrop`.

    .venv/bin/python benchmarks/calibrate_crop.py [--utkface DIR] [--faces 600]
"""

import argparse
import os

import numpy as np
from PIL import Image

from faceage_tf.runtime.detectors import HaarDetector

PAD = 100
PADDINGS = {"edge": {"mode": "edge"}, "reflect": {"mode": "reflect"}, "grey": {"mode": "constant", "constant_values": 128}}


def measure(path: str, detector: HaarDetector, padding: dict):
    """(scale, shift_y, shift_x) of one crop, or None when no face is found."""
    face = np.asarray(Image.open(path).convert("RGB"))
    side = face.shape[0]
    padded = np.pad(face, ((PAD, PAD), (PAD, PAD), (0, 0)), **padding)
    boxes = detector.detect(padded)
    if not boxes:
        return None
    centre = PAD + side / 2
    left, top, right, bottom = min(boxes, key=lambda b: abs((b[0] + b[2]) / 2 - centre) + abs((b[1] + b[3]) / 2 - centre))
    box_side = max(right - left, bottom - top)
    return side / box_side, (centre - (top + bottom) / 2) / side, (centre - (left + right) / 2) / side


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utkface", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "utkface"))
    parser.add_argument("--faces", type=int, default=600, help="number of faces, spread evenly over the sorted names")
    args = parser.parse_args()

    names = sorted(n for n in os.listdir(args.utkface) if n.endswith(".jpg"))
    names = names[:: max(1, len(names) // args.faces)][: args.faces]
    detector = HaarDetector()
    pooled = []
    print(f"{len(names)} UTKFace crops, Haar cascade {HaarDetector.CASCADE}, crops padded by {PAD} px")
    print(f"{'padding':8} {'found':>6} {'scale':>6} {'IQR':>13} {'shift_y':>8} {'IQR':>15} {'shift_x':>8}")
    for label, padding in PADDINGS.items():
        found = [m for m in (measure(os.path.join(args.utkface, n), detector, padding) for n in names) if m]
        values = np.array(found)
        pooled.append(values)
        q1, med, q3 = np.percentile(values, [25, 50, 75], axis=0)
        print(f"{label:8} {len(values) / len(names):6.1%} {med[0]:6.3f} {q1[0]:6.3f}-{q3[0]:6.3f} "
              f"{med[1]:8.3f} {q1[1]:7.3f}-{q3[1]:7.3f} {med[2]:8.3f}")
    scale, shift_y, shift_x = np.median(np.concatenate(pooled), axis=0)
    print(f"FaceCrop(scale={scale:.2f}, shift_y={shift_y:.2f})   (pooled medians; shift_x {shift_x:+.3f} is negligible)")


if __name__ == "__main__":
    main()
