"""tf.data pipelines: parallel decode and resize, cache, deterministic shuffle and augmentation.

Faces are decoded by `faceage_tf.preprocess.load_face` (the runtime's own code) in parallel and
cached; the decoded uint8 faces then stay in memory (20k faces at 64 px are 250 MB). Each epoch's
order and augmentation are drawn from stateless RNGs keyed by (seed, epoch, step), so a run
resumed from its epoch-end backup sees exactly the batches an uninterrupted run would.
Augmentation lives here, never inside the model, so that exported models stay convertible.

Prepared crops (`faceage_tf.prepare`: the serving path's crop with a margin, `FaceRecord.zoom`
> 1) are decoded two ways: with their margin for training, where `augment_framing` draws a
framing around the template's (zoom in and out, rotation, shift), and as the serving crop (their
centre serving_zoom / zoom at the input size) for validation, evaluation and export. Plain face
crops keep the original pipeline (`augment`).
"""

from __future__ import annotations

import re
from typing import Sequence

import math

import numpy as np
from PIL import Image

from faceage_tf.datasets import FaceRecord
from faceage_tf.keras import tf
from faceage_tf.models import TEACHER_PREFIX
from faceage_tf.preprocess import load_face, open_image, resize_face
from faceage_tf.schema import Schema

AUTOTUNE = tf.data.AUTOTUNE


def load_record_face(path: str, zoom: float, size: int, *, margin: bool = False,
                     serving_zoom: float = 1.0) -> np.ndarray:
    """One face as uint8 RGB. A plain crop (`zoom` 1): at `size`, as the runtime reads it. A prepared
    crop: its serving framing (the centre `serving_zoom` / `zoom`, at `size`: `serving_zoom` times
    the template's side), or with `margin` the whole crop at `round(size * zoom)`."""
    if zoom == 1.0:
        if serving_zoom != 1.0:
            raise ValueError(f"{path}: a plain face crop has no margin to serve at zoom {serving_zoom}; "
                             "serving_zoom needs crops cut by faceage_tf.prepare")
        return load_face(path, size)
    if not 0 < serving_zoom <= zoom:
        raise ValueError(f"{path}: serving_zoom {serving_zoom} must lie in (0, {zoom}], the crop's margin")
    image = open_image(path)
    if margin:
        return resize_face(image, round(size * zoom))
    side = image.width * serving_zoom / zoom
    edge = (image.width - side) / 2
    box = (edge, edge, edge + side, edge + side)
    return np.asarray(image.resize((size, size), Image.BILINEAR, box=box), np.uint8)


def margin_zoom(records: Sequence[FaceRecord]) -> float:
    """The one zoom of `records` (1: plain crops); raises ValueError naming a face of each when
    prepared crops of a zoom mix with other crops (the training faces form one tensor)."""
    first = {}
    for r in records:
        first.setdefault(r.zoom, r)
    if len(first) > 1:
        named = ", ".join(f"zoom {zoom} ({r.source or 'no source'}: {r.path})" for zoom, r in sorted(first.items()))
        raise ValueError(f"the training faces mix crops of different framing: {named}; "
                         "cut every source with faceage_tf.prepare, or none")
    return next(iter(first), 1.0)


