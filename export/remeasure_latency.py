"""Measure a model's per-face latency again and write it into its card (and the JSON copy).

    python export/remeasure_latency.py faceage_tf/assets/faceage.tflite faceage_tf/assets/faceage-small.tflite

The export measures latency while it runs; when other work shared the machine, those figures are
too slow. Run this on an idle machine: only the card's `latency_ms_per_face` changes (and the
card's sha256 with it); the model's tensors stay as they are.
"""

import argparse
import sys

from faceage_tf import export


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="MODEL", help=".tflite files exported by faceage_tf")
    args = parser.parse_args(argv)
    for path in args.models:
        try:
            latency = export.remeasure_latency(path)
        except (ValueError, OSError) as e:
            sys.exit(f"remeasure_latency.py: error: {e}")
        print(f"{path}: {latency['1']:.2f} ms per face at 1 thread, {latency['2']:.2f} at 2")


if __name__ == "__main__":
    main()
