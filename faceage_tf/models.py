"""The paper's networks as Keras functional models.

- `NETWORKS`, the registry: each network's feature builder and its one defaults dict;
  `attentional_features` is a spatial transformer (localisation net + bilinear sampler) in front
  of a convolutional trunk, in the spirit of the authors' attentional convolutional network;
  `residual_features` a ResNet with basic blocks (ResNet-18-like by default).
- `network(name)`: one registered network with the shared multi-task head.
- `ensemble(members)`: several registered networks in one graph, averaging their probabilities
  and expected ages.

Every model takes a normalised `(B, S, S, 3)` float image (see `Schema`) and returns the dict
`{"gender": (B, 2), "age_group": (B, G), "age": (B, 1)}`, produced by the same
`multitask_head`: the age branch sees the predicted gender probabilities (the paper's
gender-augmented age branch) unless `gender_input=False`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from faceage_tf.keras import keras, tf
from faceage_tf.layers import BilinearSampler, ExpectedAge
from faceage_tf.schema import INPUT_NAME, OUTPUT_NAMES, Schema, output_key

OUTPUTS = OUTPUT_NAMES  # the public outputs, named by the schema
WARP_LAYER = "attn_sampler"  # the attention: the transformed image...
SALIENCY_LAYER = "attn_stage4_relu2"  # ...and the trunk's last activation map
# Layer names of `multitask_head` (before any prefix).
HEAD_LAYERS = ("head_dropout", "gender", "age_input", "age_hidden", "age_group", "age_dist", "age")
# Distillation: each head's probabilities again, under this prefix, trained against a teacher's.
TEACHER_PREFIX = "teacher_"
SOFT_TARGETS = ("gender", "age_group", "age_dist")

layers = keras.layers
IDENTITY_THETA = keras.initializers.Constant([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # affine [[1, 0, 0], [0, 1, 0]]


def _conv_bn_relu(x, filters, kernel_size, strides, name):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name + "_conv")(x)
    x = layers.BatchNormalization(name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def multitask_head(features, schema: Schema, *, gender_input=True, dropout=0.0, age_units=128, prefix=""):
    """The shared head: gender, age group, and a distribution over ages 0..max_age.

    Args:
        features: `(B, D)` pooled features of a network.
        schema: labels and age groups.
        gender_input: feed the predicted gender probabilities to the age branch.
        dropout: dropout rate on the features. Off by default: Keras does not checkpoint the
            dropout RNG, so with dropout a resumed run would not retrace an uninterrupted one
            (augmentation, label smoothing and weight decay regularise instead).
        age_units: width of the age branch's hidden layer.
        prefix: layer-name prefix, so that several heads can live in one graph.

    Returns:
        dict of tensors: `gender`, `age_group`, `age_dist` (softmax over ages) and `age`
        (its expectation, in years).
    """
    x = layers.Dropout(dropout, name=prefix + "head_dropout")(features) if dropout else features
    gender = layers.Dense(len(schema.gender_labels), activation="softmax", name=prefix + "gender")(x)
    age_input = layers.Concatenate(name=prefix + "age_input")([x, gender]) if gender_input else x
    hidden = layers.Dense(age_units, activation="relu", name=prefix + "age_hidden")(age_input)
    age_group = layers.Dense(schema.num_age_groups, activation="softmax", name=prefix + "age_group")(hidden)
    age_dist = layers.Dense(schema.max_age + 1, activation="softmax", name=prefix + "age_dist")(hidden)
    age = ExpectedAge(name=prefix + "age")(age_dist)
    return {"gender": gender, "age_group": age_group, "age_dist": age_dist, "age": age}


def spatial_transformer(x, *, name="attn", activation="relu"):
    """Localisation net + sampler; starts as the identity transform and learns where to look.
    `activation`: of the localisation net's layers (ReLU units there can stop firing for good,
    which leaves one transform for every face; tanh units cannot)."""
    loc = layers.AveragePooling2D(2, name=name + "_loc_pool")(x)
    loc = layers.Conv2D(16, 5, strides=2, padding="same", activation=activation, name=name + "_loc_conv1")(loc)
    loc = layers.Conv2D(32, 3, strides=2, padding="same", activation=activation, name=name + "_loc_conv2")(loc)
    loc = layers.GlobalAveragePooling2D(name=name + "_loc_gap")(loc)
    loc = layers.Dense(32, activation=activation, name=name + "_loc_fc1")(loc)
    theta = layers.Dense(6, kernel_initializer="zeros", bias_initializer=IDENTITY_THETA, name=name + "_theta")(loc)
    return BilinearSampler(name=name + "_sampler")([x, theta])


def attentional_features(x, *, width, separable=False, multipliers=(1, 2, 4, 8), localisation_activation="relu"):
    """Spatial transformer, then four conv stages (2 conv-BN-ReLU each) and global pooling.

    `separable`: the stages' convolutions are depthwise-separable (MobileNet's), about 8x fewer
    weights and multiply-adds; the stem stays a full convolution.
    `multipliers`: each stage's filters as multiples of `width`. The last stage works on 4x4
    maps and holds most of the weights, so capping it (1, 2, 4, 4) buys width where the
    multiply-adds are, for a smaller file.
    `localisation_activation`: of the spatial transformer's localisation net (`spatial_transformer`)."""
    if len(multipliers) != 4:
        raise ValueError(f"the attentional network has 4 stages. Received: multipliers={list(multipliers)}")
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = spatial_transformer(x, name="attn", activation=localisation_activation)
    x = _conv_bn_relu(x, width, 3, 2, "attn_stem")
    for stage, filters in enumerate((m * width for m in multipliers), start=1):
        if stage > 1:
            x = layers.MaxPooling2D(2, name=f"attn_stage{stage}_pool")(x)
        for i in (1, 2):
            x = conv(filters, 3, padding="same", use_bias=False, name=f"attn_stage{stage}_{i}_conv")(x)
            x = layers.BatchNormalization(name=f"attn_stage{stage}_{i}_bn")(x)
            x = layers.ReLU(name=f"attn_stage{stage}_1_relu" if i == 1 else f"attn_stage{stage}_relu2")(x)
    return layers.GlobalAveragePooling2D(name="attn_gap")(x)


