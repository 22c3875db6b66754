"""Helpers lesson 05 calls: the mean-image baseline, the defence sweep, SecAgg's sum check."""

from __future__ import annotations

import pytest
import torch

from fedlab.attacks.inversion import (
    InversionConfig,
    defence_sweep,
    match_reconstructions,
    mean_image_baseline,
)
from fedlab.models import MLP
from fedlab.privacy import SecAgg


def test_mean_image_baseline_scores_the_pool_mean():
    pool = torch.stack([torch.full((1, 8, 8), v) for v in (0.2, 0.4, 0.6)])
    truth = torch.full((2, 1, 8, 8), 0.5)
    # the mean is 0.4 everywhere: MSE 0.01 -> 20 dB against every truth image
    assert mean_image_baseline(pool, truth)["psnr"] == pytest.approx(20.0)
    same = mean_image_baseline(truth, truth)
    assert same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0)
    guess = pool.mean(0, keepdim=True)
    assert mean_image_baseline(pool, truth) == match_reconstructions(guess, truth)


def test_defence_sweep_rows_and_examples():
    torch.manual_seed(0)
    model = MLP(image_size=8, hidden=8)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 0, 1])
    rows, examples = defence_sweep(model, x, y, batch_sizes=(1, 2), local_steps=(3,),
                                   noise_stds=(1e-2,), config=InversionConfig(iterations=5))
    assert [(r["defence"], r["value"]) for r in rows] == [
        ("batch size", "1"), ("batch size", "2"), ("local steps", "3"),
        ("noise std, no clipping", "0.01")]
    assert list(examples) == ["batch of 1", "batch of 2", "3 local steps", "noise 0.01"]
    assert all(e.shape == (1, 1, 8, 8) for e in examples.values())
    assert all({"psnr", "ssim"} <= set(r) for r in rows)


@pytest.mark.parametrize("dropped", [(), ("a", "b")])
def test_secagg_sum_error_is_fixed_point_rounding(dropped):
    names = ("a", "b", "c", "d", "e")
    gen = torch.Generator().manual_seed(0)
    payloads = {s: {"w": torch.randn(3, 4, generator=gen)} for s in names}
    counts = dict(zip(names, (5, 7, 3, 9, 4), strict=True))
    agg = SecAgg(sites=names, threshold=3, dropped=dropped)
    err = agg.sum_error(1, payloads, counts)
    assert 0 <= err < len(names) * 2.0 ** -agg.scale_bits * max(counts.values())
