"""Writing outputs safely: a file in one step, and a directory not blocked by a file.

The scripts' outputs (embeddings, decoded clouds, barycenters) and the clouds a run keeps
are written through :func:`replaced_atomically`, so a full disk or an interruption leaves
the previous file in place instead of a truncated one; :func:`file_in_the_way` lets a
caller refuse an output directory before any work.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["file_in_the_way", "replaced_atomically", "save_npy_atomically"]


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write to.

    When the block succeeds, the file is flushed to disk and renamed onto ``path`` (one
    step on POSIX and Windows); when it fails, it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                    suffix=f".partial{path.suffix}")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_npy_atomically(path: str | Path, array: np.ndarray) -> Path:
    """``np.save`` through :func:`replaced_atomically`, read back before it replaces ``path``
    (``np.save`` can leave a short file without an error when the disk is full)."""
    array = np.asarray(array)
    with replaced_atomically(path) as temporary:
        np.save(temporary, array)
        try:
            back = np.load(temporary, mmap_mode="r", allow_pickle=False)
            complete = back.shape == array.shape and back.dtype == array.dtype
        except ValueError:
            complete = False
        if not complete:
            raise OSError(f"writing {path} stopped short (is the disk full?); the file was "
                          "left as it was.")
    return Path(path)


def file_in_the_way(directory: str | Path) -> Path | None:
    """The file that keeps ``directory`` from being (or being made) a directory: itself or
    its nearest existing parent, when that is not a directory; else ``None``."""
    for candidate in (Path(directory), *Path(directory).parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
