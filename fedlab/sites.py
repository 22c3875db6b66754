"""Sites (simulated hospitals) and the federation they form.

A :class:`Site` owns its private train / val / test data. The rest of fedlab reaches
the data only through the site's methods: local training and evaluation run *at* the
site, and what leaves it is model state, counts and metrics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .data.base import Split

__all__ = ["Site", "Federation"]

SPLITS = ("train", "val", "test")


class Site:
    """One participant of a federation, holding its own data.

    Parameters
    ----------
    name : str
        Site name, unique within a federation.
    train, val, test : Split
        The site's private splits.
    classes : sequence of str
        Class names of the task (shared knowledge, not private data).
    """

    def __init__(self, name: str, train: Split, val: Split, test: Split,
                 classes: Sequence[str]) -> None:
        self.name = name
        self.classes = tuple(classes)
        self._data = {"train": train, "val": val, "test": test}
        self._tensors: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self._data[s])}" for s in SPLITS)
        return f"Site({self.name!r}, {sizes})"

    def size(self, split: str = "train") -> int:
        """Number of samples in ``split`` (what FedAvg weights by)."""
        return len(self.split(split))

    @property
    def n_examples(self) -> int:
        return self.size("train")

    def label_counts(self, split: str = "train") -> np.ndarray:
        """Samples per class in ``split`` (pixels per class for segmentation masks; for
        a reconstruction task, whose one "class" is the image, the number of images): a
        summary a site may share."""
        labels = self.split(split).labels
        if labels.dtype.kind == "f":
            return np.array([len(labels)])
        return np.bincount(labels.ravel(), minlength=len(self.classes))

    def tensors(self, split: str, device: torch.device | str = "cpu",
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The split as ``(images, labels)`` tensors on ``device``, cached.

        Used by the code that runs *at* the site (local training, evaluation).
        """
        key = (split, str(device))
        if key not in self._tensors:
            part = self.split(split)
            x = torch.from_numpy(np.ascontiguousarray(part.images, dtype=np.float32))
            y = torch.from_numpy(part.labels.astype(
                np.float32 if part.labels.dtype.kind == "f" else np.int64))
            self._tensors[key] = (x.to(device), y.to(device))
        return self._tensors[key]

    def peek(self, n: int = 4, split: str = "train", seed: int = 0) -> Split:
        """A few samples, for teaching figures only (a real site would not share them)."""
        part = self.split(split)
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(part), size=min(n, len(part)), replace=False))
        return part.subset(idx)

    def split(self, split: str) -> Split:
        """The ``split`` as arrays, for data preparation that runs *at* the site (a
        scanner, label noise, an attack on its own data); training and evaluation use
        :meth:`tensors`."""
        if split not in self._data:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._data[split]

    def fingerprint(self) -> str:
        """A short SHA-1 of every split's images and labels: a run directory records it,
        so a run resumed on other data under the same site names is refused. Computed
        once (a Site's splits never change: :meth:`replace` makes a new Site)."""
        if self._fingerprint is not None:
            return self._fingerprint
        h = hashlib.sha1()
        for split in sorted(self._data):
            part = self._data[split]
            for a in (part.images, part.labels):
                a = np.ascontiguousarray(a)
                h.update(f"{split}|{a.dtype}|{a.shape}|".encode())
                h.update(a.tobytes())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def replace(self, name: str | None = None, **splits: Split) -> Site:
        """A copy of this site with some splits (``train=``, ``val=``, ``test=``) or its
        name replaced; the others are shared with this site."""
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise ValueError(f"splits must be among {SPLITS}, got {bad}")
        parts = {s: splits.get(s, self._data[s]) for s in SPLITS}
        return Site(name or self.name, parts["train"], parts["val"], parts["test"],
                    self.classes)

    @staticmethod
    def pool(sites: Sequence[Site], name: str = "pooled") -> Site:
        """One site holding the union of all sites' data (the centralised baseline)."""
        parts = {s: Split.concat([site.split(s) for site in sites]) for s in SPLITS}
        return Site(name, parts["train"], parts["val"], parts["test"], sites[0].classes)


class Federation(Sequence[Site]):
    """The sites of one experiment, with how they were made.

    Behaves as a list of :class:`Site`; ``pooled()`` gives the centralised view.

    Parameters
    ----------
    sites : sequence of Site
        The participants, at least one, with unique names.
    dataset : str
        Name of the dataset the sites were drawn from (for display only).
    scheme : str
        How the data was split between sites, e.g. ``"Dirichlet(alpha=0.5)"`` (for
        display only).
    seed : int, optional
        The seed the split was made with; ``None`` when unknown or not random.
    """

    def __init__(self, sites: Sequence[Site], dataset: str = "", scheme: str = "",
                 seed: int | None = None) -> None:
        if not sites:
            raise ValueError("a federation needs at least one site")
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise ValueError(f"site names must be unique, got {names}")
        self.sites = list(sites)
        self.dataset, self.scheme, self.seed = dataset, scheme, seed
        #: site name -> the simulated scanner its images went through (acquisition
        #: shift); empty when the split applied none
        self.scanners: dict = {}

    def __getitem__(self, i):  # type: ignore[override]
        return self.sites[i]

    def __len__(self) -> int:
        return len(self.sites)

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites)

    def __repr__(self) -> str:
        return (f"Federation({len(self)} sites, dataset={self.dataset!r}, "
                f"scheme={self.scheme}, seed={self.seed})")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.sites[0].classes

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sites]

    def pooled(self) -> Site:
        """All sites' data in one place: the centralised baseline's single site."""
        return Site.pool(self.sites)

    def label_counts(self, split: str = "train") -> np.ndarray:
        """Array ``(n_sites, n_classes)`` of samples per class at each site."""
        return np.stack([s.label_counts(split) for s in self.sites])

    def sizes(self) -> dict[str, dict[str, int]]:
        """``{site: {split: n}}``."""
        return {s.name: {p: s.size(p) for p in SPLITS} for s in self.sites}
