"""Datasets, synthetic images and partitioning into sites."""

from .acquisition import Acquisition
from .base import ImageDataset, Split
from .collect import SkippedFilesWarning
from .medmnist import (
    DATASETS,
    ChecksumError,
    DataNotFoundError,
    default_data_dir,
    load_medmnist,
)
from .natural import from_folders, from_metadata
from .noise import noisy_labels, rescan
from .partition import IID, Dirichlet, assign, split
from .preprocess import Preprocess, read_image
from .readers import ImageReadError, image_info
from .reconstruction import make_reconstruction, undersample
from .segmentation import make_segmentation, split_segmentation
from .shift import AcquisitionShift, Scanner, apply_shift
from .skew import Pathological, QuantitySkew, Shards
from .stats import (
    distance_matrix,
    distance_to_global,
    intensity_histogram,
    intensity_stats,
    js_distance,
    label_distance,
    label_shares,
    scanner_info,
    total_variation,
)
from .synthetic import make_synthetic
from .synthetic3d import VOLUME_CLASSES, make_volume_sites, make_volumes
from .table import from_table

__all__ = [
    "DATASETS", "Acquisition", "AcquisitionShift", "ChecksumError", "DataNotFoundError",
    "Dirichlet", "IID",
    "ImageDataset", "Pathological", "QuantitySkew", "Scanner", "Shards", "Split",
    "apply_shift", "assign", "default_data_dir", "distance_matrix", "distance_to_global",
    "from_folders", "from_metadata", "intensity_histogram", "intensity_stats", "js_distance",
    "label_distance", "label_shares", "load", "load_medmnist", "make_reconstruction",
    "make_segmentation", "make_synthetic", "noisy_labels", "rescan", "scanner_info", "split",
    "split_segmentation", "total_variation", "undersample",
    "VOLUME_CLASSES", "make_volume_sites", "make_volumes",
    "ImageReadError", "Preprocess", "SkippedFilesWarning", "from_table", "image_info",
    "read_image",
]


def load(name: str, root=None, download: bool = True, progress: bool = True,
         **kwargs) -> ImageDataset:
    """Load a dataset by name.

    ``"synthetic"`` gives generated medical-like images (keyword arguments go to
    :func:`make_synthetic`), ``"synthetic-segmentation"`` the same kind of images with
    organ and lesion masks (:func:`make_segmentation`); any MedMNIST name
    (``fedlab.data.DATASETS``) is read from the data directory (``FEDLAB_DATA``,
    default ``data/``), downloaded and checked against its official MD5 when missing.

    Parameters
    ----------
    name : str
        ``"synthetic"``, ``"synthetic-segmentation"`` or a MedMNIST name.
    root : path, optional
        MedMNIST only: the folder holding ``<name>.npz``; default
        :func:`default_data_dir`.
    download : bool
        MedMNIST only: download the official file when it is missing.
    progress : bool
        MedMNIST only: show a progress bar while downloading.
    """
    if name == "synthetic":
        return make_synthetic(**kwargs)
    if name == "synthetic-segmentation":
        return make_segmentation(**kwargs)
    if kwargs:
        raise TypeError(f"unexpected arguments for {name!r}: {sorted(kwargs)}")
    return load_medmnist(name, root=root, download=download, progress=progress)
