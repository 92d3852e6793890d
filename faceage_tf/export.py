"""Keras model -> `.tflite` with its model card: float32, float16, dynamic-range and int8 variants.

Builtin TFLite ops only: conversion fails, naming the op, if anything would need Flex (the
select-TF-ops delegate), because LiteRT and tflite-runtime on devices cannot run Flex models.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Iterable

import numpy as np

import faceage_tf
from faceage_tf import modelcard
from faceage_tf.datasets import atomic_write_bytes, atomic_write_text
from faceage_tf.keras import keras, tf
from faceage_tf.models import OUTPUTS
from faceage_tf.schema import Schema

VARIANTS = ("float32", "float16", "dynamic", "int8-qat", "int8-ptq")


class ExportError(RuntimeError):
    """Conversion failed or produced a model that devices cannot run."""


def op_names(model_bytes: bytes) -> list[str]:
    """Names of the operators a TFLite model uses (builtin names, or custom codes like 'FlexConv2D')."""
    fb = modelcard._schema_module()
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
    builtin = set(vars(modelcard._schema_module().BuiltinOperator))
    bad = [n for n in names if n not in builtin]
    if bad:
        raise ExportError(f"model needs non-builtin op(s) {bad} (Flex/custom ops do not run in LiteRT or "
                          "tflite-runtime); move that computation out of the model, e.g. into the tf.data pipeline")
    return names


def _serving_function(model, schema: Schema):
    """A concrete function with a dynamic batch and the stable output names."""
    spec = tf.TensorSpec([None, schema.input_size, schema.input_size, 3], tf.float32, name="image")

    @tf.function(input_signature=[spec])
    def serve(image):
        outputs = model(image, training=False)
        return {key: tf.identity(outputs[key], name=key) for key in OUTPUTS}

    return serve.get_concrete_function()


def convert(model, schema: Schema, variant: str = "float32", representative_faces: Iterable[np.ndarray] | None = None) -> bytes:
    """Converts a Keras model (for 'int8-qat', a QAT model) to TFLite bytes with builtin ops only.

    Args:
        model: the Keras model (outputs `gender`, `age_group`, `age`).
        schema: input size and normalisation of the model.
        variant: one of `VARIANTS`.
        representative_faces: normalised float32 faces `(S, S, 3)`, needed by 'int8-ptq'.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}. Received: variant={variant!r}")
    function = _serving_function(model, schema)
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
        "inputs": {"image": [None, schema.input_size, schema.input_size, 3]},
        "outputs": {"gender": [None, len(schema.gender_labels)], "age_group": [None, schema.num_age_groups],
                    "age": [None, 1]},
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
    side = dict(written, file_bytes=len(final), file_sha256=__import__("hashlib").sha256(final).hexdigest())
    atomic_write_text(os.path.splitext(path)[0] + ".json", json.dumps(side, indent=2, sort_keys=True))
    return written


def export_keras(model, schema: Schema, path: str, *, architecture: str, variant: str = "float32",
                 representative_faces=None, metrics=None, **extra) -> dict[str, Any]:
    """`convert` + `make_card` + `write_model`."""
    model_bytes = convert(model, schema, variant, representative_faces)
    card = make_card(schema, architecture=architecture, variant=variant, metrics=metrics, **extra)
    return write_model(path, model_bytes, card)
