"""Keras model -> `.tflite` with its model card: float32, float16, dynamic-range and int8 variants.

Builtin TFLite ops only: conversion fails, naming the op, if anything would need Flex (the
select-TF-ops delegate), because LiteRT and tflite-runtime on devices cannot run Flex models.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import tempfile
from typing import Any, Iterable

import numpy as np

import faceage_tf
from faceage_tf import datasets, evaluation, modelcard, pipeline, training
from faceage_tf.files import atomic_write_bytes, atomic_write_text, copy_atomically, remove_stale_temporaries
from faceage_tf.keras import quiet_stderr, tf
from faceage_tf.models import OUTPUTS
from faceage_tf.runtime import FaceAgePredictor, backends
from faceage_tf.runtime.bench import face_latency, sample_face
from faceage_tf.schema import INPUT_NAME, Schema

VARIANTS = ("float32", "float16", "dynamic", "int8-qat", "int8-ptq")


class ExportError(RuntimeError):
    """Conversion failed or produced a model that devices cannot run."""


def op_names(model_bytes: bytes) -> list[str]:
    """Names of the operators a TFLite model uses (builtin names, or custom codes like 'FlexConv2D')."""
    fb = modelcard.tflite_schema()
    tree = fb.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    builtin_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for code in tree.operatorCodes or []:
        if code.customCode:
            names.append(code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode)
        else:
            names.append(builtin_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode)))
    return sorted(set(names))


def check_builtin_only(model_bytes: bytes) -> list[str]:
    """The model's ops; raises ExportError naming any custom or Flex op."""
    names = op_names(model_bytes)
    builtin = set(vars(modelcard.tflite_schema().BuiltinOperator))
    bad = [n for n in names if n not in builtin]
    if bad:
        raise ExportError(f"model needs non-builtin op(s) {bad} (Flex/custom ops do not run in LiteRT or "
                          "tflite-runtime); move that computation out of the model, e.g. into the tf.data pipeline")
    return names