def residual_block(x, filters, stride, name):
    """ResNet basic block: two 3x3 conv-BN, projection shortcut when the shape changes."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=name + "_proj_conv")(x)
        shortcut = layers.BatchNormalization(name=name + "_proj_bn")(shortcut)
    x = _conv_bn_relu(x, filters, 3, stride, name + "_1")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name + "_2_conv")(x)
    x = layers.BatchNormalization(name=name + "_2_bn")(x)
    x = layers.Add(name=name + "_add")([shortcut, x])
    return layers.ReLU(name=name + "_out")(x)


def residual_features(x, *, widths, blocks):
    """Stride-2 stem, then `blocks[i]` basic blocks of `widths[i]` filters per stage."""
    if len(widths) != len(blocks) or not widths:
        raise ValueError(f"widths and blocks must be non-empty and of equal length. Received: {widths=}, {blocks=}")
    x = _conv_bn_relu(x, widths[0], 3, 2, "res_stem")
    for stage, (filters, count) in enumerate(zip(widths, blocks), start=1):
        for block in range(1, count + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = residual_block(x, filters, stride, f"res_stage{stage}_block{block}")
    return layers.GlobalAveragePooling2D(name="res_gap")(x)


@dataclasses.dataclass(frozen=True)
class Network:
    """A registered feature extractor: `features(image, **options)` returns pooled `(B, D)`
    features; `defaults` holds every option and its default value."""

    features: Callable
    defaults: dict


# The networks that models, ensembles, QAT, training flags and benchmarks are built from, by name.
NETWORKS: dict[str, Network] = {
    "attentional": Network(attentional_features, {"width": 32, "separable": False, "multipliers": (1, 2, 4, 8),
                                                  "localisation_activation": "relu"}),
    "residual": Network(residual_features, {"widths": (32, 64, 128, 256), "blocks": (2, 2, 2, 2)}),
}
ENSEMBLE = "ensemble"  # the architecture that averages several networks (`ensemble`)
DEFAULT_MEMBERS = tuple(NETWORKS)  # the default ensemble: the networks registered above, in order


def architectures() -> list[str]:
    """Every name `build_model` accepts: each registered network, and the ensemble."""
    return [*NETWORKS, ENSEMBLE]


def network_options(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The registered network `name`'s defaults updated by `options` (unknown options refused)."""
    if name not in NETWORKS:
        raise ValueError(f"network must be one of {sorted(NETWORKS)}. Received: {name!r}")
    defaults = NETWORKS[name].defaults
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        raise ValueError(f"network {name!r} has no option(s) {unknown}; its options are {sorted(defaults)}")
    return {key: type(value)(options[key]) if options and key in options else value
            for key, value in defaults.items()}


