"""The one source of truth for labels, age groups, input size, normalisation and face crops.

Training, export, the runtime and the Android app all read these values; an exported model
carries them inside its `.tflite` file as part of the model card (see `faceage_tf.modelcard`).
Pure Python: importing this module never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

GENDER_LABELS = ("male", "female")  # UTKFace convention: 0 = male, 1 = female.

# Lower age bound (inclusive) of each group; the last group is open-ended.
AGE_GROUP_PRESETS = {
    # FairFace's 9 groups: 0-2, 3-9, 10-19, ..., 60-69, 70+.
    "fairface9": (0, 3, 10, 20, 30, 40, 50, 60, 70),
    # Adience's 8 groups: (0-2), (4-6), (8-12), (15-20), (25-32), (38-43), (48-53), (60-100).
    # Ages in the gaps between Adience's ranges fall into the group below.
    "adience8": (0, 4, 8, 15, 25, 38, 48, 60),
}

MIN_INPUT_SIZE = 32
INPUT_NAME = "image"
OUTPUT_NAMES = ("gender", "age_group", "age")
# Converters may prefix output names (QAT models: "quant_gender"); `output_key` strips these.
OUTPUT_NAME_PREFIXES = ("quant_",)
MAX_AGE = 100  # the expected-age output is a softmax over ages 0..MAX_AGE
SCHEMA_VERSION = 2  # 2: the alignment template replaced the box crop convention


# Keypoints that alignment uses, in the detector's order: right eye, left eye, nose tip, mouth
# centre (the subject's right and left). The ear tragions are left out: they move too much with
# the head's yaw to anchor a crop.
ALIGNMENT_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth")


@dataclasses.dataclass(frozen=True)
class FaceTemplate:
    """Where a face's keypoints sit in the model's input crop, as fractions of the crop's side
    (x right, y down), in the order of `ALIGNMENT_KEYPOINTS`.

    A face is aligned by the similarity transform (rotation, scale, shift) that best maps its
    detected keypoints onto these (`faceage_tf.align`). The defaults reproduce UTKFace's crops:
    the median BlazeFace keypoints of UTKFace crops (measured by `benchmarks/calibrate_template.py`).
    """

    keypoints: tuple[tuple[float, float], ...] = ((0.2839, 0.2983), (0.692, 0.2859), (0.4856, 0.5166), (0.493, 0.7225))

    def __post_init__(self):
        try:
            points = tuple((float(x), float(y)) for x, y in self.keypoints)
        except (TypeError, ValueError):
            raise ValueError(f"template.keypoints must be (x, y) pairs. Received: keypoints={self.keypoints!r}") from None
        if len(points) != len(ALIGNMENT_KEYPOINTS):
            raise ValueError(f"template.keypoints must hold {len(ALIGNMENT_KEYPOINTS)} points "
                             f"{ALIGNMENT_KEYPOINTS}. Received: keypoints={self.keypoints!r}")
        if not all(0.0 < v < 1.0 for point in points for v in point):
            raise ValueError(f"template.keypoints must lie inside the crop (0..1). Received: keypoints={self.keypoints!r}")
        if not points[1][0] - points[0][0] > 0:
            raise ValueError(f"template.keypoints: the left eye must be right of the right eye in the crop. "
                             f"Received: keypoints={self.keypoints!r}")
        object.__setattr__(self, "keypoints", points)

    def zoomed(self, zoom: float) -> "FaceTemplate":
        """The template of a crop that frames `zoom` times this one's side about the same centre
        (> 1: looser): each keypoint drawn 1 / `zoom` of its way toward the crop's centre. Aligning
        to it gives the crop `align_face(..., zoom=zoom)` gives with this template."""
        return FaceTemplate(tuple((round(0.5 + (x - 0.5) / zoom, 6), round(0.5 + (y - 0.5) / zoom, 6))
                                  for x, y in self.keypoints))


@dataclasses.dataclass(frozen=True)
class Schema:
    """Labels and input conventions shared by every part of faceage_tf.

    Args:
        input_size: side of the square RGB input in pixels (at least 32).
        age_group_preset: name of the age groups, a key of `AGE_GROUP_PRESETS`, or "custom".
        age_group_edges: lower bound of each age group, strictly increasing, starting at 0.
            Taken from the preset when not given.
        gender_labels: class names of the gender output, in output order.
        mean, std: input normalisation, `(pixel - mean) / std` on 0..255 RGB values.
        template: where the face's keypoints sit in the input crop (`FaceTemplate`).
    """

    input_size: int = 64
    age_group_preset: str = "fairface9"
    age_group_edges: tuple[int, ...] = ()
    gender_labels: tuple[str, ...] = GENDER_LABELS
    mean: float = 127.5
    std: float = 127.5
    template: FaceTemplate = FaceTemplate()
    max_age: int = MAX_AGE

    def __post_init__(self):
        if not isinstance(self.input_size, int) or self.input_size < MIN_INPUT_SIZE:
            raise ValueError(
                f"input_size must be an integer of at least {MIN_INPUT_SIZE} pixels. "
                f"Received: input_size={self.input_size!r}"
            )
        if self.age_group_preset != "custom" and self.age_group_preset not in AGE_GROUP_PRESETS:
            raise ValueError(
                f"age_group_preset must be one of {sorted(AGE_GROUP_PRESETS)} or 'custom'. "
                f"Received: age_group_preset={self.age_group_preset!r}"
            )
        edges = tuple(self.age_group_edges) or AGE_GROUP_PRESETS.get(self.age_group_preset, ())
        if not edges:
            raise ValueError("age_group_edges must name at least one group. Received: ()")
        if edges[0] != 0:
            raise ValueError(f"age_group_edges must start at 0. Received: age_group_edges={edges!r}")
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(
                f"age_group_edges must be strictly increasing. Received: age_group_edges={edges!r}"
            )
        if edges[-1] > self.max_age:
            raise ValueError(
                f"age_group_edges must stay within 0..max_age={self.max_age}. "
                f"Received: age_group_edges={edges!r}"
            )
        if len(self.gender_labels) != 2:
            raise ValueError(
                f"gender_labels must name two classes. Received: gender_labels={self.gender_labels!r}"
            )
        if not self.std > 0:
            raise ValueError(f"std must be positive. Received: std={self.std!r}")
        object.__setattr__(self, "age_group_edges", tuple(int(e) for e in edges))
        object.__setattr__(self, "gender_labels", tuple(self.gender_labels))
        if isinstance(self.template, Mapping):
            object.__setattr__(self, "template", FaceTemplate(**self.template))
        if not isinstance(self.template, FaceTemplate):
            raise ValueError(f"template must be a FaceTemplate or a mapping. Received: template={self.template!r}")

    @property
    def num_age_groups(self) -> int:
        return len(self.age_group_edges)

    @property
    def age_group_labels(self) -> tuple[str, ...]:
        """Human-readable group names: '0-2', '3-9', ..., '70+'."""
        edges = self.age_group_edges
        labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]
        return tuple(labels + [f"{edges[-1]}+"])

    def age_group(self, age: float) -> int:
        """Index of the age group that `age` (in years) falls in."""
        if age < 0:
            raise ValueError(f"age must be non-negative. Received: age={age!r}")
        return sum(1 for edge in self.age_group_edges[1:] if age >= edge)

    def tensor_shapes(self) -> dict[str, dict[str, list]]:
        """The model's tensor contract: {"inputs": {name: shape}, "outputs": {name: shape}}, the
        batch dimension None. Export writes it into the card; the runtime and the app check the
        interpreter's tensors against it."""
        size = self.input_size
        return {"inputs": {INPUT_NAME: [None, size, size, 3]},
                "outputs": {"gender": [None, len(self.gender_labels)], "age_group": [None, self.num_age_groups],
                            "age": [None, 1]}}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["age_group_edges"] = list(self.age_group_edges)
        data["gender_labels"] = list(self.gender_labels)
        data["template"] = {"keypoints": [list(point) for point in self.template.keypoints]}
        data["age_group_labels"] = list(self.age_group_labels)
        data["schema_version"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Schema":
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in fields}
        for key in ("age_group_edges", "gender_labels"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        return cls.from_dict(json.loads(text))


def output_key(name: str) -> str:
    """A tensor name without the prefix a converter added ('quant_age' -> 'age')."""
    for prefix in OUTPUT_NAME_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def preset(name: str, **overrides) -> Schema:
    """The schema for a named age-group preset ('fairface9' or 'adience8')."""
    if name not in AGE_GROUP_PRESETS:
        raise ValueError(f"Unknown preset. Expected one of {sorted(AGE_GROUP_PRESETS)}. Received: {name!r}")
    return Schema(age_group_preset=name, **overrides)
