"""The reconstruction task: k-space, masks, acquisitions, metrics, the network, runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.data.kspace import (
    fft2c,
    ifft2c,
    measured_acceleration,
    sampling_mask,
    zero_filled,
)
from fedlab.imaging import nmse, psnr, ssim
from fedlab.recon_net import ReconUNet

FAST = dict(rounds=1, local_steps=3, batch_size=16, progress=False, seed=0)


@pytest.fixture(scope="module")
def clean():
    return fl.data.make_synthetic(n_train=120, n_val=20, n_test=40, seed=seeded())


@pytest.fixture(scope="module")
def recon_sites(clean):
    sites = fl.data.split(clean, n_sites=3, seed=seeded())
    return fl.data.undersample(sites, [2, 4, 8], seed=seeded())


def test_fft_round_trip_is_exact_and_preserves_energy():
    rng = np.random.default_rng(0)
    x = rng.random((3, 28, 28)) + 1j * rng.random((3, 28, 28))
    k = fft2c(x)
    np.testing.assert_allclose(ifft2c(k), x, rtol=0, atol=1e-12)
    np.testing.assert_allclose((np.abs(k) ** 2).sum(), (np.abs(x) ** 2).sum(), rtol=1e-12)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(fft2c(t).numpy(), k, atol=1e-12)
    # the zero frequency sits in the middle: a constant image is one central spike
    spike = np.abs(fft2c(np.ones((28, 28))))
    assert np.unravel_index(spike.argmax(), spike.shape) == (14, 14)


@pytest.mark.parametrize("acceleration", [2, 4, 8])
def test_cartesian_mask_keeps_whole_lines_with_the_centre(acceleration):
    rng = np.random.default_rng(1)
    cf = 0.32 / acceleration
    masks = np.stack([sampling_mask("cartesian", (64, 64), acceleration, cf, rng)
                      for _ in range(200)])
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert (masks == masks[:, :1, :]).all()  # a column is measured whole or not at all
    n_center = max(1, round(64 * cf))
    dist = np.abs(np.arange(64) - 32)
    centre = np.argsort(dist, kind="stable")[:n_center]
    assert (masks[:, 0, centre] == 1).all()
    # over many images the measured acceleration is the asked one (within 5%)
    measured = masks[0].size * len(masks) / masks.sum()
    assert measured == pytest.approx(acceleration, rel=0.05)


def test_variable_density_mask_is_exact_and_denser_at_the_centre():
    rng = np.random.default_rng(2)
    mask = sampling_mask("variable-density", (28, 28), 4, 0.08, rng)
    assert mask.sum() == 196  # 784 / 4 points exactly
    centre, edge = mask[10:18, 10:18].mean(), np.r_[mask[:4].ravel(), mask[-4:].ravel()].mean()
    assert centre > 2 * edge


def test_acquisition_inputs_carry_the_mask_and_the_measured_lines(clean):
    acq = fl.data.Acquisition(acceleration=4, seed=3)
    inputs, target = acq.apply(clean.test.images, stream=2)
    assert inputs.shape == (40, 3, 28, 28) and target.shape == (40, 1, 28, 28)
    np.testing.assert_allclose(target[:, 0], clean.test.images[:, 0], atol=1e-7)
    mask = inputs[:, -1]
    measured = fft2c(inputs[:, 0].astype(np.float64) + 1j * inputs[:, 1])
    full = fft2c(target[:, 0].astype(np.float64))
    np.testing.assert_allclose(measured * mask, full * mask, atol=1e-5)  # no noise
    assert np.abs(measured * (1 - mask)).max() < 1e-5  # unmeasured is zero
    again, _ = acq.apply(clean.test.images, stream=2)
    np.testing.assert_array_equal(inputs, again)  # seeded
    other, _ = acq.apply(clean.test.images, stream=1)
    assert not np.array_equal(other[:, -1], mask)  # each split its own masks


def test_zero_filled_quality_falls_as_acceleration_grows(clean):
    scores = []
    for r in (1, 2, 4, 8):
        inputs, target = fl.data.Acquisition(acceleration=r, seed=0).apply(clean.test.images)
        scores.append(psnr(zero_filled(inputs), target).mean())
    assert scores[0] > 100  # fully sampled: zero-filled is the image (up to float error)
    assert scores[1] > scores[2] > scores[3]


def test_noise_has_the_asked_standard_deviation():
    images = np.zeros((50, 1, 32, 32), np.float32)
    inputs, _ = fl.data.Acquisition(acceleration=1, noise_std=0.1, seed=0).apply(images)
    # fully sampled, orthonormal FFT: image-domain noise has the k-space std (per complex
    # sample), split evenly over the real and imaginary channels
    assert np.std(inputs[:, 0]) == pytest.approx(0.1 / math.sqrt(2), rel=0.03)
    assert np.std(inputs[:, 1]) == pytest.approx(0.1 / math.sqrt(2), rel=0.03)


def test_measured_acceleration_per_site(recon_sites):
    for site, want in zip(recon_sites, (2, 4, 8), strict=True):
        x, _ = site.tensors("train")
        per_image = measured_acceleration(x)
        overall = 1 / np.mean(1 / per_image)  # samples over measured samples, all images
        assert overall == pytest.approx(want, rel=0.05 if want < 8 else 0.1)
        assert recon_sites.scanners[site.name].acceleration == want


def test_data_consistency_keeps_the_measured_kspace_to_float_precision(recon_sites):
    x, _ = recon_sites[2].tensors("test")
    net = ReconUNet(3, 1, 28, data_consistency=True)
    with torch.no_grad():  # perturb the head so the network changes its input
        net.head.weight.normal_(0, 0.5)
        image = net.forward_complex(x)
    mask = x[:, -1]
    measured = fft2c(torch.complex(x[:, 0], x[:, 1]))
    got = fft2c(image)
    err = ((got - measured).abs() * mask).max().item()
    assert err < 1e-5
    assert ((got - measured).abs() * (1 - mask)).max().item() > 1e-2  # it did change the rest


def test_untrained_network_returns_the_zero_filled_image(recon_sites):
    x, _ = recon_sites[1].tensors("test")
    for dc in (False, True):
        net = ReconUNet(3, 1, 28, data_consistency=dc).eval()
        with torch.no_grad():
            out = net(x)
        np.testing.assert_allclose(out.numpy(), zero_filled(x).numpy(), atol=1e-5)


def test_psnr_ssim_nmse_against_hand_computed_values():
    a = np.full((1, 1, 16, 16), 0.5)
    b = a + 0.1  # mse 0.01 -> PSNR 20 dB for data range 1
    assert psnr(b, a)[0] == pytest.approx(20.0)
    assert psnr(a, a)[0] == math.inf
    assert nmse(b, a)[0] == pytest.approx(0.01 / 0.25)
    # SSIM of a constant shift: (2 mu_a mu_b + c1) / (mu_a^2 + mu_b^2 + c1), the contrast
    # term is 1 (no variance); MONAI computes in float32, whose E[x^2] - E[x]^2 leaves
    # variances of ~1e-7 against c2 = 9e-4: agreement to a few 1e-4
    c1 = 0.01**2
    want = (2 * 0.5 * 0.6 + c1) / (0.5**2 + 0.6**2 + c1)
    assert ssim(b, a)[0] == pytest.approx(want, abs=5e-4)
    assert ssim(b, a)[0] != pytest.approx(1.0, abs=1e-2)
    rng = np.random.default_rng(0)
    img = rng.random((2, 1, 28, 28))
    assert ssim(img, img) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="at least 7 pixels"):
        ssim(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="one shape"):
        psnr(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 9, 9)))


def test_one_fedavg_round_logs_psnr_per_site_and_repeats(recon_sites):
    runs = [fl.run(recon_sites, model="recon-unet-dc", strategy="fedavg", **FAST)
            for _ in range(2)]
    a, b = runs
    for h in runs:
        per_site = h.per_site("psnr")
        assert list(per_site.index) == recon_sites.names and per_site.notna().all()
        zf = h.per_site("psnr_zero_filled")
        assert zf["site-1"] > zf["site-2"] > zf["site-3"]  # 2x, 4x, 8x
        s = h.summary()
        assert {"psnr", "ssim", "nmse", "psnr_zero_filled"} <= set(s)
        assert "accuracy" not in s
    assert json.dumps(a.metrics) == json.dumps(b.metrics)  # NaN accuracy: compare as text
    for k in a.final_state:
        assert torch.equal(a.final_state[k], b.final_state[k])


def test_ssim_weight_adds_the_ssim_loss_and_is_recorded_only_when_set(recon_sites):
    from fedlab.training import task_loss

    pred, target = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    l1 = task_loss(pred, target)
    both = task_loss(pred, target, ssim_weight=0.5)
    want = 0.5 * (1 - float(ssim(pred, target).mean()))
    assert float(both - l1) == pytest.approx(want, rel=1e-4)
    plain = fl.run(recon_sites, model="recon-unet", strategy="fedavg", **FAST)
    weighted = fl.run(recon_sites, model="recon-unet", strategy="fedavg", ssim_weight=0.5,
                      **FAST)
    assert "ssim_weight" not in plain.config["train"]
    assert weighted.config["train"]["ssim_weight"] == 0.5
    assert weighted.final("psnr") != plain.final("psnr")
    with pytest.raises(ValueError, match="ssim_weight must be >= 0"):
        fl.Train(ssim_weight=-1)


def test_history_of_a_reconstruction_run_round_trips(recon_sites, tmp_path):
    h = fl.run(recon_sites, model="recon-unet", strategy="fedavg", **FAST)
    h.save(tmp_path / "h.json")
    back = fl.History.load(tmp_path / "h.json")
    assert back.per_site("psnr").equals(h.per_site("psnr"))


def test_cli_reconstruction_writes_the_summary(tmp_path, monkeypatch):
    from fedlab.cli import main

    out = tmp_path / "run"
    code = main(["run", "--dataset", "synthetic", "--task", "reconstruction",
                 "--acceleration", "2,8", "--sites", "2", "--rounds", "1", "--local-steps",
                 "2", "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "reconstruction"
    assert {"psnr", "ssim", "nmse", "psnr_zero_filled"} <= set(summary)
    assert (out / "model.safetensors").exists()


@pytest.mark.parametrize("argv, message", [
    (["--task", "reconstruction", "--acceleration", "2,4"], "one value or one per site"),
    (["--task", "reconstruction", "--acceleration", "x"], "must be numbers"),
    (["--task", "reconstruction", "--acceleration", "0.5"], "acceleration must be"),
    (["--acceleration", "4"], "needs --task reconstruction"),
])
def test_cli_reconstruction_errors(tmp_path, capsys, argv, message):
    from fedlab.cli import main

    code = main(["run", "--dataset", "synthetic", "--sites", "3", "--rounds", "1",
                 "--out", str(tmp_path / "r"), "--quiet", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(acceleration=0.5), ValueError, "acceleration must be a number >= 1"),
    (dict(mask="radial"), ValueError, "mask must be one of"),
    (dict(center_fraction=1.5), ValueError, "center_fraction must be in"),
    (dict(noise_std=-1), ValueError, "noise_std must be >= 0"),
    (dict(input="phase"), ValueError, "input must be one of"),
])
def test_acquisition_refuses_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        fl.data.Acquisition(**kwargs)


def test_bad_reconstruction_inputs_are_refused(clean, recon_sites):
    with pytest.raises(ValueError, match="more than acceleration=8"):
        fl.data.Acquisition(acceleration=8, center_fraction=0.3).apply(clean.test.images)
    with pytest.raises(ValueError, match="one entry per site"):
        fl.data.undersample(fl.data.split(clean, 3, seed=0), [2, 4])
    with pytest.raises(ValueError, match="missing"):
        fl.data.undersample(fl.data.split(clean, 3, seed=0), {"site-1": 2})
    with pytest.raises(TypeError, match="Acquisition or an acceleration"):
        fl.data.undersample(fl.data.split(clean, 3, seed=0), "fast")
    with pytest.raises(ValueError, match="undersample the clean images"):
        fl.data.undersample(recon_sites, 4)
    with pytest.raises(ValueError, match="in_channels"):
        ReconUNet(1, 1, 28)
    with pytest.raises(ValueError, match="complex inputs"):
        ReconUNet(2, 1, 28, data_consistency=True)
    with pytest.raises(ValueError, match="augment"):
        fl.run(recon_sites, model="recon-unet", strategy="fedavg", augment=True, **FAST)
    with pytest.raises(ValueError, match="float labels are target images"):
        fl.data.Split(np.zeros((2, 3, 8, 8), np.float32), np.zeros((2, 1, 9, 8), np.float32))


def test_make_reconstruction_keeps_splits_and_records_the_acquisition(clean):
    data = fl.data.make_reconstruction(clean, acceleration=4, mask="variable-density")
    assert data.train.task == "reconstruction" and len(data.test) == len(clean.test)
    assert data.extra["acquisition"]["mask"] == "variable-density"
    assert data.classes == ("image",)
    with pytest.raises(TypeError, match="not both"):
        fl.data.make_reconstruction(clean, 4, mask="cartesian")


def test_figures_of_a_reconstruction_run(recon_sites):
    from fedlab import reconstruction as rec

    runs = {"fedavg": fl.run(recon_sites, model="recon-unet-dc", strategy="fedavg", **FAST),
            "local": fl.run(recon_sites, model="recon-unet-dc", strategy="local", **FAST)}
    table = rec.quality_table(runs)
    assert list(table.columns) == [rec.ZERO_FILLED, "fedavg", "local"]
    assert list(table.index) == [*recon_sites.names, "global"]
    info = rec.acceleration_info(table, recon_sites.scanners)
    assert sorted(set(info["acceleration"])) == [2, 4, 8]
    rec.plot_quality_by_site(table)
    rec.plot_quality_vs_acceleration(info)
    panels = rec.panels_info(recon_sites, runs, per_site=1)
    assert len(panels) == 3 and panels[0]["recon"]["fedavg"].shape == (28, 28)
    fig = rec.plot_panels(panels)
    assert len(fig.data) == 3 * (2 + 2 + 1)
    ks = rec.kspace_info(recon_sites[0].peek(1).labels[0], [fl.data.Acquisition(4)])
    assert ks[0]["mask"].mean() == pytest.approx(0.25, abs=0.04)
    rec.plot_kspace(ks)
    with pytest.raises(ValueError, match="no 'psnr' metric"):
        rec.quality_table({"x": fl.run(fl.data.split(fl.data.make_synthetic(
            n_train=60, n_val=10, n_test=20), 2), rounds=1, progress=False)})


@pytest.mark.quality
def test_trained_model_beats_zero_filled_on_held_out_images(margin):
    data = fl.data.make_synthetic(n_train=600, n_val=40, n_test=120, seed=seeded())
    sites = fl.data.undersample(fl.data.split(data, 3, seed=seeded()), 4, seed=seeded())
    h = fl.run(sites, model="recon-unet-dc", strategy="fedavg", rounds=4, local_epochs=1,
               batch_size=32, lr=3e-3, progress=False, seed=seeded())
    gain = h.final("psnr") - h.final("psnr_zero_filled")
    margin.above("PSNR over zero-filled on test images (dB)", gain, 1.0)