def _inputs(schema: Schema):
    return keras.Input((schema.input_size, schema.input_size, 3), name=INPUT_NAME)


def _head(inputs, name, schema, options, gender_input, prefix=""):
    features = NETWORKS[name].features(inputs, **network_options(name, options))
    return multitask_head(features, schema, gender_input=gender_input, prefix=prefix)


def network(name: str, schema: Schema = Schema(), *, gender_input=True, options=None, model_name=None):
    """The registered network `name` with the multi-task head.

    Args:
        name: a key of `NETWORKS`.
        schema: input size and labels.
        gender_input: feed the predicted gender probabilities to the age branch.
        options: the network's options that differ from its defaults.
        model_name: the Keras model's name (default: `name`).
    """
    inputs = _inputs(schema)
    head = _head(inputs, name, schema, options, gender_input)
    return keras.Model(inputs, {key: head[key] for key in OUTPUTS}, name=model_name or name)


def attentional_network(schema: Schema = Schema(), *, gender_input=True, **options):
    """The attentional convolutional network with the multi-task head."""
    return network("attentional", schema, gender_input=gender_input, options=options)


def residual_network(schema: Schema = Schema(), *, gender_input=True, **options):
    """The residual network with the multi-task head."""
    return network("residual", schema, gender_input=gender_input, options=options)


def ensemble(schema: Schema = Schema(), members: Sequence[str] = DEFAULT_MEMBERS, *, gender_input=True,
             options: Mapping[str, Mapping] | None = None, name=ENSEMBLE):
    """Several networks in one flat graph (QAT cannot quantise nested models); outputs are averages.

    Each network keeps its own head, named after it (`attentional_gender`, `residual_age_dist`,
    ...), so that all are trained with their own losses in one `model.fit`; since they share no
    weights, that equals training them apart on the same batches.

    Args:
        members: names of registered networks, in order; each at most once.
        options: per network name, its options that differ from its defaults.
    """
    if len(members) < 2 or len(set(members)) != len(members):
        raise ValueError(f"an ensemble needs two or more different networks. Received: members={list(members)!r}")
    inputs = _inputs(schema)
    options = options or {}
    heads = [_head(inputs, m, schema, options.get(m), gender_input, prefix=m + "_") for m in members]
    outputs = {key: layers.Average(name=key)([head[key] for head in heads]) for key in OUTPUTS}
    return keras.Model(inputs, outputs, name=name)


def build_model(architecture: str, schema: Schema = Schema(), *, members: Sequence[str] = DEFAULT_MEMBERS,
                gender_input=True, options: Mapping[str, Mapping] | None = None):
    """A registered network, or an ensemble of `members`, by name (see `architectures`).

    `options` maps network names to their options that differ from the defaults."""
    if architecture == ENSEMBLE:
        return ensemble(schema, members, gender_input=gender_input, options=options)
    if architecture not in NETWORKS:
        raise ValueError(f"architecture must be one of {architectures()}. Received: architecture={architecture!r}")
    return network(architecture, schema, gender_input=gender_input, options=(options or {}).get(architecture))


def find_layer(model, name: str):
    """`model.get_layer(name)`, also finding a QAT model's wrapper of it (`output_key` strips its prefix)."""
    for layer in model.layers:
        if output_key(layer.name) == name:
            return layer
    raise ValueError(f"Model {model.name!r} has no layer named {name!r}.")


