"""A site in deployment: its data in one file at its node, and what the server knows of it.

:func:`export_site` writes one site's splits to one ``.npz`` file, the only data its
SuperNode is given; :func:`load_site` reads it back at the node (no pickles:
``allow_pickle=False``). :func:`site_info` is what a node tells the server when the run
starts — sizes, the image shape, the class list, label counts and a fingerprint, the
summaries a site may share — and :class:`RemoteSite` is the server's view built from it:
a :class:`~fedlab.sites.Site` without images, so :func:`fedlab.run` plans the same rounds
(weights by examples, the model's input shape) while every image stays at its node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..data.base import Split
from ..sites import SPLITS, Site

__all__ = ["RemoteSite", "export_site", "load_site", "site_info"]


def export_site(site: Site, path: str | Path) -> Path:
    """Write ``site``'s splits and class list to ``path`` (``.npz``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"name": np.array(site.name),
                                     "classes": np.array(list(site.classes), dtype=str)}
    for split in SPLITS:
        part = site.split(split)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = part.images, part.labels
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_site(path: str | Path) -> Site:
    """The site :func:`export_site` wrote to ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"site file {path} does not exist (fedlab deploy writes one "
                                "per site with export_site)")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("name", "classes", *(f"{s}_images" for s in SPLITS))
                   if k not in f.files]
        if missing:
            raise ValueError(f"site file {path} lacks {missing}; write it with export_site")
        parts = {s: Split(f[f"{s}_images"], f[f"{s}_labels"]) for s in SPLITS}
        return Site(str(f["name"]), parts["train"], parts["val"], parts["test"],
                    [str(c) for c in f["classes"]])


def site_info(site: Site) -> dict[str, Any]:
    """What a node tells the server about its site (JSON-safe): no image, no label."""
    part = site.split("train")
    return {"name": site.name, "classes": list(site.classes),
            "sizes": {s: site.size(s) for s in SPLITS},
            "image_shape": list(part.images.shape[1:]),
            "label_shape": list(part.labels.shape[1:]), "label_dtype": str(part.labels.dtype),
            "label_counts": site.label_counts("train").tolist(),
            "fingerprint": site.fingerprint()}


class RemoteSite(Site):
    """The server's view of a site whose data stay at its node (see the module docstring).

    Its splits are empty arrays of the site's shapes; :meth:`size`, :meth:`label_counts`
    and :meth:`fingerprint` report what the node said; :meth:`tensors` refuses, since
    nothing here can train or score on the site's images.

    Parameters
    ----------
    info : dict
        What the node said about its site (:func:`site_info`).
    """

    def __init__(self, info: Mapping[str, Any]) -> None:
        shape, label_shape = tuple(info["image_shape"]), tuple(info["label_shape"])
        dtype = np.dtype(info["label_dtype"])
        empty = Split(np.zeros((0, *shape), np.float32), np.zeros((0, *label_shape), dtype))
        super().__init__(str(info["name"]), empty, empty, empty, info["classes"])
        self.info = dict(info)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={n}" for s, n in self.info["sizes"].items())
        return f"RemoteSite({self.name!r}, {sizes})"

    def size(self, split: str = "train") -> int:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return int(self.info["sizes"][split])

    def label_counts(self, split: str = "train") -> np.ndarray:
        if split != "train":
            raise ValueError(f"site {self.name!r} shares its train label counts only")
        return np.asarray(self.info["label_counts"])

    def fingerprint(self) -> str:
        return str(self.info["fingerprint"])

    def tensors(self, split: str, device: Any = "cpu"):
        raise RuntimeError(f"site {self.name!r}'s images stay at its node; train and score "
                           "it through the deployment's executor")
