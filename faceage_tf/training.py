"""Training with `model.fit`: config, losses, callbacks, resumable and distributed runs.

A run directory holds everything needed to reproduce or continue a run: `CONFIG` (every option,
the schema included), `manifest.json` (the split), `data_report.json` (faces left out and why),
`history.csv`, `tensorboard/`, `backup/` (epoch-end state for `--resume`), `BEST_WEIGHTS` (best
validation loss), `FINAL_WEIGHTS` (after the last epoch) and `metrics.json`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence

import numpy as np

from faceage_tf import datasets, files, models, pipeline
from faceage_tf.keras import keras, tf
from faceage_tf.schema import Schema


BEST_WEIGHTS = "best_weights.h5"
TRAINED_WEIGHTS = "trained_weights.h5"  # the best weights as training left them (see serve_batch_norm)
FINAL_WEIGHTS = "final_weights.h5"
CONFIG = "config.json"
SERVED_TRAIN_CACHE = "train_served"  # the training faces' serving crops, decoded (cache/ of a run)
DISTRIBUTE = ("auto", "none", "mirrored", "multiworker")
# The values some options take (callables: the registries can grow).
CHOICES = {"architecture": models.architectures, "dataset": lambda: sorted(datasets.LOADERS),
           "distribute": lambda: DISTRIBUTE}


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run; saved as `config.json` in the run directory, the schema
    included, so that everything that loads the run (fine-tune, QAT, evaluation, export) uses the
    schema it was trained with. A run with `init_from` inherits `INHERITED` from its parent.
    train.py makes one flag of each option, with this help text and the choices of `CHOICES`.

    Args:
        architecture: a registered network, or the ensemble of --members.
        members: the ensemble's networks, in order.
        network_options: per network, the options that differ from its defaults (flags --NETWORK-OPTION).
        gender_input: feed the predicted gender to the age branch (the paper's design).
        schema: labels, age groups, input size, normalisation, face crops (a flag per plain field).
        dataset: kind of the data set.
        data: the data set's folder (a CSV file for --dataset csv).
        sources: several data sets in one run, instead of dataset/data: KIND:PATH items, or in a
            config file {"kind", "path", "name"} objects; each is split on its own, then joined.
        test_source: the name of a source that becomes the whole test split (cross-data-set test);
            the other sources then give only training and validation faces.
        split_file: a JSON file that fixes the split instead of the seed: per source, the sha1s of
            the photos whose faces validate and test (`datasets.held_out_photos`; every other face
            trains). `training/write_split.py` writes a run's; `configs/splits/default.json` is
            the packaged default model's, so its held-out photos are the same on every machine.
        source_weights: in a config file, {source name: weight} of every loss of that source's
            training faces (1 for a source left out), scaled so that the faces' mean weight is 1:
            a smaller data set can count for more without repeating its faces.
        epochs: epochs to train.
        batch_size: faces per training step.
        learning_rate: peak learning rate (AdamW, warm-up, then cosine decay).
        weight_decay: AdamW weight decay (not on batch-norm and bias weights).
        warmup_epochs: epochs of linear learning-rate warm-up.
        label_smoothing: label smoothing of the gender and age-group losses.
        age_sigma: years; width of the Gaussian target over ages.
        age_mean_loss_weight: weight of the L1 loss between the distribution's mean (the age the
            model reports) and the true age, added to the Gaussian target's cross-entropy (DLDL-v2).
            The cross-entropy trains the distribution's shape only; on an age axis bounded at 0,
            the mean of a broad distribution sits above its peak for the young and the middle.
        age_balance: age-group loss weights (mean/count)**p: 0 none, 0.5 sqrt, 1 inverse.
        gender_age_balance: gender loss weights by age group, (mean/count)**p as age_balance: leans
            the gender head toward the age groups it sees least, babies among them, whose gender
            it reads worst (measured at 0.5: babies read no better; docs/experiments.md).
        gender_loss_weight, age_group_loss_weight, age_dist_loss_weight: weights of each head's losses.
        val_fraction, test_fraction: fractions of the faces for validation and for the test split.
        test_fold: Adience: the fold held out for testing.
        seed: seed of the split, the initial weights, the order of faces and their augmentation.
        serving_zoom: prepared crops only: the served crop frames this many times the template's
            side, about its centre (validation, evaluation and export cut it; the exported card's
            template is the schema's `zoomed` by it, so the runtime and the apps serve it too).
            Augmentation's framings stay relative to the template, and so does the serving
            batch-norm step (see `serve_batch_norm`).
        augmentation: prepared crops only (see `pipeline.FRAMING`): scale_range (template sides seen),
            max_rotation (degrees), max_shift (of the template's side), greyscale, blur and jpeg
            (probabilities), input_noise (8-bit levels); in a config file.
        limit: use only this many faces of each source, drawn at random (0: all): quick runs and tests.
        early_stopping: stop after this many epochs without a better validation loss (0: off).
        distribute: none, mirrored (the devices of one machine), multiworker (the machines of
            TF_CONFIG) or auto (multiworker when TF_CONFIG is set).
        cache: keep the decoded faces on disk in the run directory.
        init_from: a finished run: start from its best weights; keep its split, model and schema.
        qat: quantisation-aware training (fine-tunes the float run given by --init-from).
        teacher: a finished run (the default float ensemble, say) to distil from: its predictions
            (with flip) on each face's serving crop are soft targets for every head, beside the
            labels; the run keeps the teacher's split.
        distill_weight: with a teacher, the share of each head's loss taken by its soft targets
            (the labels keep the rest).
    """

    architecture: str = models.ENSEMBLE
    members: Sequence[str] = models.DEFAULT_MEMBERS
    network_options: dict = dataclasses.field(default_factory=dict)
    gender_input: bool = True
    schema: Schema = dataclasses.field(default_factory=Schema)
    # The data and its split
    dataset: str = "utkface"
    data: str = "../shared/data/utkface"
    sources: Sequence = ()  # () : the one `dataset` at `data`
    test_source: str = ""
    split_file: str = ""  # fixes the split (per source, the held-out photos' sha1s); "": by seed
    source_weights: dict = dataclasses.field(default_factory=dict)  # name -> weight; 1 for the others
    augmentation: dict = dataclasses.field(default_factory=dict)  # of prepared crops; pipeline.FRAMING
    serving_zoom: float = 1.0  # of prepared crops: the served framing, in template sides
    limit: int = 0  # 0: all faces
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    test_fold: int = 0
    seed: int = 0  # of the split, initial weights, order and augmentation
    # Optimisation
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3  # peak, after the warm-up
    weight_decay: float = 5e-5
    warmup_epochs: float = 1.0
    early_stopping: int = 0  # 0: off
    # Losses
    label_smoothing: float = 0.1
    age_sigma: float = 2.5  # years
    age_mean_loss_weight: float = 0.0
    age_balance: float = 0.5
    gender_age_balance: float = 0.0
    gender_loss_weight: float = 1.0
    age_group_loss_weight: float = 1.0
    age_dist_loss_weight: float = 1.0
    # How it runs
    distribute: str = "auto"  # one of DISTRIBUTE
    cache: bool = True
    init_from: str = ""
    qat: bool = False
    # Knowledge distillation
    teacher: str = ""
    distill_weight: float = 0.5

    def __post_init__(self):
        if self.architecture not in models.architectures():
            raise ValueError(f"architecture must be one of {models.architectures()}. Received: {self.architecture!r}")
        if self.distribute not in DISTRIBUTE:
            raise ValueError(f"distribute must be one of {DISTRIBUTE}. Received: {self.distribute!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive. Received: {self.epochs=}, {self.batch_size=}")
        if isinstance(self.schema, Mapping):
            self.schema = Schema.from_dict(self.schema)
        self.members = tuple(self.members) if self.architecture == models.ENSEMBLE else (self.architecture,)
        strangers = sorted(set(self.network_options) - set(self.members))
        if strangers:
            raise ValueError(f"network_options name network(s) {strangers} that the model does not use "
                             f"(its networks: {list(self.members)})")
        # Every option of every network, so that the run does not depend on the code's defaults.
        self.network_options = {m: models.network_options(m, self.network_options.get(m)) for m in self.members}
        self.augmentation = pipeline.framing_options(self.augmentation)  # every value, as network_options
        if self.sources:
            self.sources = datasets.normalize_sources(self.sources, self.dataset, self.data)
        names = [source["name"] for source in self.data_sources()]
        if self.test_source and self.test_source not in names:
            raise ValueError(f"test_source must name one of the sources {names}. Received: {self.test_source!r}")
        strangers = sorted(set(self.source_weights) - set(names))
        if strangers:
            raise ValueError(f"source_weights name source(s) {strangers} that the run does not use "
                             f"(its sources: {names})")
        if any(not weight > 0 for weight in self.source_weights.values()):
            raise ValueError(f"source_weights must be positive. Received: {self.source_weights!r}")
        if self.split_file and self.test_source:
            raise ValueError(f"split_file {self.split_file!r} fixes the test split; test_source "
                             f"{self.test_source!r} would replace it: give one of them")
        if self.test_source and len(names) < 2:
            raise ValueError(f"test_source {self.test_source!r} would leave nothing to train on: list another source")
        if self.qat and not self.init_from:
            raise ValueError("qat fine-tunes a trained float model: set init_from to its run directory")
        if not 0 < self.serving_zoom <= datasets.PREPARED_ZOOM:
            raise ValueError(f"serving_zoom must lie in (0, {datasets.PREPARED_ZOOM}], the prepared crops' margin. "
                             f"Received: {self.serving_zoom!r}")
        if not 0 <= self.distill_weight <= 1:
            raise ValueError(f"distill_weight is a share of the loss (0..1). Received: {self.distill_weight!r}")

    def data_sources(self) -> list[dict]:
        """The run's sources as {"kind", "path", "name"} (the one dataset/data when none are listed)."""
        return datasets.normalize_sources(self.sources, self.dataset, self.data)

    def build_model(self, *, load_init: bool = True):
        """The model of this config, with `init_from`'s weights (unless `load_init` is False);
        for `qat`, its quantisation-aware copy."""
        model = models.build_model(self.architecture, self.schema, members=self.members,
                                   gender_input=self.gender_input, options=self.network_options)
        if self.init_from and load_init:
            models.training_model(model).load_weights(os.path.join(self.init_from, BEST_WEIGHTS))
        if self.qat:
            from faceage_tf import qat  # imports tensorflow-model-optimization, only when needed

            model = qat.quantize(model)
        return model

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["schema"] = self.schema.to_dict()
        return json.loads(json.dumps(data))  # tuples become lists, as in config.json

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        data = _upgrade_flat_keys(data)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"Unknown config option(s) {unknown}. Known: {sorted(fields)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str) -> "TrainConfig":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def resolve(cls, options: Mapping[str, Any]) -> "TrainConfig":
        """The config of `options` (a config file's keys, then flags; `schema` may hold only some
        of its fields). With `init_from`, the model and schema are the parent run's (`INHERITED`),
        and an option that asks for another value is refused, naming both values. A QAT run also
        keeps its parent's loss weights and served framing (`QAT_KEEPS`) unless it asks for others:
        it fine-tunes the same objective for the same crops, and its served heads take out the age
        weights the parent trained with (`remove_age_balance`)."""
        options = _upgrade_flat_keys(options)
        if options.get("init_from"):
            parent = load_config(options["init_from"])
            refuse_differences(parent, options, options["init_from"])
            options.update({key: getattr(parent, key) for key in INHERITED})
            if options.get("qat"):
                for key in QAT_KEEPS:
                    options.setdefault(key, getattr(parent, key))
        return cls.from_dict(options)


