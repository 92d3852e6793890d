"""Evaluate a trained run (Keras) or exported .tflite files on a run's held-out split.

    python training/evaluate.py --run runs/ensemble                  # test split, flip TTA
    python training/evaluate.py --run runs/ensemble --members        # + each network alone
    python training/evaluate.py --run runs/ensemble --tflite model.tflite

Writes metrics.json, report.md, confusion_*.png, attention.png and summary.md to --out
(default RUN/eval). Figures are broken down by source, gender, age group and race, with the mean
signed age error per age band (0-12, 13-19, 20-39, 40-59, 60+).
"""

import argparse
import json
import os
import sys

import numpy as np

if "--verbose" in sys.argv[1:]:  # read by faceage_tf.keras, before TensorFlow is imported
    os.environ["FACEAGE_VERBOSE"] = "1"

from faceage_tf import datasets, evaluation, files, models, pipeline, preprocess  # noqa: E402
from faceage_tf.training import load_run  # noqa: E402


HELD_OUT = "val+test"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="training run directory (its split and best weights)")
    parser.add_argument("--split", default="test", choices=[*datasets.SPLITS, HELD_OUT],
                        help=f"{HELD_OUT}: the validation and test faces together (more faces for small groups' "
                             "figures; validation chose the run's steps, so a little optimistic)")
    parser.add_argument("--tflite", nargs="*", default=[], help="also evaluate these .tflite files")
    parser.add_argument("--members", action="store_true", help="also score each network of an ensemble alone")
    parser.add_argument("--no-flip", action="store_true", help="no test-time horizontal flip")
    parser.add_argument("--attention", type=int, default=12, help="faces in the attention-map grid (0: none)")
    parser.add_argument("--attention-images", nargs="*", default=[],
                        help="draw the attention maps of these face crops instead of test faces")
    parser.add_argument("--out", help="output directory (default: RUN/eval)")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's own log lines")
    args = parser.parse_args(argv)
    try:
        evaluate_run(args)
    except (ValueError, OSError) as e:  # a missing run, an undecodable face, a bad .tflite file: say which
        sys.exit(f"evaluate.py: error: {e}")


def evaluate_run(args):
    out = args.out or os.path.join(args.run, "eval")
    model, config = load_run(args.run)
    schema = config.schema
    manifest = datasets.read_manifest(os.path.join(args.run, "manifest.json"))
    records = manifest["val"] + manifest["test"] if args.split == HELD_OUT else manifest[args.split]
    faces = pipeline.decode_faces(records, schema, serving_zoom=config.serving_zoom)
    flip = not args.no_flip

    candidates = {config.architecture: model}
    if args.members:
        candidates.update(models.member_models(model))
    results = {}
    for name, candidate in candidates.items():
        predictions = pipeline.predict(candidate, faces, schema, flip=flip)
        results[name] = evaluation.evaluate(predictions, records, schema)
        evaluation.write_report(results[name], schema, os.path.join(out, name), f"{name} on {args.split}")
    for path in args.tflite:
        from faceage_tf.runtime import FaceAgePredictor

        name = os.path.basename(path)
        predictions = pipeline.predict(FaceAgePredictor(path), faces, schema, flip=flip)
        results[name] = evaluation.evaluate(predictions, records, schema)
        evaluation.write_report(results[name], schema, os.path.join(out, name), f"{name} on {args.split}")

    if args.attention and models.has_attention(model):
        if args.attention_images:
            sample = np.stack([preprocess.load_face(path, schema.input_size) for path in args.attention_images])
            captions = [os.path.basename(path) for path in args.attention_images]
        else:
            picks = np.linspace(0, len(records) - 1, min(args.attention, len(records))).astype(int)
            sample = faces.numpy()[picks]
            captions = [f"{schema.gender_labels[records[i].gender]}, {records[i].age:.0f}" for i in picks]
        maps = models.attention_model(model).predict(pipeline.normalize(sample, schema), verbose=0)
        warped = maps["warped"] * schema.std + schema.mean
        heat = models.saliency(maps["features"], schema.input_size)
        os.makedirs(out, exist_ok=True)
        evaluation.plot_attention(sample, warped, heat, os.path.join(out, "attention.png"), captions)

    summary = f"# {args.split} split of {args.run} ({len(records)} faces, flip TTA: {flip})\n\n"
    summary += evaluation.markdown_table(results) + "\n"
    per_source = {f"{name}, {source}": figures for name, result in results.items()
                  for source, figures in result.get("by_source", {}).items()}
    if len(per_source) > len(results):  # several sources: each one's figures
        summary += "\n## By source\n\n" + evaluation.markdown_table(per_source) + "\n"
    else:
        per_source = {}
    summary += ("\n## Mean signed age error by age band (predicted - true, years; faces)\n\n"
                + evaluation.bias_table({**results, **per_source}) + "\n")
    files.atomic_write_text(os.path.join(out, "summary.md"), summary)
    files.atomic_write_text(os.path.join(out, "summary.json"),
                            json.dumps({k: evaluation.summary(v) for k, v in results.items()}, indent=2))
    print(summary)


if __name__ == "__main__":
    main()