def decode_faces(records: Sequence[FaceRecord], schema: Schema, *, cache: str = "", margin: bool = False,
                 serving_zoom: float = 1.0) -> tf.Tensor:
    """All faces as one uint8 tensor `(N, S, S, 3)`, decoded in parallel; `cache` names a file
    prefix to keep the decoded faces between runs ('' keeps them in memory only).

    S is the input size: prepared crops give their serving framing (`serving_zoom` times the
    template's side: `TrainConfig.serving_zoom`). With `margin`, prepared crops keep their margin
    (S = round(input size * zoom), one zoom for all: see `margin_zoom`)."""
    size = schema.input_size
    zoom = margin_zoom(records) if margin else 1.0
    side = round(size * zoom)

    def load(path, face_zoom):
        return load_record_face(path.decode("utf-8"), float(face_zoom), size, margin=margin,
                                serving_zoom=serving_zoom)

    def decode(path, face_zoom):
        image = tf.numpy_function(load, [path, face_zoom], tf.uint8, stateful=False)
        image.set_shape((side, side, 3))
        return image

    paths = tf.data.Dataset.from_tensor_slices(([r.path for r in records], [float(r.zoom) for r in records]))
    faces = paths.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache:
        faces = faces.cache(cache)
    faces = faces.batch(4096).prefetch(1)
    try:
        parts = [batch.numpy() for batch in faces]
    except tf.errors.OpError as e:  # the Python error inside tf.numpy_function, without TF's wrapping
        errors = [line.strip() for line in e.message.splitlines() if re.match(r"[\w.]+(Error|Exception): ", line.strip())]
        raise ValueError(f"decoding the faces failed: {errors[-1] if errors else e.message}") from None
    return tf.constant(np.concatenate(parts) if parts else np.zeros((0, side, side, 3), np.uint8))


def label_arrays(records: Sequence[FaceRecord], schema: Schema) -> dict[str, np.ndarray]:
    """Targets for every head: gender, age group, integer age (for the age distribution), age."""
    ages = np.array([r.age for r in records], np.float32)
    return {
        "gender": np.array([r.gender for r in records], np.int32),
        "age_group": np.array([schema.age_group(r.age) for r in records], np.int32),
        "age_dist": np.clip(np.round(ages), 0, schema.max_age).astype(np.int32),
        "age": ages,
    }


def group_loss_weights(groups: np.ndarray, num_groups: int, power: float) -> np.ndarray:
    """Loss weight of each age group, `(mean count / group count) ** power` (0 = none, 0.5 = sqrt,
    1 = inverse), scaled so that the faces' mean weight is 1."""
    counts = np.bincount(groups, minlength=num_groups).astype(np.float64)
    per_group = (counts.sum() / num_groups / np.maximum(counts, 1)) ** power
    return per_group / per_group[groups].mean()


def age_group_weights(groups: np.ndarray, num_groups: int, power: float) -> np.ndarray:
    """Per-face loss weights: each face's `group_loss_weights`."""
    return group_loss_weights(groups, num_groups, power)[groups].astype(np.float32)


def _base_name(output_name: str) -> str:
    for key in ("age_group", "age_dist", "gender", "age"):
        if output_name.endswith(key):
            return key
    raise ValueError(f"Cannot tell which label output {output_name!r} predicts.")


def _targets(labels: dict[str, np.ndarray], output_name: str) -> np.ndarray:
    """The targets of one training output: a teacher's soft targets (`teacher_gender`, ...) for
    the distillation outputs (`models.TEACHER_PREFIX`), else its head's labels."""
    key = _base_name(output_name)
    return labels[TEACHER_PREFIX + key] if output_name.startswith(TEACHER_PREFIX) else labels[key]


def normalize(images, schema: Schema):
    """uint8 faces to the model's input, the same arithmetic as `preprocess.normalize`."""
    return (tf.cast(images, tf.float32) - schema.mean) / schema.std


def augment(images, seed, *, scale_range=(0.85, 1.0), brightness=0.15, contrast=0.25):
    """Batched, seeded augmentation of uint8 faces: flip, crop/scale jitter, brightness, contrast."""
    batch = tf.shape(images)[0]
    size = images.shape[1]
    u = tf.random.stateless_uniform([batch, 6], seed=seed)
    x = tf.cast(images, tf.float32)
    x = tf.where(u[:, 0:1, None, None] < 0.5, tf.reverse(x, axis=[2]), x)
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * u[:, 1]
    top = (1.0 - scale) * u[:, 2]
    left = (1.0 - scale) * u[:, 3]
    boxes = tf.stack([top, left, top + scale, left + scale], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(batch), (size, size))
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * (1.0 + contrast * (2.0 * u[:, 4, None, None, None] - 1.0)) + mean
    x = x + 255.0 * brightness * (2.0 * u[:, 5, None, None, None] - 1.0)
    return tf.clip_by_value(x, 0.0, 255.0)


