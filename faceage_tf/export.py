"""Keras model -> `.tflite` with its model card: float32, float16, dynamic-range and int8 variants.

Builtin TFLite ops only: conversion fails, naming the op, if anything would need Flex (the
select-TF-ops delegate), because LiteRT and tflite-runtime on devices cannot run Flex models.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from typing import Any, Iterable

import numpy as np

import faceage_tf
from faceage_tf import modelcard
from faceage_tf.datasets import atomic_write_bytes, atomic_write_text
from faceage_tf.keras import tf
from faceage_tf.models import OUTPUTS
from faceage_tf.schema import Schema

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
    spec = tf.TensorSpec([None, schema.input_size, schema.input_size, 3], tf.float32, name="image")

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


def remove_stale_temporaries(directory: str) -> list[str]:
    """Deletes temporary files that a killed writer left in `directory` (see `atomic_write_bytes`)."""
    removed = []
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if name.startswith(".") and ".tmp" in name:
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed


# ---------------------------------------------------------------------------------------------
# Publishing: every variant measured on held-out faces, compared with the Keras float model

# The largest drop allowed for the int8 QAT model against the Keras float model.
PARITY_LIMITS = {"gender_accuracy": 0.005, "age_group_accuracy": 0.005, "age_mae": 0.15}
LICENCE = ("Code: Apache-2.0. Weights trained on UTKFace inherit its licence: non-commercial research "
           "use only; the face images remain the copyright of their owners.")
def parity_problems(reference: dict, candidate: dict, limits: dict = PARITY_LIMITS) -> list[str]:
    """Where `candidate` falls further behind `reference` than `limits` allow (gains are fine)."""
    problems = []
    for key in ("gender_accuracy", "age_group_accuracy"):
        drop = reference[key] - candidate[key]
        if drop > limits[key]:
            problems.append(f"{key} {100 * candidate[key]:.2f}% is {100 * drop:.2f} points below the float model's "
                            f"{100 * reference[key]:.2f}% (limit {100 * limits[key]:.1f})")
    rise = candidate["age_mae"] - reference["age_mae"]
    if rise > limits["age_mae"]:
        problems.append(f"age_mae {candidate['age_mae']:.3f} is {rise:.3f} years above the float model's "
                        f"{reference['age_mae']:.3f} (limit {limits['age_mae']})")
    return problems


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
