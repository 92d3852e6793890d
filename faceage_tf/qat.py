"""Quantisation-aware training (tensorflow-model-optimization, tf_keras).

`quantize(model)` returns a QAT copy of a trained float model: every conv layer learns int8
weights and activations, so the converter emits int8 kernels for them. Annotations:

- `BilinearSampler`: no weights; one 8-bit output quantizer, so the conv after it gets int8
  input (with a pure no-op config that conv stays float).
- The multi-task head (everything after the pooled features: the gender, age-group and age
  softmaxes, the age branch with its gender input, `ExpectedAge`) and the ensemble's `Average`:
  left in float, and the converter keeps them float. They are a sliver of the compute, and 8-bit
  probabilities would round away the tail of the age distribution behind the expected age.
"""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from faceage_tf import models
from faceage_tf.keras import keras
from faceage_tf.layers import BilinearSampler, custom_objects

quantize_keras = tfmot.quantization.keras
MovingAverageQuantizer = quantize_keras.quantizers.MovingAverageQuantizer


class OutputQuantizeConfig(quantize_keras.QuantizeConfig):
    """No weights or activations to quantize; quantizes the layer's output to 8 bits."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class FloatConfig(OutputQuantizeConfig):
    """Leaves the layer in float: no quantizers at all."""

    def get_output_quantizers(self, layer):
        return []


def _float_layers(model) -> set[str]:
    """Names of the layers that QAT leaves in float (see the module docstring)."""
    heads = {prefix + name for prefix in models.head_prefixes(model) for name in models.HEAD_LAYERS}
    return {layer.name for layer in model.layers if layer.name in heads or isinstance(layer, keras.layers.Average)}


def quantize_scope():
    return quantize_keras.quantize_scope(
        dict(custom_objects(), OutputQuantizeConfig=OutputQuantizeConfig, FloatConfig=FloatConfig)
    )


def quantize(model):
    """A quantisation-aware copy of `model` (same layer names and outputs), starting from its weights."""

    float_layers = _float_layers(model)

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, BilinearSampler):
            return quantize_keras.quantize_annotate_layer(clone, OutputQuantizeConfig())
        if layer.name in float_layers:
            return quantize_keras.quantize_annotate_layer(clone, FloatConfig())
        return clone

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())  # clone_model re-initialises the weights
    annotated = quantize_keras.quantize_annotate_model(annotated)
    with quantize_scope():
        return quantize_keras.quantize_apply(annotated)
