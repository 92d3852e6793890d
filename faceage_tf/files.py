"""Atomic file writes: readers (and a process killed mid-write) never leave or see half a file.

Pure Python; used by training, evaluation and export.
"""

from __future__ import annotations

import os

TEMPORARY_MARK = ".tmp"  # in the names of the temporary files beside a target (`.NAME.tmpPID`)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes to a temporary file beside `path`, then renames it: readers never see half a file.
    A failed write (disk full, file-size limit) raises and leaves `path` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}{TEMPORARY_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def copy_atomically(source: str, target: str) -> None:
    """Copies `source` to `target` with `atomic_write_bytes`."""
    with open(source, "rb") as f:
        atomic_write_bytes(target, f.read())


def remove_stale_temporaries(directory: str) -> list[str]:
    """Deletes the temporary files that killed writers left in `directory`; returns their names."""
    removed = []
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if name.startswith(".") and TEMPORARY_MARK in name:
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed
