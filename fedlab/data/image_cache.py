"""A cache of preprocessed images on disk, keyed by what the image is made from.

Decoding DICOM series and resampling volumes is slow; a second look at the same files
should not pay for it again. The key is the SHA-256 of the file's bytes (for a DICOM
series, every slice's name and bytes, in name order) together with the preprocessing
options and a format version, so an edited file or a changed option never returns a
stale array. Entries are plain ``.npy`` files, loaded with ``allow_pickle=False`` and
written atomically (a temporary file in the same folder, then ``os.replace``), so a
killed run leaves either the whole entry or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["CACHE_VERSION", "cache_key", "cached", "store"]

#: bump when what an entry holds changes (axis order, dtype, a preprocessing step)
CACHE_VERSION = 1
_CHUNK = 1 << 20


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path]


def cache_key(path: str | Path, options: dict) -> str:
    """SHA-256 (hex) of the bytes at ``path`` and the JSON of ``options``.

    Parameters
    ----------
    path : path
        A file, or a folder (a DICOM series: all its files, with their names).
    options : dict
        JSON-able preprocessing options (``Preprocess.as_dict()``).
    """
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, **options}, sort_keys=True).encode())
    for f in _files(Path(path)):
        h.update(b"\0" + f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def cached(cache_dir: str | Path, key: str) -> np.ndarray | None:
    """The array stored under ``key``, or None when there is none (or it is unreadable:
    it is then simply made again)."""
    path = Path(cache_dir) / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def store(cache_dir: str | Path, key: str, array: np.ndarray) -> Path:
    """Write ``array`` under ``key`` atomically; returns the entry's path."""
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{key}.npy"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final
