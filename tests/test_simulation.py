import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import seeded

import fedlab as fl
from fedlab.data import Split
from fedlab.sites import Site
from fedlab.strategies import FedAvg, Update

FAST = dict(model="mlp", rounds=2, batch_size=32, optimizer="sgd", lr=0.05, progress=False)


def test_one_site_full_batch_step_equals_centralised_sgd(synthetic):
    site = Site("only", synthetic.train, synthetic.val, synthetic.test, synthetic.classes)
    torch.manual_seed(0)
    model = fl.models.MLP()
    ref = copy.deepcopy(model)
    h = fl.run([site], model=model, strategy="fedavg", rounds=1, local_epochs=1,
               batch_size=len(synthetic.train), optimizer="sgd", lr=0.1, momentum=0.0,
               progress=False)
    x = torch.from_numpy(synthetic.train.images)
    y = torch.from_numpy(synthetic.train.labels)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    loss = F.cross_entropy(ref(x), y)
    loss.backward()
    opt.step()
    for k, v in ref.state_dict().items():
        assert torch.allclose(h.final_state[k], v, atol=1e-6), k


def test_same_seed_identical_history(federation):
    a = fl.run(federation, seed=1, **FAST)
    b = fl.run(federation, seed=1, **FAST)
    c = fl.run(federation, seed=2, **FAST)
    assert a.equals(b)
    assert not a.equals(c)


def test_history_records_rounds_sites_and_bytes(federation):
    h = fl.run(federation, model="cnn", rounds=2, progress=False)
    df = h.to_frame()
    assert set(df["round"]) == {0, 1, 2}
    assert set(df["site"]) == {"global", *federation.names}
    assert {"loss", "accuracy", "auc"} <= set(df.columns)
    n_params = sum(v.numel() * v.element_size() for v in h.final_state.values())
    message = fl.comm.serialized_size(h.final_state)  # safetensors: tensors + a header
    assert n_params < message < n_params + 2000
    # every round each site downloads and uploads the full state, buffers included
    assert h.bytes("down") == h.bytes("up") == 2 * len(federation) * message
    assert len(h.to_frame("ledger")) == 2 * 2 * len(federation)
    assert (h.to_frame("rounds")["wall_s"] > 0).all()


def test_global_metrics_pool_the_site_test_sets(federation):
    h = fl.run(federation, **FAST)
    df = h.to_frame().query("round == 2")
    site_rows = df[df.site != "global"]
    glob = df[df.site == "global"].iloc[0]
    assert glob["n"] == site_rows["n"].sum()
    assert glob["accuracy"] == pytest.approx(
        (site_rows["accuracy"] * site_rows["n"]).sum() / site_rows["n"].sum())


@pytest.mark.quality
def test_learning_happens(synthetic, margin):
    iid = fl.data.split(synthetic, n_sites=3, seed=seeded())
    # 8 rounds: after 5 one seed offset is still at 0.74, after 8 every one is above 0.95
    h = fl.run(iid, model="cnn", rounds=8, optimizer="adam", lr=1e-3, batch_size=16,
               progress=False, seed=seeded())
    acc = h.series("accuracy")[1]
    margin.above("final accuracy", acc[-1], 0.8)
    margin.above("final accuracy - untrained accuracy", acc[-1] - acc[0], 0.0)


def test_baselines(federation):
    cen = fl.run(federation, strategy="centralized", **FAST)
    loc = fl.run(federation, strategy="local", **FAST)
    assert cen.bytes() == 0 and loc.bytes() == 0
    assert set(loc.sites) == set(federation.names) == set(cen.sites)
    # local-only: sites end with different models, so they disagree with the common start
    assert cen.config["strategy"] == "centralized" and loc.config["strategy"] == "local"


def test_local_only_keeps_a_model_per_site(federation):
    loc = fl.run(federation, strategy="local", model="mlp", rounds=1, progress=False)
    fed = fl.run(federation, strategy="fedavg", model="mlp", rounds=1, progress=False)
    a = loc.to_frame().query("round == 1 and site != 'global'")["loss"].to_numpy()
    b = fed.to_frame().query("round == 1 and site != 'global'")["loss"].to_numpy()
    assert not np.allclose(a, b)


class _Poisoned(FedAvg):
    def client_update(self, ctx):
        update = super().client_update(ctx)
        if ctx.site == "site-2":
            update.payload = {k: v.float() * float("nan") if v.is_floating_point() else v
                              for k, v in update.payload.items()}
        return update


def test_non_finite_update_is_excluded_and_reported(federation):
    h = fl.run(federation, strategy=_Poisoned(), **FAST)
    assert [e["site"] for e in h.events] == ["site-2", "site-2"]
    assert np.isfinite(h.series("loss")[1]).all()
    assert h.to_frame("rounds")["excluded"].tolist() == [1, 1]


def test_callbacks_see_each_round_and_can_stop(federation):
    seen = []

    def cb(history, rnd):
        seen.append((rnd, history.last_round))
        return rnd == 2

    h = fl.run(federation, callbacks=[cb], **{**FAST, "rounds": 5})
    assert seen == [(1, 1), (2, 2)]
    assert h.last_round == 2 and h.events[-1]["event"] == "stopped by callback"


def test_history_save_load_roundtrip(federation, tmp_path):
    h = fl.run(federation, **FAST)
    h.events.append({"round": 1, "site": "x", "event": "test"})
    loaded = fl.History.load(h.save(tmp_path / "h.json"))
    assert loaded.equals(h, ignore_timing=False)
    assert loaded.to_frame().equals(h.to_frame())


