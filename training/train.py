"""Train an age-and-gender model with model.fit.

    python training/train.py --config configs/default.json --out runs/ensemble
    python training/train.py --out runs/ensemble --resume          # after an interruption
    python training/train.py --architecture residual --epochs 2 --limit 2000 --out runs/quick

Options given on the command line override the config file. A run started with --init-from keeps
its parent's model and schema. Distributed training: set TF_CONFIG on each machine and pass
--distribute multiworker (see README, "Training on several machines").
"""

import argparse
import json
import sys

from faceage_tf import training


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file of training options (the keys of config.json)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, logs, manifest)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    parser.add_argument("--verbose", default="auto", help="Keras verbosity: auto, 0, 1 (progress bar) or 2")
    training.add_config_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    options = {}
    if args.config:
        with open(args.config) as f:
            options = json.load(f)
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    try:
        config = training.TrainConfig.resolve(training.options_from_flags(args, options))
        training.train(config, args.out, resume=args.resume, verbose=verbose)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    main()
