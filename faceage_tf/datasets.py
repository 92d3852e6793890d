"""Face datasets as labelled records: UTKFace, Adience, CSV and prepared crops; bad data reported;
content splits; several sources in one run.

Pure Python + Pillow (no TensorFlow): parsing, validation, de-duplication by content and
stratified, seeded splits written to a manifest. `faceage_tf.pipeline` turns records into tf.data.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import os
import random
import re
from typing import Sequence


from faceage_tf import preprocess
from faceage_tf.files import atomic_write_text
from faceage_tf.labels import RACES
from faceage_tf.schema import Schema

MAX_VALID_AGE = 116  # oldest age in UTKFace; anything above is a labelling error
SPLITS = ("train", "val", "test")

# age_gender_race_datetime.jpg.chip.jpg; race may be missing and datetime may be odd.
_UTKFACE_NAME = re.compile(r"^(\d+)_(\d+)_(?:(\d+)_)?\d+[^_]*\.chip\.jpg$")


@dataclasses.dataclass(frozen=True)
class FaceRecord:
    """One labelled face crop. `race` is -1 when unknown; `fold` is Adience's cross-validation fold;
    `source` names the data set it came from (figures are reported per source); `zoom` is how
    many times the template's framing the image frames (1: the face crop itself; a prepared crop
    holds the served crop as its centre 1 / zoom, with a margin for augmentation)."""

    path: str
    age: float
    gender: int
    race: int = -1
    fold: int = -1
    source: str = ""
    zoom: float = 1.0


@dataclasses.dataclass
class DataReport:
    """Every file that was left out, with the reason; printed and saved next to a training run."""

    source: str
    total: int = 0
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    not_drawn: int = 0  # faces left aside by a `limit` (their images are not checked)

    def add(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    @property
    def kept(self) -> int:
        return self.total - len(self.problems) - self.not_drawn

    def counts(self) -> dict[str, int]:
        """Problems by kind: each reason up to its first ':' or ' (' (the details differ)."""
        return dict(collections.Counter(re.split(r":| \(", reason)[0] for _, reason in self.problems))

    def to_dict(self) -> dict:
        return {
            "source": self.source, "total": self.total, "kept": self.kept, "left_out": len(self.problems),
            "not_drawn": self.not_drawn, "counts": self.counts(),
            "problems": [{"path": p, "reason": r} for p, r in self.problems],
        }

    def summary(self) -> str:
        drawn = f", {self.not_drawn} not drawn (--limit)" if self.not_drawn else ""
        lines = [f"{self.source}: {self.kept} of {self.total} faces kept, {len(self.problems)} left out{drawn}"]
        lines += [f"  {count:5d}  {reason}" for reason, count in sorted(self.counts().items())]
        return "\n".join(lines)


def check_image(path: str) -> str | None:
    """Why the training pipeline could not use the image at `path`, or None. It is read by the
    pipeline's own reader (`preprocess.open_image`: regular files only, under its size and pixel
    limits, fully decoded), so what passes here decodes in training."""
    try:
        preprocess.open_image(path)
    except preprocess.ImageError as e:
        return str(e).removeprefix(f"{path}: ")
    except Exception as e:  # noqa: BLE001 -- any other failure of a decoder is a reason too, not a crash
        return f"unreadable image ({type(e).__name__}: {e})"
    return None


def validate_images(records: list[FaceRecord], report: DataReport, workers: int = 8) -> list[FaceRecord]:
    """The records whose images `check_image` accepts; the others go into `report` with the reason."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reasons = list(pool.map(check_image, [r.path for r in records]))
    kept = []
    for record, reason in zip(records, reasons):
        if reason is None:
            kept.append(record)
        else:
            report.add(record.path, reason)
    return kept


def parse_utkface_name(name: str) -> tuple[int, int, int]:
    """(age, gender, race) from a UTKFace file name; race is -1 when the name has none.

    Raises:
        ValueError: if the name does not parse or a label is out of range.
    """
    match = _UTKFACE_NAME.match(name)
    if not match:
        raise ValueError(f"name does not parse: {name!r}")
    age, gender = int(match.group(1)), int(match.group(2))
    race = int(match.group(3)) if match.group(3) is not None else -1
    if not 0 <= age <= MAX_VALID_AGE:
        raise ValueError(f"age out of range: {age} in {name!r}")
    if gender not in (0, 1):
        raise ValueError(f"gender out of range: {gender} in {name!r}")
    if race >= len(RACES):
        raise ValueError(f"race out of range: {race} in {name!r}")
    return age, gender, race


