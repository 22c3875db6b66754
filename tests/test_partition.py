import numpy as np
import pytest

import fedlab as fl
from fedlab.data import IID, Dirichlet, split


def _indices_by_site(fed, split_name):
    # Identify samples by their pixel bytes: every sample must land in exactly one site.
    return [
        {s.peek(10**9, split_name).images[i].tobytes() for i in range(s.size(split_name))}
        for s in fed
    ]


@pytest.mark.parametrize("scheme", [IID(), Dirichlet(alpha=0.3, min_size=5)])
def test_every_sample_in_exactly_one_site(synthetic, scheme):
    fed = split(synthetic, 4, scheme, seed=1)
    for name in ("train", "val", "test"):
        total = getattr(synthetic, name)
        assert sum(s.size(name) for s in fed) == len(total)
        assert fed.label_counts(name).sum(axis=0).tolist() == np.bincount(total.labels).tolist()
        sets = _indices_by_site(fed, name)
        union = set().union(*sets)
        assert len(union) == sum(len(x) for x in sets)  # disjoint


def test_seed_determinism(synthetic):
    a = split(synthetic, 4, Dirichlet(0.5), seed=3)
    b = split(synthetic, 4, Dirichlet(0.5), seed=3)
    c = split(synthetic, 4, Dirichlet(0.5), seed=4)
    assert (a.label_counts() == b.label_counts()).all()
    for sa, sb in zip(a, b, strict=True):
        assert np.array_equal(sa.peek(10**9).images, sb.peek(10**9).images)
    assert not (a.label_counts() == c.label_counts()).all()


def test_global_rng_untouched(synthetic):
    # The legacy global RNG is used on purpose: the partitioner must not touch it.
    np.random.seed(0)  # noqa: NPY002
    expected = np.random.rand()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    split(synthetic, 3, Dirichlet(0.5), seed=0)
    assert np.random.rand() == expected  # noqa: NPY002


def _skew(fed):
    counts = fed.label_counts().astype(float)
    p = counts / counts.sum(axis=1, keepdims=True)
    glob = counts.sum(axis=0) / counts.sum()
    return float(np.abs(p - glob).sum(axis=1).mean())


def test_dirichlet_skew_grows_as_alpha_shrinks():
    data = fl.data.make_synthetic(n_train=2000, n_val=10, n_test=10, n_classes=4, seed=0)
    skews = [np.mean([_skew(split(data, 5, Dirichlet(a, min_size=1), seed=s)) for s in range(5)])
             for a in (100.0, 1.0, 0.1)]
    assert skews[0] < skews[1] < skews[2]
    assert _skew(split(data, 5, IID(), seed=0)) < 0.05


def test_iid_sites_are_balanced(synthetic):
    fed = split(synthetic, 3, IID(), seed=0)
    sizes = [s.size() for s in fed]
    assert max(sizes) - min(sizes) <= synthetic.n_classes


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        Dirichlet(alpha=alpha)


def test_more_sites_than_samples():
    data = fl.data.make_synthetic(n_train=10, n_val=2, n_test=2, seed=0)
    with pytest.raises(ValueError, match="n_sites=11"):
        split(data, 11, IID())


def test_impossible_min_size_gives_up_with_reason(synthetic):
    with pytest.raises(ValueError, match="min_size=200"):
        split(synthetic, 5, Dirichlet(alpha=0.5, min_size=200, max_retries=5), seed=0)


def test_pooled_is_union(federation, synthetic):
    pooled = federation.pooled()
    for name in ("train", "val", "test"):
        assert pooled.size(name) == len(getattr(synthetic, name))
