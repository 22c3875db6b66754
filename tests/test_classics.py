"""FedNova, FedDyn, APFL, MOON, IFCA and FedMD: equivalences, hand-computed server
steps, and what makes each one different."""

import math

import numpy as np
import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.data import Split
from fedlab.strategies import (
    APFL,
    IFCA,
    MOON,
    FedDyn,
    FedMD,
    FedNova,
    PublicSet,
    Update,
)
from fedlab.strategies.apfl import mix
from fedlab.strategies.fednova import effective_steps
from fedlab.strategies.moon import contrastive_loss, representation

FAST = dict(model="mlp", rounds=2, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.0,
            progress=False)


def _close(a, b, atol):
    return a.keys() == b.keys() and all(
        torch.allclose(a[k].double(), b[k].double(), atol=atol) for k in a)


# -- FedNova -----------------------------------------------------------------------
def test_fednova_with_equal_steps_is_fedavg(federation):
    kw = {**FAST, "local_steps": 3, "rounds": 3, "seed": seeded()}
    nova = fl.run(federation, strategy=FedNova(), **kw).final_state
    fedavg = fl.run(federation, strategy="fedavg", **kw).final_state
    assert _close(nova, fedavg, atol=1e-5)


def test_fednova_normalises_unequal_steps_by_hand():
    x = {"w": torch.tensor([0.0])}
    # site a: 1 step moved +1; site b: 4 steps moved +8 (2 per step); equal examples
    updates = [Update("a", {"w": torch.tensor([1.0])}, 10, {"effective_steps": 1.0}),
               Update("b", {"w": torch.tensor([8.0])}, 10, {"effective_steps": 4.0})]
    new, _ = FedNova().aggregate(x, updates, {})
    # tau_eff = 2.5, mean per-step change = 1.5  ->  3.75 (FedAvg would give 4.5)
    assert new["w"].item() == pytest.approx(3.75)
    assert effective_steps(5, 0.0) == 5 and effective_steps(1, 0.9) == pytest.approx(1.0)
    assert effective_steps(10, 0.9) == pytest.approx((10 - 0.9 * (1 - 0.9 ** 10) / 0.1) / 0.1)


def test_fednova_differs_from_fedavg_when_sites_step_unequally(federation):
    assert len({s.n_examples for s in federation}) > 1
    kw = {**FAST, "seed": seeded()}
    assert not _close(fl.run(federation, strategy=FedNova(), **kw).final_state,
                      fl.run(federation, strategy="fedavg", **kw).final_state, atol=1e-6)


# -- FedDyn ------------------------------------------------------------------------
def test_feddyn_server_state_by_hand():
    s = FedDyn(alpha=0.5, n_sites=4)
    x = {"w": torch.tensor([1.0])}
    state = s.init_server_state(x)
    updates = [Update("a", {"w": torch.tensor([2.0])}, 1),
               Update("b", {"w": torch.tensor([4.0])}, 9)]
    new, state = s.aggregate(x, updates, state)
    # h = 0 - 0.5 / 4 * ((2 - 1) + (4 - 1)) = -0.5;  x = mean(2, 4) - h / 0.5 = 3 + 1 = 4
    assert state["h"]["w"].item() == pytest.approx(-0.5) and new["w"].item() == pytest.approx(4.0)
    new, state = s.aggregate(new, [Update("a", {"w": torch.tensor([4.0])}, 1)], state)
    # h = -0.5 - 0.5 / 4 * 0 = -0.5;  x = 4 + 1 = 5
    assert state["h"]["w"].item() == pytest.approx(-0.5) and new["w"].item() == pytest.approx(5.0)


def test_feddyn_keeps_a_gradient_state_per_site_and_differs_from_fedavg(federation):
    h = fl.run(federation, strategy=FedDyn(alpha=0.1), seed=seeded(), **FAST)
    fedavg = fl.run(federation, strategy="fedavg", seed=seeded(), **FAST)
    assert np.isfinite(h.series("loss")[1]).all()
    assert not _close(h.final_state, fedavg.final_state, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        FedDyn(alpha=0)


# -- APFL --------------------------------------------------------------------------
def test_apfl_mix_and_its_extremes(federation):
    g, v = {"w": torch.tensor([0.0]), "n": torch.tensor(3)}, {"w": torch.tensor([4.0])}
    assert mix(0.25, v, g)["w"].item() == 1.0 and mix(0.25, v, g)["n"].item() == 3
    kw = {**FAST, "seed": seeded()}
    fedavg = fl.run(federation, strategy="fedavg", **kw)
    fixed0 = fl.run(federation, strategy=APFL(alpha=0.0, adapt=False), **kw)
    # the global model trains exactly as FedAvg's; alpha = 0 scores the site's own copy of
    # it after the round's local training: fine-tuned FedAvg's personal model
    assert _close(fixed0.final_state, fedavg.final_state, atol=0)
    finetuned = fl.run(federation, strategy="finetune", **kw)
    assert np.allclose(fixed0.per_site("loss"), finetuned.per_site("loss"))
    learned = fl.run(federation, strategy=APFL(alpha=0.5), **kw)
    alphas = [v for k, v in learned.rounds[-1].items() if k.startswith("alpha/")]
    assert len(alphas) == 3 and all(0 <= a <= 1 for a in alphas) and set(alphas) != {0.5}
    assert not np.allclose(learned.per_site("loss"), fedavg.per_site("loss"))
    with pytest.raises(ValueError, match="alpha"):
        APFL(alpha=1.5)


# -- MOON --------------------------------------------------------------------------
def test_moon_contrastive_loss_by_hand_and_mu_zero_is_fedavg(federation):
    z = torch.tensor([[1.0, 0.0]])
    loss = contrastive_loss(z, z.clone(), torch.tensor([[0.0, 1.0]]), tau=0.5)
    assert loss.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))
    out, rep = representation(fl.models.create_model("cnn"), torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 2) and rep.shape == (4, 128)
    kw = {**FAST, "seed": seeded()}
    fedavg = fl.run(federation, strategy="fedavg", **kw).final_state
    assert _close(fl.run(federation, strategy=MOON(mu=0.0), **kw).final_state, fedavg, atol=0)
    moon = fl.run(federation, strategy=MOON(mu=5.0), **{**kw, "rounds": 3}).final_state
    assert not _close(moon, fl.run(federation, strategy="fedavg", **{**kw, "rounds": 3}
                                   ).final_state, atol=1e-6)


