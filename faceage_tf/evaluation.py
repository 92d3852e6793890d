"""Evaluation people can read: accuracy, off-by-one, MAE, confusion matrices, fairness breakdowns.

Works on plain numpy predictions (`{"gender": (N,2), "age_group": (N,G), "age": (N,1)}`), so the
same code scores a Keras model, a `.tflite` file or a peer model. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from faceage_tf.datasets import FaceRecord
from faceage_tf.files import atomic_write_text
from faceage_tf.labels import race_name
from faceage_tf.schema import Schema


def _scores(gender_pred, group_pred, age_pred, gender, group, age) -> dict:
    n = len(gender)
    if n == 0:
        return {"n": 0}
    return {
        "n": int(n),
        "gender_accuracy": float(np.mean(gender_pred == gender)),
        "age_group_accuracy": float(np.mean(group_pred == group)),
        "age_group_off_by_one": float(np.mean(np.abs(group_pred - group) <= 1)),
        "age_mae": float(np.mean(np.abs(age_pred - age))),
    }


# Age bands of the signed age error (lower bound inclusive; the last is open): a model pulled
# toward the crowded middle ages over-estimates the young and under-estimates the old.
AGE_BANDS = {"0-12": (0, 13), "13-19": (13, 20), "20-39": (20, 40), "40-59": (40, 60), "60+": (60, 1000)}


def age_bias(age_pred: np.ndarray, age: np.ndarray) -> dict:
    """Per `AGE_BANDS` band of the true age: faces and the mean signed error (predicted - true, years)."""
    bands = {}
    for name, (low, high) in AGE_BANDS.items():
        mask = (age >= low) & (age < high)
        bands[name] = {"n": int(mask.sum()),
                       "mean_signed_error": float(np.mean(age_pred[mask] - age[mask])) if mask.any() else None}
    return bands


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def evaluate(predictions: dict[str, np.ndarray], records: Sequence[FaceRecord], schema: Schema) -> dict:
    """All figures for one model on labelled faces: overall, confusion matrices, and broken down
    by gender, age group and race (race only where the data has it, as UTKFace does)."""
    gender = np.array([r.gender for r in records])
    age = np.array([r.age for r in records], np.float64)
    group = np.array([schema.age_group(r.age) for r in records])
    race = np.array([r.race for r in records])
    gender_pred = np.argmax(predictions["gender"], axis=-1)
    group_pred = np.argmax(predictions["age_group"], axis=-1)
    age_pred = np.asarray(predictions["age"], np.float64).reshape(-1)
    if not len(gender_pred) == len(group_pred) == len(age_pred) == len(records):
        raise ValueError(f"predictions cover {len(age_pred)} faces but there are {len(records)} records")

    def scores(mask):
        return _scores(gender_pred[mask], group_pred[mask], age_pred[mask], gender[mask], group[mask], age[mask])

    result = scores(np.ones(len(records), bool))
    result["age_bias"] = age_bias(age_pred, age)
    result["confusion"] = {
        "gender": confusion_matrix(gender, gender_pred, len(schema.gender_labels)).tolist(),
        "age_group": confusion_matrix(group, group_pred, schema.num_age_groups).tolist(),
    }
    result["by_gender"] = {label: scores(gender == i) for i, label in enumerate(schema.gender_labels)}
    result["by_age_group"] = {label: scores(group == i) for i, label in enumerate(schema.age_group_labels)}
    source = np.array([r.source for r in records])
    if any(source):
        result["by_source"] = {}
        for name in dict.fromkeys(source.tolist()):  # in order of appearance
            mask = source == name
            result["by_source"][name] = dict(scores(mask), age_bias=age_bias(age_pred[mask], age[mask]))
    if (race >= 0).any():
        result["by_race"] = {race_name(i): scores(race == i) for i in sorted(set(race.tolist())) if i >= 0}
        known = [v for v in result["by_race"].values() if v["n"]]
        correct = gender_pred == gender
        same_ages = {race_name(i): accuracy for i, accuracy in same_ages_accuracy(correct, race, group).items()}
        result["race_gap"] = {
            "gender_accuracy": max(v["gender_accuracy"] for v in known) - min(v["gender_accuracy"] for v in known),
            "gender_accuracy_ci95": gap_interval(correct, race),
            "gender_accuracy_same_ages": max(same_ages.values()) - min(same_ages.values()),
            "gender_accuracy_same_ages_ci95": gap_interval(correct, race, strata=group),
            "gender_accuracy_same_ages_by_race": same_ages,
            "age_mae": max(v["age_mae"] for v in known) - min(v["age_mae"] for v in known),
        }
        result["by_race_and_age_group"] = {
            race_name(i): {label: scores((race == i) & (group == g)) for g, label in enumerate(schema.age_group_labels)}
            for i in sorted(set(race.tolist())) if i >= 0}
    return result


def _cells(correct: np.ndarray, groups: np.ndarray, strata: np.ndarray | None):
    """Per group (>= 0, sorted) and stratum: faces and hits; and each stratum's share of the faces
    of every known group. No strata: one stratum."""
    known = groups >= 0
    strata = np.zeros(len(groups), np.int64) if strata is None else np.asarray(strata)
    names = sorted(set(groups[known].tolist()))
    size = int(strata[known].max()) + 1
    faces = np.stack([np.bincount(strata[groups == g], minlength=size) for g in names])
    hits = np.stack([np.bincount(strata[groups == g], weights=correct[groups == g], minlength=size) for g in names])
    share = np.bincount(strata[known], minlength=size) / known.sum()
    return names, faces, hits, share


def _at_shares(hits: np.ndarray, faces: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Each group's accuracy per stratum weighted by the strata's `share` (strata where a group
    has no faces left out of its weights); one stratum: its plain accuracy."""
    weights = share * (faces > 0)
    return (hits / np.maximum(faces, 1) * weights).sum(-1) / weights.sum(-1)


