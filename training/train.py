"""Train an age-and-gender model with model.fit.

    python training/train.py --config configs/default.json --out runs/ensemble
    python training/train.py --out runs/ensemble --resume          # after an interruption
    python training/train.py --architecture residual --epochs 2 --limit 2000 --out runs/quick

Options given on the command line override the config file. A run started with --init-from keeps
its parent's model and schema. A folder that holds a run is refused unless --resume or
--overwrite says what to do with it. Distributed training: set TF_CONFIG on each machine and
pass --distribute multiworker (see README, "Training on several machines").
"""

import argparse
import json
import os
import sys

if "--verbose" in sys.argv[1:]:  # read by faceage_tf.keras, before TensorFlow is imported
    os.environ["FACEAGE_VERBOSE"] = "1"

from faceage_tf import training  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file of training options (the keys of config.json)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, logs, manifest)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    what.add_argument("--overwrite", action="store_true", help="delete the run in --out and train from scratch")
    parser.add_argument("--progress", choices=training.PROGRESS, default="auto",
                        help="a bar within each epoch, one line per epoch, or nothing (default: auto, a bar "
                             "on a terminal); history.csv and TensorBoard get every metric")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's own log lines")
    training.add_config_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    options = {}
    try:
        if args.config:
            with open(args.config) as f:
                try:
                    options = json.load(f)
                except ValueError as e:
                    raise ValueError(f"{args.config}: not a JSON config ({e})") from None
        config = training.TrainConfig.resolve(training.options_from_flags(args, options))
        training.train(config, args.out, resume=args.resume, overwrite=args.overwrite, progress=args.progress)
    except (ValueError, OSError) as e:
        print(f"train.py: error: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)  # not sys.exit: tf.data threads still inside Python calls can hang a normal interpreter exit


if __name__ == "__main__":
    main()
