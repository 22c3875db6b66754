"""The preprocessing cache: loading your own volumes a second time.

Writes 3 sites x 20 CT-like volumes into a temporary folder (``root/<site>/<class>/``;
sites 0 and 2 as NIfTI ``.nii.gz``, site 1 as DICOM series of ``.dcm`` slices with
rescale slope and intercept), then loads them twice with ``fl.data.from_folders``
(``image_size=(32, 64, 64)``, ``intensity="ct"``, ``cache_dir=``): the first load reads,
resamples and writes the cache, the second reads the cache. MONAI's import and reader
set-up are paid before the clock starts (one warm-up read).

    python benchmarks/io_cache.py [--slices 32] [--size 128] [--per-class 10]

Prints both times and their ratio (target: the second load a small fraction of the
first), checks that both loads gave identical arrays, and writes
``results/io_cache.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fedlab as fl

RESULTS = Path(__file__).resolve().parent / "results"


def write_series(folder: Path, hu: np.ndarray) -> None:
    """``hu`` (D, H, W) as a DICOM series: int16 stored values, slope 1, intercept -1024."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    for k, plane in enumerate(hu):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = \
            CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:03d}.dcm"), {}, file_meta=meta,
                         preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Rows, ds.Columns = "CT", *plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2.5 * k], [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = k + 1
        ds.PixelData = (plane + 1024).astype(np.int16).tobytes()
        ds.save_as(ds.filename, enforce_file_format=True)


def write_nifti(path: Path, hu: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.transpose(hu, (2, 1, 0)).astype(np.int16),
                          np.diag([0.8, 0.8, 2.5, 1.0]))
    nib.save(img, str(path))


def volume(rng: np.random.Generator, shape: tuple[int, ...], label: int) -> np.ndarray:
    """Air around a soft-tissue ellipsoid (HU 40), with a denser lesion for label 1."""
    d, h, w = (np.linspace(-1, 1, n) for n in shape)
    r = d[:, None, None] ** 2 + h[None, :, None] ** 2 / 0.6 + w[None, None, :] ** 2 / 0.8
    hu = np.where(r < 0.8, 40.0, -1000.0) + rng.normal(0, 20, shape)
    if label:
        hu[r < 0.1] = 300.0
    return hu


def write_sites(root: Path, slices: int, size: int, per_class: int) -> int:
    rng = np.random.default_rng(0)
    n = 0
    for s in range(3):
        for label in (0, 1):
            folder = root / f"site-{s}" / str(label)
            folder.mkdir(parents=True)
            for i in range(per_class):
                hu = volume(rng, (slices, size, size), label)
                if s == 1:
                    write_series(folder / f"case{i:02d}", hu)
                else:
                    write_nifti(folder / f"case{i:02d}.nii.gz", hu)
                n += 1
    return n


def timed(root: Path, cache: Path):
    t0 = time.perf_counter()
    fed = fl.data.from_folders(root, 0.0, 0.0, image_size=(32, 64, 64), intensity="ct",
                               cache_dir=cache)
    return fed, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--out", default=str(RESULTS / "io_cache.md"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "sites", Path(tmp) / "cache"
        n = write_sites(root, args.slices, args.size, args.per_class)
        write_nifti(Path(tmp) / "warm.nii.gz", np.zeros((2, 4, 4)))
        fl.data.read_image(Path(tmp) / "warm.nii.gz")  # MONAI's import and readers
        load = os.getloadavg()[0]
        first, t1 = timed(root, cache)
        second, t2 = timed(root, cache)
        same = all(np.array_equal(a.split("train").images, b.split("train").images)
                   for a, b in zip(first, second, strict=True))
        entries = sum(f.stat().st_size for f in cache.glob("*.npy")) / 2**20
        shape = first[0].split("train").images.shape[1:]
    lines = [f"volumes             : {n} (3 sites; {args.slices}x{args.size}x{args.size} "
             f"int16; site-1 as DICOM series of {args.slices} slices, others .nii.gz)",
             f"preprocessing       : image_size=(32, 64, 64), intensity='ct' -> {shape}",
             f"first load (+cache) : {t1:7.2f} s",
             f"second load (cache) : {t2:7.2f} s",
             f"ratio second/first  : {t2 / t1:7.3f}  ({t1 / t2:.1f}x faster)",
             f"cache size          : {entries:.1f} MiB",
             f"identical arrays    : {same}"]
    print("\n".join(lines))
    command = "python benchmarks/io_cache.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(
        "# Loading your own volumes: the preprocessing cache\n\n"
        f"Command: `{command.strip()}`, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores usable, {time.strftime('%Y-%m-%d')}, load "
        f"average {load:.1f} before and {os.getloadavg()[0]:.1f} after. One measurement, "
        "not on a reserved machine.\n\n```\n" + "\n".join(lines) + "\n```\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
