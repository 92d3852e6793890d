"""Where the age read-out sits in the predicted age distribution (printed as Markdown).

    python benchmarks/age_readout.py --run runs/default/polish [--split test]

The model reports the mean of its distribution over ages. For each age band (0-12, 13-19, 20-39,
40-59, 60+) this prints the mean signed error of that mean, of the distribution's median and of
its peak, with the distribution's standard deviation, and of the mean as trained (with the
age-group loss weights still in the heads, see `training.remove_age_balance`); then, binned by
the model's own prediction, the mean of (true - predicted): a model that only regresses toward
the middle is right on average at each predicted age. Keras float model, flip averaged, per
source and together.
"""

import argparse
import os

import numpy as np

from faceage_tf import datasets, models, pipeline
from faceage_tf.keras import keras
from faceage_tf.training import load_run, remove_age_balance

BANDS = ((0, 13), (13, 20), (20, 40), (40, 60), (60, 200))
BAND_NAMES = " | ".join(f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+" for lo, hi in BANDS)


def age_distributions(run: str, split: str):
    """(distributions as served, as trained (N, ages), records) of the run's split: the heads'
    mean, flip averaged. As trained: with the age-group loss weights still in the heads."""
    model, config = load_run(run, unweighted=False)
    splits = datasets.read_manifest(os.path.join(run, "manifest.json"))
    faces = pipeline.decode_faces(splits[split], config.schema, serving_zoom=config.serving_zoom)
    heads = [models.find_layer(model, prefix + "age_dist").output for prefix in models.head_prefixes(model)]
    dist_model = keras.Model(model.inputs, keras.layers.Average()(heads) if len(heads) > 1 else heads[0])

    def distributions():
        return np.mean([dist_model.predict(pipeline.eval_dataset(faces, None, (), config.schema, flip=flip), verbose=0)
                        for flip in (False, True)], axis=0)

    trained = distributions()
    remove_age_balance(model, config, splits["train"])
    return distributions(), trained, splits[split]


def per_band(values, mask, bins, fmt="+.2f"):
    """Markdown cells: the mean of `values` over `mask` within each band of `bins`."""
    cells = []
    for lo, hi in BANDS:
        cell = mask & (bins >= lo) & (bins < hi)
        cells.append(format(values[cell].mean(), fmt) if cell.any() else "")
    return " | ".join(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="training run directory")
    parser.add_argument("--split", default="test", choices=datasets.SPLITS)
    args = parser.parse_args()
    dists, trained, records = age_distributions(args.run, args.split)
    ages = np.arange(dists.shape[1])
    readouts = {"mean (reported)": dists @ ages, "mean as trained": trained @ ages,
                "median": np.argmax(np.cumsum(dists, axis=1) >= 0.5, axis=1).astype(float),
                "peak": np.argmax(dists, axis=1).astype(float)}
    spread = np.sqrt(np.maximum(dists @ ages**2 - readouts["mean (reported)"] ** 2, 0))
    true = np.array([r.age for r in records], float)
    sources = np.array([r.source for r in records])
    groups = [("all", np.ones(len(true), bool))] + [(s, sources == s) for s in sorted(set(sources))]

    print(f"Signed age error by true age band ({args.split} split of {args.run})\n")
    print(f"| faces | read-out | MAE | {BAND_NAMES} |\n|---|---|---:|" + "---:|" * len(BANDS))
    for name, mask in groups:
        for label, values in readouts.items():
            print(f"| {name} ({mask.sum()}) | {label} | {np.abs(values - true)[mask].mean():.2f} | "
                  f"{per_band(values - true, mask, true)} |")
        print(f"| {name} ({mask.sum()}) | standard deviation | | {per_band(spread, mask, true, '.1f')} |")
    print(f"\nTrue minus predicted age, by predicted age band\n\n| faces | read-out | {BAND_NAMES} |\n|---|---|"
          + "---:|" * len(BANDS))
    for name, mask in groups:
        for label in ("mean (reported)", "mean as trained"):
            predicted = readouts[label]
            print(f"| {name} | {label} | {per_band(true - predicted, mask, predicted)} |")


if __name__ == "__main__":
    main()
