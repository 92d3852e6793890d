"""Export a trained run to .tflite variants, measure each on the held-out split, publish the int8.

    python export/export_tflite.py --run runs/float --out exports/
    python export/export_tflite.py --run runs/float --qat-run runs/qat --out exports/ --publish my.tflite

Variants (faceage_tf.export.VARIANTS): float32, float16, dynamic (int8 weights), int8-ptq
(post-training quantisation, for comparison) and, given the run's QAT fine-tune, int8-qat. Every
variant the runs support is exported unless --variants names some; what was skipped is said.
Each file carries its model card (the run's schema, data, licence, measured metrics, size,
latency, sha256) and a JSON copy. parity.md compares each variant with the Keras float model;
--publish copies the int8-qat model only if it stays within faceage_tf.export.PARITY_LIMITS of
float (exit 1 otherwise, unless --allow-regression).
"""

import argparse
import os
import sys

if "--verbose" in sys.argv[1:]:  # read by faceage_tf.keras, before TensorFlow is imported
    os.environ["FACEAGE_VERBOSE"] = "1"

from faceage_tf import datasets, export  # noqa: E402

CARD_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "default_card.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the float training run")
    parser.add_argument("--qat-run", help="the QAT fine-tune of --run (gives the int8-qat variant)")
    parser.add_argument("--out", required=True, help="directory for the .tflite files and the parity report")
    parser.add_argument("--variants", help="comma-separated, of " + ", ".join(export.VARIANTS) +
                        " (default: every variant the runs support)")
    parser.add_argument("--split", default="test", choices=datasets.SPLITS, help="split to measure on (default: test)")
    parser.add_argument("--flip-tta", action="store_true", help="build test-time flip into the exported models")
    parser.add_argument("--name", default="faceage", help="file name prefix (default: faceage)")
    parser.add_argument("--publish", metavar="PATH", help="copy the int8-qat model (and its JSON) to PATH if it "
                        "passes the parity limits")
    parser.add_argument("--allow-regression", action="store_true", help="publish even if int8-qat breaks the limits")
    parser.add_argument("--card-extra", default=CARD_CONFIG, metavar="JSON",
                        help="model-card fields: licence, intended use, known weaknesses (default: configs/default_card.json)")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's own log lines")
    args = parser.parse_args(argv)

    if args.publish and not args.qat_run:
        parser.error("--publish needs --qat-run (it publishes the int8-qat model)")
    try:
        report = export.export_run(
            args.run, args.out, qat_run=args.qat_run, variants=args.variants.split(",") if args.variants else None,
            split=args.split, flip=args.flip_tta, name=args.name, card_extra=export.read_card_config(args.card_extra))
    except (ValueError, OSError, export.ExportError) as e:
        sys.exit(f"export_tflite.py: error: {e}")
    with open(os.path.join(args.out, "parity.md")) as f:
        print(f.read())
    for variant, why in report["skipped"].items():
        print(f"skipped {variant}: {why}")
    problems = report["parity_problems"]
    if problems:
        print("int8-qat breaks the parity limits:\n  " + "\n  ".join(problems), file=sys.stderr)
    if args.publish:
        if problems and not args.allow_regression:
            sys.exit("export_tflite.py: refusing to publish (pass --allow-regression to publish anyway)")
        source = export.publish(report, args.publish)
        print(f"published {source} -> {args.publish}")


if __name__ == "__main__":
    main()
