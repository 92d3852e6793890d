"""Writes a training run's split as a split file: per source, the sha1s of the photos whose faces
validate and test. A config's `split_file` gives another run the same split on any machine.

    python training/write_split.py --run runs/default/float --out configs/splits/default.json

The split is kept by photo, not by crop: a crop's bytes depend on the library versions that cut
it, so a split by crops is not the same on another machine (faceage_tf.datasets.photo_hash).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from faceage_tf import datasets  # noqa: E402
from faceage_tf.files import atomic_write_text  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a training run (its manifest.json)")
    parser.add_argument("--out", required=True, help="the split file to write (JSON)")
    args = parser.parse_args(argv)
    manifest = os.path.join(args.run, "manifest.json")
    if not os.path.exists(manifest):
        parser.error(f"{manifest}: no such file; --run must be a training run's folder")
    held_out = datasets.held_out_photos(datasets.read_manifest(manifest))
    atomic_write_text(args.out, json.dumps(held_out, indent=0) + "\n")
    for source, lists in held_out["sources"].items():
        print(f"{source}: {len(lists['val'])} validation and {len(lists['test'])} test photos", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
