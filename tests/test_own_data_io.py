"""Your own hospitals' files: DICOM, NIfTI, PNG through MONAI's readers, preprocessing,
the cache, natural sites from folders and tables, and errors that say what to do.

Every file is written here, into tmp_path: DICOM with pydicom (CT-like int16 pixels,
rescale slope and intercept, spacing and slice positions), NIfTI with nibabel (an
affine with the spacing), PNG with Pillow.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fedlab as fl
from fedlab.data import (
    ImageReadError,
    Preprocess,
    SkippedFilesWarning,
    from_folders,
    from_table,
    image_info,
    read_image,
)
from fedlab.data import preprocess as preprocess_module
from fedlab.data.image_cache import cache_key

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")
Image = pytest.importorskip("PIL.Image")

SLOPE, INTERCEPT = 2.0, -1024.0
PIXEL_SPACING, THICKNESS = (0.5, 0.75), 2.0  # (rows, columns) mm, slice mm


def write_dicom(path, stored, z=0.0, instance=1, slope=SLOPE, intercept=INTERCEPT):
    """One CT slice: int16 stored values; HU = stored * slope + intercept."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CT", "anonymous"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
    ds.PixelSpacing, ds.SliceThickness = list(PIXEL_SPACING), THICKNESS
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.InstanceNumber = instance
    ds.PixelData = np.ascontiguousarray(stored, dtype=np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(folder, stored):
    """A series (D, H, W): file names in reverse slice order, InstanceNumber decides."""
    folder.mkdir(parents=True)
    for k in range(len(stored)):
        write_dicom(folder / f"slice{len(stored) - k:03d}.dcm", stored[k], z=THICKNESS * k,
                    instance=k + 1)


def write_nifti(path, vol, spacing=(3.0, 0.9, 0.8)):
    """``vol`` (D, H, W) saved in NIfTI's (x, y, z) order with spacing (dz, dy, dx)."""
    dz, dy, dx = spacing
    nib.save(nib.Nifti1Image(np.transpose(vol, (2, 1, 0)), np.diag([dx, dy, dz, 1.0])),
             str(path))


def ct_values(rng, shape):
    return rng.integers(0, 1600, shape).astype(np.int16)  # HU -1024 .. 2174


# -- readers: values, axes and spacing ---------------------------------------------------

def test_dicom_slice_comes_out_in_hounsfield_units(tmp_path):
    stored = ct_values(np.random.default_rng(0), (6, 5))
    write_dicom(tmp_path / "ct.dcm", stored)
    x = read_image(tmp_path / "ct.dcm", Preprocess(intensity="none"))
    assert x.dtype == np.float32 and x.shape == (1, 6, 5)  # (C, rows, columns)
    assert np.array_equal(x[0], stored * SLOPE + INTERCEPT)
    info = image_info(tmp_path / "ct.dcm")
    assert info["format"] == "dicom" and info["spacing"] == pytest.approx(PIXEL_SPACING)
    assert info["min"] == pytest.approx(stored.min() * SLOPE + INTERCEPT)


def test_dicom_series_is_one_volume_in_slice_order(tmp_path):
    stored = ct_values(np.random.default_rng(1), (4, 6, 5))
    write_series(tmp_path / "series", stored)
    x = read_image(tmp_path / "series", Preprocess(intensity="none"))
    assert x.shape == (1, 4, 6, 5)  # (C, D, H, W)
    assert np.array_equal(x[0], stored * SLOPE + INTERCEPT)
    assert image_info(tmp_path / "series")["spacing"] == pytest.approx(
        (THICKNESS, *PIXEL_SPACING))


def test_nifti_and_png_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    vol = rng.normal(0, 100, (3, 5, 4)).astype(np.float32)
    write_nifti(tmp_path / "v.nii.gz", vol)
    write_nifti(tmp_path / "w.nii", vol.astype(np.int16))
    x = read_image(tmp_path / "v.nii.gz", Preprocess(intensity="none"))
    assert x.shape == (1, 3, 5, 4) and np.allclose(x[0], vol)
    assert np.array_equal(read_image(tmp_path / "w.nii", Preprocess(intensity="none"))[0],
                          vol.astype(np.int16))
    assert image_info(tmp_path / "v.nii.gz")["spacing"] == pytest.approx((3.0, 0.9, 0.8))
    grey, rgb = rng.integers(0, 256, (6, 5), np.uint8), rng.integers(0, 256, (6, 5, 3), np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert np.allclose(read_image(tmp_path / "g.png")[0], grey / 255, atol=1e-6)
    assert np.allclose(read_image(tmp_path / "c.png"), np.moveaxis(rgb, -1, 0) / 255, atol=1e-6)


def test_intensity_options(tmp_path):
    hu = np.array([[-1000, -160, 40], [240, 1000, 2000]], float)
    write_dicom(tmp_path / "ct.dcm", ((hu - INTERCEPT) / SLOPE).astype(np.int16))
    ct = read_image(tmp_path / "ct.dcm", Preprocess(intensity="ct"))[0]  # window (40, 400)
    assert np.allclose(ct, [[0, 0, 0.5], [1, 1, 1]], atol=1e-6)
    bone = read_image(tmp_path / "ct.dcm", Preprocess(intensity="ct", window=(1000, 2000)))[0]
    assert bone[0, 2] == pytest.approx(0.02, abs=1e-6)
    for mode in ("minmax", "auto", "mr"):
        x = read_image(tmp_path / "ct.dcm", Preprocess(intensity=mode))
        assert x.min() == pytest.approx(0) and x.max() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"intensity must be one of \('auto', 'none'"):
        Preprocess(intensity="zscore")
    with pytest.raises(ValueError, match="window"):
        Preprocess(intensity="ct", window=(40, -1))


def test_resizing_and_resampling_give_the_requested_shape(tmp_path):
    rng = np.random.default_rng(3)
    write_dicom(tmp_path / "ct.dcm", ct_values(rng, (12, 10)))
    write_series(tmp_path / "series", ct_values(rng, (4, 12, 10)))
    assert read_image(tmp_path / "ct.dcm", Preprocess(image_size=(6, 8))).shape == (1, 6, 8)
    assert read_image(tmp_path / "ct.dcm", Preprocess(image_size=16)).shape == (1, 16, 16)
    assert read_image(tmp_path / "series", Preprocess(image_size=(2, 6, 5))).shape == \
        (1, 2, 6, 5)
    # 4 slices 2 mm apart, rows 0.5 mm, columns 0.75 mm -> 1 mm voxels
    x = read_image(tmp_path / "series", Preprocess(spacing=1.0, intensity="none"))
    assert abs(x.shape[1] - 7) <= 1 and abs(x.shape[2] - 6) <= 1 and abs(x.shape[3] - 7) <= 1
    with pytest.raises(ValueError, match=r"image_size=\(6, 8\) has 2 values .* \(D, H, W\)"):
        read_image(tmp_path / "series", Preprocess(image_size=(6, 8)))
    with pytest.raises(ValueError, match="image_size must be"):
        Preprocess(image_size=(0, 4))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="spacing= needs DICOM or NIfTI.*image_size="):
        read_image(tmp_path / "a.png", Preprocess(spacing=1.0))