def same_ages_accuracy(correct: np.ndarray, groups: np.ndarray, age_groups: np.ndarray) -> dict[int, float]:
    """Each group's accuracy (groups < 0 left out) at the age mix of all the faces: its accuracy in
    each age group weighted by that age group's share of every known group's faces (direct
    standardisation). Gender is harder to read on babies, so a group with more babies scores lower
    at the same skill; at the same ages the difference that is left is the model's."""
    names, faces, hits, share = _cells(correct, groups, age_groups)
    return dict(zip(names, _at_shares(hits, faces, share).tolist()))


def gap_interval(correct: np.ndarray, groups: np.ndarray, *, strata: np.ndarray | None = None,
                 draws: int = 2000, seed: int = 0) -> list[float]:
    """95% interval of the gap in accuracy between the best and the worst group (groups < 0
    left out): each group's faces drawn with replacement, `draws` times (a draw's accuracy is
    binomial, so it is drawn as one). A small group's accuracy is noisy, and the gap takes the
    extremes, so it is wide. With `strata` (age groups, say), each group's faces are drawn per
    stratum and the gap is that of `same_ages_accuracy`."""
    _, faces, hits, share = _cells(correct, groups, strata)
    rng = np.random.default_rng(seed)
    rates = hits / np.maximum(faces, 1)
    drawn = np.stack([rng.binomial(n, rate, size=(draws, len(n))) for n, rate in zip(faces, rates)], axis=1)
    accuracies = _at_shares(drawn, faces, share)
    low, high = np.percentile(accuracies.max(axis=1) - accuracies.min(axis=1), [2.5, 97.5])
    return [float(low), float(high)]


def paired_bootstrap(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                     records: Sequence[FaceRecord], schema: Schema, *, draws: int = 2000, seed: int = 0) -> dict:
    """How much `candidate` differs from `reference` on the same faces, with a 95% interval: the
    faces are drawn with replacement `draws` times and both models are scored on each draw, so
    the interval holds only the noise of the difference (much narrower than either model's own).

    Returns:
        per figure (gender and 9-group accuracy, age MAE): `difference` (candidate - reference)
        and its `ci95` [low, high]; `faces` and `draws`.
    """
    gender = np.array([r.gender for r in records])
    age = np.array([r.age for r in records], np.float64)
    group = np.array([schema.age_group(r.age) for r in records])

    def per_face(predictions):
        return {"gender_accuracy": np.argmax(predictions["gender"], -1) == gender,
                "age_group_accuracy": np.argmax(predictions["age_group"], -1) == group,
                "age_mae": np.abs(np.asarray(predictions["age"], np.float64).reshape(-1) - age)}

    ref, cand = per_face(reference), per_face(candidate)
    draw = np.random.default_rng(seed).integers(0, len(records), size=(draws, len(records)))
    result = {"faces": len(records), "draws": draws}
    for key in ref:
        delta = cand[key].astype(np.float64) - ref[key]
        low, high = np.percentile(delta[draw].mean(axis=1), [2.5, 97.5])
        result[key] = {"difference": float(delta.mean()), "ci95": [float(low), float(high)]}
    return result


SUMMARY_KEYS = ("n", "gender_accuracy", "age_group_accuracy", "age_group_off_by_one", "age_mae")


def summary(result: dict) -> dict:
    """The headline figures of `evaluate`'s result, and the same per gender, age group and race
    (no confusion matrices): what a model card carries."""
    out = {k: result[k] for k in SUMMARY_KEYS}
    if "age_bias" in result:
        out["age_bias"] = result["age_bias"]
    if "by_source" in result:
        out["by_source"] = {name: {k: v[k] for k in (*SUMMARY_KEYS, "age_bias") if k in v}
                            for name, v in result["by_source"].items()}
    for key in ("by_gender", "by_age_group", "by_race"):
        if key in result:
            out[key] = {group: {k: v[k] for k in SUMMARY_KEYS if k in v} for group, v in result[key].items()}
    if "race_gap" in result:
        out["race_gap"] = result["race_gap"]
    return out


def _row(name: str, s: dict) -> str:
    if not s.get("n"):
        return f"| {name} | 0 | | | | |"
    return (f"| {name} | {s['n']} | {100 * s['gender_accuracy']:.1f} | {100 * s['age_group_accuracy']:.1f} | "
            f"{100 * s['age_group_off_by_one']:.1f} | {s['age_mae']:.2f} |")


