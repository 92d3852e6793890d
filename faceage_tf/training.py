"""Training with `model.fit`: config, losses, callbacks, resumable and distributed runs.

A run directory holds everything needed to reproduce or continue a run:
`config.json`, `manifest.json` (the split), `data_report.json` (faces left out and why),
`history.csv`, `tensorboard/`, `backup/` (epoch-end state for `--resume`), `best_weights.h5`
(best validation loss), `final_weights.h5` (after the last epoch) and `metrics.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import tempfile
from typing import Any, Sequence

import numpy as np

from faceage_tf import datasets, models, pipeline
from faceage_tf.keras import keras, tf
from faceage_tf.schema import Schema


BEST_WEIGHTS = "best_weights.h5"
FINAL_WEIGHTS = "final_weights.h5"


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run; saved as `config.json` in the run directory."""

    architecture: str = "ensemble"  # attentional | residual | ensemble
    dataset: str = "utkface"  # utkface | adience | csv
    data: str = "../shared/data/utkface"
    input_size: int = 64
    age_groups: str = "fairface9"
    gender_input: bool = True  # feed predicted gender to the age branch (the paper's design)
    attention_width: int = 32
    residual_widths: Sequence[int] = (32, 64, 128, 256)
    residual_blocks: Sequence[int] = (2, 2, 2, 2)
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 5e-5
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    age_sigma: float = 2.5  # years; width of the Gaussian target over ages
    age_balance: float = 0.5  # age-group loss weights (mean/count)**p: 0 none, 0.5 sqrt, 1 inverse
    gender_loss_weight: float = 1.0
    age_group_loss_weight: float = 1.0
    age_dist_loss_weight: float = 1.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    test_fold: int = 0  # Adience: the fold held out for testing
    seed: int = 0
    limit: int = 0  # use only this many faces (0 = all): quick runs and tests
    early_stopping: int = 0  # patience in epochs (0 = off)
    distribute: str = "auto"  # none | mirrored | multiworker | auto (multiworker when TF_CONFIG is set)
    cache: bool = True  # keep decoded faces on disk in the run directory
    init_from: str = ""  # a finished run directory: start from its best weights and reuse its split
    qat: bool = False  # quantisation-aware training (fine-tune a float run given by init_from)

    def __post_init__(self):
        if self.architecture not in models.BUILDERS:
            raise ValueError(f"architecture must be one of {sorted(models.BUILDERS)}. Received: {self.architecture!r}")
        if self.distribute not in ("auto", "none", "mirrored", "multiworker"):
            raise ValueError(f"distribute must be auto, none, mirrored or multiworker. Received: {self.distribute!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive. Received: {self.epochs=}, {self.batch_size=}")
        self.residual_widths = tuple(self.residual_widths)
        self.residual_blocks = tuple(self.residual_blocks)
        self.schema()  # validates input_size and age groups
        if self.qat and not self.init_from:
            raise ValueError("qat fine-tunes a trained float model: set init_from to its run directory")

    def schema(self) -> Schema:
        return Schema(input_size=self.input_size, age_group_preset=self.age_groups)

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = {"gender_input": self.gender_input}
        if self.architecture in ("attentional", "ensemble"):
            kwargs["width"] = self.attention_width
        if self.architecture in ("residual", "ensemble"):
            kwargs.update(widths=self.residual_widths, blocks=self.residual_blocks)
        return kwargs

    def build_model(self, *, load_init: bool = True):
        """The model of this config, with `init_from`'s weights (unless `load_init` is False);
        for `qat`, its quantisation-aware copy."""
        model = models.build_model(self.architecture, self.schema(), **self.model_kwargs())
        if self.init_from and load_init:
            models.training_model(model).load_weights(os.path.join(self.init_from, BEST_WEIGHTS))
        if self.qat:
            from faceage_tf import qat  # imports tensorflow-model-optimization, only when needed

            model = qat.quantize(model)
        return model

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["residual_widths"] = list(self.residual_widths)
        data["residual_blocks"] = list(self.residual_blocks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"Unknown config option(s) {unknown}. Known: {sorted(fields)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str) -> "TrainConfig":
        with open(path) as f:
            return cls.from_dict(json.load(f))


# ---------------------------------------------------------------------------------------------
# Losses and compilation


def smoothed_sparse_crossentropy(num_classes: int, smoothing: float):
    """Cross-entropy of integer labels with label smoothing (Keras' sparse loss has none)."""

    def loss(y_true, y_pred):
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=smoothing)

    return loss


def gaussian_age_crossentropy(num_ages: int, sigma: float):
    """Cross-entropy against a Gaussian over ages centred on the true age (label distribution
    learning): neighbouring ages share credit, which suits noisy apparent-age labels."""
    ages = tf.range(num_ages, dtype=tf.float32)

    def loss(y_true, y_pred):
        true_age = tf.cast(tf.reshape(y_true, [-1, 1]), tf.float32)
        target = tf.exp(-tf.square(ages - true_age) / (2.0 * sigma**2))
        target /= tf.reduce_sum(target, axis=-1, keepdims=True)
        return keras.losses.categorical_crossentropy(target, y_pred)

    return loss