# Keys of configs written before the schema and the network options were nested (runs made
# then still load): key -> its place now.
FLAT_KEYS = {"input_size": ("schema", "input_size"), "age_groups": ("schema", "age_group_preset"),
             "attention_width": ("network_options", "attentional", "width"),
             "residual_widths": ("network_options", "residual", "widths"),
             "residual_blocks": ("network_options", "residual", "blocks")}


def _upgrade_flat_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    if not set(FLAT_KEYS) & set(data):
        return dict(data)
    data = copy.deepcopy(dict(data))
    architecture = data.get("architecture", models.ENSEMBLE)
    for key, place in FLAT_KEYS.items():
        if key in data:
            value = data.pop(key)
            *path, name = place
            if path[0] == "network_options" and architecture not in (path[1], models.ENSEMBLE):
                continue  # old configs listed every network's options, used or not
            target = data
            for part in path:
                target = target.setdefault(part, {})
            target[name] = value
    return data


# What a run with init_from takes from its parent run (the model, its schema and the data).
INHERITED = ("architecture", "members", "network_options", "gender_input", "schema", "dataset", "data", "sources")
# What a QAT run takes from its parent unless it asks for another value (its loss weights, its served framing).
QAT_KEEPS = ("age_balance", "source_weights", "serving_zoom")


