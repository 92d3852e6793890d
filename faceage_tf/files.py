"""Atomic file writes: readers (and a process killed mid-write) never leave or see half a file.

Pure Python; used by training, evaluation and export.
"""

from __future__ import annotations

import errno
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
        if os.path.getsize(tmp) != len(data):
            raise OSError(errno.EIO, f"wrote {os.path.getsize(tmp)} of {len(data)} bytes")
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(e.errno, f"{path}: could not write it ({e.strerror or e}); the file was left as it was") from None
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