def head_prefixes(model) -> list[str]:
    """The layer-name prefixes of the multi-task heads in `model`, in layer order: '' for a
    single network, each member's name and '_' for an ensemble."""
    names = [output_key(layer.name) for layer in model.layers]
    return [name.removesuffix("age_dist") for name in names if name.endswith("age_dist")]


def training_outputs(model) -> dict:
    """Every head's `gender`, `age_group`, `age_dist` (these carry the losses) and the model's
    public `gender`, `age_group`, `age` (for metrics; for a single network the public outputs
    are its head's). Keys are layer names without any QAT prefix (see `output_key`)."""
    outputs = {}
    for prefix in head_prefixes(model):
        for key in ("gender", "age_group", "age_dist"):
            outputs[prefix + key] = find_layer(model, prefix + key).output
    for key in OUTPUTS:
        outputs[key] = find_layer(model, key).output
    return outputs


def _distilled(model) -> dict[str, str]:
    """{distillation output name: the head output it repeats}, for every head of `model`."""
    return {TEACHER_PREFIX + prefix + key: prefix + key for prefix in head_prefixes(model) for key in SOFT_TARGETS}


def training_output_keys(model, *, distill: bool = False) -> list[str]:
    """The keys of `training_model(model, distill=distill)`'s outputs."""
    return list(training_outputs(model)) + (list(_distilled(model)) if distill else [])


def training_model(model, *, distill: bool = False):
    """A view of `model` (same weights) with the outputs of `training_outputs`; with `distill`,
    also each head's `SOFT_TARGETS` again as `TEACHER_PREFIX` outputs (weightless identities, so
    the view's weights files stay those of `model`), for losses against a teacher's predictions."""
    outputs = training_outputs(model)
    if distill:
        outputs.update({name: layers.Activation("linear", name=name)(outputs[head])
                        for name, head in _distilled(model).items()})
    return keras.Model(model.inputs, outputs, name=model.name + "_training")


def member_models(model) -> dict:
    """Each network of an ensemble as a model of its own (shared weights), by name; `{}` for a
    single network. Used to score each network alone."""
    prefixes = [p for p in head_prefixes(model) if p]
    return {p.rstrip("_"): keras.Model(model.inputs, {k: find_layer(model, p + k).output for k in OUTPUTS},
                                       name=p.rstrip("_")) for p in prefixes}


def has_attention(model) -> bool:
    return any(output_key(layer.name) == WARP_LAYER for layer in model.layers)


def attention_model(model):
    """`{"warped": (B,S,S,3), "features": (B,h,w,C)}`: what the spatial transformer shows the trunk,
    and the trunk's last activation map (turned into a saliency map by `saliency`)."""
    if not has_attention(model):
        raise ValueError(f"Model {model.name!r} has no spatial transformer (no layer named {WARP_LAYER!r}).")
    return keras.Model(
        model.inputs,
        {"warped": find_layer(model, WARP_LAYER).output, "features": find_layer(model, SALIENCY_LAYER).output},
        name=model.name + "_attention",
    )


def saliency(features, size):
    """Per-pixel saliency in [0, 1]: channel mean of the activations, resized to `size` x `size`."""
    heat = tf.reduce_mean(tf.convert_to_tensor(features), axis=-1, keepdims=True)
    heat = tf.image.resize(heat, (size, size), method="bilinear")[..., 0]
    low = tf.reduce_min(heat, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(heat, axis=(1, 2), keepdims=True)
    return ((heat - low) / tf.maximum(high - low, 1e-8)).numpy()


def count_flops(model) -> int:
    """Multiply-adds x 2 of the conv and dense layers for one image (the sampler is negligible)."""
    flops = 0
    for layer in model.layers:
        if isinstance(layer, layers.SeparableConv2D):  # depthwise k x k, then pointwise 1 x 1
            out_h, out_w, out_c = layer.output.shape[1:]
            k_h, k_w = layer.kernel_size
            depth = layer.input.shape[-1] * layer.depth_multiplier
            flops += 2 * out_h * out_w * depth * (k_h * k_w + out_c)
        elif isinstance(layer, layers.Conv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            k_h, k_w = layer.kernel_size
            flops += 2 * out_h * out_w * out_c * k_h * k_w * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            flops += 2 * layer.input.shape[-1] * layer.units
    return int(flops)


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))
