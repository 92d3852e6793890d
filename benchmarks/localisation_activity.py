"""Does the spatial transformer look somewhere else for each face? (printed as Markdown)

    python benchmarks/localisation_activity.py --run runs/default/polish [--run ...] [--split val]

For every attentional network of each run, on every fifth face of the split (served crops, Keras
float): how many channels of each localisation layer fire (> 0) on any face, and on what share of
(face, channel) pairs; and the standard deviation between faces of each of the six numbers of the
transform it predicts. ReLU units that fall below zero on every face get no gradient and stay
there: a silent last layer leaves one transform, one crop, for every face.
"""

import argparse
import os

from faceage_tf import datasets, pipeline
from faceage_tf.keras import keras
from faceage_tf.training import load_run

LAYERS = ("loc_conv1", "loc_conv2", "loc_fc1")


def localisation_activity(run: str, split: str = "val", every: int = 5) -> dict[str, dict]:
    """Per attentional network of `run` (by its layers' prefix): for each of `LAYERS`, channels
    firing on any face, channels and the share of (face, channel) pairs firing; and `theta_std`,
    the standard deviation between faces of each number of the predicted transform."""
    model, config = load_run(run)
    records = datasets.read_manifest(os.path.join(run, "manifest.json"))[split][::every]
    faces = pipeline.normalize(pipeline.decode_faces(records, config.schema, serving_zoom=config.serving_zoom),
                               config.schema)
    found = {}
    for theta in (layer for layer in model.layers if layer.name.endswith("_theta")):
        prefix = theta.name[: -len("theta")]
        probes = [model.get_layer(prefix + name) for name in LAYERS]
        outputs = keras.Model(model.inputs, [layer.output for layer in probes] + [theta.output]).predict(faces, verbose=0)
        result = {"faces": len(records)}
        for name, output in zip(LAYERS, outputs):
            by_channel = output.reshape(-1, output.shape[-1])
            result[name] = {"firing": int((by_channel.max(axis=0) > 0).sum()), "channels": int(by_channel.shape[1]),
                            "share": float((output > 0).mean())}
        result["theta_std"] = outputs[-1].std(axis=0).tolist()
        found[prefix.rstrip("_")] = result
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="a training run (repeat for several)")
    parser.add_argument("--split", default="val", choices=datasets.SPLITS)
    args = parser.parse_args(argv)
    print("| run, network | faces | " + " | ".join(f"{name} firing (share)" for name in LAYERS)
          + " | transform: largest std between faces |")
    print("|---|---:|" + "---:|" * len(LAYERS) + "---:|")
    for run in args.run:
        for network, result in localisation_activity(run, args.split).items():
            cells = [f"{result[name]['firing']} of {result[name]['channels']} ({100 * result[name]['share']:.2f}%)"
                     for name in LAYERS]
            print(f"| {run}, {network} | {result['faces']} | " + " | ".join(cells)
                  + f" | {max(result['theta_std']):.4f} |")


if __name__ == "__main__":
    main()
