"""Making your own images comparable: resampling, intensity and size, through MONAI.

Hospitals' files differ in size, voxel spacing and intensity range; a model needs one
shape and comparable values. :class:`Preprocess` says what to do, in this order:

1. ``spacing=``: resample to a voxel spacing (MONAI ``Spacing``; DICOM and NIfTI only);
2. ``intensity=``: map values to ``[0, 1]`` (MONAI ``ScaleIntensity*``);
3. ``image_size=``: resize to one shape (MONAI ``Resize``: area when shrinking, linear
   when growing).

:func:`read_image` applies it to one file and, with ``cache_dir=``, keeps the result: a
second read of the same bytes with the same options loads a ``.npy`` instead of
decoding and resampling again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .image_cache import cache_key, cached, store
from .readers import image_format, load_image

__all__ = ["INTENSITIES", "Preprocess", "normalise", "prepare", "read_image", "resize"]

INTENSITIES = ("auto", "none", "minmax", "ct", "mr")


def _positive(name: str, value, kind: type) -> tuple:
    values = (value,) if isinstance(value, (int, float, np.number)) else tuple(value)
    ok = len(values) in (1, 2, 3) and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        and math.isfinite(v) and v > 0 and (kind is float or float(v).is_integer())
        for v in values)
    if not ok:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{name} must be one positive {what[:-1]} or a tuple of 2 (H, W) "
                         f"or 3 (D, H, W) positive {what}, got {value!r}")
    return tuple(kind(v) for v in values)


@dataclass(frozen=True)
class Preprocess:
    """How each image is prepared (see the module docstring for the order).

    Parameters
    ----------
    image_size : int or tuple of int, optional
        Target shape: ``(H, W)`` for images, ``(D, H, W)`` for volumes, or one int for
        every axis. None keeps the sizes (they must then all agree).
    spacing : float or tuple of float, optional
        Target voxel spacing in mm, ``(dy, dx)`` or ``(dz, dy, dx)`` (or one value for
        every axis), for DICOM and NIfTI. None keeps each file's own.
    intensity : str
        ``"auto"`` (default): PNG and ``.npy`` integers divided by their dtype's maximum,
        floats kept (they must lie in ``[0, 1]``), DICOM and NIfTI as ``"minmax"``;
        ``"none"``: values as stored (DICOM CT: Hounsfield units); ``"minmax"``: each
        image to ``[0, 1]``; ``"ct"``: the ``window`` mapped to ``[0, 1]``, clipped;
        ``"mr"``: each image's 0.5th-99.5th percentiles mapped to ``[0, 1]``, clipped.
    window : (float, float)
        ``(center, width)`` of the CT window for ``intensity="ct"``, in HU; default
        ``(40, 400)``, a soft-tissue window.
    """

    image_size: int | tuple[int, ...] | None = None
    spacing: float | tuple[float, ...] | None = None
    intensity: str = "auto"
    window: tuple[float, float] = (40.0, 400.0)

    def __post_init__(self) -> None:
        if self.intensity not in INTENSITIES:
            raise ValueError(f"intensity must be one of {INTENSITIES}, got {self.intensity!r}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", _positive("image_size", self.image_size, int))
        if self.spacing is not None:
            object.__setattr__(self, "spacing", _positive("spacing", self.spacing, float))
        w = tuple(self.window) if np.ndim(self.window) == 1 else ()
        if len(w) != 2 or not all(math.isfinite(float(v)) for v in w) or float(w[1]) <= 0:
            raise ValueError(f"window must be (center, width) with a width > 0, got "
                             f"{self.window!r}")
        object.__setattr__(self, "window", (float(w[0]), float(w[1])))

    def as_dict(self) -> dict:
        """The options as plain JSON-able values (what the cache key is made of)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def axes(self, name: str, n: int, where) -> tuple | None:
        """``image_size`` or ``spacing`` for an image with ``n`` spatial axes."""
        value = getattr(self, name)
        if value is None or len(value) == n:
            return value
        if len(value) == 1:
            return value * n
        axes = "(H, W)" if n == 2 else "(D, H, W)"
        raise ValueError(f"{name}={value} has {len(value)} values but {where} has {n} "
                         f"spatial axes {axes}: give {n} values {axes} or one for all")


