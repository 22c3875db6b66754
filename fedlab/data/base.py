"""In-memory image datasets: the common currency of loaders, partitioners and sites."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Split", "ImageDataset"]


@dataclass(frozen=True)
class Split:
    """Images and labels of one split.

    Parameters
    ----------
    images : np.ndarray
        ``float32`` array of shape ``(N, C, H, W)`` (images) or ``(N, C, D, H, W)``
        (volumes, e.g. from :func:`fedlab.data.make_volumes`) with values in ``[0, 1]``.
    labels : np.ndarray
        ``int64`` array of shape ``(N,)`` with class indices (classification), of
        shape ``(N, H, W)`` (``(N, D, H, W)`` for volumes) with a class index per pixel
        (segmentation masks), or a ``float32`` array shaped like the images of target
        images (reconstruction: see :func:`fedlab.data.make_reconstruction`).
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim not in (4, 5):
            raise ValueError(f"images must have shape (N, C, H, W) or, for volumes, "
                             f"(N, C, D, H, W), got {self.images.shape}")
        n = len(self.images)
        if self.labels.dtype.kind == "f" and self.labels.ndim == self.images.ndim:  # targets
            if self.labels.shape[0] != n or self.labels.shape[2:] != self.images.shape[2:]:
                raise ValueError(f"float labels are target images and must have shape "
                                 f"({n}, C, {', '.join(map(str, self.images.shape[2:]))}), "
                                 f"got {self.labels.shape}")
            if not np.isfinite(self.labels).all():
                raise ValueError("target images hold NaN or infinite values")
            if self.images.dtype.kind == "f" and not np.isfinite(self.images).all():
                raise ValueError("images hold NaN or infinite values; replace or drop those "
                                 "images first")
            return
        if self.labels.shape not in ((n,), (n, *self.images.shape[2:])):
            raise ValueError(
                f"labels must have shape ({n},) (classes) or ({n}, "
                f"{', '.join(map(str, self.images.shape[2:]))}) (masks), "
                f"got {self.labels.shape}"
            )
        if not (np.issubdtype(self.labels.dtype, np.integer) or self.labels.dtype == bool):
            raise TypeError(f"labels must be integer class indices, got dtype "
                            f"{self.labels.dtype} (cast them with labels.astype(np.int64))")
        if self.images.dtype.kind == "f" and not np.isfinite(self.images).all():
            bad = int((~np.isfinite(self.images)).sum())
            raise ValueError(f"images hold {bad} NaN or infinite values; replace or drop "
                             "those images first")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def task(self) -> str:
        """``"reconstruction"`` when the labels are images, ``"segmentation"`` when they
        are masks, else ``"classification"``."""
        if self.labels.dtype.kind == "f" and self.labels.ndim > 1:
            return "reconstruction"
        return "segmentation" if self.labels.ndim > 1 else "classification"

    @property
    def spatial_dims(self) -> int:
        """2 for images ``(N, C, H, W)``, 3 for volumes ``(N, C, D, H, W)``."""
        return self.images.ndim - 2

    def subset(self, index: np.ndarray) -> Split:
        """The samples at ``index`` (a new Split sharing no memory with this one)."""
        return Split(self.images[index], self.labels[index])

    @staticmethod
    def concat(splits: list[Split]) -> Split:
        """Stack several splits into one, in the order given."""
        return Split(
            np.concatenate([s.images for s in splits]),
            np.concatenate([s.labels for s in splits]),
        )


@dataclass(frozen=True)
class ImageDataset:
    """A classification dataset with official train / val / test splits.

    Attributes
    ----------
    name : str
        Short lowercase name, e.g. ``"pneumoniamnist"``.
    train, val, test : Split
        The three splits.
    classes : tuple of str
        Class names, indexed by label.
    license : str
        Licence of the data (SPDX-like, e.g. ``"CC BY 4.0"``).
    citation : str
        What to cite when the data are used.
    description : str
        A few sentences on what the images show.
    extra : dict
        Anything else about the source: e.g. the generator and its seed for synthetic
        data, the task, URL, MD5 and file path for MedMNIST.
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    license: str = ""
    citation: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.classes)
        for split in ("train", "val", "test"):
            labels = getattr(self, split).labels
            if labels.dtype.kind == "f":  # target images: no classes to check
                continue
            if len(labels) and (labels.min() < 0 or labels.max() >= n):
                bad = sorted({int(v) for v in np.unique(labels) if not 0 <= v < n})[:5]
                raise ValueError(f"{split} labels must be class indices in [0, {n}) for "
                                 f"classes {tuple(self.classes)[:5]}, got {bad}")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, ...]:
        """``(H, W)`` of the images, ``(D, H, W)`` of volumes."""
        return tuple(int(s) for s in self.train.images.shape[2:])

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, classes={len(self.classes)}, "
            f"shape={(self.n_channels, *self.image_size)}, license={self.license!r})"
        )
