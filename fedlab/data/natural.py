"""Natural sites: the sites the data came from, not a simulated split.

- :func:`from_metadata`: a dataset plus a site id per sample (e.g. a "hospital"
  column of the metadata), for each of train / val / test.
- :func:`from_folders`: your own images, one folder (or one ``.npz`` file) per site.

Both return a :class:`~fedlab.sites.Federation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..sites import Federation, Site
from .base import ImageDataset, Split

__all__ = ["from_metadata", "from_folders"]

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".npy")


def from_metadata(data: ImageDataset, site_ids: Mapping[str, Sequence],
                  names: Sequence[str] | None = None) -> Federation:
    """Sites given by a site id per sample.

    Parameters
    ----------
    data : ImageDataset
        The dataset.
    site_ids : mapping
        ``{"train": ids, "val": ids, "test": ids}``, one id (str or int) per sample of
        each split, in the split's order.
    names : sequence of str, optional
        Site order (and which ids to expect); default: the sorted ids. Site names are
        the ids as strings.
    """
    ids = {}
    for s in SPLITS:
        if s not in site_ids:
            raise ValueError(f"site_ids must have keys {SPLITS}, missing {s!r}")
        ids[s] = np.asarray(site_ids[s]).astype(str)
        if ids[s].shape != (len(getattr(data, s)),):
            raise ValueError(f"site_ids[{s!r}] must hold one id per {s} sample "
                             f"({len(getattr(data, s))}), got shape {ids[s].shape}")
    found = sorted(set().union(*(set(v) for v in ids.values())))
    order = [str(n) for n in names] if names is not None else found
    if stray := sorted(set(found) - set(order)):
        raise ValueError(f"names must include every site id; missing {stray}")
    sites = []
    for name in order:
        parts = [getattr(data, s).subset(np.flatnonzero(ids[s] == name)) for s in SPLITS]
        if len(parts[0]) == 0:
            raise ValueError(f"site {name!r} has no sample in site_ids['train']")
        sites.append(Site(name, *parts, classes=data.classes))
    fed = Federation(sites, dataset=data.name, scheme="natural (metadata)")
    return fed


def from_folders(root: str | Path, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 seed: int = 0, classes: Sequence[str] | None = None) -> Federation:
    """Sites from a folder per site.

    Layouts (per site, mixable)::

        root/<site>/<class>/<image>             split into train/val/test by fraction
        root/<site>/<split>/<class>/<image>     split = train, val, test (as given)
        root/<site>.npz                         images + labels (split by fraction), or
                                                train_images, train_labels, val_..., test_...

    Images are ``.npy`` arrays (``(H, W)``, ``(C, H, W)`` or ``(H, W, C)``, C = 1 or 3)
    or ``.png`` files, which need Pillow (not a fedlab requirement: install it, or save
    the images as ``.npy``). Integer images are scaled by their dtype's maximum, float
    images must lie in ``[0, 1]``; all images must share one shape.

    Parameters
    ----------
    root : path
        Folder holding one entry per site (hidden entries are skipped).
    val_fraction, test_fraction : float
        Shares of each class moved to val and test when a site has no split folders,
        each in ``[0, 1)`` with a sum below 1.
    seed : int
        Seed of the (stratified) within-site split.
    classes : sequence of str, optional
        Class names in label order; default: the sorted class folder names (for
        ``.npz`` sites: the file's ``classes`` array, else ``"0"``, ``"1"``, ...).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be an existing folder, got {str(root)!r}")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must be in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must be < 1")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix == ".npz"))
    if not entries:
        raise ValueError(f"root {str(root)!r} holds no site folder or .npz file")
    classes = list(classes) if classes is not None else _class_names(entries)
    rng = np.random.default_rng(seed)
    found = {}
    for entry in entries:
        parts = _read_site(entry, classes)
        found[entry.stem] = (parts if "val" in parts
                             else _stratified(parts["all"], val_fraction, test_fraction, rng))
    shapes = {p.images.shape[1:] for parts in found.values() for p in parts.values() if len(p)}
    if len(shapes) > 1:
        raise ValueError(f"all sites' images must share one shape, got {sorted(shapes)}")
    sites = [Site(name, *(parts[s] for s in SPLITS), classes=classes)
             for name, parts in found.items()]
    fed = Federation(sites, dataset=root.name, scheme="natural (folders)", seed=seed)
    return fed


def _class_names(entries: list[Path]) -> list[str]:
    folders = [e for e in entries if e.is_dir()]
    if folders:
        names = {c.name for e in folders for b in _split_dirs(e) or [e] for c in b.iterdir()
                 if c.is_dir()}
        return sorted(names)
    n = 0
    for e in entries:
        with np.load(e, allow_pickle=False) as z:
            if "classes" in z:
                return [str(c) for c in z["classes"]]
            n = max([n] + [int(z[k].max()) + 1 for k in z.files
                           if k.endswith("labels") and z[k].size])
    return [str(i) for i in range(n)]


def _split_dirs(entry: Path) -> list[Path]:
    """``entry/train``, ``entry/val``, ``entry/test`` if the site has split folders."""
    present = [s for s in SPLITS if (entry / s).is_dir()]
    if present and len(present) < 3:
        raise ValueError(f"{entry} has split folders {present}; it needs all of {SPLITS}")
    return [entry / s for s in present]


def _read_site(entry: Path, classes: list[str]) -> dict[str, Split]:
    if entry.suffix == ".npz":
        with np.load(entry, allow_pickle=False) as z:
            if "images" in z:
                return {"all": _split_arrays(z["images"], z["labels"], entry, classes)}
            return {s: _split_arrays(z[f"{s}_images"], z[f"{s}_labels"], entry, classes)
                    for s in SPLITS}
    if _split_dirs(entry):
        return {s: _read_classes(entry / s, classes) for s in SPLITS}
    return {"all": _read_classes(entry, classes)}


def _split_arrays(images: np.ndarray, labels: np.ndarray, where: Path,
                  classes: list[str]) -> Split:
    labels = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"{where}: labels must be in [0, {len(classes) - 1}]")
    x = np.stack([_chw(img, where) for img in images]) if len(images) else \
        np.zeros((0, 1, 1, 1), np.float32)
    return Split(x, labels)