def load_utkface(root: str, *, validate=True, workers=8) -> tuple[list[FaceRecord], DataReport]:
    """All faces in a UTKFace folder (labels in the file names), sorted by name."""
    report = DataReport(source=f"utkface:{root}")
    records = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path) or name.startswith(".") or name.lower().endswith((".md", ".txt")):
            continue
        report.total += 1
        if not os.path.exists(path):
            report.add(path, "dangling symbolic link" if os.path.islink(path) else "no such file")
            continue
        try:
            age, gender, race = parse_utkface_name(name)
        except ValueError as e:
            report.add(path, str(e))
            continue
        records.append(FaceRecord(path, float(age), gender, race))
    if validate:
        records = validate_images(records, report, workers)
    return records, report


def _adience_age(text: str) -> float:
    """Adience ages are ranges '(25, 32)' or single numbers '35'; ranges give their midpoint."""
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    if not numbers or len(numbers) > 2 or text.strip() == "None":
        raise ValueError(f"no age label: {text!r}")
    return sum(numbers) / len(numbers)


def load_adience(root: str, *, validate=True, workers=8) -> tuple[list[FaceRecord], DataReport]:
    """Adience's aligned faces, labelled by `fold_{k}_data.txt` (k = 0..4, the 5-fold protocol).

    Images are read from `root/aligned/{user_id}/landmark_aligned_face.{face_id}.{original_image}`.
    """
    report = DataReport(source=f"adience:{root}")
    records = []
    fold_files = sorted(f for f in os.listdir(root) if re.fullmatch(r"fold_\d+_data\.txt", f))
    if not fold_files:
        raise FileNotFoundError(f"{root}: no Adience fold_*_data.txt files")
    for fold_file in fold_files:
        fold = int(re.findall(r"\d+", fold_file)[0])
        with open(os.path.join(root, fold_file), newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                report.total += 1
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                path = os.path.join(root, "aligned", row.get("user_id", ""),
                                    f"landmark_aligned_face.{row.get('face_id', '')}.{row.get('original_image', '')}")
                gender = {"m": 0, "f": 1}.get(row.get("gender", ""))
                try:
                    age = _adience_age(row.get("age", ""))
                except ValueError as e:
                    report.add(path, str(e))
                    continue
                if gender is None:
                    report.add(path, f"no gender label: {row.get('gender', '')!r}")
                    continue
                records.append(FaceRecord(path, age, gender, fold=fold))
    if validate:
        records = validate_images(records, report, workers)
    return records, report


_GENDERS = {"0": 0, "1": 1, "m": 0, "f": 1, "male": 0, "female": 1}


def load_csv(csv_path: str, *, validate=True, workers=8) -> tuple[list[FaceRecord], DataReport]:
    """A CSV with a header `path,age,gender` (optional `race`); paths are relative to the CSV."""
    report = DataReport(source=f"csv:{csv_path}")
    base = os.path.dirname(os.path.abspath(csv_path))
    records = []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "age", "gender"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path}: CSV header lacks column(s) {sorted(missing)}; expected path,age,gender")
        for line, row in enumerate(reader, start=2):
            report.total += 1
            path = os.path.join(base, (row["path"] or "").strip())
            try:
                age = float(row["age"])
            except (TypeError, ValueError):
                report.add(path, f"bad age: {row['age']!r} on line {line}")
                continue
            if not 0 <= age <= MAX_VALID_AGE:
                report.add(path, f"age out of range: {row['age']!r} on line {line}")
                continue
            gender = _GENDERS.get((row["gender"] or "").strip().lower())
            if gender is None:
                report.add(path, f"bad gender: {row['gender']!r} on line {line}")
                continue
            race = (row.get("race") or "").strip()
            records.append(FaceRecord(path, age, gender, int(race) if race.isdigit() else -1))
    if validate:
        records = validate_images(records, report, workers)
    return records, report


# Written by `faceage_tf.prepare` next to each source's crops: how they were cut.
PREPARED_RECORDS, PREPARED_INFO = "records.json", "info.json"
PREPARED_ZOOM = 1.5  # the margin training expects around the template's framing (prepare.ZOOM)
# A prepared crop is named by the sha1 of its photo and a hash of the way it was cut.
_PREPARED_NAME = re.compile(r"^([0-9a-f]{40})-[0-9a-f]{8}\.png$")


def prepared_crop_name(photo_sha1: str, cut: str) -> str:
    return f"{photo_sha1}-{cut}.png"