def _serving_function(model, schema: Schema, flip: bool = False):
    """A concrete function with a dynamic batch and the stable output names; `flip` averages the
    predictions for the image and its mirror image (test-time augmentation inside the graph)."""
    spec = tf.TensorSpec(schema.tensor_shapes()["inputs"][INPUT_NAME], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(image):
        if flip:
            both = model(tf.concat([image, tf.reverse(image, axis=[2])], axis=0), training=False)
            outputs = {key: tf.reduce_mean(tf.stack(tf.split(both[key], 2)), axis=0) for key in OUTPUTS}
        else:
            outputs = model(image, training=False)
        return {key: tf.identity(outputs[key], name=key) for key in OUTPUTS}

    return serve.get_concrete_function()


def convert(model, schema: Schema, variant: str = "float32", representative_faces: Iterable[np.ndarray] | None = None,
            *, flip: bool = False) -> bytes:
    """Converts a Keras model (for 'int8-qat', a QAT model) to TFLite bytes with builtin ops only.

    Args:
        model: the Keras model (outputs `gender`, `age_group`, `age`).
        schema: input size and normalisation of the model.
        variant: one of `VARIANTS`.
        representative_faces: normalised float32 faces `(S, S, 3)`, needed by 'int8-ptq'.
        flip: build test-time flip into the model (twice the compute, one call).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}. Received: variant={variant!r}")
    function = _serving_function(model, schema, flip)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant in ("dynamic", "int8-qat"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8-ptq":
        if representative_faces is None:
            raise ValueError("variant 'int8-ptq' needs representative_faces for calibration")
        faces = list(representative_faces)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([face[None].astype(np.float32)] for face in faces)
    try:
        with quiet_stderr():  # the converter prints its settings from C++ (shown with FACEAGE_VERBOSE=1)
            model_bytes = converter.convert()
    except Exception as e:  # the converter raises ConverterError, ValueError, ...; all mean the same here
        raise ExportError(f"TFLite conversion ({variant}) failed: {e}") from e
    check_builtin_only(model_bytes)
    return model_bytes


def make_card(schema: Schema, *, architecture: str, variant: str, metrics: dict[str, Any] | None = None,
              **extra) -> dict[str, Any]:
    """The model card: the schema plus what a user needs to trust and use the file."""
    card = {
        "name": f"faceage-{architecture}-{schema.input_size}px-{variant}",
        "architecture": architecture,
        "variant": variant,
        "schema": schema.to_dict(),
        **schema.tensor_shapes(),  # the tensor contract, checked by modelcard.read_card
        "faceage_tf_version": faceage_tf.__version__,
        "tensorflow_version": tf.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": metrics or {},
    }
    card.update(extra)
    return card


def write_model(path: str, model_bytes: bytes, card: dict[str, Any]) -> dict[str, Any]:
    """Embeds `card`, writes `path` and `path` with `.json` atomically; returns the final card."""
    final = modelcard.embed_card(model_bytes, card)
    written = modelcard.verify(final, path)
    atomic_write_bytes(path, final)
    side = dict(written, file_bytes=len(final), file_sha256=hashlib.sha256(final).hexdigest())
    atomic_write_text(os.path.splitext(path)[0] + ".json", json.dumps(side, indent=2, sort_keys=True))
    return written


def export_keras(model, schema: Schema, path: str, *, architecture: str, variant: str = "float32",
                 representative_faces=None, metrics=None, flip: bool = False, **extra) -> dict[str, Any]:
    """`convert` + `make_card` + `write_model`."""
    model_bytes = convert(model, schema, variant, representative_faces, flip=flip)
    card = make_card(schema, architecture=architecture, variant=variant, metrics=metrics, flip_tta=flip, **extra)
    return write_model(path, model_bytes, card)


# ---------------------------------------------------------------------------------------------
# Publishing: every variant measured on held-out faces, compared with the Keras float model

# The largest drop allowed for the int8 QAT model against the Keras float model.
PARITY_LIMITS = {"gender_accuracy": 0.005, "age_group_accuracy": 0.005, "age_mae": 0.15}


def parity_problems(reference: dict, candidate: dict, limits: dict = PARITY_LIMITS, gap: dict | None = None) -> list[str]:
    """Where `candidate` falls further behind `reference` than `limits` allow (gains are fine).

    `gap`: `evaluation.paired_bootstrap` of the two models on more faces (validation and test):
    then the drop is read from it, and counts only if its 95% interval excludes no drop at all
    (on 2,000 faces, half a point is inside the noise)."""
    problems = []
    for key in ("gender_accuracy", "age_group_accuracy", "age_mae"):
        worse = 1 if key == "age_mae" else -1  # the sign of a regression in candidate - reference
        if gap:
            drop = worse * gap[key]["difference"]
            real = min(worse * bound for bound in gap[key]["ci95"]) > 0
            where = f" on {gap['faces']} faces, 95% interval {_interval(gap[key]['ci95'], key)}"
        else:
            drop, real, where = worse * (candidate[key] - reference[key]), True, ""
        if drop > limits[key] and real:
            unit, scale = (" years", 1) if key == "age_mae" else (" points", 100)
            problems.append(f"{key} is {scale * drop:.2f}{unit} worse than the float model's{where} "
                            f"(limit {scale * limits[key]:.2f})")
    return problems


def _interval(ci95, key) -> str:
    scale = 1 if key == "age_mae" else 100
    return f"[{scale * ci95[0]:+.2f}, {scale * ci95[1]:+.2f}]"


def parity_table(reference: dict, variants: dict[str, dict]) -> str:
    """Markdown: each variant's figures, size and latency next to the Keras float model's."""
    lines = ["| model | size (MB) | gender acc % | Δ | age-group acc % | Δ | age MAE | Δ | ms/face 1 thread | 2 threads |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| Keras float32 (reference) | | {100 * reference['gender_accuracy']:.2f} | | "
             f"{100 * reference['age_group_accuracy']:.2f} | | {reference['age_mae']:.3f} | | | |"]
    for name, v in variants.items():
        m = v["metrics"]
        lines.append(
            f"| {name} | {v['bytes'] / 1e6:.2f} | {100 * m['gender_accuracy']:.2f} | "
            f"{100 * (m['gender_accuracy'] - reference['gender_accuracy']):+.2f} | {100 * m['age_group_accuracy']:.2f} | "
            f"{100 * (m['age_group_accuracy'] - reference['age_group_accuracy']):+.2f} | {m['age_mae']:.3f} | "
            f"{m['age_mae'] - reference['age_mae']:+.3f} | {v['latency_ms']['1']:.2f} | {v['latency_ms']['2']:.2f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Exporting a run: what `export/export_tflite.py` does


def read_card_config(path: str) -> dict[str, Any]:
    """More model-card fields (licence, intended use, known weaknesses) from a JSON file."""
    try:
        with open(path) as f:
            extra = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the card config ({e})") from None
    if not isinstance(extra, dict):
        raise ValueError(f"{path}: the card config must be a JSON object. Received: {type(extra).__name__}")
    return extra


def measure(path: str, faces, records, schema: Schema) -> tuple[dict, dict[str, float]]:
    """Metrics on labelled uint8 `faces` and per-face latency (LiteRT, 1 and 2 threads) of a
    written `.tflite` file, run by the runtime as a user would."""
    predictors = {threads: FaceAgePredictor(path, detector="none", num_threads=threads) for threads in (1, 2)}
    metrics = evaluation.evaluate(pipeline.predict(predictors[2], faces, schema, flip=False), records, schema)
    return metrics, _latency(predictors, runs=100)


def _latency(predictors: dict, runs: int) -> dict[str, float]:
    """Median ms per face of each {threads: predictor} on a sample face crop."""
    return {str(t): round(face_latency(p, sample_face(), runs=runs)["median_ms"], 3) for t, p in predictors.items()}


def _latency_card(latency: dict[str, float], how: str = "LiteRT") -> dict:
    return dict(latency, measured_on=f"{platform.machine()}, {os.cpu_count()} cores, {how}")


def remeasure_latency(path: str, runs: int = 200) -> dict[str, float]:
    """Measures the written model `path` again per face (1 and 2 threads, as `measure`) and
    rewrites its card with those figures: for a model exported while the machine was busy."""
    with open(path, "rb") as f:
        model_bytes = f.read()
    card = modelcard.verify(model_bytes, path)
    latency = _latency({t: FaceAgePredictor(path, detector="none", num_threads=t) for t in (1, 2)}, runs=runs)
    card["latency_ms_per_face"] = _latency_card(latency, "LiteRT, re-measured")
    write_model(path, model_bytes, card)
    return latency


def export_measured(model_bytes: bytes, card: dict[str, Any], path: str, faces, records, schema: Schema,
                    split: str) -> dict[str, Any]:
    """Writes `path` with `card` and the file's own figures on `split`: a draft is written and
    measured first, so that the final card holds its metrics and latency."""
    with tempfile.TemporaryDirectory() as scratch:
        draft = os.path.join(scratch, "draft.tflite")
        write_model(draft, model_bytes, card)
        metrics, latency = measure(draft, faces, records, schema)
    card = dict(card, metrics={split: evaluation.summary(metrics)},
                latency_ms_per_face=_latency_card(latency))
    final = write_model(path, model_bytes, card)
    return {"metrics": metrics, "latency_ms": latency, "bytes": os.path.getsize(path), "path": path,
            "sha256": final["sha256"]}


def plan_variants(asked: Iterable[str] | None, qat_run: str | None) -> tuple[list[str], dict[str, str]]:
    """(variants to export, {variant: why skipped}). `asked` None means every variant the runs
    support; a variant asked for by name that cannot be made is an error."""
    needs = {"int8-qat": "needs a QAT run: train one with `training/train.py --init-from RUN --qat true --out "
                         "QAT_RUN` and pass --qat-run QAT_RUN"}
    if asked is None:
        skipped = {v: needs[v] for v in VARIANTS if v in needs and not qat_run}
        return [v for v in VARIANTS if v not in skipped], skipped
    asked = list(asked)
    unknown = sorted(set(asked) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; variants are {list(VARIANTS)}")
    if "int8-qat" in asked and not qat_run:
        raise ValueError(f"variant int8-qat {needs['int8-qat']}")
    return asked, {}


def export_run(run_dir: str, out_dir: str, *, qat_run: str | None = None, variants: Iterable[str] | None = None,
               split: str = "test", flip: bool = False, name: str = "faceage", card_extra: dict | None = None,
               log=print) -> dict[str, Any]:
    """Exports the run in `run_dir` (and int8-qat from its QAT fine-tune `qat_run`) to `out_dir`,
    with the run's own schema; measures every variant on the run's `split` next to the Keras float
    model and writes `parity.json` and `parity.md`. Returns that report.

    Raises:
        ValueError: an unknown variant, int8-qat without `qat_run`, or a `qat_run` whose model or
            schema differ from `run_dir`'s.
    """
    variants, skipped = plan_variants(variants, qat_run)
    if "int8-qat" in variants:
        training.refuse_differences(training.load_config(run_dir), training.load_config(qat_run).to_dict(), run_dir,
                                    child=f"in {qat_run}", rule="--qat-run must be a QAT fine-tune of --run")
    float_model, config = training.load_run(run_dir)
    schema, zoom = config.schema, config.serving_zoom
    qat_model = None
    if "int8-qat" in variants:
        qat_model, qat_config = training.load_run(qat_run)
        if qat_config.serving_zoom != zoom:
            raise ValueError(f"serving_zoom is {zoom} in {run_dir} but {qat_config.serving_zoom} in {qat_run}: "
                             "--qat-run must serve the framing of --run")
    splits = datasets.read_manifest(os.path.join(run_dir, "manifest.json"))
    records = splits[split]
    faces = pipeline.decode_faces(records, schema, serving_zoom=zoom)
    reference = evaluation.evaluate(pipeline.predict(float_model, faces, schema, flip=flip), records, schema)
    calibration = splits["train"][:: max(1, len(splits["train"]) // 300)]
    representative = pipeline.normalize(pipeline.decode_faces(calibration, schema, serving_zoom=zoom), schema).numpy()
    # The card's template frames the face as served (the runtime and the apps align to it);
    # its `serving_zoom` says how much looser than the training template that is.
    card_schema = dataclasses.replace(schema, template=schema.template.zoomed(zoom))  # zoom 1: the same

    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)
    data = {"dataset": " + ".join(source["name"] for source in config.data_sources()),
            "faces": {s: len(recs) for s, recs in splits.items()},
            "split": "by image content, stratified by gender and age group", "seed": config.seed}
    results = {}
    for variant in variants:
        model = qat_model if variant == "int8-qat" else float_model
        log(f"{variant}: converting")  # names the variant if the converter aborts the process
        model_bytes = convert(model, schema, variant, representative, flip=flip)
        # LiteRT can end the process natively on a model it mis-handles (int8-ptq of a spatial
        # transformer whose localisation net never fires: a double free in XNNPACK). Load it in a
        # child first, so that such a variant is reported and the others still get written.
        backend = backends.first_installed()
        failure = backends.probe_in_child(backend, model_bytes) if backend else None
        if failure:
            skipped[variant] = f"{backend} cannot run the converted model: {failure}"
            log(f"{variant}: not written: {skipped[variant]}")
            continue
        card = make_card(card_schema, architecture=config.architecture, variant=variant, flip_tta=flip,
                         serving_zoom=zoom, training_data=data, **(card_extra or {}))
        path = os.path.join(out_dir, f"{name}-{variant}.tflite")
        results[variant] = export_measured(model_bytes, card, path, faces, records, schema, split)
        m, latency = results[variant]["metrics"], results[variant]["latency_ms"]
        log(f"{variant}: {results[variant]['bytes'] / 1e6:.2f} MB, gender {100 * m['gender_accuracy']:.2f}%, "
            f"age group {100 * m['age_group_accuracy']:.2f}%, MAE {m['age_mae']:.3f}, {latency['1']:.2f} ms/face (1 thread)")
    gap = None
    if "int8-qat" in results:  # the QAT model against float on validation and test, paired
        gap_records = splits["val"] + splits["test"]
        gap_faces = pipeline.decode_faces(gap_records, schema, serving_zoom=zoom)
        gap = evaluation.paired_bootstrap(pipeline.predict(float_model, gap_faces, schema, flip=flip),
                                          pipeline.predict(FaceAgePredictor(results["int8-qat"]["path"]), gap_faces,
                                                           schema, flip=flip), gap_records, schema)
        log("int8-qat - float on validation and test (95% interval): " + ", ".join(
            f"{key} {(1 if key == 'age_mae' else 100) * gap[key]['difference']:+.2f} {_interval(gap[key]['ci95'], key)}"
            for key in PARITY_LIMITS))
    report = {
        "split": split, "faces": len(records), "flip_tta": flip, "reference": evaluation.summary(reference),
        "qat_gap": gap,
        "variants": {k: {"metrics": evaluation.summary(v["metrics"]), **{x: v[x] for x in ("latency_ms", "bytes", "sha256", "path")}}
                     for k, v in results.items()},
        "skipped": skipped,
        "parity_problems": parity_problems(reference, results["int8-qat"]["metrics"], gap=gap) if gap else [],
    }
    atomic_write_text(os.path.join(out_dir, "parity.json"), json.dumps(report, indent=2))
    text = f"# Parity on the {split} split ({len(records)} faces)\n\n" + parity_table(reference, results)
    if gap:
        text += (f"\nint8-qat - Keras float on validation and test together ({gap['faces']} faces, paired bootstrap "
                 f"of {gap['draws']} draws, 95% interval): " + "; ".join(
                     f"{key} {(1 if key == 'age_mae' else 100) * gap[key]['difference']:+.2f} "
                     f"{_interval(gap[key]['ci95'], key)}" for key in PARITY_LIMITS) + "\n")
    atomic_write_text(os.path.join(out_dir, "parity.md"), text)
    return report


def publish(report: dict[str, Any], target: str) -> str:
    """Copies the int8-qat model of an `export_run` report, and its JSON card, to `target`."""
    if "int8-qat" not in report["variants"]:
        raise ValueError("publishing needs the int8-qat variant (export with --qat-run)")
    source = report["variants"]["int8-qat"]["path"]
    copy_atomically(source, target)
    copy_atomically(os.path.splitext(source)[0] + ".json", os.path.splitext(target)[0] + ".json")
    return source