# -- the cache -----------------------------------------------------------------------------

def test_cache_returns_the_same_arrays_without_reading_again(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    root, cache = tmp_path / "data", tmp_path / "cache"
    for site in ("a", "b"):
        for c in ("0", "1"):
            (root / site / c).mkdir(parents=True)
            for i in range(2):
                write_nifti(root / site / c / f"{i}.nii.gz", rng.normal(size=(3, 6, 6)))
    first = from_folders(root, 0.0, 0.0, image_size=(2, 4, 4), cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 8 and not list(cache.glob("*.tmp"))

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(preprocess_module, "load_image", no_reading)
    again = from_folders(root, 0.0, 0.0, image_size=(2, 4, 4), cache_dir=cache)
    for s1, s2 in zip(first, again, strict=True):
        assert np.array_equal(s1.split("train").images, s2.split("train").images)
    with pytest.raises(AssertionError, match="cache"):  # another option, another key
        from_folders(root, 0.0, 0.0, image_size=(2, 4, 4), intensity="mr", cache_dir=cache)
    f = root / "a" / "0" / "0.nii.gz"
    opts = Preprocess(image_size=(2, 4, 4)).as_dict()
    assert cache_key(f, opts) != cache_key(f, Preprocess(image_size=(2, 4, 5)).as_dict())
    assert cache_key(f, opts) != cache_key(root / "a" / "0" / "1.nii.gz", opts)


# -- natural sites from folders and tables ---------------------------------------------------

def _hospitals(root, rng, n=(6, 4, 5)):
    """Three sites, two classes, DICOM or PNG of their own sizes; site 2 is skewed."""
    for s, count in enumerate(n):
        for c in ("benign", "malignant"):
            folder = root / f"hospital-{s}" / c
            folder.mkdir(parents=True)
            for i in range(count if c == "benign" or s != 2 else 1):
                if s == 0:
                    write_dicom(folder / f"{i}.dcm", ct_values(rng, (10, 10)))
                elif s == 1:
                    Image.fromarray(rng.integers(0, 256, (8, 8), np.uint8)).save(
                        folder / f"{i}.png")
                else:
                    Image.fromarray(np.full((12, 12), 20 * i, np.uint8)).save(
                        folder / f"{i}.png")
    return root


def test_from_folders_reads_every_format_and_the_statistics_work(tmp_path):
    root = _hospitals(tmp_path / "h", np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"differ in shape .*\(site 'hospital-0'\).*"
                                         r"pass image_size="):
        from_folders(root)
    (root / "hospital-1" / "benign" / "9.png").write_bytes(
        (root / "hospital-2" / "benign" / "0.png").read_bytes())  # 12 x 12 among 8 x 8
    with pytest.raises(ValueError, match=r"site 'hospital-1' differ .*9\.png.*image_size="):
        from_folders(root)
    fed = from_folders(root, 0.2, 0.2, seed=0, image_size=(8, 8), intensity="minmax")
    assert fed.names == ["hospital-0", "hospital-1", "hospital-2"]
    assert fed.classes == ("benign", "malignant") and fed.info["skipped"] == []
    x = fed[0].split("train").images
    assert x.shape[1:] == (1, 8, 8) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    shares = fl.data.label_shares(fed)
    assert shares.shape == (3, 2) and shares[2, 1] < shares[0, 1]
    assert fl.data.distance_to_global(fed).shape[0] == 3
    assert fl.data.distance_matrix(fed).shape == (3, 3)
    assert set(fl.data.intensity_stats(fed)["site"]) == set(fed.names)
    assert len(fl.data.intensity_histogram(fed, bins=4)) == 12
    shifted = fl.data.apply_shift(fed, fl.data.AcquisitionShift(strength=0.5), seed=0)
    assert set(fl.data.scanner_info(shifted)["site"]) == set(fed.names)
    pooled = fed.pooled()
    data = fl.data.ImageDataset("own", *(pooled.split(s) for s in ("train", "val", "test")),
                                classes=fed.classes)
    resplit = fl.data.split(data, 2, scheme=fl.data.Dirichlet(alpha=0.5, min_size=2), seed=0)
    assert sum(s.size() for s in resplit) == pooled.size()


def test_volumes_from_folders_and_table(tmp_path):
    rng = np.random.default_rng(6)
    rows = ["path,diagnosis,hospital,fold"]
    for s in ("north", "south"):
        for c in ("0", "1"):
            (tmp_path / s / c).mkdir(parents=True)
            for i in range(3):
                name = f"{s}/{c}/{i}" + (".nii.gz" if s == "north" else "")
                if s == "north":
                    write_nifti(tmp_path / name, rng.normal(size=(4, 8, 8)))
                else:
                    write_series(tmp_path / name, ct_values(rng, (4, 8, 8)))
                rows.append(f"{name},{c},{s},{('train', 'train', 'test')[i]}")
    (tmp_path / "index.csv").write_text("\n".join(rows) + "\n")
    fed = from_folders(tmp_path, 0.0, 0.3, seed=0, intensity="mr")
    assert fed[1].split("train").images.shape[1:] == (1, 4, 8, 8)
    table = from_table(tmp_path / "index.csv", image="path", label="diagnosis",
                       site="hospital", split="fold", image_size=(2, 4, 4), intensity="mr")
    assert table.names == ["north", "south"] and table.classes == ("0", "1")
    assert [table[0].size(s) for s in ("train", "val", "test")] == [4, 0, 2]
    assert table[1].split("test").images.shape == (2, 1, 2, 4, 4)
    assert fl.data.label_shares(table).shape == (2, 2)


# -- errors that help ----------------------------------------------------------------------

def _table(tmp_path, lines):
    (tmp_path / "t.csv").write_text("image,label,site\n" + "\n".join(lines) + "\n")
    return tmp_path / "t.csv"


def test_table_errors_name_the_rows(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"row 3: label 'tumour' is not in classes"):
        from_table(_table(tmp_path, ["a.png,benign,x", "a.png,tumour,x"]),
                   classes=["benign", "malignant"])
    with pytest.raises(ValueError, match=r"row 2: the label is missing"):
        from_table(_table(tmp_path, ["a.png,,x", "a.png,benign,x"]))
    with pytest.raises(ValueError, match=r"row 2: b.png not found .*CSV's folder"):
        from_table(_table(tmp_path, ["b.png,benign,x"]))
    with pytest.raises(ValueError, match=r"label='diagnosis' is not a column .*'label'"):
        from_table(_table(tmp_path, ["a.png,benign,x"]), label="diagnosis")
    with pytest.warns(SkippedFilesWarning, match="row 3"):
        fed = from_table(_table(tmp_path, ["a.png,benign,x", "a.png,,x", "a.png,benign,y"]),
                         val_fraction=0.0, test_fraction=0.0, on_error="skip")
    assert fed.names == ["x", "y"] and len(fed.info["skipped"]) == 1
    with pytest.raises(ValueError, match="on_error must be one of"):
        from_table(tmp_path / "t.csv", on_error="ignore")


def test_corrupt_files_raise_or_are_skipped_and_reported(tmp_path):
    rng = np.random.default_rng(7)
    for site in ("s1", "s2"):
        (tmp_path / site / "0").mkdir(parents=True)
        for i in range(3):
            write_dicom(tmp_path / site / "0" / f"{i}.dcm", ct_values(rng, (6, 6)))
    (tmp_path / "s2" / "0" / "broken.dcm").write_bytes(b"DICM but not really" * 3)
    with pytest.raises(ImageReadError, match=r"broken\.dcm.*on_error='skip'"):
        from_folders(tmp_path)
    with pytest.warns(SkippedFilesWarning, match="broken.dcm"):
        fed = from_folders(tmp_path, 0.0, 0.0, on_error="skip")
    assert [p for p, _ in fed.info["skipped"]] == [str(tmp_path / "s2" / "0" / "broken.dcm")]
    assert fed[1].size() == 3
    write_series(tmp_path / "s1" / "0" / "vol", ct_values(rng, (3, 6, 6)))
    (tmp_path / "s1" / "0" / "vol" / "slice002.dcm").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="slice002"):
        read_image(tmp_path / "s1" / "0" / "vol")


def test_empty_sites_and_missing_readers(tmp_path, monkeypatch):
    (tmp_path / "s1" / "0").mkdir(parents=True)
    (tmp_path / "s2" / "0").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "s1" / "0" / "a.png")
    (tmp_path / "s2" / "0" / "notes.txt").write_text("no image here")
    with pytest.raises(ValueError, match=r"site 's2' .* holds no image"):
        from_folders(tmp_path)
    (tmp_path / "s2" / "0" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"site 's2' has no readable image \(1 skipped"):
        from_folders(tmp_path, on_error="skip")
    write_nifti(tmp_path / "v.nii.gz", np.zeros((2, 3, 3), np.float32))
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match=r"v\.nii\.gz needs nibabel.*fedlab-workbench\[io\]"):
        read_image(tmp_path / "v.nii.gz")
