"""Acquisition shift, heterogeneity statistics and their figures."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

import fedlab as fl
from fedlab import viz
from fedlab.data import (
    AcquisitionShift,
    Dirichlet,
    Scanner,
    Split,
    apply_shift,
    distance_matrix,
    distance_to_global,
    intensity_histogram,
    intensity_stats,
    js_distance,
    label_distance,
    split,
    total_variation,
)
from fedlab.sites import Federation, Site


@pytest.fixture(scope="module")
def shifted(synthetic):
    return split(synthetic, 4, Dirichlet(1.0), seed=0, shift=AcquisitionShift(strength=0.8))


@pytest.fixture(scope="module")
def plain(synthetic):
    return split(synthetic, 4, Dirichlet(1.0), seed=0)


def _site(name, labels, value=0.5, n_classes=2):
    labels = np.asarray(labels, dtype=np.int64)
    images = np.full((len(labels), 1, 4, 4), value, dtype=np.float32)
    part = Split(images, labels)
    return Site(name, part, part.subset(np.arange(0)), part, classes=[str(c) for c in
                                                                       range(n_classes)])


@pytest.fixture
def hand():
    # a: labels half/half, b: only class 0  -> global (6/8, 2/8)
    return Federation([_site("a", [0, 0, 1, 1], 0.25), _site("b", [0, 0, 0, 0], 0.75)])


# -- acquisition shift -------------------------------------------------------------------

def test_strength_zero_is_identity():
    images = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    scanners = AcquisitionShift(0.0).scanners(4, np.random.default_rng(0))
    assert all(s.is_identity for s in scanners)
    assert np.array_equal(scanners[0].apply(images), images)


def test_shift_changes_intensities_per_site_differently(plain, shifted):
    before, after = intensity_stats(plain), intensity_stats(shifted)
    change = (after["mean"] - before["mean"]).abs().to_numpy()
    assert (change > 1e-3).all()
    assert np.ptp(after["std"] - before["std"]) > 1e-3  # not one common change
    assert len({round(s.gamma, 6) for s in shifted.scanners.values()}) == len(shifted)


def test_shift_keeps_partition_range_and_determinism(synthetic, plain, shifted):
    for a, b in zip(plain, shifted, strict=True):
        for name in ("train", "val", "test"):
            pa, pb = a.peek(10**9, name), b.peek(10**9, name)
            assert np.array_equal(pa.labels, pb.labels)  # same samples, new scanner
            assert pb.images.dtype == np.float32
            assert 0.0 <= pb.images.min() and pb.images.max() <= 1.0
    again = split(synthetic, 4, Dirichlet(1.0), seed=0, shift=AcquisitionShift(strength=0.8))
    assert np.array_equal(again[2].peek(10**9, "test").images,
                          shifted[2].peek(10**9, "test").images)
    assert again.scanners == shifted.scanners


def test_one_scanner_for_all_splits_of_a_site():
    images = np.random.default_rng(1).random((2, 1, 16, 16)).astype(np.float32)
    scanner = Scanner(gain=1.2, gamma=0.8, blur_sigma=1.0, resolution=0.5)  # no noise
    assert np.array_equal(scanner.apply(images, stream=0), scanner.apply(images, stream=2))
    noisy = Scanner(noise_std=0.05, seed=3)
    assert np.array_equal(noisy.apply(images, 1), noisy.apply(images, 1))
    assert not np.array_equal(noisy.apply(images, 0), noisy.apply(images, 1))


@pytest.mark.parametrize("effect, check", [
    ("gain", lambda s: s.gain != 1 and s.gamma == 1 and s.noise_std == 0),
    ("blur", lambda s: s.blur_sigma > 0 and s.gain == 1 and s.resolution == 1),
])
def test_effects_select_what_varies(effect, check):
    scanners = AcquisitionShift(1.0, effects=(effect,)).scanners(3, np.random.default_rng(0))
    assert all(check(s) for s in scanners)


def test_scanners_are_recorded_and_tabulated(shifted):
    assert list(shifted.scanners) == shifted.names
    info = fl.data.scanner_info(shifted)
    assert list(info.columns) == ["site", "gain", "gamma", "noise_std", "blur_sigma",
                                  "resolution"]
    assert info["gain"].tolist() == [s.gain for s in shifted.scanners.values()]
    assert (fl.data.scanner_info(fl.data.split(fl.data.make_synthetic(50, 5, 5), 2))
            [["gain", "gamma"]] == 1).all().all()


def test_apply_shift_to_any_federation(plain):
    out = apply_shift(plain, AcquisitionShift(0.5), seed=1)
    assert out.names == plain.names and set(out.scanners) == set(plain.names)
    assert out[0].size("test") == plain[0].size("test")
    assert not np.array_equal(out[0].peek(5).images, plain[0].peek(5).images)


# -- statistics ----------------------------------------------------------------------------

def test_label_distances_by_hand():
    assert js_distance([5, 5], [1, 1]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    expected = math.sqrt(0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5))
    assert js_distance([1, 0], [0.5, 0.5]) == pytest.approx(expected)  # 0.5579
    assert total_variation([2, 2], [4, 0]) == pytest.approx(0.5)
    assert label_distance([2, 2], [4, 0], "emd") == pytest.approx(1.0)
    assert math.isnan(js_distance([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="metric"):
        label_distance([1], [1], "kl")


def test_iid_sites_are_close_to_global(synthetic):
    fed = split(synthetic, 3, fl.data.IID(), seed=0)
    assert distance_to_global(fed)["distance"].max() < 0.02


def test_distance_tables_by_hand(hand):
    glob = distance_to_global(hand, "tv")
    assert glob["n"].tolist() == [4, 4]
    assert glob["distance"].tolist() == pytest.approx([0.25, 0.25])
    m = distance_matrix(hand, "tv")
    assert m.loc["a", "b"] == pytest.approx(0.5) and m.loc["b", "a"] == pytest.approx(0.5)
    assert np.diag(m.to_numpy()).tolist() == [0, 0]


def test_intensity_statistics_by_hand(hand):
    stats = intensity_stats(hand, percentiles=(50,))
    assert stats["mean"].tolist() == pytest.approx([0.25, 0.75])
    assert stats["std"].tolist() == pytest.approx([0, 0])
    assert stats["p50"].tolist() == pytest.approx([0.25, 0.75])
    hist = intensity_histogram(hand, bins=4)
    for _, rows in hist.groupby("site"):
        widths = rows["bin_right"] - rows["bin_left"]
        assert (rows["density"] * widths).sum() == pytest.approx(1.0)
    a = hist[hist["site"] == "a"]
    assert a["density"].tolist() == pytest.approx([0, 4, 0, 0])  # 0.25 in [0.25, 0.5)


# -- figures ---------------------------------------------------------------------------------

def test_label_heatmap_shows_shares(federation):
    fig = viz.label_heatmap(federation)
    assert isinstance(fig, go.Figure) and isinstance(fig.data[0], go.Heatmap)
    counts = federation.label_counts()
    assert np.allclose(fig.data[0].z, counts / counts.sum(axis=1, keepdims=True))
    assert list(fig.data[0].y) == federation.names


def test_site_distance_figure(hand):
    info = viz.site_distances_info(hand, "tv")
    assert len(info) == 4
    assert info.set_index(["site_a", "site_b"]).loc[("a", "b"), "distance"] == pytest.approx(0.5)
    fig = viz.site_distances(hand, "tv")
    assert np.allclose(fig.data[0].z, [[0, 0.5], [0.5, 0]])
    skew = viz.label_skew(hand, "tv")
    assert list(skew.data[0].y) == pytest.approx([0.25, 0.25])


def test_intensity_histogram_figure_shows_the_scanners(plain, shifted):
    info = viz.intensity_histograms_info(shifted, bins=16)
    assert len(info) == 16 * len(shifted)
    fig = viz.intensity_histograms(shifted, bins=16)
    assert [t.name for t in fig.data] == shifted.names
    before = viz.intensity_histograms(plain, bins=16)
    assert not np.allclose(fig.data[0].y, before.data[0].y)


def test_sample_images_show_the_scanner_difference(plain, shifted):
    a = viz.sample_images(plain, per_site=1)
    b = viz.sample_images(shifted, per_site=1)
    assert all(not np.array_equal(x.z, y.z) for x, y in zip(a.data, b.data, strict=True))


def test_new_figures_never_show(monkeypatch, shifted):
    calls = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: calls.append(1))
    viz.label_heatmap(shifted)
    viz.site_distances(shifted)
    viz.intensity_histograms(shifted)
    viz.label_skew(shifted)
    assert not calls
