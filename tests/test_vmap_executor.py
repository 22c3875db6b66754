"""The vectorised executor: the same weights as the sequential one, and clear refusals."""

from __future__ import annotations

import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.executors import NotVectorisable, Vmap


@pytest.fixture(scope="module")
def unequal():
    """Four sites of unequal size (Dirichlet), noisy images (no exact flat background)."""
    data = fl.data.make_synthetic(n_train=400, noise=0.1, seed=seeded(3))
    fed = fl.data.split(data, n_sites=4, scheme=fl.data.Dirichlet(alpha=0.5), seed=seeded(3))
    assert len({s.n_examples for s in fed}) > 1
    return fed


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _both(fed, executor=None, **kw):
    runs = [fl.run(fed, rounds=3, seed=seeded(1), progress=False, executor=ex, **kw)
            for ex in ("sequential", executor or "vmap")]
    return runs


@pytest.mark.parametrize("strategy,optimizer", [
    ("fedavg", "sgd"), ("fedprox", "sgd"), ("fedavgm", "sgd"), ("fedadam", "sgd"),
    ("scaffold", "sgd"), ("fedavg", "adam"), ("fedadam", "adam")])
def test_mlp_equals_sequential(unequal, strategy, optimizer):
    lr = 0.05 if optimizer == "sgd" else 1e-3  # each at its usual size
    seq, vec = _both(unequal, model="mlp", strategy=strategy, optimizer=optimizer, lr=lr,
                     batch_size=16, weight_decay=1e-4)
    assert _max_diff(seq.final_state, vec.final_state) < 1e-5
    assert seq.final("accuracy") == pytest.approx(vec.final("accuracy"), abs=1e-9)
    if strategy == "scaffold":  # the sites' control variates too
        for site in seq.site_states:
            assert _max_diff(seq.site_states[site], vec.site_states[site]) < 1e-5


@pytest.mark.parametrize("strategy", ["fedavg", "fedprox", "scaffold"])
def test_cnn_with_groupnorm_and_dropout_equals_sequential(unequal, strategy):
    # the default CNN: GroupNorm (its affine part outside torch's group norm under vmap)
    # and dropout (each site's masks drawn from the stream the sequential executor's
    # dropout uses). vmap's
    # grouped convolutions round differently, and where two inputs of a max-pooling window
    # are within rounding of each other the gradient can take the other one: a bound of
    # 1e-4 here, 1e-5 for the MLP above.
    seq, vec = _both(unequal, model="cnn", strategy=strategy, optimizer="sgd", lr=0.01,
                     batch_size=32)
    assert _max_diff(seq.final_state, vec.final_state) < 1e-4


def test_chunks_and_local_steps_give_the_same_result(unequal):
    kw = dict(model="mlp", strategy="fedprox", optimizer="sgd", lr=0.05, local_steps=5,
              batch_size=8)
    seq, vec = _both(unequal, executor=Vmap(max_sites_per_batch=3), **kw)
    assert _max_diff(seq.final_state, vec.final_state) < 1e-5
    assert [r["train_loss/site-1"] for r in seq.rounds if "train_loss/site-1" in r] == \
        pytest.approx([r["train_loss/site-1"] for r in vec.rounds if "train_loss/site-1" in r],
                      abs=1e-5)


def test_refusals_name_the_reason(unequal):
    with pytest.raises(NotVectorisable, match="BatchNorm.*sequential"):
        fl.run(unequal, model="cnn-bn", rounds=1, executor="vmap", progress=False)
    with pytest.raises(NotVectorisable, match="site_train.*sequential"):
        fl.run(unequal, model="mlp", strategy="moon", rounds=1, executor="vmap",
               progress=False)
    with pytest.raises(NotVectorisable, match="Ditto|asks for|trains twice|site_train"):
        fl.run(unequal, model="mlp", strategy="ditto", rounds=1, executor="vmap",
               progress=False)
    with pytest.raises(NotVectorisable, match="augment"):
        fl.run(unequal, model="mlp", rounds=1, executor="vmap", progress=False, augment=True)
    with pytest.raises(ValueError, match="max_sites_per_batch"):
        Vmap(max_sites_per_batch=0)


def test_many_small_sites_one_call(unequal):
    data = fl.data.make_synthetic(n_train=600, seed=seeded(4))
    fed = fl.data.split(data, n_sites=60, seed=seeded(4))
    seq, vec = [fl.run(fed, model="mlp", rounds=2, seed=seeded(1), progress=False,
                       executor=ex, optimizer="sgd", lr=0.05, batch_size=8, clients_per_round=20)
                for ex in ("sequential", Vmap(max_sites_per_batch=16))]
    assert _max_diff(seq.final_state, vec.final_state) < 1e-5
    assert torch.isfinite(torch.tensor(vec.final("accuracy")))


def test_scale_benchmark_quick_mode_runs(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "scale.md"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/scale.py"), "--quick",
                           "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "| mlp | 10 |" in text and "error" not in text
