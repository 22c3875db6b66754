"""Gathering a site's own files into splits: what folders and tables have in common.

:func:`read_items` reads a site's ``(path, label)`` items (skipping unreadable ones
when asked, and saying so), :func:`check_shapes` explains images that do not share one
shape, :func:`stratified` splits a site by class, and :func:`federation` builds the
:class:`~fedlab.sites.Federation` with a report of what was skipped in its ``info``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..sites import Federation, Site
from .base import Split
from .preprocess import Preprocess, read_image
from .readers import ImageReadError

__all__ = ["ON_ERROR", "SkippedFilesWarning", "check_fractions", "check_on_error",
           "check_shapes", "federation", "read_items", "stratified"]

SPLITS = ("train", "val", "test")
ON_ERROR = ("raise", "skip")


class SkippedFilesWarning(UserWarning):
    """Some files (or table rows) were skipped with ``on_error="skip"``; the list of
    ``(path, reason)`` is in the federation's ``info["skipped"]``."""


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must be in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must be < 1")


def read_items(items: Sequence[tuple[Path, int]], preprocess: Preprocess,
               cache_dir, on_error: str, skipped: list, where: str) -> Split:
    """The images of ``items`` (path, label) as one Split.

    An unreadable or missing file raises (``on_error="raise"``) or is appended to
    ``skipped`` as ``(path, reason)`` (``"skip"``). ``where`` names the site (or site
    and split) in messages.
    """
    images, labels, names = [], [], []
    n_skipped = len(skipped)
    for path, label in items:
        try:
            x = read_image(path, preprocess, cache_dir)
        except (ImageReadError, FileNotFoundError) as err:
            if on_error == "raise":
                raise
            skipped.append((str(path), str(err)))
            continue
        images.append(x)
        labels.append(label)
        names.append(Path(path).name)
    if not images:
        more = f" ({len(skipped) - n_skipped} skipped as unreadable)" if \
            len(skipped) > n_skipped else ""
        raise ValueError(f"{where} has no readable image{more}: add images to it, or "
                         "leave it out")
    check_shapes([(n, x.shape) for n, x in zip(names, images, strict=True)], where)
    return Split(np.stack(images), np.asarray(labels, dtype=np.int64))


def check_shapes(shapes: Sequence[tuple[str, tuple]], where: str) -> None:
    """Raise a ValueError saying what to do when the ``(name, (C, ...))`` shapes differ."""
    first: dict[tuple, str] = {}
    for name, shape in shapes:
        first.setdefault(tuple(shape), name)
    if len(first) < 2:
        return
    (a, na), (b, nb) = list(first.items())[:2]
    seen = f"{a} ({na}) and {b} ({nb})" + (f" and {len(first) - 2} more" if len(first) > 2
                                          else "")
    if len(a) != len(b):
        hint = "2D images and 3D volumes cannot be mixed: keep one kind"
    elif a[1:] != b[1:]:
        hint = ("pass image_size=(H, W) (volumes: (D, H, W)) to resize them all to one "
                "size" + (", or spacing= to resample volumes first" if len(a) == 4 else ""))
    else:
        hint = "channel counts differ: save all images as grey (1) or RGB (3)"
    raise ValueError(f"images in {where} differ in shape (C, ...): {seen}; {hint}")


def stratified(part: Split, val: float, test: float, rng: np.random.Generator,
               ) -> dict[str, Split]:
    """``part`` split into train / val / test with the shares ``val`` and ``test`` of
    each class (rounded), drawn with ``rng``."""
    idx = {s: [] for s in SPLITS}
    for c in np.unique(part.labels):
        members = rng.permutation(np.flatnonzero(part.labels == c))
        n_val, n_test = round(val * len(members)), round(test * len(members))
        idx["val"].append(members[:n_val])
        idx["test"].append(members[n_val:n_val + n_test])
        idx["train"].append(members[n_val + n_test:])
    return {s: part.subset(np.sort(np.concatenate(v)) if v else np.array([], int))
            for s, v in idx.items()}


def federation(found: dict[str, dict[str, Split]], classes: Sequence[str], dataset: str,
               scheme: str, seed: int, skipped: list, preprocess: Preprocess | None,
               ) -> Federation:
    """Sites from ``{site: {split: Split}}``, one shape for all (else a ValueError).

    The result's ``info`` holds ``skipped`` (the ``(path, reason)`` list, also given as
    a :class:`SkippedFilesWarning` when not empty) and the ``preprocess`` options.
    """
    check_shapes([(f"site {name!r}", p.images.shape[1:]) for name, parts in found.items()
                  for p in parts.values() if len(p)], "these sites")
    sites = [Site(name, *(parts[s] for s in SPLITS), classes=classes)
             for name, parts in found.items()]
    fed = Federation(sites, dataset=dataset, scheme=scheme, seed=seed)
    fed.info = {"skipped": list(skipped),
                "preprocess": preprocess.as_dict() if preprocess is not None else None}
    if skipped:
        listed = "; ".join(f"{p} ({r})" for p, r in skipped[:10])
        more = f"; and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) or row(s), listed in "
                      f"info['skipped']: {listed}{more}", SkippedFilesWarning, stacklevel=3)
    return fed