def test_resume_continues_to_the_same_history(federation, tmp_path):
    full = fl.run(federation, seed=3, run_dir=tmp_path / "full", **{**FAST, "rounds": 4})
    part = tmp_path / "part"
    fl.run(federation, seed=3, run_dir=part, **{**FAST, "rounds": 2})  # "interrupted"
    resumed = fl.run(federation, seed=3, run_dir=part, resume=True, **{**FAST, "rounds": 4})
    assert resumed.equals(full)
    assert len(list((part / "checkpoints").glob("*.safetensors"))) == 4
    for k, v in full.final_state.items():
        assert torch.equal(v, resumed.final_state[k])


def test_resume_refuses_other_arguments(federation, tmp_path):
    fl.run(federation, seed=3, run_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match="seed"):
        fl.run(federation, seed=4, run_dir=tmp_path, resume=True, **FAST)
    with pytest.raises(FileExistsError, match="resume=True"):
        fl.run(federation, seed=3, run_dir=tmp_path, **FAST)


@pytest.mark.parametrize("kwargs, match", [
    ({"strategy": "fedsomething"}, "strategy must be one of"),
    ({"model": "vgg"}, "model must be one of"),
    ({"rounds": -1}, "rounds"),
    ({"local_epochs": 0}, "local_epochs"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"lr": 0}, "lr"),
    ({"resume": True}, "run_dir"),
])
def test_bad_arguments_name_themselves(federation, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.run(federation, **{**FAST, **kwargs})


def test_empty_test_split_at_a_site_is_tolerated(synthetic):
    empty = Split(np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64))
    sites = [Site("a", synthetic.train, synthetic.val, synthetic.test, synthetic.classes),
             Site("b", synthetic.train, synthetic.val, empty, synthetic.classes)]
    h = fl.run(sites, **FAST)
    assert np.isnan(h.final("accuracy", site="b"))
    assert np.isfinite(h.final("accuracy"))


def test_local_steps_and_update_weights(federation):
    counts = []

    class Spy(FedAvg):
        def aggregate(self, global_state, updates: list[Update], server_state):
            counts.append([(u.n_examples, u.metrics["steps"]) for u in updates])
            return super().aggregate(global_state, updates, server_state)

    fl.run(federation, strategy=Spy(), local_steps=3, **{**FAST, "rounds": 1})
    assert counts == [[(s.n_examples, 3.0) for s in federation]]


def test_cross_site_evaluation(federation, tmp_path):
    loc = fl.run(federation, strategy="local", **FAST)
    fed = fl.run(federation, strategy="fedavg", **FAST)
    m = fl.cross_site(loc, federation)
    assert list(m.index) == federation.names and list(m.columns) == [*federation.names, "global"]
    # the diagonal is what run() measured: each site's own model on its own test split
    for name in federation.names:
        assert m.loc[name, name] == pytest.approx(loc.final("accuracy", site=name))
    shared = fl.cross_site(fed, federation)
    assert np.allclose(shared.to_numpy(), shared.to_numpy()[0])  # one model for everybody
    assert shared.iloc[0]["global"] == pytest.approx(fed.final("accuracy"))
    with pytest.raises(ValueError, match="site models"):
        fl.cross_site(fl.History.load(fed.save(tmp_path / "h.json")), federation)


def test_compare_table(federation):
    runs = {"fedavg": fl.run(federation, **FAST), "local": fl.run(federation, strategy="local",
                                                                   **FAST)}
    table = fl.compare(runs)
    assert list(table.index) == ["fedavg", "local"]
    assert table.loc["local", "MB up"] == 0 and table.loc["fedavg", "MB up"] > 0
    assert table.loc["fedavg", "worst site accuracy"] == runs["fedavg"].per_site().min()


def test_strategy_hooks_reach_the_ledger_and_round_rows(federation):
    """``extra_messages`` rows land in the ledger and ``round_report`` in History.rounds."""
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class Chatty(fl.strategies.FedAvg):
        name: ClassVar[str] = "chatty"

        def extra_messages(self, rnd, updates):
            return [{"site": u.site, "direction": "up", "bytes": 32, "what": "keys"}
                    for u in updates]

        def round_report(self, rnd, server_state):
            return {"epsilon": 0.5 * rnd}

    h = fl.run(federation, model="mlp", strategy=Chatty(), rounds=2, progress=False)
    ledger = h.to_frame("ledger")
    keys = ledger[ledger.what == "keys"]
    assert len(keys) == 2 * len(federation) and (keys["bytes"] == 32).all()
    assert (ledger.loc[ledger.what == "model", "raw_bytes"]
            == ledger.loc[ledger.what == "model", "bytes"]).all()
    assert [r["epsilon"] for r in h.rounds] == [0.5, 1.0]


def test_a_collapsed_model_is_named(synthetic):
    # an absurd learning rate drives the MLP to one answer for every image
    iid = fl.data.split(synthetic, n_sites=3, seed=seeded())
    with pytest.warns(fl.history.CollapsedModelWarning, match="constant predictor"):
        h = fl.run(iid, model="mlp", rounds=2, optimizer="sgd", lr=1e4, progress=False)
    s = h.summary()
    assert s["collapsed"] and s["top_share"] >= fl.history.COLLAPSE_SHARE
    labels = np.concatenate([site.tensors("test")[1].numpy() for site in iid])
    assert s["majority"] == pytest.approx(np.bincount(labels).max() / len(labels))
    fine = fl.run(iid, model="cnn", rounds=3, optimizer="adam", lr=1e-3, batch_size=16,
                  progress=False)
    assert not fine.summary()["collapsed"]
    table = fl.compare({"collapsed": h, "fine": fine})
    assert table["collapsed"].tolist() == [True, False]
    assert (table["majority"] == s["majority"]).all()