def load_config(run_dir: str) -> TrainConfig:
    """The config of the run in `run_dir` (its model, schema and options)."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a training run (no {CONFIG})")
    return TrainConfig.from_file(path)


def _differences(parent: TrainConfig, options: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, parent's value, asked value) for each inherited option in `options` that differs."""
    found = []
    for key in INHERITED:
        if key not in options:
            continue
        asked = options[key]
        if key == "schema":
            asked = asked.to_dict() if isinstance(asked, Schema) else asked
            full, mine = Schema.from_dict(asked).to_dict(), parent.schema.to_dict()
            found += [(f"schema.{k}", mine.get(k), full[k]) for k in asked if k in full and full[k] != mine.get(k)]
        elif key == "network_options":
            for name, given in asked.items():
                mine, full = parent.network_options.get(name, {}), models.network_options(name, given)
                found += [(f"network_options.{name}.{k}", mine.get(k), full[k]) for k in given
                          if mine.get(k) != full[k]]
        elif key == "members":
            if tuple(asked) != parent.members and parent.architecture == models.ENSEMBLE:
                found.append((key, list(parent.members), list(asked)))
        elif key == "sources":
            mine = parent.data_sources() if parent.sources else []
            theirs = datasets.normalize_sources(asked, parent.dataset, parent.data) if asked else []
            if theirs != mine:
                found.append((key, mine, theirs))
        elif asked != getattr(parent, key):
            found.append((key, getattr(parent, key), asked))
    return found


def refuse_differences(parent: TrainConfig, options: Mapping[str, Any], parent_dir: str, *,
                       child: str = "here", rule: str = "") -> None:
    """Raises ValueError if `options` (those of `child`) ask for another model or schema than the
    parent run's; the message names both values and `rule`."""
    found = _differences(parent, options)
    if found:
        rule = rule or (f"a run started from --init-from {parent_dir} keeps that run's model and schema; "
                        "leave these options out to inherit them")
        listed = "; ".join(f"{name} is {json.dumps(mine)} in {parent_dir} but {json.dumps(asked)} {child}"
                           for name, mine, asked in found)  # values as config.json writes them
        raise ValueError(f"{listed}. ({rule})")


# ---------------------------------------------------------------------------------------------
# Command-line flags, made from the config's fields, the schema's plain fields and each network's options

FLAG_ALIASES = {"schema.age_group_preset": ["--age-groups"]}


def _documented_args(doc: str) -> dict[str, str]:
    """`name: text` entries of a docstring's Args section (`a, b: text` documents both)."""
    found, names = {}, []
    for line in (doc or "").split("Args:", 1)[-1].splitlines():
        match = re.match(r"^\s{4,8}([a-z_]+(?:, [a-z_]+)*): (.*)$", line)
        if match:
            names = match.group(1).split(", ")
            found.update({n: match.group(2) for n in names})
        elif line.strip() and names and not line.strip().endswith(":"):
            found.update({n: found[n] + " " + line.strip() for n in names})
        else:
            names = []
    return found


def _flag_parser(default):
    if isinstance(default, bool):
        def parse_bool(text):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() in ("1", "true", "yes")
        return parse_bool, "BOOL"
    if isinstance(default, (tuple, list)):
        item = type(default[0]) if default else str
        return (lambda text: [item(v) for v in text.split(",")]), "A,B,..."
    return type(default), None


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"
    return str(value) if value != "" else "none"


