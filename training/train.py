"""Train an age-and-gender model with model.fit.

    python training/train.py --config configs/default.json --out runs/ensemble
    python training/train.py --out runs/ensemble --resume          # after an interruption
    python training/train.py --architecture residual --epochs 2 --limit 2000 --out runs/quick

Options given on the command line override the config file. Distributed training: set TF_CONFIG
on each machine and pass --distribute multiworker (see README, "Training on several machines").
"""

import argparse
import dataclasses
import json
import sys

from faceage_tf.training import TrainConfig, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file of TrainConfig options")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, logs, manifest)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    parser.add_argument("--verbose", default="auto", help="Keras verbosity: auto, 0, 1 (progress bar) or 2")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None, metavar="BOOL")
        elif field.type == "Sequence[int]":
            parser.add_argument(flag, type=lambda s: [int(v) for v in s.split(",")], default=None, metavar="N,N,...")
        else:
            parser.add_argument(flag, type={"int": int, "float": float}.get(field.type, str), default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    options = {}
    if args.config:
        with open(args.config) as f:
            options.update(json.load(f))
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name)
        if value is not None:
            options[field.name] = value
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    try:
        train(TrainConfig.from_dict(options), args.out, resume=args.resume, verbose=verbose)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    main()