def compile_for_training(model, config: TrainConfig, steps_per_epoch: int):
    """The training view of `model` (see `models.training_model`), compiled."""
    schema = config.schema()
    train_model = models.training_model(model)
    losses, weights = {}, {}
    for prefix in models.head_prefixes(model):
        losses[prefix + "gender"] = smoothed_sparse_crossentropy(len(schema.gender_labels), config.label_smoothing)
        losses[prefix + "age_group"] = smoothed_sparse_crossentropy(schema.num_age_groups, config.label_smoothing)
        losses[prefix + "age_dist"] = gaussian_age_crossentropy(schema.max_age + 1, config.age_sigma)
        weights[prefix + "gender"] = config.gender_loss_weight
        weights[prefix + "age_group"] = config.age_group_loss_weight
        weights[prefix + "age_dist"] = config.age_dist_loss_weight
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
    if config.init_from:  # a fine-tune keeps the split of the run it starts from
        splits = datasets.read_manifest(os.path.join(config.init_from, "manifest.json"))
        if is_chief:
            datasets.write_manifest(manifest, splits, dataset=config.dataset, data=config.data, init_from=config.init_from)
        return splits
    records, report = datasets.load_dataset(config.dataset, config.data)
    print(report.summary())
    if config.limit:
        random.Random(config.seed).shuffle(records)
        records = records[: config.limit]
    if config.dataset == "adience":
        splits = datasets.split_by_fold(records, config.test_fold)
    else:
        splits = datasets.split_by_content(records, config.schema(), val_fraction=config.val_fraction,
                                           test_fraction=config.test_fraction, seed=config.seed)
    if is_chief:
        datasets.atomic_write_text(os.path.join(run_dir, "data_report.json"), json.dumps(report.to_dict(), indent=1))
        datasets.write_manifest(manifest, splits, dataset=config.dataset, data=config.data, seed=config.seed)
    return splits


def train(config: TrainConfig, run_dir: str, *, resume: bool = False, verbose: int | str = "auto"):
    """Trains `config` into `run_dir` with `model.fit`; returns (model, history dict).

    Raises:
        FileExistsError: if `run_dir` holds an interrupted run and `resume` is False.
    """
    strategy, is_chief = make_strategy(config.distribute)
    os.makedirs(run_dir, exist_ok=True)
    backup_dir = os.path.join(run_dir, "backup")
    config_path = os.path.join(run_dir, "config.json")
    if os.path.isdir(backup_dir) and os.listdir(backup_dir) and not resume:
        raise FileExistsError(f"{run_dir} holds an interrupted run: pass --resume to continue it, or choose another --out.")
    if resume and os.path.exists(config_path):
        config = TrainConfig.from_file(config_path)  # a resumed run keeps its own options
    elif is_chief:
        datasets.atomic_write_text(config_path, json.dumps(config.to_dict(), indent=2))

    keras.utils.set_random_seed(config.seed)
    schema = config.schema()
    splits = prepare_splits(config, run_dir, is_chief)
    cache = os.path.join(run_dir, "cache") if config.cache and is_chief else ""
    if cache:
        os.makedirs(cache, exist_ok=True)
    faces = {name: pipeline.decode_faces(splits[name], schema, cache=os.path.join(cache, name) if cache else "")
             for name in ("train", "val")}
    labels = {name: pipeline.label_arrays(splits[name], schema) for name in ("train", "val")}

    steps = pipeline.steps_per_epoch(len(splits["train"]), config.batch_size)
    with strategy.scope():
        model = config.build_model()
        train_model = compile_for_training(model, config, steps)
    output_keys = list(models.training_outputs(model))
    start_epoch = _backed_up_epoch(backup_dir) if resume else 0
    weights = pipeline.age_group_weights(labels["train"]["age_group"], schema.num_age_groups, config.age_balance)

    def train_input(shard=(0, 1), local_replicas=1):
        return pipeline.training_dataset(
            faces["train"], labels["train"], output_keys, schema, batch_size=config.batch_size, epochs=config.epochs,
            start_epoch=start_epoch, seed=config.seed, sample_weights=weights, shard=shard,
            local_replicas=local_replicas)

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
    history = train_model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps,
                              validation_steps=validation_steps, callbacks=callbacks, verbose=verbose)
    digest = weights_digest(model)
    print(f"final weights sha256: {digest}")  # equal on every worker of a distributed run
    save_weights(train_model, os.path.join(run_dir, FINAL_WEIGHTS), is_chief)
    if is_chief:
        final = {k: float(v[-1]) for k, v in history.history.items()}
        datasets.atomic_write_text(os.path.join(run_dir, "metrics.json"), json.dumps(final, indent=2))
    return model, history.history


def weights_digest(model) -> str:
    """sha256 of all of a model's weights, to check that two models (or workers) agree exactly."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def load_run(run_dir: str, weights: str = BEST_WEIGHTS):
    """(model, config) of a finished run: the model rebuilt from its config, with its best weights."""
    config = TrainConfig.from_file(os.path.join(run_dir, "config.json"))
    model = config.build_model(load_init=False)
    path = os.path.join(run_dir, weights)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no weights; has the run finished an epoch?")
    models.training_model(model).load_weights(path)
    return model, config
