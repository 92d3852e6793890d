"""The model card inside a `.tflite` file: written at export, read by the runtime and the app.

The card is JSON (the `Schema` plus provenance, licence and measured metrics) stored as a
TFLite metadata entry named `faceage_model_card`, the standard place for such data in the
flatbuffer. Reading needs nothing but Python: a small flatbuffer walker below (the Android app
has the same walker in Kotlin). Writing re-packs the model with the flatbuffers schema that
ships with ai-edge-litert (or TensorFlow).

`sha256` in the card covers the whole file, the card included, with only the 64 hex digits of
that `sha256` value replaced by zeros: a card can carry the hash of the file it sits in, and
editing anything in it (labels, normalisation) breaks the hash. `verify` recomputes it.
`read_card` also checks the card's own consistency: a complete schema, and inputs/outputs equal
to the schema's tensor contract (`Schema.tensor_shapes`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from typing import Any

from faceage_tf.schema import Schema, output_key

CARD_NAME = "faceage_model_card"
CARD_FORMAT = "faceage_tf.model_card/2"  # 2: the sha256 covers the card too
_HASH_PLACEHOLDER = "0" * 64
_HASH_FIELD = '"sha256": "{}"'


class ModelFileError(ValueError):
    """A file that is not a usable faceage model; the message says why."""


# ---------------------------------------------------------------------------------------------
# Reading (pure Python)


class _Reader:
    """Just enough of the flatbuffers wire format to find TFLite metadata, with bounds checks."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def _fail(self, what: str):
        raise ModelFileError(f"{self.name}: truncated or corrupt TFLite file ({what})")

    def u16(self, pos):
        if not 0 <= pos <= len(self.data) - 2:
            self._fail(f"offset {pos} out of range")
        return struct.unpack_from("<H", self.data, pos)[0]

    def u32(self, pos):
        if not 0 <= pos <= len(self.data) - 4:
            self._fail(f"offset {pos} out of range")
        return struct.unpack_from("<I", self.data, pos)[0]

    def i32(self, pos):
        if not 0 <= pos <= len(self.data) - 4:
            self._fail(f"offset {pos} out of range")
        return struct.unpack_from("<i", self.data, pos)[0]

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field `index` of the table at `table`, or None if absent."""
        vtable = table - self.i32(table)
        if 4 + 2 * index >= self.u16(vtable):
            return None
        offset = self.u16(vtable + 4 + 2 * index)
        return table + offset if offset else None

    def indirect(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int) -> tuple[int, int]:
        """(start of elements, length) of the vector referenced at `pos`."""
        start = self.indirect(pos)
        length = self.u32(start)
        return start + 4, length

    def bytes_at(self, pos: int) -> tuple[int, int]:
        start, length = self.vector(pos)
        if start + length > len(self.data):
            self._fail("vector runs past the end of the file")
        return start, length


# Field indices from the TFLite schema (schema.fbs).
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_BUFFER_DATA = 0
_METADATA_NAME, _METADATA_BUFFER = 0, 1


def metadata_regions(data: bytes, name: str = "<model>") -> dict[str, tuple[int, int]]:
    """Every metadata entry of a TFLite flatbuffer: name -> (offset, length) of its bytes.

    Raises:
        ModelFileError: if `data` is not a TFLite flatbuffer or is truncated.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(f"{name}: not a TFLite model (no 'TFL3' identifier)")
    reader = _Reader(data, name)
    model = reader.indirect(0)
    buffers_pos = reader.field(model, _MODEL_BUFFERS)
    metadata_pos = reader.field(model, _MODEL_METADATA)
    if buffers_pos is None or metadata_pos is None:
        return {}
    buffers, n_buffers = reader.vector(buffers_pos)
    entries, n_entries = reader.vector(metadata_pos)
    regions = {}
    for i in range(n_entries):
        entry = reader.indirect(entries + 4 * i)
        name_pos = reader.field(entry, _METADATA_NAME)
        buffer_pos = reader.field(entry, _METADATA_BUFFER)
        if name_pos is None or buffer_pos is None:
            continue
        start, length = reader.bytes_at(name_pos)
        entry_name = data[start:start + length].decode("utf-8", "replace")
        index = reader.u32(buffer_pos)
        if index >= n_buffers:
            reader._fail(f"metadata {entry_name!r} points at buffer {index} of {n_buffers}")
        buffer = reader.indirect(buffers + 4 * index)
        data_pos = reader.field(buffer, _BUFFER_DATA)
        regions[entry_name] = reader.bytes_at(data_pos) if data_pos is not None else (0, 0)
    return regions