def config_flags() -> list[dict]:
    """Every config flag: `dest` (a config key; `schema.X`, `network_options.NET.X` for nested
    ones), its default, help text and choices, taken from where each option is defined."""
    flags = []
    docs = _documented_args(TrainConfig.__doc__)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("schema", "network_options", "augmentation", "source_weights"):
            continue
        inherited = " (with --init-from: the parent run's)" if f.name in INHERITED else ""
        flags.append(dict(dest=f.name, default=f.default, help=docs[f.name].rstrip(".") + inherited,
                          choices=list(CHOICES[f.name]()) if f.name in CHOICES else None))
    docs = _documented_args(Schema.__doc__)
    for f in dataclasses.fields(Schema):
        if isinstance(f.default, (int, float, str)):
            flags.append(dict(dest=f"schema.{f.name}", default=f.default, choices=None,
                              help=docs.get(f.name, f"schema field {f.name}").rstrip(".") + " (with --init-from: the parent run's)"))
    for name, network in models.NETWORKS.items():
        for key, default in network.defaults.items():
            flags.append(dict(dest=f"network_options.{name}.{key}", default=default, choices=None,
                              help=f"option {key!r} of the {name} network"))
    return flags


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Adds `config_flags` to `parser`; a flag left out is None (the config file's value stands)."""
    group = parser.add_argument_group("training options (config keys; a flag overrides the --config file)")
    for flag in config_flags():
        name = flag["dest"].removeprefix("schema.").removeprefix("network_options.").replace(".", "_")
        parse, metavar = _flag_parser(flag["default"])
        metavar = metavar or (None if flag["choices"] else name.upper())
        group.add_argument("--" + name.replace("_", "-"), *FLAG_ALIASES.get(flag["dest"], []), dest=flag["dest"],
                           type=parse, metavar=metavar, choices=flag["choices"], default=None,
                           help=f"{flag['help']} (default: {_show(flag['default'])})".replace("%", "%%"))


def options_from_flags(args: argparse.Namespace, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`options` (a config file's keys) updated by the flags given in `args`, nested as in config.json."""
    options = json.loads(json.dumps(options or {}))
    for flag in config_flags():
        value = getattr(args, flag["dest"], None)
        if value is None:
            continue
        *path, key = flag["dest"].split(".")
        target = options
        for part in path:
            target = target.setdefault(part, {})
        target[key] = value
    return options


# ---------------------------------------------------------------------------------------------
# Losses and compilation


def smoothed_sparse_crossentropy(num_classes: int, smoothing: float):
    """Cross-entropy of integer labels with label smoothing (Keras' sparse loss has none)."""

    def loss(y_true, y_pred):
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=smoothing)

    return loss


def gaussian_age_crossentropy(num_ages: int, sigma: float, mean_weight: float = 0.0):
    """Cross-entropy against a Gaussian over ages centred on the true age (label distribution
    learning): neighbouring ages share credit, which suits noisy apparent-age labels. With
    `mean_weight`, plus that times the absolute error of the distribution's mean (DLDL-v2)."""
    ages = tf.range(num_ages, dtype=tf.float32)

    def loss(y_true, y_pred):
        true_age = tf.cast(tf.reshape(y_true, [-1, 1]), tf.float32)
        target = tf.exp(-tf.square(ages - true_age) / (2.0 * sigma**2))
        target /= tf.reduce_sum(target, axis=-1, keepdims=True)
        crossentropy = keras.losses.categorical_crossentropy(target, y_pred)
        if not mean_weight:
            return crossentropy
        mean_age = tf.reduce_sum(y_pred * ages, axis=-1)
        return crossentropy + mean_weight * tf.abs(mean_age - true_age[:, 0])

    return loss


def compile_for_training(model, config: TrainConfig, steps_per_epoch: int):
    """The training view of `model` (see `models.training_model`), compiled. With a teacher,
    each head's loss is shared between the labels and the teacher's soft targets."""
    schema = config.schema
    distill = bool(config.teacher)
    train_model = models.training_model(model, distill=distill)
    label_share = 1.0 - config.distill_weight if distill else 1.0
    head_weights = {"gender": config.gender_loss_weight, "age_group": config.age_group_loss_weight,
                    "age_dist": config.age_dist_loss_weight}
    losses, weights = {}, {}
    for prefix in models.head_prefixes(model):
        losses[prefix + "gender"] = smoothed_sparse_crossentropy(len(schema.gender_labels), config.label_smoothing)
        losses[prefix + "age_group"] = smoothed_sparse_crossentropy(schema.num_age_groups, config.label_smoothing)
        losses[prefix + "age_dist"] = gaussian_age_crossentropy(
            schema.max_age + 1, config.age_sigma, config.age_mean_loss_weight)
        for key, weight in head_weights.items():
            weights[prefix + key] = label_share * weight
            if distill:
                losses[models.TEACHER_PREFIX + prefix + key] = keras.losses.categorical_crossentropy
                weights[models.TEACHER_PREFIX + prefix + key] = config.distill_weight * weight
    metrics = {
        "gender": [keras.metrics.SparseCategoricalAccuracy(name="acc")],
        "age_group": [keras.metrics.SparseCategoricalAccuracy(name="acc")],
        "age": [keras.metrics.MeanAbsoluteError(name="mae")],
    }
    total = steps_per_epoch * config.epochs
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1, decay_steps=max(total - warmup, 1), alpha=0.01,
        warmup_target=config.learning_rate, warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["_bn", "bias"])
    train_model.compile(optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics)
    return train_model


# ---------------------------------------------------------------------------------------------
# Callbacks


def save_weights(model, path: str, is_chief: bool = True) -> None:
    """Saves weights to `path` atomically (temporary file + rename).

    In multi-worker training every worker must save (reading the synchronised variables is a
    collective operation), but only the chief's file is kept.
    """
    if is_chief:
        tmp = path + ".tmp"
        model.save_weights(tmp, save_format="h5")
        os.replace(tmp, path)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            model.save_weights(os.path.join(scratch, "weights.h5"), save_format="h5")


class BestWeights(keras.callbacks.Callback):
    """Saves the model's weights when `monitor` improves (see `save_weights`)."""

    def __init__(self, path: str, monitor: str = "val_loss", is_chief: bool = True):
        super().__init__()
        self.path, self.monitor, self.is_chief = path, monitor, is_chief
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            save_weights(self.model, self.path, self.is_chief)


def _backed_up_epoch(backup_dir: str) -> int:
    """The epoch a run resumed from `backup_dir` starts at (0 when there is no backup)."""
    for sub in ("chief", ""):
        path = tf.train.latest_checkpoint(os.path.join(backup_dir, sub))
        if path:
            for name, _ in tf.train.list_variables(path):
                if "ckpt_saved_epoch" in name:
                    return int(tf.train.load_variable(path, name)) + 1
    return 0


def make_strategy(kind: str):
    """(strategy, is_chief) for 'none', 'mirrored', 'multiworker' or 'auto'."""
    if kind == "auto":
        kind = "multiworker" if os.environ.get("TF_CONFIG") else "none"
    if kind == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        is_chief = resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)
        return strategy, is_chief
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(), True
    return tf.distribute.get_strategy(), True


