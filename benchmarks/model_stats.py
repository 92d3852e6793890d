"""Parameters, FLOPs and float/int8 size of the default networks (printed as a Markdown table).

    python benchmarks/model_stats.py [--input-size 64]
"""

import argparse

from faceage_tf import models
from faceage_tf.schema import Schema


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input-size", type=int, default=64)
    args = parser.parse_args()
    schema = Schema(input_size=args.input_size)
    print(f"| model ({args.input_size} px) | parameters | FLOPs per face | float32 weights | int8 weights |")
    print("|---|---:|---:|---:|---:|")
    for name in models.architectures():
        model = models.build_model(name, schema)
        params = models.count_params(model)
        print(f"| {name} | {params / 1e6:.2f} M | {models.count_flops(model) / 1e6:.0f} M | "
              f"{4 * params / 2**20:.1f} MiB | {params / 2**20:.1f} MiB |")


if __name__ == "__main__":
    main()
