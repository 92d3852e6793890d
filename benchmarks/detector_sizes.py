"""Which BlazeFace model finds faces of which size: the measurement behind `BlazeFaceDetector`'s choice.

    python benchmarks/detector_sizes.py [--trials 30]

Real head-and-shoulder photos from AAF (`../shared/data/aaf`) are pasted at random places into a
1200x900 photo (a blurred, upside-down real photo as background: it holds no face the detectors
would find, so every detection is of the pasted face), at widths from 8% to 75% of it; each model
(short range, full range, and the detector's per-photo strategy) looks for the pasted face. A hit
is a detection whose box lies inside the pasted photo. Reported per size: the face box's median
width as a fraction of the photo's longer side, the hit rate of each, and the median time per
photo on one core. Writes benchmarks/results/detector_sizes.md.
"""

import argparse
import os
import random
import sys
import time

import numpy as np
from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from faceage_tf.files import atomic_write_text  # noqa: E402
from faceage_tf.runtime.blazeface import BlazeFace  # noqa: E402
from faceage_tf.runtime.detectors import BlazeFaceDetector  # noqa: E402

AAF = os.path.join(ROOT, "..", "shared", "data", "aaf", "images")
WIDTHS = (0.08, 0.12, 0.16, 0.2, 0.25, 0.3, 0.4, 0.55, 0.75)
CANVAS = (1200, 900)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30, help="photos per size (default 30)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    photos = sorted(os.path.join(AAF, n) for n in os.listdir(AAF))
    rng = random.Random(0)
    short, full = BlazeFace("short", num_threads=1), BlazeFace("full", num_threads=1)
    detectors = {"short range": lambda im: short.detect(im)[0], "full range": lambda im: full.detect(im)[0],
                 "per-photo strategy": lambda im: np.array([f.box for f in strategy.detect(im)]).reshape(-1, 4)}
    strategy = BlazeFaceDetector(num_threads=1)
    hits = {(name, w): [] for name in detectors for w in WIDTHS}
    times = {name: [] for name in detectors}
    face_widths = {w: [] for w in WIDTHS}
    for _ in range(args.trials):
        background = (Image.open(rng.choice(photos)).convert("RGB").resize(CANVAS).filter(ImageFilter.GaussianBlur(20))
                      .transpose(Image.FLIP_TOP_BOTTOM))
        for width in WIDTHS:
            photo = Image.open(rng.choice(photos)).convert("RGB")
            w = round(width * CANVAS[0])
            h = round(w * photo.height / photo.width)
            x, y = rng.randint(0, CANVAS[0] - w), rng.randint(0, max(0, CANVAS[1] - h))
            canvas = background.copy()
            canvas.paste(photo.resize((w, h), Image.BICUBIC), (x, y))
            for name, detect in detectors.items():
                start = time.perf_counter()
                boxes = detect(canvas)
                times[name].append(time.perf_counter() - start)
                inside = [b for b in boxes if b[0] >= x - 0.05 * w and b[2] <= x + 1.05 * w and b[1] >= y - 0.05 * h
                          and b[3] <= y + 1.05 * h]
                hits[(name, width)].append(bool(inside))
                if inside and name == "full range":
                    face_widths[width].append((inside[0][2] - inside[0][0]) / CANVAS[0])
    lines = [f"# Faces found by size ({args.trials} real photos per size, pasted into a {CANVAS[0]}x{CANVAS[1]} photo)", "",
             "| pasted photo width | face box / longer side | " + " | ".join(detectors) + " |",
             "|---:|---:|" + "---:|" * len(detectors)]
    for width in WIDTHS:
        face = f"{np.median(face_widths[width]):.2f}" if face_widths[width] else "-"
        lines.append(f"| {width:.2f} | {face} | " + " | ".join(f"{100 * np.mean(hits[(n, width)]):.0f}%" for n in detectors) + " |")
    lines += ["", "Median time per photo, one core: " + ", ".join(f"{n} {1e3 * np.median(t):.1f} ms" for n, t in times.items())]
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    atomic_write_text(os.path.join(ROOT, "benchmarks", "results", "detector_sizes.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
