"""MedMNIST v2 (2D, 28×28) loader with checksum-verified download.

The files, URLs, MD5 sums, label names and split sizes are those of the official
MedMNIST release (Zenodo record 10519652, as listed by the ``medmnist`` package 3.0.2,
``medmnist/info.py``). This module reads the ``.npz`` files itself: it needs neither the
``medmnist`` package nor torchvision.

Cite MedMNIST v2 and the source dataset whenever you use one of these sets:
J. Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 10, 41 (2023).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .base import ImageDataset, Split
from .medmnist_info import DATASETS, DatasetInfo

__all__ = [
    "DATASETS", "ChecksumError", "DataNotFoundError", "DatasetInfo", "available",
    "default_data_dir", "download", "load_medmnist", "verify",
]

#: Seam for tests: every download goes through this function.
_urlopen = urllib.request.urlopen
_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file does not have the official MD5 sum; it was not loaded."""


def default_data_dir() -> Path:
    """The folder where dataset files are looked for and downloaded to.

    ``$FEDLAB_DATA`` if set; else the repository's ``data/`` folder when fedlab runs
    from a source checkout (the folder holds ``README.md``); else ``~/.cache/fedlab``.
    """
    env = os.environ.get("FEDLAB_DATA")
    if env:
        return Path(env).expanduser()
    repo_data = Path(__file__).resolve().parents[2] / "data"
    if (repo_data / "README.md").is_file():
        return repo_data
    return Path.home() / ".cache" / "fedlab"


def _dataset_info(name: str) -> DatasetInfo:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(
            f"unknown MedMNIST dataset {name!r}; allowed names: {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[key]


def _root(root: str | os.PathLike | None) -> Path:
    return default_data_dir() if root is None else Path(root).expanduser()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _not_found(info: DatasetInfo, folder: Path, reason: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"{info.filename} was not found in {folder} ({reason}).\n"
        f"To fix it, do one of:\n"
        f"  - download {info.url}\n"
        f"    by hand into {folder} as {info.filename} and check `md5sum` gives {info.md5};\n"
        f"  - set FEDLAB_DATA to a folder that already holds {info.filename};\n"
        f"  - run `fedlab data download {info.name}` on a machine with internet access."
    )


def _check(info: DatasetInfo, path: Path) -> None:
    actual = _md5(path)
    if actual != info.md5:
        raise ChecksumError(
            f"{path} has md5 {actual}, expected {info.md5} (the official file from "
            f"{info.url}). The file was not used and was left in place: delete it, then "
            f"run `fedlab data download {info.name}` or copy the official file there."
        )


def _fetch(info: DatasetInfo, folder: Path, progress: bool) -> Path:
    """Download ``info.url`` to ``folder/<name>.npz.part``, verify, rename atomically."""
    dest = folder / info.filename
    part = folder / f"{info.filename}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _urlopen(info.url, timeout=_TIMEOUT_S) as response, open(part, "wb") as fh:
            headers = getattr(response, "headers", None)
            total = int(headers.get("Content-Length") or 0) if headers is not None else 0
            from tqdm.auto import tqdm

            with tqdm(total=total or None, unit="B", unit_scale=True, desc=info.filename,
                      disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:  # URLError, HTTPError, timeouts and disk errors
        part.unlink(missing_ok=True)
        raise _not_found(info, folder, f"download failed: {exc}") from exc
    actual = _md5(part)
    if actual != info.md5:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"the download of {info.filename} from {info.url} has md5 {actual}, expected "
            f"{info.md5}. The file was deleted and not used; try again later or fetch it "
            f"by hand into {folder}."
        )
    os.replace(part, dest)
    return dest


def download(name: str, root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Make sure ``<root>/<name>.npz`` exists with the official MD5; download if missing.

    Returns the verified path. Raises `DataNotFoundError` when the download fails and
    `ChecksumError` when a file (existing or downloaded) has the wrong MD5.
    """
    info, folder = _dataset_info(name), _root(root)
    path = folder / info.filename
    if path.is_file():
        _check(info, path)
        return path
    return _fetch(info, folder, progress)


def verify(name: str, root: str | os.PathLike | None = None) -> Path:
    """Check that ``<root>/<name>.npz`` exists and has the official MD5; never downloads.

    Returns the path; raises `DataNotFoundError` or `ChecksumError` otherwise.
    """
    info, folder = _dataset_info(name), _root(root)
    path = folder / info.filename
    if not path.is_file():
        raise _not_found(info, folder, "verify() does not download")
    _check(info, path)
    return path


def available(root: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which dataset files are present in ``root`` (presence only; `verify` checks MD5)."""
    folder = _root(root)
    return {name: (folder / info.filename).is_file() for name, info in DATASETS.items()}


def _split(data: np.lib.npyio.NpzFile, split: str, path: Path) -> Split:
    try:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
    except KeyError as exc:
        raise ValueError(f"{path} is not a MedMNIST file: it lacks {exc}") from exc
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"{path}: {split}_images has unexpected shape {images.shape}")
    x = np.ascontiguousarray(images, dtype=np.float32)
    x /= 255.0
    return Split(x, labels.reshape(-1).astype(np.int64))


def load_medmnist(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> ImageDataset:
    """Load a MedMNIST v2 28×28 dataset with its official train / val / test splits.

    Parameters
    ----------
    name : str
        One of ``DATASETS`` (e.g. ``"pneumoniamnist"``), case-insensitive.
    root : path, optional
        Folder holding ``<name>.npz``; default `default_data_dir()`.
    download : bool
        Download the official file when it is missing.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    ImageDataset
        Images ``float32`` ``(N, C, 28, 28)`` in ``[0, 1]``, labels ``int64`` ``(N,)``.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the allowed names).
    DataNotFoundError
        The file is missing and ``download`` is False or the download failed.
    ChecksumError
        The file's MD5 differs from the official one; the file was not loaded.
    """
    info, folder = _dataset_info(name), _root(root)
    path = folder / info.filename
    if path.is_file():
        _check(info, path)
    elif not download:
        raise _not_found(info, folder, "download=False")
    else:
        path = _fetch(info, folder, progress)
    with np.load(path, allow_pickle=False) as data:
        train, val, test = (_split(data, s, path) for s in ("train", "val", "test"))
    return ImageDataset(
        name=info.name, train=train, val=val, test=test, classes=info.classes,
        license=info.license, citation=info.citation, description=info.description,
        extra={"task": info.task, "url": info.url, "md5": info.md5, "path": str(path)},
    )