def _colour(x, u_contrast, u_brightness, brightness, contrast):
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * (1.0 + contrast * (2.0 * u_contrast[:, None, None, None] - 1.0)) + mean
    x = x + 255.0 * brightness * (2.0 * u_brightness[:, None, None, None] - 1.0)
    return tf.clip_by_value(x, 0.0, 255.0)


# Augmentation of prepared crops (`TrainConfig.augmentation`): the part of the template's side
# seen (below 1: zoomed in; above 1: zoomed out), the largest rotation in degrees, the largest
# shift as a fraction of the template's side, and the chance of a face turned grey, blurred or
# re-compressed as a JPEG.
FRAMING = {"scale_range": (0.85, 1.3), "max_rotation": 12.0, "max_shift": 0.08, "greyscale": 0.0, "blur": 0.0,
           "jpeg": 0.0, "input_noise": 0.0}
BLUR_SIGMA = 1.0  # pixels of the input size: a soft, out-of-focus or upscaled-photo look
JPEG_QUALITY = (30, 90)  # drawn uniformly: from a web thumbnail's blocks to a camera's default


def framing_options(options=None) -> dict:
    """`FRAMING` updated by `options`, checked (ValueError quoting the bad value)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(FRAMING))
    if unknown:
        raise ValueError(f"augmentation options must be among {sorted(FRAMING)}. Received: {unknown}")
    merged = dict(FRAMING, **options)
    low, high = merged["scale_range"]
    if not 0 < low <= high:
        raise ValueError(f"augmentation scale_range must be 0 < low <= high. Received: {merged['scale_range']!r}")
    for key in ("greyscale", "blur", "jpeg"):
        if not 0 <= merged[key] <= 1:
            raise ValueError(f"augmentation {key} is a probability (0..1). Received: {merged[key]!r}")
    if not 0 <= merged["input_noise"] <= 8:
        raise ValueError(f"augmentation input_noise is in 8-bit levels (0..8). Received: {merged['input_noise']!r}")
    return {**merged, "scale_range": [float(low), float(high)]}


def framing_transforms(batch_u, side: int, size: int, zoom: float, *, scale_range, max_rotation, max_shift):
    """Projective transforms (output pixel -> crop pixel, `ImageProjectiveTransformV3`'s form) for
    a random framing per face, from 5 uniforms per face: scale, angle, shift x, shift y (the 5th
    unused). The identity draw (scale 1, no turn, no shift) gives the serving crop: the centre
    `side / zoom` pixels of the crop, resampled to `size`."""
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * batch_u[:, 0]
    angle = math.radians(max_rotation) * (2.0 * batch_u[:, 1] - 1.0)
    template_side = side / zoom  # pixels of the crop
    shift_x = max_shift * template_side * (2.0 * batch_u[:, 2] - 1.0)
    shift_y = max_shift * template_side * (2.0 * batch_u[:, 3] - 1.0)
    step = scale * template_side / size  # crop pixels per output pixel
    c_in, c_out = (side - 1) / 2.0, (size - 1) / 2.0
    a0, a1 = step * tf.cos(angle), -step * tf.sin(angle)
    b0, b1 = step * tf.sin(angle), step * tf.cos(angle)
    a2 = c_in + shift_x - (a0 + a1) * c_out
    b2 = c_in + shift_y - (b0 + b1) * c_out
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment_framing(images, seed, *, size: int, zoom: float, brightness=0.15, contrast=0.25, **framing):
    """Batched, seeded augmentation of prepared crops (uint8, side `size * zoom`, the template's
    framing their centre 1 / zoom) to `size`: flip, a random framing (`FRAMING`: zoom in and out,
    rotation, shift; borders reflected), brightness, contrast, then (with their `FRAMING`
    probabilities) greyscale, blur and JPEG re-compression, and `input_noise`: every value moved by
    up to that many 8-bit levels, uniformly (an int8 model's input is rounded to one level, and
    interpreters round it differently; training with the noise makes a model steadier under it)."""
    framing = framing_options(framing)
    greyscale, blur, jpeg = framing.pop("greyscale"), framing.pop("blur"), framing.pop("jpeg")
    input_noise = framing.pop("input_noise")
    batch = tf.shape(images)[0]
    side = images.shape[1]
    u = tf.random.stateless_uniform([batch, 8], seed=seed)
    x = tf.cast(images, tf.float32)
    x = tf.where(u[:, 0:1, None, None] < 0.5, tf.reverse(x, axis=[2]), x)
    transforms = framing_transforms(u[:, 1:6], side, size, zoom, **framing)
    x = tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=transforms, output_shape=tf.constant([size, size]),
                                              fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    x.set_shape((None, size, size, 3))
    x = _colour(x, u[:, 6], u[:, 7], brightness, contrast)
    if greyscale or blur:  # their own draws: the ones above stay as they are
        v = tf.random.stateless_uniform([batch, 2], seed=tf.stack([seed[0] + 1, seed[1]]))
        if greyscale:
            grey = tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 1, 3])
            x = tf.where(v[:, 0, None, None, None] < greyscale, grey, x)
        if blur:
            taps = np.exp(-np.arange(-2, 3) ** 2 / (2 * BLUR_SIGMA**2))
            kernel = np.outer(taps, taps) / np.outer(taps, taps).sum()
            kernel = tf.constant(np.tile(kernel[:, :, None, None], [1, 1, 3, 1]), tf.float32)
            padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
            blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
            x = tf.where(v[:, 1, None, None, None] < blur, blurred, x)
    if jpeg:  # last, as a photo is compressed after it was taken
        w = tf.random.stateless_uniform([batch, 2], seed=tf.stack([seed[0] + 2, seed[1]]))
        quality = tf.cast(JPEG_QUALITY[0] + (JPEG_QUALITY[1] + 1 - JPEG_QUALITY[0]) * w[:, 1], tf.int32)
        compressed = tf.map_fn(
            lambda face_quality: tf.cast(tf.image.adjust_jpeg_quality(tf.cast(tf.round(face_quality[0]), tf.uint8),
                                                                      face_quality[1]), tf.float32),
            (x, quality), fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
        x = tf.where(w[:, 0, None, None, None] < jpeg, compressed, x)
    if input_noise:
        noise = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack([seed[0] + 3, seed[1]]), minval=-1.0, maxval=1.0)
        x = tf.clip_by_value(x + input_noise * noise, 0.0, 255.0)
    return x


def training_dataset(
    faces, labels: dict[str, np.ndarray], output_names: Sequence[str], schema: Schema, *,
    batch_size: int, epochs: int, start_epoch: int = 0, seed: int = 0, sample_weights: np.ndarray | None = None,
    gender_weights: np.ndarray | None = None, face_weights: np.ndarray | None = None,
    shard: tuple[int, int] = (0, 1), local_replicas: int = 1, zoom: float = 1.0, framing: dict | None = None,
):
    """Batches for epochs `start_epoch..epochs-1`: `(images, targets, weights)` dicts keyed by
    `output_names`. Per face, `sample_weights` weigh the age outputs, `gender_weights` the gender
    outputs and `face_weights` every output. Drops the last partial batch;
    `steps_per_epoch(len(faces), batch_size)` batches an epoch.

    `shard=(index, count)`: in distributed training, input pipeline `index` of `count` yields its
    slice of every global batch of `batch_size`, so the workers together see exactly the batches
    one machine would; a pipeline feeding `local_replicas` devices yields its slice in that many
    consecutive per-replica batches.

    `zoom` > 1: `faces` are prepared crops with their margin (`decode_faces(margin=True)`),
    augmented by `augment_framing` (with the `framing` options) to the input size; 1: plain faces,
    augmented by `augment`.
    """
    n = int(faces.shape[0])
    steps = steps_per_epoch(n, batch_size)
    index, count = shard
    if batch_size % (count * local_replicas):
        raise ValueError(f"batch_size={batch_size} must divide evenly among {count * local_replicas} replicas")
    per_worker = batch_size // count
    per_replica = per_worker // local_replicas
    elements = steps * local_replicas  # dataset elements an epoch
    targets = {name: tf.constant(_targets(labels, name)) for name in output_names}
    face_weights = np.ones(n, np.float32) if face_weights is None else np.asarray(face_weights, np.float32)
    all_weights = tf.constant(face_weights)
    age_weights = tf.constant(face_weights if sample_weights is None else face_weights * sample_weights)
    gender_weights = tf.constant(face_weights if gender_weights is None else face_weights * gender_weights)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        batches = tf.reshape(order[: steps * batch_size], [steps, batch_size])[:, index * per_worker:(index + 1) * per_worker]
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(batches, [elements, per_replica]))
        return batches.enumerate().map(lambda element, faces_index: (epoch * elements + element, faces_index))

    def make_batch(element, faces_index):
        # Seeded by the element number and this pipeline's index: reproducible on a resume.
        face_seed = tf.stack([tf.cast(seed, tf.int64), element * count + index])
        if zoom == 1.0:
            images = augment(tf.gather(faces, faces_index), face_seed)
        else:
            images = augment_framing(tf.gather(faces, faces_index), face_seed, size=schema.input_size, zoom=zoom,
                                     **(framing or {}))
        ys = {name: tf.gather(t, faces_index) for name, t in targets.items()}
        by_output = {"age_group": age_weights, "age_dist": age_weights, "gender": gender_weights}
        ws = {name: tf.gather(by_output.get(_base_name(name), all_weights), faces_index) for name in output_names}
        return normalize(images, schema), ys, ws

    epochs_ds = tf.data.Dataset.range(start_epoch, epochs)
    return epochs_ds.flat_map(epoch_batches).map(make_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def steps_per_epoch(num_faces: int, batch_size: int) -> int:
    if num_faces < batch_size:
        raise ValueError(f"Need at least one full batch: {num_faces} faces < batch_size={batch_size}.")
    return num_faces // batch_size


def eval_dataset(faces, labels: dict[str, np.ndarray] | None, output_names: Sequence[str], schema: Schema,
                 *, batch_size: int = 256, flip: bool = False, shard: tuple[int, int] | None = None):
    """In-order batches without augmentation (optionally mirrored, for test-time flip).

    `shard=(index, count)`: this worker's share of whole batches only (distributed validation;
    the remainder of fewer than `count * batch_size` faces is left out).
    """
    images = tf.data.Dataset.from_tensor_slices(faces)
    if flip:
        images = images.map(lambda x: tf.reverse(x, axis=[1]))
    images = images.map(lambda x: normalize(x, schema))
    if labels is not None:
        ys = tf.data.Dataset.from_tensor_slices({name: _targets(labels, name) for name in output_names})
        images = tf.data.Dataset.zip((images, ys))
    if shard is not None:
        index, count = shard
        whole = len(faces) // (count * batch_size) * count * batch_size
        return images.take(whole).shard(count, index).batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    return images.batch(batch_size).prefetch(AUTOTUNE)


def predict(model, faces, schema: Schema, *, flip: bool = True, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Public outputs of `model` on uint8 faces as numpy; `flip` averages in the mirrored faces
    (test-time augmentation). `model` is a Keras model or a runtime `FaceAgePredictor` (a
    `.tflite` file); one whose card says flip is built in (`flip_tta`) is run once."""
    if hasattr(model, "predict_tensor"):
        images = normalize(faces, schema).numpy()
        views = [images] + ([images[:, :, ::-1]] if flip and not model.card.get("flip_tta") else [])
        runs = [model.predict_tensor(view) for view in views]
    else:
        runs = [model.predict(eval_dataset(faces, None, (), schema, batch_size=batch_size, flip=f), verbose=0)
                for f in ((False, True) if flip else (False,))]
    return {key: np.mean([run[key] for run in runs], axis=0) for key in ("gender", "age_group", "age")}