def prepared_info(root: str) -> dict:
    """`info.json` of a folder of prepared crops: zoom, input_size, size (px) and template."""
    path = os.path.join(root, PREPARED_INFO)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{root}: no {PREPARED_INFO}; not a folder of crops from faceage_tf.prepare "
                                "(or cut by an older version: run `python -m faceage_tf.prepare` again)")
    with open(path) as f:
        return json.load(f)


def check_prepared(root: str, schema: Schema, zoom: float = PREPARED_ZOOM) -> dict:
    """The crops' info; raises ValueError naming both values if they were cut for another input
    size, zoom or face template than `schema` and `zoom` ask for."""
    info = prepared_info(root)
    wanted = {"input_size": schema.input_size, "zoom": zoom, "size": round(schema.input_size * zoom),
              "template": [list(p) for p in schema.template.keypoints]}
    found = [f"{key} is {json.dumps(info.get(key))} in {os.path.join(root, PREPARED_INFO)} but {json.dumps(value)} here"
             for key, value in wanted.items() if info.get(key) != value]
    if found:
        raise ValueError("; ".join(found) + ". (prepared crops are cut for one input size, zoom and template: "
                         "run `python -m faceage_tf.prepare` for this schema)")
    return info


def load_prepared(root: str, *, validate=True, workers=8, schema: Schema | None = None,
                  zoom: float = PREPARED_ZOOM) -> tuple[list[FaceRecord], DataReport]:
    """Crops cut by `faceage_tf.prepare` (its `records.json`), checked against `schema` if given.
    The faces prepare left out are in its own `report.json`, not here."""
    info = check_prepared(root, schema, zoom) if schema is not None else prepared_info(root)
    report = DataReport(source=f"prepared:{root}")
    with open(os.path.join(root, PREPARED_RECORDS)) as f:
        rows = json.load(f)
    records = []
    for row in rows:
        report.total += 1
        path = row["path"] if os.path.isabs(row["path"]) else os.path.join(root, row["path"])
        if not os.path.exists(path):
            report.add(path, "no such file")
            continue
        records.append(FaceRecord(**dict(row, path=path, zoom=float(info["zoom"]))))
    if validate:
        records = validate_images(records, report, workers)
    return records, report


LOADERS = {"utkface": load_utkface, "adience": load_adience, "csv": load_csv, "prepared": load_prepared}


def load_dataset(kind: str, path: str, *, schema: Schema | None = None, **kwargs) -> tuple[list[FaceRecord], DataReport]:
    """The records of a data set of `kind` at `path`; prepared crops are checked against `schema`."""
    if kind not in LOADERS:
        raise ValueError(f"dataset kind must be one of {sorted(LOADERS)}. Received: {kind!r}")
    if kind == "prepared":
        kwargs["schema"] = schema
    return LOADERS[kind](path, **kwargs)


def normalize_sources(sources, dataset: str, data: str) -> list[dict]:
    """A run's data sources as `{"kind", "path", "name"}` dicts, from dicts or 'KIND:PATH' strings
    (name: the folder's name for prepared crops, else the kind); none: the one `dataset` at `data`."""
    if not sources:
        sources = [{"kind": dataset, "path": data}]
    result = []
    for source in sources:
        if isinstance(source, str):
            kind, _, path = source.partition(":")
            source = {"kind": kind, "path": path}
        if not isinstance(source, dict) or not source.get("kind") or not source.get("path"):
            raise ValueError(f"a source is {{'kind': ..., 'path': ..., 'name': ...}} or 'KIND:PATH'. Received: {source!r}")
        unknown = sorted(set(source) - {"kind", "path", "name"})
        if unknown:
            raise ValueError(f"source keys must be kind, path and name. Received: {unknown} in {source!r}")
        if source["kind"] not in LOADERS:
            raise ValueError(f"source kind must be one of {sorted(LOADERS)}. Received: {source['kind']!r}")
        default = os.path.basename(os.path.normpath(source["path"])) if source["kind"] == "prepared" else source["kind"]
        result.append({"kind": source["kind"], "path": source["path"], "name": source.get("name") or default})
    names = [s["name"] for s in result]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must differ (figures are reported per source). Received: {names}")
    return result


def content_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def photo_hash(record: FaceRecord) -> str:
    """The sha1 of the photo a face comes from: read from a prepared crop's name, else the file's
    own content. Splits group faces by it: a crop's bytes depend on the library versions that cut
    it, the photo's do not, so the same seed splits the same way on every machine."""
    match = _PREPARED_NAME.match(os.path.basename(record.path))
    return match.group(1) if match else content_hash(record.path)


