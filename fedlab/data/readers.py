"""Reading one image file of your own through MONAI's readers.

Formats (by name):

- DICOM: a ``.dcm`` file (one slice, 2D) or a folder of ``.dcm`` slices (a series, one
  3D volume), read by MONAI's ``PydicomReader``. ``RescaleSlope`` and
  ``RescaleIntercept`` are applied, so CT values come out in Hounsfield units; the voxel
  spacing comes from ``PixelSpacing`` and the slice positions.
- NIfTI: ``.nii`` or ``.nii.gz``, read by ``NibabelReader``; spacing from the affine.
- PNG: ``.png``, read by ``PILReader`` (grey levels stay one channel, anything else
  becomes RGB).
- NumPy: ``.npy``, read by ``NumpyReader`` (never with pickles): ``(H, W)``,
  ``(C, H, W)`` or ``(H, W, C)`` with C = 1 or 3, or a volume ``(C, D, H, W)``.

Arrays come back channel first in fedlab's order, ``(C, H, W)`` or ``(C, D, H, W)``:
MONAI's medical order (x, y[, z]) is reversed, so a DICOM slice is (rows, columns) as
its viewer shows it and a series is (slices, rows, columns). pydicom and nibabel are the
optional extra ``[io]``; a file that needs a missing one raises an ImportError that says
what to install. MONAI is imported on first use only (it is slow to import).
"""

from __future__ import annotations

import importlib
import logging
import warnings
from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "channel_first", "image_format", "image_info",
           "load_image", "series_files"]

IMAGE_SUFFIXES = (".dcm", ".nii", ".nii.gz", ".png", ".npy")
# format -> (MONAI reader, the package it needs, what pip calls it)
_READERS = {"dicom": ("PydicomReader", "pydicom", 'pip install "fedlab-workbench[io]"'),
            "nifti": ("NibabelReader", "nibabel", 'pip install "fedlab-workbench[io]"'),
            "png": ("PILReader", "PIL", "pip install pillow"),
            "npy": ("NumpyReader", "numpy", "pip install numpy")}
_PACKAGE_NAMES = {"PIL": "Pillow"}


class ImageReadError(ValueError):
    """A file that exists but cannot be read as an image (corrupt, truncated, or not
    the format its name says)."""


def series_files(folder: Path) -> list[Path]:
    """The ``.dcm`` slices of a DICOM series folder, sorted by name (empty if none)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file()
                  and p.suffix.lower() == ".dcm" and not p.name.startswith("."))


def image_format(path: str | Path) -> str | None:
    """``"dicom"``, ``"nifti"``, ``"png"`` or ``"npy"`` for a file (or a folder of
    ``.dcm`` slices) fedlab reads; None for anything else."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return "dicom" if series_files(path) else None
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    return {".dcm": "dicom", ".png": "png", ".npy": "npy"}.get(path.suffix.lower())


def _require(fmt: str, path: Path) -> None:
    _, package, hint = _READERS[fmt]
    try:
        importlib.import_module(package)
    except ImportError as err:
        name = _PACKAGE_NAMES.get(package, package)
        raise ImportError(f"reading {path} needs {name} (MONAI's {_READERS[fmt][0]}), "
                          f"which is not installed: {hint}") from err


def _png_mode(image):
    """Grey levels stay one channel (8 or 16 bit); palette, RGBA, CMYK... become RGB."""
    return image if image.mode in ("L", "I;16") else image.convert("RGB")


@cache
def _loader():
    """One ``LoadImage`` for the process (building it registers every MONAI reader,
    and one of them logs and warns about an optional GPU decoder)."""
    from monai.transforms import LoadImage

    quiet = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LoadImage(image_only=True, dtype=None)
    finally:
        quiet.setLevel(level)


@cache
def _reader(fmt: str):
    from monai import data

    if fmt == "dicom":
        return data.PydicomReader(fname_regex=r".*\.[dD][cC][mM]$")
    if fmt == "png":
        return data.PILReader(converter=_png_mode)
    if fmt == "npy":
        return data.NumpyReader(allow_pickle=False)
    return data.NibabelReader()


def _read(path: Path, fmt: str):
    """MONAI's MetaTensor, channel first, in MONAI's axis order; a series whose slices
    MONAI would drop (unreadable, no InstanceNumber) is an error, not a warning."""
    from monai.transforms import EnsureChannelFirst

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = _loader()(path, reader=_reader(fmt))
        if fmt != "npy":
            img = EnsureChannelFirst()(img)
    for w in caught:
        text = str(w.message)
        if "Failed to read" in text or "skip it" in text or "different shapes" in text:
            raise ImageReadError(f"{path}: {text.strip()}; check or remove that slice, or "
                                 "pass on_error='skip' to leave the series out")
        warnings.warn(f"{path}: {text}", w.category, stacklevel=3)
    return img