HEADER = ("| | faces | gender acc % | age-group acc % | off-by-one % | age MAE (years) |\n"
          "|---|---:|---:|---:|---:|---:|")


def markdown_table(rows: dict[str, dict]) -> str:
    """A Markdown table with one row per named result."""
    return "\n".join([HEADER] + [_row(name, s) for name, s in rows.items()])


def bias_table(rows: dict[str, dict]) -> str:
    """A Markdown table of the mean signed age error per age band, one row per named result."""
    lines = ["| | " + " | ".join(AGE_BANDS) + " |", "|---" + "|---:" * len(AGE_BANDS) + "|"]
    for name, result in rows.items():
        cells = [f"{b['mean_signed_error']:+.2f} ({b['n']})" if b["n"] else "" for b in result["age_bias"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: dict, schema: Schema, title: str = "Evaluation") -> str:
    parts = [f"## {title}", "", markdown_table({"all": result})]
    if "by_source" in result:
        parts += ["", "### By source", "", markdown_table(result["by_source"])]
    if "age_bias" in result:
        rows = {"all": result, **result.get("by_source", {})}
        parts += ["", "### Mean signed age error by age band (predicted - true, years; faces)", "", bias_table(rows)]
    for key, heading in (("by_gender", "By gender"), ("by_age_group", "By age group"), ("by_race", "By race")):
        if key in result:
            parts += ["", f"### {heading}", "", markdown_table(result[key])]
    if "race_gap" in result:
        gap = result["race_gap"]
        interval = gap.get("gender_accuracy_ci95")  # absent from results written before it existed
        shown = f" (95% interval {100 * interval[0]:.1f} to {100 * interval[1]:.1f})" if interval else ""
        parts += ["", f"Gap between best and worst race group: gender accuracy {100 * gap['gender_accuracy']:.1f} "
                      f"points{shown}, age MAE {gap['age_mae']:.2f} years."]
        if "gender_accuracy_same_ages" in gap:
            low, high = gap["gender_accuracy_same_ages_ci95"]
            each = ", ".join(f"{name} {100 * accuracy:.1f}%" for name, accuracy in gap["gender_accuracy_same_ages_by_race"].items())
            parts += ["", f"At the same ages (each race group's gender accuracy per age group, weighted by the age "
                          f"groups' shares of all these faces): {each}; gap {100 * gap['gender_accuracy_same_ages']:.1f} "
                          f"points (95% interval {100 * low:.1f} to {100 * high:.1f})."]
    if "by_race_and_age_group" in result:
        labels = schema.age_group_labels
        parts += ["", "### Gender accuracy % by race and age group (faces)", "",
                  "| | " + " | ".join(labels) + " |", "|---" + "|---:" * len(labels) + "|"]
        for name, cells in result["by_race_and_age_group"].items():
            shown = [f"{100 * c['gender_accuracy']:.0f} ({c['n']})" if c["n"] else "" for c in cells.values()]
            parts.append(f"| {name} | " + " | ".join(shown) + " |")
    labels = schema.age_group_labels
    matrix = result["confusion"]["age_group"]
    parts += ["", "### Age-group confusion (rows: true, columns: predicted)", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    parts += [f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(matrix)]
    return "\n".join(parts) + "\n"


def plot_confusion(matrix, labels: Sequence[str], path: str, title: str) -> None:
    """Row-normalised confusion matrix as a PNG, with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    _save_figure(fig, path)


def plot_attention(faces: np.ndarray, warped: np.ndarray, heat: np.ndarray, path: str, captions=None) -> None:
    """A grid of faces: the input, what the spatial transformer passes on, and the trunk's saliency
    over it. `faces`/`warped` are uint8-range RGB, `heat` in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(faces)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(np.clip(faces[i], 0, 255).astype(np.uint8))
        axes[1, i].imshow(np.clip(warped[i], 0, 255).astype(np.uint8))
        axes[2, i].imshow(np.clip(warped[i], 0, 255).astype(np.uint8))
        axes[2, i].imshow(heat[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if captions:
            axes[0, i].set_title(captions[i], fontsize=7)
        for row in range(3):
            axes[row, i].axis("off")
    for row, label in enumerate(("input", "transformed", "saliency")):
        axes[row, 0].text(-0.1, 0.5, label, transform=axes[row, 0].transAxes, rotation=90, va="center", ha="right")
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(result: dict, schema: Schema, out_dir: str, title: str = "Evaluation") -> None:
    """`metrics.json`, `report.md` and the confusion-matrix PNGs into `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "metrics.json"), json.dumps(result, indent=2))
    atomic_write_text(os.path.join(out_dir, "report.md"), markdown_report(result, schema, title))
    plot_confusion(result["confusion"]["gender"], schema.gender_labels,
                   os.path.join(out_dir, "confusion_gender.png"), "Gender")
    plot_confusion(result["confusion"]["age_group"], schema.age_group_labels,
                   os.path.join(out_dir, "confusion_age_group.png"), "Age group")
