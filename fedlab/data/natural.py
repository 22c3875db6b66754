"""Natural sites: the sites the data came from, not a simulated split.

- :func:`from_metadata`: a dataset plus a site id per sample (e.g. a "hospital"
  column of the metadata), for each of train / val / test.
- :func:`from_folders`: your own images (DICOM, NIfTI, PNG, NumPy), one folder (or one
  ``.npz`` file) per site; :func:`fedlab.data.from_table` reads the same from a CSV.

Both return a :class:`~fedlab.sites.Federation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..sites import Federation, Site
from .base import ImageDataset, Split
from .collect import (
    check_fractions,
    check_on_error,
    check_shapes,
    federation,
    read_items,
    stratified,
)
from .preprocess import Preprocess, prepare
from .readers import IMAGE_SUFFIXES, channel_first, image_format

__all__ = ["from_metadata", "from_folders"]

SPLITS = ("train", "val", "test")


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
                 seed: int = 0, classes: Sequence[str] | None = None, *,
                 image_size: int | tuple[int, ...] | None = None,
                 spacing: float | tuple[float, ...] | None = None, intensity: str = "auto",
                 window: tuple[float, float] = (40.0, 400.0), cache_dir: str | Path | None = None,
                 on_error: str = "raise") -> Federation:
    """Sites from a folder per site.

    Layouts (per site, mixable)::

        root/<site>/<class>/<image>             split into train/val/test by fraction
        root/<site>/<split>/<class>/<image>     split = train, val, test (as given)
        root/<site>.npz                         images + labels (split by fraction), or
                                                train_images, train_labels, val_..., test_...

    An ``<image>`` is a DICOM file (``.dcm``), a DICOM series (a folder of ``.dcm``
    slices: one 3D volume), NIfTI (``.nii``, ``.nii.gz``), PNG or a ``.npy`` array,
    read with MONAI's readers (:mod:`fedlab.data.readers`; DICOM and NIfTI need the
    ``[io]`` extra) and prepared as :class:`~fedlab.data.preprocess.Preprocess` says.
    Other files are ignored. 2D images give splits ``(N, C, H, W)``, volumes
    ``(N, C, D, H, W)``; all must end up with one shape (else pass ``image_size=``).

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
    image_size, spacing, intensity, window
        Preprocessing (:class:`~fedlab.data.preprocess.Preprocess`): target shape,
        target voxel spacing (mm), ``"auto"``, ``"none"``, ``"minmax"``, ``"ct"`` (with
        ``window=(center, width)`` in HU) or ``"mr"``.
    cache_dir : path, optional
        Keep each preprocessed image there (:mod:`fedlab.data.image_cache`), so a
        second load reads ``.npy`` files instead of decoding again; None: no cache.
    on_error : str
        ``"raise"`` (default): an unreadable file stops the load, naming it; ``"skip"``:
        it is left out, listed in the result's ``info["skipped"]`` and in a
        :class:`~fedlab.data.collect.SkippedFilesWarning`.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be an existing folder, got {str(root)!r}")
    check_fractions(val_fraction, test_fraction)
    check_on_error(on_error)
    prep = Preprocess(image_size=image_size, spacing=spacing, intensity=intensity,
                      window=window)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix == ".npz"))
    if not entries:
        raise ValueError(f"root {str(root)!r} holds no site folder or .npz file")
    classes = list(classes) if classes is not None else _class_names(entries)
    rng = np.random.default_rng(seed)
    found, skipped = {}, []
    for entry in entries:
        parts = _Reader(classes, prep, cache_dir, on_error, skipped, entry.stem).site(entry)
        found[entry.stem] = (parts if "val" in parts
                             else stratified(parts["all"], val_fraction, test_fraction, rng))
    return federation(found, classes, root.name, "natural (folders)", seed, skipped, prep)


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


class _Reader:
    """Reads one site's entry with the load's options."""

    def __init__(self, classes, prep, cache_dir, on_error, skipped, site) -> None:
        self.classes, self.prep, self.cache_dir = classes, prep, cache_dir
        self.on_error, self.skipped, self.name = on_error, skipped, site

    def site(self, entry: Path) -> dict[str, Split]:
        if entry.suffix == ".npz":
            with np.load(entry, allow_pickle=False) as z:
                if "images" in z:
                    return {"all": self.arrays(z["images"], z["labels"], entry)}
                return {s: self.arrays(z[f"{s}_images"], z[f"{s}_labels"], entry)
                        for s in SPLITS}
        if _split_dirs(entry):
            return {s: self.folder(entry / s, f"site {self.name!r} ({s})") for s in SPLITS}
        return {"all": self.folder(entry, f"site {self.name!r}")}

    def arrays(self, images: np.ndarray, labels: np.ndarray, where: Path) -> Split:
        labels = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"{where}: labels must be in [0, {len(self.classes) - 1}]")
        if not len(images):
            return Split(np.zeros((0, 1, 1, 1), np.float32), labels)
        x = [prepare(channel_first(img, where), self.prep, "npy", where) for img in images]
        check_shapes([(f"{where.name}[{i}]", a.shape) for i, a in enumerate(x)], str(where))
        return Split(np.stack(x), labels)

    def folder(self, folder: Path, where: str) -> Split:
        items = []
        for label, cls in enumerate(self.classes):
            if (folder / cls).is_dir():
                items += [(p, label) for p in sorted((folder / cls).iterdir())
                          if not p.name.startswith(".") and image_format(p) is not None]
        if not items:
            raise ValueError(f"{where} ({folder}) holds no image ({', '.join(IMAGE_SUFFIXES)} "
                             f"or a folder of .dcm slices) in a class folder {self.classes}")
        return read_items(items, self.prep, self.cache_dir, self.on_error, self.skipped,
                          where)