def _spacing_of(img, fmt: str) -> tuple[float, ...] | None:
    if fmt in ("png", "npy"):
        return None
    return tuple(round(float(s), 6) for s in np.asarray(img.pixdim)[::-1])  # float32 headers


def channel_first(img: np.ndarray, where: str | Path) -> np.ndarray:
    """An array saved in fedlab's order, made channel first: ``(H, W)``, ``(C, H, W)``
    or ``(H, W, C)`` with C = 1 or 3 give ``(C, H, W)``; ``(C, D, H, W)`` stays."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[None]
    elif img.ndim == 3 and img.shape[0] not in (1, 3) and img.shape[-1] in (1, 3):
        img = np.moveaxis(img, -1, 0)
    if not (img.ndim == 4 or img.ndim == 3 and img.shape[0] in (1, 3)):
        raise ValueError(f"{where}: arrays must be images (H, W), (C, H, W) or (H, W, C) "
                         f"with C = 1 or 3, or volumes (C, D, H, W), got shape {img.shape}")
    return img


def load_image(path: str | Path, spacing: tuple[float, ...] | None = None,
               ) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """The image at ``path`` as MONAI reads it, channel first in fedlab's order.

    Parameters
    ----------
    path : path
        A ``.dcm``, ``.nii``, ``.nii.gz``, ``.png`` or ``.npy`` file, or a folder of
        ``.dcm`` slices.
    spacing : tuple of float, optional
        Resample to this voxel spacing (fedlab order, ``(dy, dx)`` or ``(dz, dy, dx)``,
        in mm) with MONAI's ``Spacing``; only for DICOM and NIfTI, which record theirs.

    Returns
    -------
    (array, spacing)
        ``(C, H, W)`` or ``(C, D, H, W)`` with the values as stored (DICOM: after
        rescale slope and intercept), not yet normalised; and the spacing after any
        resampling (None for PNG and ``.npy``, which record none).
    """
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise ValueError(f"{path}: not an image fedlab reads; use one of {IMAGE_SUFFIXES} "
                         "or a folder of .dcm slices")
    _require(fmt, path)
    if spacing is not None and fmt in ("png", "npy"):
        raise ValueError(f"spacing= needs DICOM or NIfTI files, which record their voxel "
                         f"spacing; {path.name} has none: pass image_size= instead")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        img = _read(path, fmt)
    except (ImportError, ImageReadError):
        raise
    except Exception as err:  # noqa: BLE001 - every reader fails in its own way
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ImageReadError(f"cannot read {path} as {fmt} ({type(err).__name__}: {first}); "
                             "check or remove the file, or pass on_error='skip'") from err
    if spacing is not None:
        img = _resample(img, spacing, path)
    x = np.asarray(img.detach().cpu().numpy())
    if fmt == "npy":  # saved in fedlab's order already
        return channel_first(x, path), None
    return np.transpose(x, (0, *range(x.ndim - 1, 0, -1))), _spacing_of(img, fmt)


def _resample(img, spacing: tuple[float, ...], path: Path):
    from monai.transforms import Spacing

    n = img.ndim - 1
    spacing = tuple(spacing) * n if len(spacing) == 1 else tuple(spacing)
    if len(spacing) != n:
        axes = "(dy, dx)" if n == 2 else "(dz, dy, dx)"
        raise ValueError(f"spacing={spacing} has {len(spacing)} values but {path} has {n} "
                         f"spatial axes: give {n} values {axes} or one for all")
    return Spacing(pixdim=tuple(reversed(spacing)), mode="bilinear")(img)


def image_info(path: str | Path) -> dict:
    """What a file holds before any preprocessing: ``format``, ``channels``, ``shape``
    (spatial, fedlab order), ``spacing`` (mm, fedlab order; None for PNG/``.npy``),
    ``dtype``, ``min`` and ``max`` (DICOM: in Hounsfield units for CT).

    Useful to choose ``image_size=``, ``spacing=`` and ``intensity=`` for
    :func:`fedlab.data.from_folders` and :func:`fedlab.data.from_table`.

    Parameters
    ----------
    path : path
        A file or a DICOM series folder, as for :func:`load_image`.
    """
    x, spacing = load_image(path)
    return {"format": image_format(path), "channels": int(x.shape[0]),
            "shape": tuple(int(s) for s in x.shape[1:]), "spacing": spacing,
            "dtype": str(x.dtype), "min": float(x.min()) if x.size else np.nan,
            "max": float(x.max()) if x.size else np.nan}