def read_card(data: bytes, name: str = "<model>") -> dict[str, Any]:
    """The model card embedded in TFLite bytes.

    Raises:
        ModelFileError: not a TFLite model, truncated, or without a (valid) model card.
    """
    regions = metadata_regions(data, name)
    if CARD_NAME not in regions:
        raise ModelFileError(f"{name}: TFLite model has no faceage model card (metadata {CARD_NAME!r})")
    start, length = regions[CARD_NAME]
    try:
        card = json.loads(data[start:start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{name}: model card is not valid JSON ({e})") from None
    if not isinstance(card, dict) or not str(card.get("format", "")).startswith("faceage_tf.model_card/"):
        raise ModelFileError(f"{name}: model card is not a faceage_tf model card")
    if card["format"] != CARD_FORMAT:
        raise ModelFileError(f"{name}: model card format {card['format']!r} is not {CARD_FORMAT!r} (an older "
                             "faceage_tf wrote it); export the model again with this version")
    card_schema(card, name)
    return card


def card_schema(card: dict[str, Any], name: str = "<model>") -> Schema:
    """The card's `Schema`, after checking it is complete and that the card's inputs/outputs are
    the schema's tensor contract.

    Raises:
        ModelFileError: naming what is missing or inconsistent.
    """
    data = card.get("schema")
    if not isinstance(data, dict):
        raise ModelFileError(f"{name}: model card's schema must be a JSON object, got {type(data).__name__}")
    missing = [f.name for f in dataclasses.fields(Schema) if f.name not in data]
    if missing:
        raise ModelFileError(f"{name}: model card's schema lacks {', '.join(missing)}")
    try:
        schema = Schema.from_dict(data)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{name}: model card has an invalid schema ({e})") from None
    try:
        found = {part: {output_key(k): list(v) for k, v in dict(card.get(part) or {}).items()} for part in ("inputs", "outputs")}
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{name}: model card lists malformed inputs/outputs ({e})") from None
    if found != schema.tensor_shapes():
        raise ModelFileError(f"{name}: model card's inputs/outputs {found} do not fit its schema, which asks for "
                             f"{schema.tensor_shapes()}")
    return schema


def file_hash(data: bytes, name: str = "<model>") -> str:
    """sha256 of the file with the card's own sha256 value (64 hex digits) zeroed."""
    regions = metadata_regions(data, name)
    if CARD_NAME in regions:
        start, length = regions[CARD_NAME]
        body = data[start:start + length]
        try:
            value = json.loads(body.decode("utf-8")).get("sha256")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            value = None
        if isinstance(value, str) and len(value) == 64:
            field = _HASH_FIELD.format(value).encode()
            if body.count(field) != 1:
                raise ModelFileError(f"{name}: model card holds its sha256 field {body.count(field)} times")
            data = data[:start] + body.replace(field, _HASH_FIELD.format(_HASH_PLACEHOLDER).encode()) + data[start + length:]
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, name: str = "<model>") -> dict[str, Any]:
    """`read_card`, and checks the card's sha256 against the file.

    Raises:
        ModelFileError: as `read_card`, or if the file was changed after export.
    """
    card = read_card(data, name)
    actual = file_hash(data, name)
    if card.get("sha256") != actual:
        raise ModelFileError(f"{name}: the file is truncated or was changed after export "
                             f"(its sha256 {actual} differs from the model card's {card.get('sha256')})")
    return card


# ---------------------------------------------------------------------------------------------
# Writing (needs the flatbuffers schema from ai-edge-litert or TensorFlow)


def tflite_schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # a training host without ai-edge-litert
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def _aligned_builder():
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        """Keeps byte vectors (weight buffers) 16-byte aligned, as TFLite's schema asks
        (`force_align: 16`), which the Python object API otherwise ignores."""

        def StartVector(self, elemSize, numElems, alignment):
            if elemSize == 1:
                alignment = max(alignment, 16)
            return super().StartVector(elemSize, numElems, alignment)

    return AlignedBuilder(1024)


def embed_card(model: bytes, card: dict[str, Any]) -> bytes:
    """TFLite bytes with `card` embedded (replacing any earlier card) and its sha256 filled in."""
    import numpy as np

    fb = tflite_schema()
    card = dict(card, format=CARD_FORMAT, sha256=_HASH_PLACEHOLDER)
    payload = json.dumps(card, sort_keys=True).encode("utf-8")

    tree = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    tree.buffers = tree.buffers or []
    tree.metadata = tree.metadata or []
    earlier = [m for m in tree.metadata if m.name in (CARD_NAME, CARD_NAME.encode())]
    if earlier:  # replace the earlier card's buffer in place: re-embedding never grows the file
        entry = earlier[0]
        tree.metadata = [m for m in tree.metadata if m is entry or m not in earlier]
    else:
        entry = fb.MetadataT()
        entry.name = CARD_NAME
        tree.buffers.append(fb.BufferT())
        entry.buffer = len(tree.buffers) - 1
        tree.metadata.append(entry)
    tree.buffers[entry.buffer].data = np.frombuffer(payload, dtype=np.uint8)
    builder = _aligned_builder()
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    packed = bytes(builder.Output())

    # Fill in the hash: same length as the placeholder, so no offset moves.
    digest = hashlib.sha256(packed).hexdigest()
    start, length = metadata_regions(packed)[CARD_NAME]
    body = packed[start:start + length].replace(_HASH_FIELD.format(_HASH_PLACEHOLDER).encode(),
                                               _HASH_FIELD.format(digest).encode())
    return packed[:start] + body + packed[start + length:]
