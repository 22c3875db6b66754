"""Property tests (hypothesis): the partitioners and the aggregation rules keep their
promises for any parameters in range, not only for the hand-picked cases elsewhere."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fedlab as fl
from fedlab.data.base import ImageDataset, Split
from fedlab.strategies import weighted_average
from fedlab.strategies.combine import coordinate_median, krum, trimmed_mean

# derandomized: the same examples on every machine and run (CI must not discover by luck)
FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def _dataset(counts: list[int], seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(labels)
    images = rng.random((len(labels), 1, 4, 4), dtype=np.float32)
    small = Split(images[:4], labels[:4])
    return ImageDataset("p", Split(images, labels), small, small,
                        tuple(f"c{i}" for i in range(len(counts))))


SCHEMES = st.one_of(
    st.just(fl.data.IID()),
    st.floats(0.05, 10.0).map(lambda a: fl.data.Dirichlet(alpha=a, min_size=1)),
    st.integers(1, 2).map(lambda k: fl.data.Pathological(classes_per_site=k)),
)


def _valid(scheme, n_classes: int, n_sites: int) -> bool:
    """Pathological splits need every class to reach some site (else a clear error)."""
    k = getattr(scheme, "classes_per_site", None)
    return k is None or (k <= n_classes and k * n_sites >= n_classes)


@FAST
@given(counts=st.lists(st.integers(5, 40), min_size=2, max_size=5),
       n_sites=st.integers(1, 6), scheme=SCHEMES, seed=st.integers(0, 2**16))
def test_a_split_places_every_sample_exactly_once_and_repeats(counts, n_sites, scheme, seed):
    assume(_valid(scheme, len(counts), n_sites))
    data = _dataset(counts, seed)
    sites = fl.data.split(data, n_sites=n_sites, scheme=scheme, seed=seed)
    per_class = np.sum([s.label_counts("train") for s in sites], axis=0)
    assert per_class.tolist() == counts  # no sample lost or duplicated, class by class
    total = sum(float(s.split("train").images.sum(dtype=np.float64)) for s in sites)
    assert np.isclose(total, float(data.train.images.sum(dtype=np.float64)))
    assert all(s.n_examples >= 1 for s in sites)  # no empty site
    again = fl.data.split(data, n_sites=n_sites, scheme=scheme, seed=seed)
    assert all(np.array_equal(a.split("train").labels, b.split("train").labels)
               for a, b in zip(sites, again, strict=True))


ROWS = st.integers(1, 7).flatmap(lambda n: st.lists(
    st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=n, max_size=n))


@FAST
@given(rows=ROWS, weights=st.lists(st.floats(0.01, 100.0), min_size=7, max_size=7),
       perm_seed=st.integers(0, 1000))
def test_weighted_average_is_a_convex_combination_in_any_order(rows, weights, perm_seed):
    states = [{"w": torch.tensor(r, dtype=torch.float64)} for r in rows]
    w = weights[:len(rows)]
    avg = weighted_average(states, w)["w"]
    x = torch.tensor(rows, dtype=torch.float64)
    assert (avg >= x.min(dim=0).values - 1e-9).all() and (avg <= x.max(dim=0).values + 1e-9).all()
    ones = weighted_average([{"w": torch.ones(3, dtype=torch.float64)}] * len(rows), w)["w"]
    assert torch.allclose(ones, torch.ones(3, dtype=torch.float64))  # weights sum to one
    order = np.random.default_rng(perm_seed).permutation(len(rows))
    shuffled = weighted_average([states[i] for i in order], [w[i] for i in order])["w"]
    assert torch.allclose(avg, shuffled)


@FAST
@given(rows=ROWS, beta=st.floats(0.0, 0.49), perm_seed=st.integers(0, 1000))
def test_median_and_trimmed_mean_stay_within_the_values_in_any_order(rows, beta, perm_seed):
    x = torch.tensor(rows, dtype=torch.float64)
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    order = torch.from_numpy(np.random.default_rng(perm_seed).permutation(len(rows)))
    for rule in (coordinate_median, lambda r: trimmed_mean(r, beta)):
        out = rule(x)
        assert (out >= lo - 1e-9).all() and (out <= hi + 1e-9).all()
        assert torch.allclose(out, rule(x[order]))


@FAST
@given(rows=st.integers(4, 7).flatmap(lambda n: st.lists(
    st.lists(st.integers(-100, 100), min_size=3, max_size=3), min_size=n, max_size=n,
    unique_by=tuple)), perm_seed=st.integers(0, 1000))
def test_krum_picks_the_same_update_in_any_order(rows, perm_seed):
    x = torch.tensor(rows, dtype=torch.float64)
    order = np.random.default_rng(perm_seed).permutation(len(rows))
    picked, chosen = krum(x, n_byzantine=1)
    picked2, chosen2 = krum(x[torch.from_numpy(order)], n_byzantine=1)
    if len(set(fl.strategies.combine.krum_scores(x, 1).tolist())) == len(rows):  # no ties
        assert torch.equal(picked, picked2) and [int(order[c]) for c in chosen2] == chosen
