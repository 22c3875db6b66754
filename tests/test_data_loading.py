"""MedMNIST loader (offline, checksums, download) and the synthetic generator.

No test touches the network: downloads go through ``medmnist._urlopen``, which the tests
replace with a function that raises or serves bytes from memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from conftest import seeded

from fedlab.data import medmnist as mm
from fedlab.data.medmnist import (
    DATASETS,
    ChecksumError,
    DataNotFoundError,
    available,
    default_data_dir,
    load_medmnist,
    verify,
)
from fedlab.data.synthetic import make_synthetic

SIZES = {"train": 6, "val": 3, "test": 4}


def _npz_bytes(n_channels: int, seed: int = 0) -> tuple[bytes, dict[str, np.ndarray]]:
    """A small MedMNIST-shaped .npz file in memory, with 0 and 255 pixels in it."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in SIZES.items():
        shape = (n, 28, 28) if n_channels == 1 else (n, 28, 28, 3)
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        images.flat[0], images.flat[1] = 0, 255
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue(), arrays


class _Response(io.BytesIO):
    """Stands in for an HTTP response: a readable context manager with headers."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def _serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> list[str]:
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float | None = None) -> _Response:
        assert timeout is not None and timeout > 0, "downloads must set a timeout"
        calls.append(url)
        return _Response(payload)

    monkeypatch.setattr(mm, "_urlopen", fake_urlopen)
    return calls


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_urlopen(url: str, timeout: float | None = None) -> None:
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(mm, "_urlopen", fake_urlopen)


def _set_md5(monkeypatch: pytest.MonkeyPatch, name: str, payload: bytes) -> None:
    md5 = hashlib.md5(payload).hexdigest()
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], md5=md5))


# --------------------------------------------------------------------------- MedMNIST


def test_missing_and_offline_says_what_to_do(tmp_path, monkeypatch):
    _offline(monkeypatch)
    info = DATASETS["pneumoniamnist"]
    with pytest.raises(DataNotFoundError) as err:
        load_medmnist("pneumoniamnist", root=tmp_path, progress=False)
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for needle in ("pneumoniamnist.npz", info.url, info.md5, str(tmp_path), "FEDLAB_DATA",
                   "fedlab data download pneumoniamnist"):
        assert needle in msg
    assert list(tmp_path.iterdir()) == []  # no half-written .part file


def test_missing_with_download_false_never_touches_network(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(mm, "_urlopen", boom)
    with pytest.raises(DataNotFoundError, match="breastmnist.npz"):
        load_medmnist("breastmnist", root=tmp_path, download=False)
    with pytest.raises(DataNotFoundError):
        verify("breastmnist", root=tmp_path)


def test_existing_file_with_wrong_checksum_is_kept_but_not_loaded(tmp_path, monkeypatch):
    _offline(monkeypatch)
    payload, _ = _npz_bytes(1)
    path = tmp_path / "breastmnist.npz"
    path.write_bytes(payload)
    with pytest.raises(ChecksumError) as err:
        load_medmnist("breastmnist", root=tmp_path)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert DATASETS["breastmnist"].md5 in msg
    assert hashlib.md5(payload).hexdigest() in msg
    assert "not used" in msg
    assert path.read_bytes() == payload  # the user's file is left alone
    with pytest.raises(ChecksumError):
        verify("breastmnist", root=tmp_path)


def test_download_with_wrong_checksum_leaves_nothing_behind(tmp_path, monkeypatch):
    payload, _ = _npz_bytes(1)
    _serve(monkeypatch, payload)
    with pytest.raises(ChecksumError, match="deleted"):
        load_medmnist("pneumoniamnist", root=tmp_path / "new", progress=False)
    assert list((tmp_path / "new").iterdir()) == []


@pytest.mark.parametrize(("name", "n_channels"), [("pneumoniamnist", 1), ("bloodmnist", 3)])
def test_download_then_load(tmp_path, monkeypatch, name, n_channels):
    payload, arrays = _npz_bytes(n_channels)
    _set_md5(monkeypatch, name, payload)
    calls = _serve(monkeypatch, payload)
    data = load_medmnist(name.upper(), root=tmp_path, progress=False)
    assert calls == [DATASETS[name].url]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.npz"]
    assert data.name == name and data.classes == DATASETS[name].classes
    assert data.license == DATASETS[name].license and "Scientific Data" in data.citation
    for split, n in SIZES.items():
        s = getattr(data, split)
        assert s.images.shape == (n, n_channels, 28, 28) and s.images.dtype == np.float32
        assert s.labels.shape == (n,) and s.labels.dtype == np.int64
        assert s.images.min() == 0.0 and s.images.max() == 1.0
        raw = arrays[f"{split}_images"]
        first = raw[0] if n_channels == 1 else raw[0, :, :, 1]
        np.testing.assert_allclose(s.images[0, n_channels // 2], first / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(s.labels, arrays[f"{split}_labels"][:, 0])
    # a second load reads the verified local file, without the network
    _offline(monkeypatch)
    again = load_medmnist(name, root=tmp_path)
    np.testing.assert_array_equal(again.test.images, data.test.images)
    assert verify(name, root=tmp_path) == tmp_path / f"{name}.npz"
    assert available(tmp_path)[name] and not available(tmp_path)["octmnist"]


def test_unknown_name_lists_allowed_names(tmp_path):
    for call in (lambda: load_medmnist("chestmnist", root=tmp_path),
                 lambda: verify("mnist", root=tmp_path)):
        with pytest.raises(ValueError, match="allowed names") as err:
            call()
        assert "pneumoniamnist" in str(err.value) and "breastmnist" in str(err.value)


def test_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDLAB_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("FEDLAB_DATA")
    repo_data = Path(mm.__file__).resolve().parents[2] / "data"
    expected = (repo_data if (repo_data / "README.md").is_file()
                else Path.home() / ".cache" / "fedlab")
    assert default_data_dir() == expected


def test_dataset_table_facts():
    assert {"pneumoniamnist", "breastmnist", "retinamnist", "bloodmnist", "organamnist",
            "pathmnist", "dermamnist"} <= set(DATASETS)
    for name, info in DATASETS.items():
        assert info.name == name and info.filename == f"{name}.npz"
        assert info.url == f"https://zenodo.org/records/10519652/files/{name}.npz?download=1"
        assert len(info.md5) == 32 and int(info.md5, 16) >= 0
        assert info.n_channels in (1, 3) and len(info.classes) >= 2
        assert min(info.n_train, info.n_val, info.n_test) > 0
    assert DATASETS["dermamnist"].license == "CC BY-NC 4.0"
    pneu, breast = DATASETS["pneumoniamnist"], DATASETS["breastmnist"]
    assert pneu.md5 == "28209eda62fecd6e6a2d98b1501bb15f"
    assert (pneu.n_train, pneu.n_val, pneu.n_test) == (4708, 524, 624)
    assert pneu.classes == ("normal", "pneumonia")
    assert breast.md5 == "750601b1f35ba3300ea97c75c52ff8f6"
    assert (breast.n_train, breast.n_val, breast.n_test) == (546, 78, 156)


def _real_data_dir() -> Path:
    env = os.environ.get("FEDLAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/medmnist"


@pytest.mark.data
@pytest.mark.parametrize("name", ["pneumoniamnist", "breastmnist"])
def test_real_medmnist_files(name):
    root = _real_data_dir()
    if not (root / f"{name}.npz").is_file():
        pytest.skip(f"{name}.npz not in {root}")
    info = DATASETS[name]
    data = load_medmnist(name, root=root, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (
        info.n_train, info.n_val, info.n_test)
    assert data.n_channels == info.n_channels and data.image_size == (28, 28)
    assert set(np.unique(data.train.labels)) == set(range(len(info.classes)))
    assert 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic():
    a, b, c = make_synthetic(seed=3), make_synthetic(seed=3), make_synthetic(seed=4)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, split).images, getattr(b, split).images)
        np.testing.assert_array_equal(getattr(a, split).labels, getattr(b, split).labels)
        assert not np.array_equal(getattr(a, split).images, getattr(c, split).images)
    # the test set does not depend on the size of the training set
    d = make_synthetic(n_train=50, seed=3)
    np.testing.assert_array_equal(a.test.images, d.test.images)


@pytest.mark.parametrize(("n_channels", "size", "n_classes"), [(1, 28, 2), (3, 32, 5)])
def test_synthetic_shapes_range_balance(n_channels, size, n_classes):
    data = make_synthetic(n_train=101, n_val=7, n_test=13, n_classes=n_classes,
                          image_size=size, n_channels=n_channels, seed=1)
    assert data.classes == tuple(data.classes) and data.n_classes == n_classes
    assert data.license == "CC0 (generated)"
    for split, n in (("train", 101), ("val", 7), ("test", 13)):
        s = getattr(data, split)
        assert s.images.shape == (n, n_channels, size, size) and s.images.dtype == np.float32
        assert s.labels.dtype == np.int64 and s.labels.shape == (n,)
        assert s.images.min() >= 0.0 and s.images.max() <= 1.0
        counts = np.bincount(s.labels, minlength=n_classes)
        assert counts.max() - counts.min() <= 1


@pytest.mark.quality
def test_synthetic_is_learnable_but_not_from_mean_intensity(margin):
    data = make_synthetic(n_train=1000, n_test=400, n_classes=4, seed=seeded())
    x = data.train.images.reshape(len(data.train), -1)
    xt = data.test.images.reshape(len(data.test), -1)
    y, yt = data.train.labels, data.test.labels
    # nearest class mean on centred pixels: a linear model already learns the task
    xc, xtc = x - x.mean(1, keepdims=True), xt - xt.mean(1, keepdims=True)
    mu = np.stack([xc[y == k].mean(0) for k in range(4)])
    pred = np.argmax(xtc @ mu.T - 0.5 * (mu**2).sum(1), axis=1)
    margin.above("nearest-class-mean accuracy", (pred == yt).mean(), 0.75)
    # the mean intensity alone is close to chance (0.25)
    m = np.array([x[y == k].mean() for k in range(4)])
    pred_mean = np.argmin(np.abs(xt.mean(1)[:, None] - m[None]), axis=1)
    margin.below("mean-intensity accuracy (chance 0.25)", (pred_mean == yt).mean(), 0.4)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"n_classes": 1}, "n_classes"), ({"n_classes": 2.5}, "n_classes"),
     ({"n_classes": 100}, "n_classes"), ({"image_size": 4}, "image_size"),
     ({"n_channels": 2}, "n_channels"), ({"n_train": 0}, "n_train"),
     ({"n_val": -1}, "n_val"), ({"n_test": True}, "n_test"), ({"noise": -0.1}, "noise"),
     ({"noise": float("nan")}, "noise"), ({"seed": -1}, "seed")],
)
def test_synthetic_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        make_synthetic(**kwargs)