# ---------------------------------------------------------------------------------------------
# The run


def prepare_splits(config: TrainConfig, run_dir: str, is_chief: bool = True) -> dict[str, list]:
    """The run's split: read from its manifest when resuming, else made and written."""
    manifest = os.path.join(run_dir, "manifest.json")
    if os.path.exists(manifest):
        return datasets.read_manifest(manifest)
    parent = config.init_from or config.teacher  # a fine-tune or a student keeps its parent's split
    if parent:
        splits = datasets.read_manifest(os.path.join(parent, "manifest.json"))
        if is_chief:
            datasets.write_manifest(manifest, splits, dataset=config.dataset, data=config.data, init_from=parent)
        return splits
    splits = {name: [] for name in datasets.SPLITS}
    reports = {}
    held_out = datasets.read_split_file(config.split_file) if config.split_file else None
    if held_out is not None:  # a source the file does not list is refused before any source is loaded
        unlisted = [s["name"] for s in config.data_sources() if s["name"] not in held_out]
        if unlisted:
            raise ValueError(f"{config.split_file}: no held-out photos of source {unlisted[0]!r} "
                             f"(it lists {sorted(held_out)})")
    for source in config.data_sources():
        part, reports[source["name"]] = _source_split(config, source, held_out)
        for name in datasets.SPLITS:
            splits[name] += part[name]
    print("split: " + ", ".join(f"{len(splits[name])} {name}" for name in datasets.SPLITS) + " faces")
    if is_chief:
        report = next(iter(reports.values())).to_dict() if len(reports) == 1 else \
            {"sources": {name: r.to_dict() for name, r in reports.items()}}
        files.atomic_write_text(os.path.join(run_dir, "data_report.json"), json.dumps(report, indent=1))
        datasets.write_manifest(manifest, splits, dataset=config.dataset, data=config.data, seed=config.seed,
                                sources=config.data_sources(), test_source=config.test_source,
                                split_file=config.split_file)
    return splits


def _source_split(config: TrainConfig, source: dict, held_out: dict | None = None
                  ) -> tuple[dict[str, list], datasets.DataReport]:
    """One source's records, each tagged with the source's name, split on their own: by the split
    file's `held_out` photos, else by content and stratified (Adience: by fold); the
    `test_source` is all test."""
    records, report = datasets.load_dataset(source["kind"], os.path.expanduser(source["path"]),
                                            schema=config.schema, validate=False)
    records = [dataclasses.replace(r, source=source["name"]) for r in records]
    if config.limit and config.limit < len(records):
        random.Random(config.seed).shuffle(records)
        print(f"--limit {config.limit}: using {config.limit} of the {len(records)} faces of {source['name']}, "
              f"drawn with seed {config.seed}")
        report.not_drawn = len(records) - config.limit
        records = records[: config.limit]
    records = datasets.validate_images(records, report)  # only what the pipeline will decode
    print(report.summary())
    if held_out is not None:
        return datasets.split_by_file(records, held_out[source["name"]]), report
    if source["name"] == config.test_source:
        return {"train": [], "val": [], "test": sorted(records, key=lambda r: r.path)}, report
    if source["kind"] == "adience":
        return datasets.split_by_fold(records, config.test_fold), report
    test_fraction = 0.0 if config.test_source else config.test_fraction
    return datasets.split_by_content(records, config.schema, val_fraction=config.val_fraction,
                                     test_fraction=test_fraction, seed=config.seed), report