def split_by_content(
    records: Sequence[FaceRecord], schema: Schema, *, val_fraction=0.1, test_fraction=0.1, seed=0
) -> dict[str, list[FaceRecord]]:
    """Seeded train/val/test split, stratified by gender and age group, by photo content.

    The faces of byte-identical photos (`photo_hash`) form one group that lands in a single
    split, so a picture that appears twice under two names is never in both train and test.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"Bad split fractions. Received: {val_fraction=}, {test_fraction=}")
    groups = collections.defaultdict(list)
    for record in records:
        groups[photo_hash(record)].append(record)
    strata = collections.defaultdict(list)
    for digest in sorted(groups):
        first = groups[digest][0]
        strata[(first.gender, schema.age_group(first.age))].append(digest)
    rng = random.Random(seed)
    splits = {name: [] for name in SPLITS}
    for key in sorted(strata):
        digests = strata[key]
        rng.shuffle(digests)
        n_test = round(len(digests) * test_fraction)
        n_val = round(len(digests) * val_fraction)
        for index, digest in enumerate(digests):
            name = "test" if index < n_test else "val" if index < n_test + n_val else "train"
            splits[name].extend(groups[digest])
    for name in SPLITS:
        splits[name].sort(key=lambda r: r.path)
    return splits


def split_by_file(records: Sequence[FaceRecord], held_out: dict[str, set[str]]) -> dict[str, list[FaceRecord]]:
    """The split a split file fixes (`read_split_file`): the faces of the photos it lists for
    "val" and "test" go there, every other face trains."""
    splits = {name: [] for name in SPLITS}
    for record in sorted(records, key=lambda r: r.path):
        digest = photo_hash(record)
        splits["test" if digest in held_out["test"] else "val" if digest in held_out["val"] else "train"].append(record)
    return splits


def held_out_photos(splits: dict[str, list[FaceRecord]]) -> dict:
    """A split as a split file: per source, the sorted sha1s of the validation and test photos."""
    sources = sorted({r.source for name in ("val", "test") for r in splits[name]})
    return {"sources": {source: {name: sorted({photo_hash(r) for r in splits[name] if r.source == source})
                                 for name in ("val", "test")} for source in sources}}


def read_split_file(path: str) -> dict[str, dict[str, set[str]]]:
    """A split file (`held_out_photos`, as JSON): {source name: {"val": sha1s, "test": sha1s}}.

    Raises:
        ValueError: not a split file, or a photo listed in both splits (the message names the file).
    """
    try:
        with open(path) as f:
            sources = json.load(f)["sources"]
        held_out = {source: {name: set(lists[name]) for name in ("val", "test")} for source, lists in sources.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a split file ({{\"sources\": {{NAME: {{\"val\": [...], \"test\": [...]}}}}}}): "
                         f"{type(e).__name__}: {e}") from e
    for source, lists in held_out.items():
        both = lists["val"] & lists["test"]
        if both:
            raise ValueError(f"{path}: source {source!r} lists {len(both)} photo(s) in both val and test, "
                             f"e.g. {sorted(both)[0]}")
    return held_out


def split_by_fold(records: Sequence[FaceRecord], test_fold: int) -> dict[str, list[FaceRecord]]:
    """Adience's protocol: fold `test_fold` is the test set, the next fold validates, the rest train."""
    folds = sorted({r.fold for r in records})
    if test_fold not in folds:
        raise ValueError(f"test_fold must be one of {folds}. Received: {test_fold}")
    val_fold = folds[(folds.index(test_fold) + 1) % len(folds)]
    splits = {name: [] for name in SPLITS}
    for r in records:
        splits["test" if r.fold == test_fold else "val" if r.fold == val_fold else "train"].append(r)
    return splits


def write_manifest(path: str, splits: dict[str, list[FaceRecord]], **info) -> None:
    """Writes the split (every record with its labels) as JSON, atomically."""
    data = dict(info, splits={name: [dataclasses.asdict(r) for r in recs] for name, recs in splits.items()})
    atomic_write_text(path, json.dumps(data, indent=1))


def read_manifest(path: str) -> dict[str, list[FaceRecord]]:
    with open(path) as f:
        data = json.load(f)
    return {name: [FaceRecord(**r) for r in recs] for name, recs in data["splits"].items()}
