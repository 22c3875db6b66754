"""Natural sites from a table: one CSV row per image, with its label and its site.

Hospitals export lists more often than tidy folders: a CSV such as ::

    path,diagnosis,hospital
    a/0001.dcm,benign,north
    a/0002,malignant,north          <- a folder of .dcm slices: one 3D volume
    b/scan7.nii.gz,benign,south

gives one site per value of the site column. Paths are relative to the CSV's folder
(absolute paths are kept); images are read and prepared as in
:func:`fedlab.data.from_folders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..sites import Federation
from .base import Split
from .collect import (
    SPLITS,
    check_fractions,
    check_on_error,
    federation,
    read_items,
    stratified,
)
from .preprocess import Preprocess

__all__ = ["from_table"]


def from_table(csv: str | Path, image: str = "image", label: str = "label",
               site: str = "site", split: str | None = None,
               classes: Sequence[str] | None = None, val_fraction: float = 0.1,
               test_fraction: float = 0.2, seed: int = 0, *,
               image_size: int | tuple[int, ...] | None = None,
               spacing: float | tuple[float, ...] | None = None, intensity: str = "auto",
               window: tuple[float, float] = (40.0, 400.0),
               cache_dir: str | Path | None = None, on_error: str = "raise") -> Federation:
    """Sites from a CSV with one row per image.

    Parameters
    ----------
    csv : path
        The table (comma separated, with a header row).
    image, label, site : str
        Column names: the image's path (a file, or a folder of ``.dcm`` slices),
        relative to the CSV's folder; its class (a name, or an integer); its site.
    split : str, optional
        Column holding ``train``, ``val`` or ``test`` per row; default: each site is
        split by class with ``val_fraction`` and ``test_fraction``.
    classes : sequence of str, optional
        Class names in label order; every label must be one of them. Default: the
        sorted labels found (numerically when they are all integers).
    val_fraction, test_fraction : float
        Shares of each class moved to val and test (without ``split``), each in
        ``[0, 1)`` with a sum below 1.
    seed : int
        Seed of the (stratified) within-site split.
    image_size, spacing, intensity, window, cache_dir
        As for :func:`fedlab.data.from_folders`.
    on_error : str
        ``"raise"`` (default): a row with no path, label or site, a label outside
        ``classes``, a missing or unreadable file stops the load, naming the rows;
        ``"skip"``: those rows are left out and listed in the result's
        ``info["skipped"]`` (and a :class:`~fedlab.data.collect.SkippedFilesWarning`).
    """
    csv = Path(csv)
    if not csv.is_file():
        raise ValueError(f"csv must be an existing file, got {str(csv)!r}")
    check_fractions(val_fraction, test_fraction)
    check_on_error(on_error)
    prep = Preprocess(image_size=image_size, spacing=spacing, intensity=intensity,
                      window=window)
    rows = _rows(csv, {"image": image, "label": label, "site": site, "split": split})
    classes = [str(c) for c in classes] if classes is not None else _classes(rows)
    skipped: list = []
    good = _check_rows(rows, csv, classes, on_error, skipped)
    rng = np.random.default_rng(seed)
    found = {}
    for name in sorted({r["site"] for r in rows if r["site"]}):
        mine = [r for r in good if r["site"] == name]
        found[name] = _site(mine, name, classes, prep, cache_dir, on_error, skipped,
                            split is not None, (val_fraction, test_fraction, rng))
    if not found:
        raise ValueError(f"{csv} has no row with a site in column {site!r}")
    return federation(found, classes, csv.stem, "natural (table)", seed, skipped, prep)


def _rows(csv: Path, columns: dict[str, str | None]) -> list[dict]:
    """The table's rows as ``{"line", "image", "label", "site", "split"}`` strings
    (``""`` when empty, split None without a split column); a missing column is a
    ValueError naming the ones there are."""
    import pandas as pd

    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as err:  # noqa: BLE001 - pandas' parser errors vary
        raise ValueError(f"cannot read {csv} as a CSV table: {err}") from err
    for what, col in columns.items():
        if col is not None and col not in table.columns:
            raise ValueError(f"{what}={col!r} is not a column of {csv}; its columns are "
                             f"{list(table.columns)}")
    return [{"line": i + 2, **{what: (str(row[col]).strip() if col is not None else None)
                                for what, col in columns.items()}}
            for i, row in enumerate(table.to_dict("records"))]


def _classes(rows: list[dict]) -> list[str]:
    found = sorted({r["label"] for r in rows if r["label"]})
    if found and all(v.lstrip("-").isdigit() for v in found):
        return sorted(found, key=int)
    return found


def _check_rows(rows: list[dict], csv: Path, classes: list[str], on_error: str,
                skipped: list) -> list[dict]:
    """The rows with a site, an existing path, a known label (and split); the others
    raise (``on_error="raise"``, all listed) or go to ``skipped``."""
    good, bad = [], []
    for r in rows:
        r["path"] = csv.parent / r["image"]
        if problem := _problem(r, classes):
            bad.append((r, problem))
        else:
            good.append(r)
    if bad and on_error == "raise":
        listed = "; ".join(f"row {r['line']}: {p}" for r, p in bad[:8])
        more = f"; and {len(bad) - 8} more" if len(bad) > 8 else ""
        raise ValueError(f"{csv}: {len(bad)} row(s) cannot be used: {listed}{more}; fix the "
                         "table (or classes=), or pass on_error='skip' to leave them out")
    skipped += [(f"{csv.name} row {r['line']} ({r['image'] or 'no path'})", p) for r, p in bad]
    return good


def _problem(r: dict, classes: list[str]) -> str:
    if not r["site"]:
        return "the site is missing"
    if not r["image"]:
        return "the image path is missing"
    if not r["label"]:
        return "the label is missing"
    if r["label"] not in classes:
        return f"label {r['label']!r} is not in classes {classes}"
    if not r["path"].exists():
        return f"{r['image']} not found (paths are relative to the CSV's folder)"
    if r["split"] is not None and r["split"] not in SPLITS:
        return (f"split {r['split']!r} is not one of {SPLITS}" if r["split"] else
                "the split is missing")
    return ""


def _site(rows: list[dict], name: str, classes: list[str], prep: Preprocess, cache_dir,
          on_error: str, skipped: list, by_column: bool, fractions) -> dict[str, Split]:
    def items(rs):
        return [(r["path"], classes.index(r["label"])) for r in rs]

    if not by_column:
        part = read_items(items(rows), prep, cache_dir, on_error, skipped, f"site {name!r}")
        return stratified(part, *fractions)
    out = {"train": read_items(items([r for r in rows if r["split"] == "train"]), prep,
                               cache_dir, on_error, skipped, f"site {name!r} (train)")}
    for s in SPLITS[1:]:
        mine = [r for r in rows if r["split"] == s]
        out[s] = (read_items(items(mine), prep, cache_dir, on_error, skipped,
                             f"site {name!r} ({s})") if mine else
                  Split(np.zeros((0, *out["train"].images.shape[1:]), np.float32),
                        np.zeros(0, np.int64)))
    return out