# -- IFCA --------------------------------------------------------------------------
def _flipped(site):
    return site.replace(**{s: Split(site.split(s).images, 1 - site.split(s).labels)
                           for s in ("train", "val", "test")})


@pytest.mark.quality
@pytest.mark.parametrize("init", ["sites", "random"])
def test_ifca_separates_two_groups_of_sites(init, margin):
    """Two sites label as usual, two the other way round (a different protocol): one
    model cannot fit both; IFCA's clusters must follow the groups."""
    data = fl.data.make_synthetic(n_train=800, n_val=40, n_test=100, seed=seeded())
    sites = list(fl.data.split(data, n_sites=4, scheme=fl.data.IID(), seed=seeded()))
    sites = sites[:2] + [_flipped(s) for s in sites[2:]]
    h = fl.run(sites, model="cnn", strategy=IFCA(k=2, init=init), rounds=4 if init == "sites"
               else 6, seed=seeded(), progress=False, lr=3e-3, batch_size=32, local_epochs=2)
    last = [h.rounds[-1][f"cluster/site-{i}"] for i in range(1, 5)]
    assert last[0] == last[1] and last[2] == last[3] and last[0] != last[2]
    margin.above("accuracy", h.final("accuracy"), 0.8)
    # the ledger: k models down, one up
    down = [m["bytes"] for m in h.ledger if m["direction"] == "down"]
    up = [m["bytes"] for m in h.ledger if m["direction"] == "up"]
    assert min(down) > 1.9 * max(up)


def test_ifca_bad_values_and_final_model(federation):
    with pytest.raises(ValueError, match="k must"):
        IFCA(k=0)
    with pytest.raises(ValueError, match="init"):
        IFCA(init="kmeans")
    with pytest.raises(ValueError, match="combine"):
        IFCA(combine="median")
    h = fl.run(federation, strategy=IFCA(k=3), seed=seeded(), **FAST)
    assert set(h.final_state) == set(fl.models.create_model("mlp").state_dict())


# -- FedMD -------------------------------------------------------------------------
def test_fedmd_sends_logits_only_with_three_architectures(synthetic):
    sites = fl.data.split(synthetic, n_sites=3, scheme=fl.data.IID(), seed=seeded())
    public = PublicSet.of(synthetic.val)
    strategy = FedMD(public=public, per_round=30,
                     architectures={"site-1": "cnn", "site-2": "mlp", "site-3": "resnet-tiny"})
    h = fl.run(sites, model="zoo", strategy=strategy, rounds=2, seed=seeded(), progress=False)
    rows = h.to_frame("ledger")
    # round 1: logits up only (no consensus yet); then 30 x 2 float32 each way
    assert rows.query("round == 1 and direction == 'down'")["bytes"].sum() == 0
    sizes = set(rows.query("bytes > 0")["raw_bytes"])
    assert len(rows.query("bytes > 0")) == 3 + 3 * 2
    assert all(30 * 2 * 4 <= size < 30 * 2 * 4 + 200 for size in sizes)  # + the header
    members = {name: int(state["member"]) for name, state in h.site_states.items()}
    assert members == {"site-1": 0, "site-2": 1, "site-3": 2}
    with pytest.raises(ValueError, match="public set"):
        fl.run(sites, model="mlp", strategy="fedmd", rounds=1, progress=False)
    with pytest.raises(ValueError, match="architectures"):
        fl.run(sites, model="zoo", strategy=FedMD(public=public, architectures={"x": "cnn"}),
               rounds=1, progress=False)


@pytest.mark.quality
def test_fedmd_sites_with_three_networks_learn(margin):
    data = fl.data.make_synthetic(n_train=600, n_val=100, n_test=200, seed=seeded())
    sites = fl.data.split(data, n_sites=3, scheme=fl.data.IID(), seed=seeded())
    h = fl.run(sites, model="zoo", strategy=FedMD(public=data.val, transfer_epochs=3),
               rounds=5, seed=seeded(), progress=False, lr=3e-3, batch_size=32)
    margin.above("AUC, every site by its own network", h.final("auc"), 0.85)
    margin.above("worst site's AUC", float(h.per_site("auc").min()), 0.7)


def test_wrappers_refuse_ifca_and_fedmd(federation):
    from fedlab.privacy import DP, SecAgg

    public = np.zeros((4, 1, 28, 28), dtype=np.float32)
    for wrapped in (DP(IFCA(), noise_multiplier=0.0, clip=1.0),
                    SecAgg(FedMD(public=public), sites=federation.names)):
        with pytest.raises(ValueError, match="cannot wrap ifca or fedmd"):
            fl.run(federation, strategy=wrapped, **FAST)