def check_run_dir(run_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuses a folder that holds a run unless `resume` or `overwrite` says what to do with it
    (the message says which applies); `overwrite` deletes the old run first.

    Raises:
        FileExistsError: `run_dir` holds a finished run, or a started one without `resume`.
    """
    backup = os.path.join(run_dir, "backup")
    interrupted = os.path.isdir(backup) and bool(os.listdir(backup))
    finished = os.path.exists(os.path.join(run_dir, FINAL_WEIGHTS))
    started = interrupted or os.path.exists(os.path.join(run_dir, CONFIG))
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite deletes it: pass only one")
    if overwrite:
        if started:
            shutil.rmtree(run_dir)
        return
    if finished:
        raise FileExistsError(f"{run_dir} holds a finished run{' (nothing to resume)' if resume else ''}: pass "
                              "--overwrite to replace it, or choose another --out")
    if started and not resume:
        raise FileExistsError(f"{run_dir} holds an interrupted run: pass --resume to continue it, --overwrite to "
                              "start again, or choose another --out")


# The metrics a person watches during training; history.csv and TensorBoard get all of them.
WATCHED = {"loss": "loss {:.3f}", "gender_acc": "gender {:.1%}", "age_group_acc": "age group {:.1%}",
           "age_mae": "age MAE {:.2f}"}


class Progress(keras.callbacks.Callback):
    """One line per epoch with the `WATCHED` metrics (training and validation) and, with `bar`,
    a progress bar of them within each epoch."""

    def __init__(self, epochs: int, steps: int, bar: bool):
        super().__init__()
        self.epochs, self.steps, self.bar = epochs, steps, bar

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.monotonic()
        self.progbar = keras.utils.Progbar(self.steps, stateful_metrics=list(WATCHED)) if self.bar else None

    def on_train_batch_end(self, batch, logs=None):
        if self.progbar:
            self.progbar.update(batch + 1, [(k, v) for k, v in (logs or {}).items() if k in WATCHED])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def shown(prefix):
            return ", ".join(text.format(logs[prefix + key]) for key, text in WATCHED.items() if prefix + key in logs)

        print(f"epoch {epoch + 1}/{self.epochs} ({time.monotonic() - self.start:.0f} s)  train: {shown('')}  "
              f"val: {shown('val_')}", flush=True)


PROGRESS = ("auto", "bar", "epochs", "none")  # auto: a bar on a terminal, else a line per epoch


def train(config: TrainConfig, run_dir: str, *, resume: bool = False, overwrite: bool = False,
          progress: str = "auto"):
    """Trains `config` into `run_dir` with `model.fit`; returns (model, history dict).

    Args:
        resume: continue the interrupted run in `run_dir`.
        overwrite: delete the run in `run_dir` first.
        progress: one of `PROGRESS`.

    Raises:
        FileExistsError: `run_dir` holds a run and neither `resume` nor `overwrite` says what to do
            with it (see `check_run_dir`).
    """
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {PROGRESS}. Received: {progress!r}")
    strategy, is_chief = make_strategy(config.distribute)
    if is_chief:  # other workers of a distributed run may share the chief's folder
        check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    os.makedirs(run_dir, exist_ok=True)
    backup_dir = os.path.join(run_dir, "backup")
    config_path = os.path.join(run_dir, CONFIG)
    if resume and os.path.exists(config_path):
        config = TrainConfig.from_file(config_path)  # a resumed run keeps its own options
    if config.init_from:
        refuse_differences(load_config(config.init_from), config.to_dict(), config.init_from)
    if is_chief and not (resume and os.path.exists(config_path)):
        files.atomic_write_text(config_path, json.dumps(config.to_dict(), indent=2))

    keras.utils.set_random_seed(config.seed)
    schema = config.schema
    splits = prepare_splits(config, run_dir, is_chief)
    cache = os.path.join(run_dir, "cache") if config.cache and is_chief else ""
    if cache:
        os.makedirs(cache, exist_ok=True)
    zoom = pipeline.margin_zoom(splits["train"])  # prepared crops train with their margin
    faces = {"train": pipeline.decode_faces(splits["train"], schema, margin=True,
                                            cache=os.path.join(cache, "train") if cache else ""),
             "val": served_faces(splits["val"], config, cache, "val")}
    labels = {name: pipeline.label_arrays(splits[name], schema) for name in ("train", "val")}

    if config.teacher:
        for name in ("train", "val"):
            served = faces["val"] if name == "val" else served_faces(splits[name], config, cache, SERVED_TRAIN_CACHE)
            labels[name].update(teacher_targets(config.teacher, served, schema, age_balance=config.age_balance,
                                                cache=os.path.join(run_dir, f"teacher_{name}.npz") if is_chief else ""))

    steps = pipeline.steps_per_epoch(len(splits["train"]), config.batch_size)
    with strategy.scope():
        model = config.build_model()
        train_model = compile_for_training(model, config, steps)
    output_keys = models.training_output_keys(model, distill=bool(config.teacher))
    start_epoch = _backed_up_epoch(backup_dir) if resume else 0
    weights = pipeline.age_group_weights(labels["train"]["age_group"], schema.num_age_groups, config.age_balance)
    gender_weights = pipeline.age_group_weights(labels["train"]["age_group"], schema.num_age_groups,
                                                config.gender_age_balance)
    face_weights = source_face_weights(splits["train"], config.source_weights)

    def train_input(shard=(0, 1), local_replicas=1):
        return pipeline.training_dataset(
            faces["train"], labels["train"], output_keys, schema, batch_size=config.batch_size, epochs=config.epochs,
            start_epoch=start_epoch, seed=config.seed, sample_weights=weights, gender_weights=gender_weights,
            face_weights=face_weights, shard=shard, local_replicas=local_replicas, zoom=zoom,
            framing=config.augmentation)

    validation_steps = None
    if config.distribute in ("none", "auto") and strategy.num_replicas_in_sync == 1:
        train_ds = train_input()
        val_ds = pipeline.eval_dataset(faces["val"], labels["val"], output_keys, schema, batch_size=config.batch_size)
    else:
        # Each worker builds its own slice of every global batch (see `training_dataset`).
        def shard(context):
            return context.input_pipeline_id, context.num_input_pipelines

        def local_replicas(context):
            return context.num_replicas_in_sync // context.num_input_pipelines

        train_ds = strategy.distribute_datasets_from_function(
            lambda context: train_input(shard(context), local_replicas(context)))
        val_ds = strategy.distribute_datasets_from_function(lambda context: pipeline.eval_dataset(
            faces["val"], labels["val"], output_keys, schema, shard=shard(context),
            batch_size=context.get_per_replica_batch_size(config.batch_size)))
        validation_steps = len(splits["val"]) // config.batch_size

    log_dir = run_dir if is_chief else tempfile.mkdtemp()
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir),
        keras.callbacks.CSVLogger(os.path.join(log_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(log_dir, "tensorboard"), profile_batch=0),
        BestWeights(os.path.join(run_dir, BEST_WEIGHTS), is_chief=is_chief),
    ]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(patience=config.early_stopping))
    if progress == "auto":
        progress = "bar" if sys.stdout.isatty() else "epochs"
    if progress != "none":
        callbacks.append(Progress(config.epochs, steps, bar=progress == "bar"))
    history = train_model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps,
                              validation_steps=validation_steps, callbacks=callbacks, verbose=0)
    digest = weights_digest(model)
    print(f"final weights sha256: {digest}")  # equal on every worker of a distributed run
    save_weights(train_model, os.path.join(run_dir, FINAL_WEIGHTS), is_chief)
    if is_chief:
        final = {k: float(v[-1]) for k, v in history.history.items()}
        files.atomic_write_text(os.path.join(run_dir, "metrics.json"), json.dumps(final, indent=2))
    return model, history.history


def served_faces(records, config: TrainConfig, cache_dir: str = "", name: str = "") -> tf.Tensor:
    """`records`' serving crops at the run's `serving_zoom` (`pipeline.decode_faces`), kept in
    `cache_dir` (if given) under `name`, the zoom in the name when it is not 1."""
    cache = ""
    if cache_dir:
        cache = os.path.join(cache_dir, name if config.serving_zoom == 1.0 else f"{name}_zoom{config.serving_zoom:g}")
    return pipeline.decode_faces(records, config.schema, cache=cache, serving_zoom=config.serving_zoom)


def source_face_weights(records, source_weights: Mapping[str, float]) -> np.ndarray | None:
    """Per training face, its source's weight (`TrainConfig.source_weights`; 1 for a source not
    named), scaled to a mean of 1 so that the learning rate keeps its meaning; None without weights."""
    if not source_weights:
        return None
    weights = np.array([source_weights.get(record.source, 1.0) for record in records], np.float32)
    return weights / weights.mean()


def teacher_targets(teacher_run: str, faces, schema: Schema, *, age_balance: float = 0.0,
                    cache: str = "") -> dict[str, np.ndarray]:
    """The soft targets of distillation: `teacher_run`'s probabilities on `faces` (uint8 serving
    crops) averaged with their mirror images, as `TEACHER_PREFIX` + gender / age_group /
    age_dist (an ensemble's age distribution is the mean of its heads'). Their age heads lean
    by the student's `age_balance`, as its label losses do, so that the student's served model
    (`remove_age_balance`) takes one consistent weighting out. `cache`: an .npz file that keeps
    them for a resumed run."""
    if cache and os.path.exists(cache):
        with np.load(cache) as saved:
            if len(saved[models.TEACHER_PREFIX + "gender"]) == len(faces):
                return dict(saved)
    teacher, teacher_config = load_run(teacher_run, unweighted=False)
    if teacher_config.schema != schema:
        raise ValueError(f"teacher {teacher_run} was trained with another schema than this run's: "
                         f"{teacher_config.schema.to_dict()} vs {schema.to_dict()}")
    train_records = datasets.read_manifest(os.path.join(teacher_run, "manifest.json"))["train"]
    remove_age_balance(teacher, teacher_config, train_records, power=teacher_config.age_balance - age_balance)
    heads = models.head_prefixes(teacher)
    outputs = {key: models.find_layer(teacher, key).output for key in ("gender", "age_group")}
    dists = [models.find_layer(teacher, prefix + "age_dist").output for prefix in heads]
    outputs["age_dist"] = keras.layers.Average()(dists) if len(dists) > 1 else dists[0]
    probabilities = keras.Model(teacher.inputs, outputs)
    runs = [probabilities.predict(pipeline.eval_dataset(faces, None, (), schema, flip=flip), verbose=0)
            for flip in (False, True)]
    targets = {models.TEACHER_PREFIX + key: np.mean([run[key] for run in runs], axis=0).astype(np.float32)
               for key in models.SOFT_TARGETS}
    if cache:
        files.atomic_write_bytes(cache, _npz_bytes(targets))
    return targets


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def weights_digest(model) -> str:
    """sha256 of all of a model's weights, to check that two models (or workers) agree exactly."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def recalibrate_batch_norm(model, faces, schema: Schema, *, batch_size: int = 64, seed: int = 0) -> int:
    """Sets every batch-norm layer's moving mean and variance of `model` to the plain average of
    their batch values over one pass of `faces` (uint8 serving crops, shuffled; every other batch
    mirrored, as flip TTA serves them). A QAT model's activation ranges follow the same faces.
    Returns the number of faces it saw (whole batches).

    Training leaves statistics of augmented faces (zoomed, turned, shifted, recoloured) in the
    layers, and the model serves plain crops: re-estimating them on what it serves removes that
    mismatch (as FixRes does for resolution, Touvron et al. 2019). In training mode the forward
    pass normalises by each batch's own statistics, so the result does not depend on the
    statistics the layers held before."""
    layers = [layer for layer in model.submodules if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    order = np.random.default_rng(seed).permutation(int(faces.shape[0]))
    batches = len(order) // batch_size
    try:
        for step in range(batches):  # eagerly: each layer reads its momentum at every call
            for layer in layers:
                layer.momentum = step / (step + 1)  # new = mean of the batches so far
            images = tf.gather(faces, order[step * batch_size:(step + 1) * batch_size])
            if step % 2:
                images = tf.reverse(images, axis=[2])
            model(pipeline.normalize(images, schema), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return batches * batch_size


def serve_batch_norm(run_dir: str) -> dict:
    """`recalibrate_batch_norm` of a finished run on its training split's serving crops: keeps
    the best weights as trained in `TRAINED_WEIGHTS` and writes the recalibrated ones as its
    best weights (what evaluation, QAT and export load). Run again, it starts from the trained
    weights: the same result, so an interrupted step can simply be repeated.

    The crops are at the template's framing whatever the run's `serving_zoom`: only there is the
    served crop the prepared crop's centre pixel for pixel, as the runtime cuts it (0.06 of 255
    apart on average). At zoom 1.05 it is resampled from the prepared crop and comes out softer
    (1.3 apart), and statistics of those crops served the runtime worse (measured: see the
    README, "The served framing")."""
    load_config(run_dir)  # a folder that holds no run is named as such
    trained, best = os.path.join(run_dir, TRAINED_WEIGHTS), os.path.join(run_dir, BEST_WEIGHTS)
    if not os.path.exists(trained):
        if not os.path.exists(best):
            raise FileNotFoundError(f"{best}: no weights; has the run finished?")
        files.copy_atomically(best, trained)
    model, config = load_run(run_dir, TRAINED_WEIGHTS, unweighted=False)
    records = datasets.read_manifest(os.path.join(run_dir, "manifest.json"))["train"]
    cache = os.path.join(run_dir, "cache") if config.cache else ""
    if cache:
        os.makedirs(cache, exist_ok=True)
    served_cache = os.path.join(cache, SERVED_TRAIN_CACHE) if cache else ""
    faces = pipeline.decode_faces(records, config.schema, cache=served_cache)
    seen = recalibrate_batch_norm(model, faces, config.schema, seed=config.seed)
    save_weights(models.training_model(model), best)
    report = {"faces": seen, "of": len(records), "from": TRAINED_WEIGHTS}
    files.atomic_write_text(os.path.join(run_dir, "serving_batch_norm.json"), json.dumps(report, indent=2))
    return report


def load_run(run_dir: str, weights: str = BEST_WEIGHTS, *, unweighted: bool = True):
    """(model, config) of a finished run: the model rebuilt from its config (its schema
    included), with its best weights. `unweighted`: as served, with the age-group loss weights
    of training taken out of its age heads (see `remove_age_balance`); False: as trained."""
    config = load_config(run_dir)
    model = config.build_model(load_init=False)
    path = os.path.join(run_dir, weights)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no weights; has the run finished an epoch?")
    models.training_model(model).load_weights(path)
    if unweighted:
        remove_age_balance(model, config, datasets.read_manifest(os.path.join(run_dir, "manifest.json"))["train"])
    return model, config


def remove_age_balance(model, config: TrainConfig, train_records, power: float | None = None) -> None:
    """Takes `config.age_balance` (or `power` of the same weighting) out of `model`'s age heads,
    in place; a negative `power` puts it in.

    Training weighs each face's age losses by its age group's weight w (rare groups count more),
    so the age-group and age softmaxes learn p(group | face) * w(group), renormalised: they
    lean toward the rarer neighbouring group, e.g. 40-49 (w 1.01) over 30-39 (w 0.73) in the
    default recipe. Subtracting log w from those layers' biases divides it back out (logit
    adjustment, Menon et al. 2021): exact for the age groups, nearly so for the ages (whose
    Gaussian targets blur the group edges), and free at inference, as the exported model
    carries the shifted biases.
    """
    power = config.age_balance if power is None else power
    if not power:
        return
    schema = config.schema
    groups = pipeline.label_arrays(train_records, schema)["age_group"]
    log_weights = np.log(pipeline.group_loss_weights(groups, schema.num_age_groups, power))
    by_age = log_weights[[schema.age_group(age) for age in range(schema.max_age + 1)]]
    for prefix in models.head_prefixes(model):
        for name, shift in (("age_group", log_weights), ("age_dist", by_age)):
            layer = models.find_layer(model, prefix + name)
            dense = getattr(layer, "layer", layer)  # a QAT model wraps it
            dense.bias.assign(dense.bias - shift.astype(np.float32))
