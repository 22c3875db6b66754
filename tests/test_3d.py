"""Volumes (N, C, D, H, W): the split, the synthetic generator, 3-D models, a FedAvg run
that repeats exactly, codecs, DP, Grad-CAM with its slice figure, 3-D segmentation."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from conftest import seeded
from torch import nn

import fedlab as fl
from fedlab.comm import get_codec, roundtrip, serialized_size
from fedlab.data.base import Split
from fedlab.data.segmentation import SEGMENTATION_CLASSES
from fedlab.metrics import dice
from fedlab.models import ModelSpec, create_model, model_for_run
from fedlab.training import random_shift

SIZE = (8, 16, 16)
KW = {"model": "cnn3d", "rounds": 1, "progress": False, "local_steps": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def volumes():
    return fl.data.make_volume_sites(3, n_train=16, n_val=4, n_test=6, volume_size=SIZE,
                                     seed=seeded())


@pytest.fixture(scope="module")
def seg_volumes():
    return fl.data.make_volume_sites(2, n_train=8, n_val=2, n_test=4, volume_size=SIZE,
                                     task="segmentation", seed=seeded())


# -- the data -----------------------------------------------------------------------------
def test_split_holds_volumes_and_infers_the_task():
    x = np.zeros((2, 1, *SIZE), dtype=np.float32)
    cls = Split(x, np.array([0, 1]))
    seg = Split(x, np.zeros((2, *SIZE), dtype=np.int64))
    rec = Split(x, x.copy())
    assert (cls.task, seg.task, rec.task) == ("classification", "segmentation", "reconstruction")
    assert cls.spatial_dims == 3 and Split(x[:, :, 0], np.array([0, 1])).spatial_dims == 2
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        Split(x[..., None], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\(2, 8, 16, 16\) \(masks\)"):
        Split(x, np.zeros((2, 8, 16), dtype=np.int64))
    data = fl.data.make_volumes(4, 2, 2, volume_size=SIZE, seed=seeded())
    assert data.image_size == SIZE and data.n_channels == 1 and "(1, 8, 16, 16)" in repr(data)


def test_generator_shapes_and_seeding():
    make = lambda s, task="classification": fl.data.make_volumes(  # noqa: E731
        10, 2, 4, task=task, volume_size=SIZE, seed=s)
    a, b, c = make(seeded()), make(seeded()), make(seeded(1))
    assert a.train.images.shape == (10, 1, *SIZE) and a.train.images.dtype == np.float32
    assert 0.0 <= a.train.images.min() and a.train.images.max() <= 1.0
    assert np.array_equal(a.train.images, b.train.images)
    assert np.array_equal(a.test.labels, b.test.labels)
    assert not np.array_equal(a.train.images, c.train.images)
    assert np.bincount(a.train.labels).tolist() == [5, 5]  # balanced: lesion or not
    seg = make(seeded(), "segmentation")
    assert seg.train.labels.shape == (10, *SIZE) and seg.classes == SEGMENTATION_CLASSES
    lesions = (seg.train.labels == 2).reshape(10, -1).sum(1)
    assert set(np.unique(seg.train.labels)) == {0, 1, 2} and (lesions == 0).any()
    assert (lesions > 0).any()


def test_sites_see_their_patients_through_their_own_scanner(volumes):
    assert len(volumes) == 3 and volumes.sizes()["site-1"] == {"train": 16, "val": 4, "test": 6}
    flat = fl.data.make_volume_sites(3, 16, 4, 6, volume_size=SIZE, shift=0.0, seed=seeded())
    for site, plain in zip(volumes, flat, strict=True):  # same patients, other scanner
        s = volumes.scanners[site.name]
        expected = np.clip(plain.split("train").images ** s.gamma * s.gain, 0, 1)
        np.testing.assert_allclose(site.split("train").images, expected, atol=1e-6)
    means = [s.split("train").images.mean() for s in volumes]
    plain_means = [s.split("train").images.mean() for s in flat]
    assert np.std(means) > 3 * np.std(plain_means)  # sites differ in intensity
    assert len({(s.gain, s.gamma) for s in volumes.scanners.values()}) == 3
    fig = fl.viz.sample_images(volumes, per_site=2)  # volumes: their middle axial slice
    assert fig.data[0].z.shape == (16, 16, 3)


def test_generator_rejects_bad_input():
    for bad in (10, (8, 16), (4, 16, 16), (8.0, 16, 16)):
        with pytest.raises(ValueError, match="volume_size"):
            fl.data.make_volumes(2, 1, 1, volume_size=bad)
    with pytest.raises(ValueError, match="task"):
        fl.data.make_volumes(2, 1, 1, task="detection")
    with pytest.raises(ValueError, match="max_lesions"):
        fl.data.make_volumes(2, 1, 1, max_lesions=0)
    with pytest.raises(ValueError, match="names"):
        fl.data.make_volume_sites(2, names=["a", "a"])


def test_scanner_acquires_volumes_in_3d():
    x = fl.data.make_volumes(2, 1, 1, volume_size=SIZE, seed=seeded()).train.images
    np.testing.assert_allclose(fl.data.Scanner(gain=1.2).apply(x), np.clip(x * 1.2, 0, 1),
                               atol=1e-6)
    blurred = fl.data.Scanner(blur_sigma=1.0, resolution=0.5).apply(x)
    assert blurred.shape == x.shape and np.abs(np.diff(blurred, axis=2)).mean() < \
        np.abs(np.diff(x, axis=2)).mean()  # smoother along D too


# -- models -------------------------------------------------------------------------------
def test_3d_models_by_name_and_wrong_dimension_errors(volumes):
    x = torch.zeros(2, 1, *SIZE)
    cnn, unet = create_model("cnn3d", 1, 2), create_model("unet3d", 1, 3, spatial_dims=3)
    assert cnn(x).shape == (2, 2) and unet(x).shape == (2, 3, *SIZE)
    assert cnn(torch.zeros(1, 1, 16, 32, 32)).shape == (1, 2)  # any volume size
    for net in (cnn, unet):  # federated-friendly norms: no running statistics
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    with pytest.raises(ValueError, match=r"'cnn' takes 2-D images.*3-D volumes.*'cnn3d'"):
        create_model("cnn", spatial_dims=3)
    with pytest.raises(ValueError, match=r"'unet' takes 2-D.*\['cnn3d', 'unet3d'\]"):
        fl.run(volumes, **{**KW, "model": "unet"})
    flat = fl.data.split(fl.data.make_synthetic(20, 4, 4, seed=seeded()), 2, seed=seeded())
    with pytest.raises(ValueError, match=r"'cnn3d' takes 3-D volumes.*2-D images.*'cnn'"):
        ModelSpec.for_sites("cnn3d", flat)
    assert ModelSpec.for_sites(cnn, volumes).model is cnn  # a module of one's own: unchecked


# -- the engine, codecs, DP ---------------------------------------------------------------
def test_3d_fedavg_repeats_exactly(volumes):
    kw = {**KW, "rounds": 2}
    a = fl.run(volumes, seed=seeded(), **kw)
    b = fl.run(volumes, seed=seeded(), **kw)
    c = fl.run(volumes, seed=seeded(1), **kw)
    assert a.equals(b) and not a.equals(c)
    assert all(torch.equal(a.final_state[k], b.final_state[k]) for k in a.final_state)
    assert a.last_round == 2 and np.isfinite(a.final("loss"))
    net = model_for_run(a.config, volumes)
    net.load_state_dict(a.final_state)
    assert net(torch.zeros(1, 1, *SIZE)).shape == (1, 2)


def test_codecs_on_3d_conv_weights(volumes):
    weight = create_model("cnn3d").state_dict()["features.4.weight"]  # (16, 8, 3, 3, 3)
    assert weight.ndim == 5
    for name in ("topk:0.1", "int8", "fp16"):
        wire, out = roundtrip(get_codec(name), {"w": weight})
        assert out["w"].shape == weight.shape
        assert serialized_size(wire) < serialized_size({"w": weight})
    plain = fl.run(volumes, seed=seeded(), **KW)
    for name in ("topk-ef:0.1", "int8"):
        hist = fl.run(volumes, seed=seeded(), uplink=name, **KW)
        assert hist.bytes("up") < plain.bytes("up") and np.isfinite(hist.final("loss"))


def test_client_dp_round_in_3d(volumes):
    dp = fl.privacy.DPFedAvg(noise_multiplier=1.0, clip=0.5, seed=seeded())
    hist = fl.run(volumes, strategy=dp, seed=seeded(), **KW)
    assert hist.rounds[-1]["epsilon"] == pytest.approx(dp.epsilon(1))
    assert all(torch.isfinite(v).all() for v in hist.final_state.values())


@pytest.mark.skipif(importlib.util.find_spec("opacus") is None, reason="needs opacus")
def test_dpsgd_round_in_3d(volumes):
    strat = fl.privacy.DPSGD(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-3)
    hist = fl.run(volumes, strategy=strat, seed=seeded(), **KW)
    assert hist.rounds[-1]["epsilon"] > 0 and np.isfinite(hist.final("loss"))


# -- explanation --------------------------------------------------------------------------
def test_gradcam_on_3d_and_its_middle_slices(volumes):
    hist = fl.run(volumes, seed=seeded(), **KW)
    net = fl.explain.build_model(hist.final_state, "cnn3d", volumes)
    x = volumes[0].split("test").images[:2]
    assert fl.explain.find_target_layer(net, x.shape[1:]) == "features"  # last conv block
    assert isinstance(net.features[8], nn.Conv3d)  # the last 3-D convolution
    maps = fl.explain.saliency(net, x, "gradcam", layer="features.8")
    assert maps.shape == (2, *SIZE) and maps.min() >= 0 and maps.max() <= 1
    info = fl.explain.volume_slices_info(x[0], {"Grad-CAM": maps[0]})
    assert info["at"] == (4, 8, 8) and info["views"] == ("axial", "coronal", "sagittal")
    assert [s.shape for s in info["slices"]["Grad-CAM"]] == [(16, 16), (8, 16), (8, 16)]
    np.testing.assert_array_equal(info["slices"]["volume"][1], x[0][:, :, 8])
    fig = fl.explain.volume_slices(x[0], maps[0], at=(2, 3, 4))
    assert len(fig.data) == 6 and all(t.type == "image" for t in fig.data)
    with pytest.raises(ValueError, match="at must be a voxel"):
        fl.explain.volume_slices_info(x[0], at=(8, 0, 0))


# -- segmentation and augmentation ----------------------------------------------------------
def test_dice_on_volumes_by_hand():
    target = np.zeros((1, 2, 2, 2), dtype=int)
    target[0, 0] = 1  # 4 voxels of class 1
    pred = np.zeros_like(target)
    pred[0, 0, 0] = 1  # 2 of them found
    np.testing.assert_allclose(dice(pred, target, 2), [[2 * 2 / (2 + 4)]])


def test_augment_shifts_volumes_in_plane():
    x = torch.zeros(1, 1, 4, 8, 8)
    x[0, 0, 1, 4, 4] = 1.0
    moved = [random_shift(x, torch.Generator().manual_seed(s)) for s in range(6)]
    spots = {tuple(torch.nonzero(m[0, 0])[0].tolist()) for m in moved if m.sum() > 0}
    assert len(spots) > 1 and all(d == 1 for d, _, _ in spots)  # D never moves


def test_segmentation_3d_round_with_dice(seg_volumes):
    hist = fl.run(seg_volumes, seed=seeded(), augment=True, **{**KW, "model": "unet3d"})
    test = hist.to_frame().query("split == 'test' and round == 1")
    assert set(test["site"]) == {"site-1", "site-2", "global"}
    for col in ("dice", "dice_1", "dice_2"):
        assert test[col].between(0, 1).all()
    data = fl.data.make_volumes(8, 2, 2, task="segmentation", volume_size=SIZE, seed=seeded())
    sites = fl.data.split_segmentation(data, 2, seed=seeded())
    assert sites[0].split("train").labels.shape[1:] == SIZE
