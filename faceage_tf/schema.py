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
MAX_AGE = 100  # the expected-age output is a softmax over ages 0..MAX_AGE
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """How a face box from a detector becomes the model's input crop.

    The crop is a square of side `scale * max(box width, box height)`, centred on the box
    centre moved down by `shift_y * side`. The defaults reproduce UTKFace's aligned crops
    from OpenCV Haar boxes (measured by `benchmarks/calibrate_crop.py`).
    """

    # Measured by benchmarks/calibrate_crop.py on 600 UTKFace crops (Haar finds 97-98% of them):
    # median scale 0.97 (IQR 0.93-1.03), median shift_y 0.087 (IQR 0.07-0.10): UTKFace crops are as
    # large as the Haar box and sit about 9% of their side lower (more chin, less forehead).
    scale: float = 0.97
    shift_y: float = 0.09

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"crop.scale must be positive. Received: scale={self.scale!r}")
        if not -1.0 < self.shift_y < 1.0:
            raise ValueError(f"crop.shift_y must be in (-1, 1). Received: shift_y={self.shift_y!r}")

    def expand(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Returns the crop (left, top, right, bottom) for a face box (left, top, right, bottom)."""
        left, top, right, bottom = box
        side = self.scale * max(right - left, bottom - top)
        cx = (left + right) / 2
        cy = (top + bottom) / 2 + self.shift_y * side
        return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


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
        crop: the face-crop convention.
    """

    input_size: int = 64
    age_group_preset: str = "fairface9"
    age_group_edges: tuple[int, ...] = ()
    gender_labels: tuple[str, ...] = GENDER_LABELS
    mean: float = 127.5
    std: float = 127.5
    crop: FaceCrop = FaceCrop()
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
        if isinstance(self.crop, Mapping):
            object.__setattr__(self, "crop", FaceCrop(**self.crop))

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

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["age_group_edges"] = list(self.age_group_edges)
        data["gender_labels"] = list(self.gender_labels)
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


def preset(name: str, **overrides) -> Schema:
    """The schema for a named age-group preset ('fairface9' or 'adience8')."""
    if name not in AGE_GROUP_PRESETS:
        raise ValueError(f"Unknown preset. Expected one of {sorted(AGE_GROUP_PRESETS)}. Received: {name!r}")
    return Schema(age_group_preset=name, **overrides)
