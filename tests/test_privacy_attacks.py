"""fedlab.attacks.inversion and fedlab.attacks.membership: the privacy attacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.attacks.inversion import (
    InversionConfig,
    infer_labels,
    invert_update,
    match_reconstructions,
    psnr,
    site_update,
    ssim,
)
from fedlab.attacks.membership import loss_threshold_attack, membership_info, plot_membership
from fedlab.models import MLP


def test_psnr_and_ssim_on_hand_made_images():
    a = torch.zeros(1, 28, 28)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(b, a) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    img = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(torch.rand(1, 28, 28), img) < 0.2
    assert ssim(img * 0.9 + 0.05, img) > ssim(torch.rand(1, 28, 28), img)


def _image_batch(federation, n):
    x, y = federation[0].tensors("train")
    return x[:n], y[:n]


@pytest.mark.quality
def test_inversion_recovers_an_image_from_an_undefended_update(federation, margin):
    torch.manual_seed(seeded())
    model = MLP(hidden=16)
    x, y = _image_batch(federation, 1)
    update = site_update(model, x, y, lr=0.1)
    assert infer_labels(update, model, 1).tolist() == y.tolist()
    rebuilt, labels = invert_update(model, update, tuple(x.shape),
                                    config=InversionConfig(iterations=150))
    scores = match_reconstructions(rebuilt, x)
    margin.above("PSNR of the rebuilt image (dB)", scores["psnr"], 30)
    margin.above("SSIM of the rebuilt image", scores["ssim"], 0.9)
    # the same attack against a noised update (DP) fails
    gen = torch.Generator().manual_seed(seeded())
    noised = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in update.items()}
    blurred, _ = invert_update(model, noised, tuple(x.shape), labels,
                               config=InversionConfig(iterations=150))
    margin.below("PSNR against the noised update (dB)", match_reconstructions(blurred, x)["psnr"],
                 scores["psnr"] - 15)


def test_site_update_is_minus_lr_times_the_gradient():
    torch.manual_seed(0)
    model = MLP(hidden=8)
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 1])
    update = site_update(model, x, y, lr=0.5)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, _), g in zip(model.named_parameters(), grads, strict=True):
        assert torch.allclose(update[name], -0.5 * g, atol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        site_update(model, x, y, steps=0)
    with pytest.raises(ValueError, match="iterations"):
        InversionConfig(iterations=0)


def test_loss_threshold_attack_on_hand_made_losses():
    perfect = loss_threshold_attack(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.9]))
    assert perfect["auc"] == 1.0 and perfect["advantage"] == 1.0
    assert 0.3 <= perfect["threshold"] < 0.5
    same = loss_threshold_attack(np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.5, 0.9]))
    assert same["auc"] == pytest.approx(0.5)
    inverted = loss_threshold_attack(np.array([0.8, 0.9]), np.array([0.1, 0.2]))
    assert inverted["auc"] == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        loss_threshold_attack(np.array([]), np.array([0.1]))


@pytest.mark.quality
def test_membership_info_on_an_overfitted_run(margin):
    # 30 training images per site and 50 local epochs in all: the model memorises them.
    # (The shared 300-image federation with 15 epochs generalises so well that the AUC
    # was 0.44-0.58 across seed offsets: no membership signal to find.)
    data = fl.data.make_synthetic(n_train=90, n_val=30, n_test=200, seed=seeded())
    federation = fl.data.split(data, n_sites=3, seed=seeded())
    hist = fl.run(federation, model="mlp", rounds=5, local_epochs=10, progress=False,
                  seed=seeded())
    info = membership_info(hist, federation, n=60, seed=seeded())
    assert info["n"] == 60 and len(info["member_loss"]) == len(info["nonmember_loss"]) == 60
    margin.above("membership AUC (members' loss is lower)", info["auc"], 0.55)
    assert info["auc"] <= 1.0
    fig = plot_membership({"FedAvg": info})
    assert len(fig.data) == 2 and fig.data[1].name.startswith("FedAvg")
    untrained = fl.run(federation, model="mlp", rounds=0, progress=False, seed=seeded())
    margin.below("|untrained membership AUC - 0.5|",
                 abs(membership_info(untrained, federation, n=60)["auc"] - 0.5), 0.15)