def _read_classes(folder: Path, classes: list[str]) -> Split:
    images, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).glob("*") if p.suffix.lower()
                       in IMAGE_SUFFIXES) if (folder / cls).is_dir() else []
        images += [_chw(_read_image(p), p) for p in files]
        labels += [label] * len(files)
    if not images:
        raise ValueError(f"{folder} holds no .png or .npy image in a class folder {classes}")
    try:
        x = np.stack(images)
    except ValueError as err:
        raise ValueError(f"images in {folder} differ in shape; resize them first") from err
    return Split(x, np.array(labels, dtype=np.int64))


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(f"reading {path.name} needs Pillow (pip install pillow), which is "
                          f"not installed; or save the images as .npy arrays") from err
    with Image.open(path) as im:
        return np.asarray(im if im.mode in ("L", "I;16") else im.convert("RGB"))


def _chw(img: np.ndarray, where: Path) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[None]
    elif img.ndim == 3 and img.shape[0] not in (1, 3) and img.shape[-1] in (1, 3):
        img = np.moveaxis(img, -1, 0)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"{where}: images must be (H, W), (C, H, W) or (H, W, C) with "
                         f"C = 1 or 3, got shape {img.shape}")
    if np.issubdtype(img.dtype, np.integer):
        return (img / np.iinfo(img.dtype).max).astype(np.float32)
    if img.size and (img.min() < 0 or img.max() > 1):
        raise ValueError(f"{where}: float images must lie in [0, 1]")
    return img.astype(np.float32)


def _stratified(part: Split, val: float, test: float, rng: np.random.Generator,
                ) -> dict[str, Split]:
    idx = {s: [] for s in SPLITS}
    for c in np.unique(part.labels):
        members = rng.permutation(np.flatnonzero(part.labels == c))
        n_val, n_test = round(val * len(members)), round(test * len(members))
        idx["val"].append(members[:n_val])
        idx["test"].append(members[n_val:n_val + n_test])
        idx["train"].append(members[n_val + n_test:])
    return {s: part.subset(np.sort(np.concatenate(v)) if v else np.array([], int))
            for s, v in idx.items()}
