"""Export a trained run to .tflite variants, measure each on the held-out split, publish the int8.

    python export/export_tflite.py --run runs/float --qat-run runs/qat --out exports/ \
        --publish faceage_tf/assets/faceage.tflite

Variants: float32, float16, dynamic (int8 weights), int8-qat (from the QAT run), int8-ptq
(post-training quantisation with a representative set, for comparison). Each file carries its
model card (schema, data, licence, measured metrics, size, latency, sha256) and a JSON copy.
`parity.md` compares each variant with the Keras float model. The int8 QAT model must stay
within 0.5 point of float on both accuracies and 0.15 years of MAE, or nothing is published
(exit 1) unless --allow-regression.
"""

import argparse
import json
import os
import platform
import sys
import tempfile


from faceage_tf import datasets, evaluation, export, pipeline
from faceage_tf.runtime import FaceAgePredictor
from faceage_tf.runtime.bench import face_latency, sample_face
from faceage_tf.training import load_run


def measure(path, images, records, schema):
    """Metrics and per-face latency (1 and 2 threads) of a written .tflite file."""
    predictors = {t: FaceAgePredictor(path, num_threads=t) for t in (1, 2)}
    metrics = evaluation.evaluate(predictors[2].predict_tensor(images), records, schema)
    latency = {str(t): round(face_latency(p, sample_face(), runs=100)["median_ms"], 3) for t, p in predictors.items()}
    return metrics, latency


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the float training run")
    parser.add_argument("--qat-run", help="the QAT fine-tune of --run (needed for int8-qat)")
    parser.add_argument("--out", required=True, help="directory for the .tflite files and the parity report")
    parser.add_argument("--variants", default=",".join(export.VARIANTS), help="comma-separated, of " + ", ".join(export.VARIANTS))
    parser.add_argument("--split", default="test", choices=datasets.SPLITS)
    parser.add_argument("--flip-tta", action="store_true", help="build test-time flip into the exported models")
    parser.add_argument("--name", default="faceage", help="file name prefix")
    parser.add_argument("--publish", help="copy the int8-qat model (and its JSON) here if it passes the parity limits")
    parser.add_argument("--allow-regression", action="store_true", help="publish even if int8-qat breaks the limits")
    parser.add_argument("--card-extra", help="JSON file of more model-card fields (intended use, known weaknesses)")
    args = parser.parse_args(argv)

    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(export.VARIANTS))
    if unknown or ("int8-qat" in variants and not args.qat_run):
        sys.exit(f"export_tflite.py: error: unknown variants {unknown}" if unknown else
                 "export_tflite.py: error: int8-qat needs --qat-run")

    float_model, config = load_run(args.run)
    schema = config.schema()
    splits = datasets.read_manifest(os.path.join(args.run, "manifest.json"))
    records = splits[args.split]
    faces = pipeline.decode_faces(records, schema)
    images = pipeline.normalize(faces, schema).numpy()
    reference = evaluation.evaluate(pipeline.predict(float_model, faces, schema, flip=args.flip_tta), records, schema)
    representative = pipeline.normalize(pipeline.decode_faces(splits["train"][::max(1, len(splits["train"]) // 300)], schema),
                                        schema).numpy()
    qat_model = load_run(args.qat_run)[0] if "int8-qat" in variants else None

    os.makedirs(args.out, exist_ok=True)
    export.remove_stale_temporaries(args.out)
    extra = {}
    if args.card_extra:
        with open(args.card_extra) as f:
            extra = json.load(f)
    data = {"dataset": config.dataset, "faces": {name: len(recs) for name, recs in splits.items()},
            "split": "by image content, stratified by gender and age group", "seed": config.seed}
    results = {}
    for variant in variants:
        model = qat_model if variant == "int8-qat" else float_model
        model_bytes = export.convert(model, schema, variant, representative, flip=args.flip_tta)
        card = export.make_card(schema, architecture=config.architecture, variant=variant, flip_tta=args.flip_tta,
                                training_data=data, licence=export.LICENCE, **extra)
        with tempfile.TemporaryDirectory() as scratch:  # measure first, so that the card holds the figures
            draft = os.path.join(scratch, "draft.tflite")
            export.write_model(draft, model_bytes, card)
            metrics, latency = measure(draft, images, records, schema)
        card["metrics"] = {args.split: evaluation.summary(metrics)}
        card["latency_ms_per_face"] = dict(latency, measured_on=f"{platform.machine()}, {os.cpu_count()} cores, LiteRT")
        path = os.path.join(args.out, f"{args.name}-{variant}.tflite")
        final = export.write_model(path, model_bytes, card)
        results[variant] = {"metrics": metrics, "latency_ms": latency, "bytes": os.path.getsize(path), "path": path,
                            "sha256": final["sha256"]}
        print(f"{variant}: {os.path.getsize(path) / 1e6:.2f} MB, gender {100 * metrics['gender_accuracy']:.2f}%, "
              f"age group {100 * metrics['age_group_accuracy']:.2f}%, MAE {metrics['age_mae']:.3f}, "
              f"{latency['1']:.2f} ms/face (1 thread)")

    table = export.parity_table(reference, results)
    report = {"reference": evaluation.summary(reference), "split": args.split, "flip_tta": args.flip_tta,
              "variants": {k: {"metrics": evaluation.summary(v["metrics"]), **{x: v[x] for x in ("latency_ms", "bytes", "sha256")}}
                           for k, v in results.items()}}
    problems = export.parity_problems(reference, results["int8-qat"]["metrics"]) if "int8-qat" in results else []
    report["parity_problems"] = problems
    datasets.atomic_write_text(os.path.join(args.out, "parity.json"), json.dumps(report, indent=2))
    datasets.atomic_write_text(os.path.join(args.out, "parity.md"),
                               f"# Parity on the {args.split} split ({len(records)} faces)\n\n{table}")
    print(table)
    if problems:
        print("int8-qat breaks the parity limits:\n  " + "\n  ".join(problems), file=sys.stderr)
        if not args.allow_regression:
            sys.exit("export_tflite.py: refusing to publish (pass --allow-regression to publish anyway)")
    if args.publish:
        if "int8-qat" not in results:
            sys.exit("export_tflite.py: error: --publish needs the int8-qat variant")
        source = results["int8-qat"]["path"]
        with open(source, "rb") as f:
            datasets.atomic_write_bytes(args.publish, f.read())
        with open(os.path.splitext(source)[0] + ".json", "rb") as f:
            datasets.atomic_write_bytes(os.path.splitext(args.publish)[0] + ".json", f.read())
        print(f"published {source} -> {args.publish}")


if __name__ == "__main__":
    main()