def normalise(x: np.ndarray, intensity: str, window=(40.0, 400.0), fmt: str = "npy",
              where="image") -> np.ndarray:
    """``x`` (channel first) with its intensities mapped as ``intensity`` says
    (:class:`Preprocess`); ``fmt`` is where it came from (what ``"auto"`` means)."""
    from monai.transforms import ScaleIntensity, ScaleIntensityRange, ScaleIntensityRangePercentiles

    if intensity == "auto" and fmt in ("dicom", "nifti"):
        intensity = "minmax"
    if intensity == "auto":
        if np.issubdtype(x.dtype, np.integer):
            top = float(np.iinfo(x.dtype).max)
            return _np(ScaleIntensityRange(0.0, top, 0.0, 1.0)(x))
        x = np.asarray(x, dtype=np.float32)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{where}: float images must lie in [0, 1] with "
                             "intensity='auto'; pass intensity='minmax' (or 'none', 'mr')")
        return x
    if intensity == "none":
        return np.asarray(x, dtype=np.float32)
    if intensity == "minmax":
        return _np(ScaleIntensity(minv=0.0, maxv=1.0)(x))
    if intensity == "ct":
        center, width = window
        return _np(ScaleIntensityRange(center - width / 2, center + width / 2, 0.0, 1.0,
                                       clip=True)(x))
    if intensity == "mr":
        return _np(ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True)(x))
    raise ValueError(f"intensity must be one of {INTENSITIES}, got {intensity!r}")


def resize(x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``x`` (channel first) resized to the spatial ``size`` with MONAI's ``Resize``."""
    from monai.transforms import Resize

    if tuple(x.shape[1:]) == tuple(size):
        return x
    if all(s <= t for s, t in zip(size, x.shape[1:], strict=True)):
        return _np(Resize(size, mode="area")(x))
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return _np(Resize(size, mode=mode, align_corners=False)(x))


def _np(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return np.asarray(x, dtype=np.float32)


def prepare(x: np.ndarray, preprocess: Preprocess, fmt: str = "npy", where="image",
            ) -> np.ndarray:
    """An array already read (channel first, fedlab order) after steps 2 and 3."""
    x = normalise(x, preprocess.intensity, preprocess.window, fmt, where)
    size = preprocess.axes("image_size", x.ndim - 1, where)
    x = resize(x, size) if size is not None else x
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: holds NaN or infinite values after preprocessing")
    return np.ascontiguousarray(x, dtype=np.float32)


def read_image(path: str | Path, preprocess: Preprocess | None = None,
               cache_dir: str | Path | None = None) -> np.ndarray:
    """One file (or DICOM series folder) read and prepared: ``float32`` ``(C, H, W)`` or
    ``(C, D, H, W)``.

    Parameters
    ----------
    path : path
        A ``.dcm``, ``.nii``, ``.nii.gz``, ``.png`` or ``.npy`` file, or a folder of
        ``.dcm`` slices (:mod:`fedlab.data.readers`).
    preprocess : Preprocess, optional
        What to do with it; default ``Preprocess()``.
    cache_dir : path, optional
        Keep the result there as ``<sha256>.npy``, the key made of the file's bytes and
        the options (:mod:`fedlab.data.image_cache`); a later read with the same bytes
        and options loads it instead. None: no cache.
    """
    path = Path(path)
    preprocess = preprocess if preprocess is not None else Preprocess()
    key = None
    if cache_dir is not None and path.exists():
        key = cache_key(path, preprocess.as_dict())
        if (hit := cached(cache_dir, key)) is not None:
            return hit
    x, _ = load_image(path, spacing=preprocess.spacing)
    x = prepare(x, preprocess, image_format(path) or "npy", path)
    if key is not None:
        store(cache_dir, key, x)
    return x
