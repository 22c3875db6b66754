"""Datasets, synthetic images and partitioning into sites."""

from .base import ImageDataset, Split
from .medmnist import (
    DATASETS,
    ChecksumError,
    DataNotFoundError,
    default_data_dir,
    load_medmnist,
)
from .partition import IID, Dirichlet, assign, split
from .synthetic import make_synthetic

__all__ = [
    "DATASETS", "ChecksumError", "DataNotFoundError", "Dirichlet", "IID", "ImageDataset",
    "Split", "assign", "default_data_dir", "load", "load_medmnist", "make_synthetic",
    "split",
]


def load(name: str, root=None, download: bool = True, progress: bool = True,
         **kwargs) -> ImageDataset:
    """Load a dataset by name.

    ``"synthetic"`` gives generated medical-like images (keyword arguments go to
    :func:`make_synthetic`); any MedMNIST name (``fedlab.data.DATASETS``) is read from
    the data directory (``FEDLAB_DATA``, default ``data/``), downloaded and checked
    against its official MD5 when missing.
    """
    if name == "synthetic":
        return make_synthetic(**kwargs)
    if kwargs:
        raise TypeError(f"unexpected arguments for {name!r}: {sorted(kwargs)}")
    return load_medmnist(name, root=root, download=download, progress=progress)
