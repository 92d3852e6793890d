"""Batch-norm statistics of the faces the model serves, a step after training.

    python training/serving_batch_norm.py --run runs/default/polish

Training leaves statistics of augmented faces in the batch-norm layers; this re-estimates them
on one pass of the run's training faces cut as the runtime cuts them (no augmentation), see
`faceage_tf.training.recalibrate_batch_norm`. The weights as trained are kept in
RUN/trained_weights.h5; RUN/best_weights.h5 gets the new statistics, so evaluation, QAT and
export use them. Running it again starts from the trained weights and gives the same file.
"""

import argparse
import json
import os
import sys

if "--verbose" in sys.argv[1:]:  # read by faceage_tf.keras, before TensorFlow is imported
    os.environ["FACEAGE_VERBOSE"] = "1"

from faceage_tf import training  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished training run (float or QAT)")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's own log lines")
    args = parser.parse_args(argv)
    try:
        report = training.serve_batch_norm(args.run)
    except (ValueError, OSError) as e:
        sys.exit(f"serving_batch_norm.py: error: {e}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
