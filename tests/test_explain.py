"""fedlab.explain: saliency, agreement, per-site reports, site contributions, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import seeded
from torch import nn

import fedlab as fl
from fedlab.explain import (
    METHODS,
    agreement_matrix,
    border_mask,
    contributions,
    fairness,
    find_target_layer,
    integrated_gradients,
    leave_one_out,
    mass_in,
    rank_correlation,
    saliency,
    shapley,
    site_report,
    top_overlap,
)
from fedlab.explain.contribution import CachedUtility
from fedlab.metrics import (
    confusion_matrix,
    expected_calibration_error,
    reliability,
    sensitivity_specificity,
)


class RegionModel(nn.Module):
    """A hand-made classifier whose class-1 logit is the summed intensity of one region:
    only those pixels can matter."""

    def __init__(self, region: np.ndarray) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.act = nn.ReLU()
        self.register_buffer("mask", torch.as_tensor(region, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.act(self.conv(x)) * self.mask).sum((1, 2, 3)) / 100.0
        return torch.stack([-s, s], 1)


@pytest.fixture(scope="module")
def region_case():
    region = np.zeros((28, 28), dtype=bool)
    region[2:10, 2:10] = True  # the top-left block the model reads
    images = np.full((3, 1, 28, 28), 0.2, dtype=np.float32)
    images[:, :, 2:10, 2:10] = 0.9
    images[:, :, 18:26, 18:26] = 0.9  # an equally bright block the model ignores
    ignored = np.zeros((28, 28), dtype=bool)
    ignored[18:26, 18:26] = True
    return RegionModel(region), images, region, ignored


@pytest.fixture(scope="module")
def cnn_images(synthetic):
    torch.manual_seed(0)
    return fl.models.create_model("cnn").eval(), synthetic.test.images[:6]


# -- saliency ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_saliency_shape_range_and_determinism(cnn_images, method):
    model, images = cnn_images
    first = saliency(model, images, method)
    assert first.shape == (6, 28, 28) and first.dtype == np.float32
    assert first.min() == 0.0 and first.max() == 1.0
    assert np.array_equal(first, saliency(model, images, method))


@pytest.mark.parametrize("method", ["occlusion", "integrated_gradients"])
def test_saliency_finds_the_region_the_model_uses(region_case, method):
    model, images, used, ignored = region_case
    maps = saliency(model, images, method, target=1)
    inside, outside = maps[:, used].mean(), maps[:, ignored].mean()
    assert inside > 0.3 and outside < 0.01 * inside


def test_occluding_the_used_region_changes_the_output_more(region_case):
    model, images, used, ignored = region_case
    x = torch.as_tensor(images)
    with torch.no_grad():
        base = torch.softmax(model(x), 1)[:, 1]
        hide_used, hide_ignored = x.clone(), x.clone()
        hide_used[:, :, used] = x.mean()
        hide_ignored[:, :, ignored] = x.mean()
        drop_used = (base - torch.softmax(model(hide_used), 1)[:, 1]).abs()
        drop_ignored = (base - torch.softmax(model(hide_ignored), 1)[:, 1]).abs()
    assert (drop_used > 0.05).all() and (drop_ignored < 1e-6).all()
    maps = saliency(model, images, "occlusion", target=1)
    assert (maps[:, used].mean((1,)) > 10 * maps[:, ignored].mean((1,)) + 1e-6).all()


def test_integrated_gradients_completeness(cnn_images):
    model, images = cnn_images
    attr = integrated_gradients(model, images, target=1, steps=128, raw=True)
    with torch.no_grad():
        gap = model(torch.as_tensor(images))[:, 1] - model(torch.zeros_like(
            torch.as_tensor(images)))[:, 1]
    assert attr.shape == images.shape
    np.testing.assert_allclose(attr.reshape(6, -1).sum(1), gap.numpy(), atol=2e-3, rtol=0.02)


def test_gradcam_layer_is_found_and_explained():
    assert find_target_layer(fl.models.create_model("cnn"), (1, 28, 28)) == "features"
    with pytest.raises(ValueError, match="occlusion"):
        find_target_layer(fl.models.create_model("mlp"), (1, 28, 28))
    with pytest.raises(ValueError, match="method must be one of"):
        saliency(fl.models.create_model("cnn"), np.zeros((1, 1, 28, 28)), "lime")
    with pytest.raises(ValueError, match="target"):
        saliency(fl.models.create_model("cnn"), np.zeros((2, 1, 28, 28)), "gradcam",
                 target=[0, 1, 1])


def test_gradcam_leaves_the_model_untouched(cnn_images):
    model, images = cnn_images
    saliency(model, images, "gradcam")
    assert not model._forward_hooks and not model.features._forward_hooks


# -- agreement --------------------------------------------------------------------------
def test_rank_correlation_and_top_overlap_by_hand():
    a = np.arange(16, dtype=float).reshape(1, 4, 4)
    assert rank_correlation(a, a)[0] == pytest.approx(1.0)
    assert rank_correlation(a, -a)[0] == pytest.approx(-1.0)
    b = a.copy()
    b[0, 3, 3], b[0, 3, 2] = 0.0, 15.0  # top 2 pixels: {15, 14} vs {14, 15}→ now {14, 15}
    # top 25 % = 4 pixels: a -> {12, 13, 14, 15}; b -> {12, 13, 14(15.0), 11}: 3 shared of 5
    assert top_overlap(a, b, top=0.25)[0] == pytest.approx(3 / 5)
    assert np.isnan(rank_correlation(np.ones((1, 4, 4)), a)[0])


def test_mass_in_and_border():
    mask = border_mask(28, width=3)
    assert mask.sum() == 28 * 28 - 22 * 22
    uniform = np.ones((2, 28, 28))
    np.testing.assert_allclose(mass_in(uniform, mask), mask.mean())
    only_border = mask[None].astype(float)
    assert mass_in(only_border, mask)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="region"):
        mass_in(uniform, mask[:5])


def test_agreement_matrix_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(0)
    maps = {k: rng.random((3, 8, 8)) for k in ("global", "site-1", "site-2")}
    table = agreement_matrix(maps)
    np.testing.assert_allclose(np.diag(table), 1.0)
    np.testing.assert_allclose(table.values, table.values.T)
    assert agreement_matrix(maps, "top_overlap").loc["global", "global"] == 1.0


# -- metrics and reports ----------------------------------------------------------------
def _binary(p1):
    p1 = np.asarray(p1, dtype=float)
    return np.stack([1 - p1, p1], 1)


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6, 0.6 (right), 0.7 (wrong):
    # bins |0.5 - 0.9| * 2, |1 - 0.6| * 2, |0 - 0.7| * 1 over 5 samples = 2.3 / 5
    probs = _binary([0.9, 0.1, 0.6, 0.4, 0.7])
    labels = np.array([1, 1, 1, 0, 0])
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.46)
    r = reliability(probs, labels, bins=10)
    assert r["count"].sum() == 5 and np.isnan(r["accuracy"][0])
    assert expected_calibration_error(_binary([1.0, 0.0]), np.array([1, 0])) == 0.0


def test_confusion_sensitivity_specificity_by_hand():
    probs = _binary([0.9, 0.8, 0.3, 0.2, 0.7])
    labels = np.array([1, 1, 1, 0, 0])
    np.testing.assert_array_equal(confusion_matrix(probs, labels), [[1, 1], [1, 2]])
    sens, spec = sensitivity_specificity(probs, labels)
    assert sens == pytest.approx(2 / 3) and spec == pytest.approx(1 / 2)


@pytest.fixture(scope="module")
def runs(federation):
    kw = {"rounds": 2, "seed": 0, "progress": False}
    return {"fedavg": fl.run(federation, **kw), "local": fl.run(federation, strategy="local",
                                                                 **kw)}


@pytest.mark.parametrize("name", ["fedavg", "local"])
def test_site_report_matches_the_run(federation, runs, name):
    report = site_report(runs[name], federation)
    assert list(report.index) == federation.names
    assert {"n", "accuracy", "auc", "sensitivity", "specificity", "ece"} <= set(report.columns)
    np.testing.assert_allclose(report["accuracy"], runs[name].per_site("accuracy"))
    summary = fairness(report)
    assert summary["worst"] == report["accuracy"].min()
    assert summary["spread"] == pytest.approx(report["accuracy"].max()
                                              - report["accuracy"].min())
    assert fairness(report, "ece")["worst"] == report["ece"].max()
    with pytest.raises(ValueError, match="metric must be one of"):
        fairness(report, "f1")


def test_history_models_global_and_local(federation, runs):
    assert list(fl.explain.history_models(runs["fedavg"], federation)) == ["global"]
    assert list(fl.explain.history_models(runs["local"], federation)) == federation.names
    cms = fl.explain.confusion_matrices(runs["fedavg"], federation)
    assert {k: int(v.values.sum()) for k, v in cms.items()} == \
        {s.name: s.size("test") for s in federation}


# -- contributions ----------------------------------------------------------------------
def _counted(v):
    calls = []

    def utility(s):
        calls.append(s)
        return v(s)
    return utility, calls


def test_shapley_additive_game_gives_the_weights():
    w = {"a": 0.5, "b": -0.2, "c": 0.1, "d": 0.0}
    utility, calls = _counted(lambda s: sum(w[p] for p in s))
    phi = shapley(list(w), utility)
    np.testing.assert_allclose(phi[list(w)], list(w.values()), atol=1e-12)
    assert len(calls) == 2 ** 4  # each coalition evaluated once


def test_shapley_efficiency_symmetry_null_player():
    # a and b are interchangeable, c adds nothing, the game is not additive
    def v(s):
        return np.sqrt(("a" in s) + ("b" in s)) + 0.3 * ("a" in s and "e" in s) + 0.1

    players = ["a", "b", "c", "e"]
    phi = shapley(players, v)
    assert phi.sum() == pytest.approx(v(set(players)) - v(set()))
    assert phi["c"] == pytest.approx(0.0)
    loo = leave_one_out(players, v)
    assert loo["c"] == pytest.approx(0.0) and loo["b"] == pytest.approx(np.sqrt(2) - 1)
    sym = shapley(["x", "y", "z"], lambda s: len(s) ** 2)
    np.testing.assert_allclose(sym, 3.0)


def test_monte_carlo_shapley_is_efficient_and_close():
    weights = np.linspace(-1, 1, 8)
    players = [f"s{i}" for i in range(8)]

    def v(s):
        return float(sum(weights[int(p[1:])] for p in s)) ** 2 / 4

    exact = shapley(players, v, exact_up_to=8)
    sampled = shapley(players, v, exact_up_to=6, permutations=300, seed=1)
    assert sampled.sum() == pytest.approx(v(players) - v(()))
    np.testing.assert_allclose(sampled, exact, atol=0.1)
    assert sampled.equals(shapley(players, v, exact_up_to=6, permutations=300, seed=1))


def test_contributions_reuse_the_cache():
    utility, calls = _counted(lambda s: len(s) - 2.0 * ("bad" in s))
    v = CachedUtility(utility)
    frame = contributions(["a", "b", "bad"], v)
    assert len(calls) == 8 and frame.attrs["evaluations"] == 8
    assert frame.loc["bad", "shapley"] == pytest.approx(-1.0)
    assert frame.loc["bad", "leave_one_out"] < 0 < frame.loc["a", "leave_one_out"]


@pytest.mark.quality
def test_pure_noise_site_has_the_lowest_leave_one_out(margin):
    # two clean sites and one, the largest, whose training labels are independent of the
    # images; AUC on the pooled (clean) test splits is the utility (4 short runs). With
    # equal sites the AUC of any two saturates near 1 and every leave-one-out value is
    # within 0.01 of 0, so their order is rounding noise; a large noisy site pulls FedAvg
    # away by its image count, and removing it must help.
    data = fl.data.make_synthetic(n_train=450, n_val=30, n_test=300, seed=seeded(5))
    sites = fl.data.split(data, n_sites=3, scheme=fl.data.IID(),
                          sizes=fl.data.QuantitySkew("powerlaw", skew=1.0), seed=seeded())
    big = int(np.argmax([s.size() for s in sites]))
    noisy = fl.data.noisy_labels(sites[big], fraction=1.0, seed=seeded())
    sites = fl.Federation([noisy if i == big else s for i, s in enumerate(sites)])
    clean = [name for name in sites.names if name != noisy.name]
    v = fl.explain.fl_utility(sites, metric="auc", rounds=3, seed=seeded(), local_epochs=2)
    loo = leave_one_out(sites.names, v)
    margin.below("noisy site's LOO - the lowest clean site's LOO",
                 loo[noisy.name] - min(loo[name] for name in clean), 0.0)
    margin.below("noisy site's LOO (removing the noise must not hurt)", loo[noisy.name], 0.005)
    assert v.evaluations == 4  # all sites, and all but each one
    margin.above("AUC the clean sites gain by federating", v(clean) - v(()), 0.2)


# -- noisy labels -----------------------------------------------------------------------
def test_noisy_labels_is_seeded_and_local(federation):
    site = federation[0]
    y = site.tensors("train")[1].numpy()
    flipped = fl.data.noisy_labels(site, 1.0, kind="flip")
    assert (flipped.tensors("train")[1].numpy() != y).all()
    assert np.array_equal(flipped.tensors("test")[1], site.tensors("test")[1])
    assert np.array_equal(fl.data.noisy_labels(site, 0.0).tensors("train")[1].numpy(), y)
    a, b = (fl.data.noisy_labels(site, 0.5, seed=4).tensors("train")[1] for _ in range(2))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="fraction"):
        fl.data.noisy_labels(site, 1.5)
    with pytest.raises(ValueError, match="splits"):
        fl.data.noisy_labels(site, 0.5, splits=("training",))


def test_rescan_changes_images_only(federation):
    site = federation[0]
    dark = fl.data.rescan(site, fl.data.Scanner(gain=0.5))
    x, y = site.tensors("test")
    x2, y2 = dark.tensors("test")
    assert torch.equal(y, y2) and torch.allclose(x2, (x * 0.5).clamp(0, 1), atol=1e-6)


# -- figures ----------------------------------------------------------------------------
def test_figures(region_case, federation, runs):
    _, images, _, _ = region_case
    maps = {"model a": np.zeros((3, 28, 28)), "model b": np.ones((3, 28, 28))}
    maps["model a"][:, 5, 7] = 1.0
    info = fl.explain.saliency_grid_info(maps)
    assert info.query("row == 'model a'")[["peak_y", "peak_x"]].drop_duplicates().values \
        .tolist() == [[5, 7]]
    fig = fl.explain.saliency_grid(images, maps, titles=["x", "y", "z"])
    assert len(fig.data) == 3 * 3 and fig.data[0].type == "image"
    with pytest.raises(ValueError, match="shape"):
        fl.explain.saliency_grid(images, {"bad": np.zeros((2, 28, 28))})
    reports = {n: site_report(h, federation) for n, h in runs.items()}
    bars = fl.explain.site_metrics_info(reports)
    assert bars.groupby("run")["worst"].sum().tolist() == [1, 1]
    assert len(fl.explain.site_metrics(reports).data) == 2
    rel = fl.explain.reliability_info(runs["fedavg"], federation, bins=5)
    assert rel.groupby("site")["count"].sum().to_dict() == \
        {s.name: s.size("test") for s in federation}
    assert len(fl.explain.reliability_diagram(rel).data) == 1 + len(federation)
    frame = pd.DataFrame({"leave_one_out": [0.1, -0.2], "shapley": [0.2, -0.1]},
                         index=["a", "b"])
    assert [t.name for t in fl.explain.contribution_bars(frame).data] == \
        ["leave one out", "shapley"]


def test_models_of_a_saved_or_custom_run_need_help(federation, runs, tmp_path):
    loaded = fl.History.load(runs["fedavg"].save(tmp_path / "h.json"))
    with pytest.raises(ValueError, match="loaded from JSON"):
        fl.explain.history_models(loaded, federation)
    custom = fl.run(federation, model=fl.models.MLP(), rounds=1, progress=False)
    with pytest.raises(ValueError, match="pass model="):
        site_report(custom, federation)
    report = site_report(custom, federation, model=fl.models.MLP())
    np.testing.assert_allclose(report["accuracy"], custom.per_site("accuracy"))
    maps = saliency(fl.explain.history_models(custom, federation, fl.models.MLP())["global"],
                    federation[0].peek(2, "test").images, "integrated_gradients")
    assert maps.shape == (2, 28, 28)
