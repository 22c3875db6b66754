"""Asynchronous FL on the simulated clock, availability, federated evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.comm import Availability, Link
from fedlab.comm.availability import HOUR, get_availability
from fedlab.strategies import FedAsync, FedBuff, Update, staleness_weight

KW = dict(seed=0, progress=False, local_steps=3, batch_size=16, lr=1e-3)
FAST = Link(up_mbps=100, down_mbps=100, latency_ms=5, samples_per_s=2000)
SLOW = Link(up_mbps=10, down_mbps=10, latency_ms=50, samples_per_s=200)  # ~10x slower


@pytest.fixture(scope="module")
def sites():
    data = fl.data.make_synthetic(n_train=240, n_val=30, n_test=90, seed=seeded())
    return fl.data.split(data, 3, seed=seeded())


def _max_diff(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_fedbuff_with_k_all_sites_and_equal_links_is_synchronous_fedavg(sites):
    sync = fl.run(sites, strategy="fedavg", rounds=3, network=FAST, **KW)
    buff = fl.run(sites, strategy=FedBuff(k=3), rounds=3, network=FAST, **KW)
    assert _max_diff(sync.final_state, buff.final_state) < 1e-5  # float rounding only
    assert sync.series("accuracy")[1].tolist() == buff.series("accuracy")[1].tolist()
    np.testing.assert_allclose([r["sim_total_s"] for r in buff.rounds],
                               [r["sim_total_s"] for r in sync.rounds], rtol=1e-9)
    assert all(a["staleness"] == 0 for r in buff.rounds for a in r["arrivals"])


def test_staleness_weights_by_hand():
    assert staleness_weight(0) == 1.0
    assert staleness_weight(3, "polynomial", a=0.5) == pytest.approx(0.5)
    assert staleness_weight(4, "hinge", a=1, b=4) == 1.0
    assert staleness_weight(6, "hinge", a=1, b=4) == pytest.approx(1 / 3)
    assert staleness_weight(9, "constant") == 1.0
    with pytest.raises(ValueError, match="staleness must be one of"):
        staleness_weight(1, "linear")


def test_server_steps_by_hand():
    g = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5)}
    site = Update("a", {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}, 10)
    new, (w,) = FedAsync(alpha=0.5, a=1.0).async_step(g, [site], [1])  # 0.5 * 1/2
    assert w == pytest.approx(0.25)
    torch.testing.assert_close(new["w"], torch.tensor([1.5, 3.0]))
    assert int(new["n"]) == 7
    d1 = Update("a", {"w": torch.tensor([1.0, 0.0]), "n": torch.tensor(1)}, 30)
    d2 = Update("b", {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(2)}, 10)
    new, ws = FedBuff(k=2, server_lr=2.0, a=0.5).async_step(g, [d1, d2], [0, 3])
    assert ws == pytest.approx([2 * 0.75, 2 * 0.25 * 0.5])
    torch.testing.assert_close(new["w"], torch.tensor([1.0 + 1.5, 2.0 + 1.0]))


def test_arrivals_follow_the_clock_and_staleness_counts_versions(sites):
    net = {"site-1": FAST, "site-2": FAST, "site-3": SLOW}
    h = fl.run(sites, strategy=FedAsync(alpha=0.5), rounds=24, network=net, **KW)
    a = fl.comm.arrivals(h)
    assert len(a) == 24 and a["arrival_s"].is_monotonic_increasing
    assert list(a["version"]) == list(range(1, 25))
    slow = a[a["site"] == "site-3"]
    assert len(slow) >= 1 and (slow["staleness"] > 0).all()  # it started from an old version
    first = slow.iloc[0]
    assert first["staleness"] == first["version"] - 1  # started from version 0
    assert first["weight"] == pytest.approx(0.5 * (1 + first["staleness"]) ** -0.5, rel=1e-5)
    # a job lasts download + compute + upload
    np.testing.assert_allclose(a["start_s"] + a["down_s"] + a["compute_s"] + a["up_s"],
                               a["arrival_s"], atol=1e-5)
    assert h.rounds[-1]["sim_total_s"] == pytest.approx(a["arrival_s"].iloc[-1], abs=1e-5)
    again = fl.run(sites, strategy=FedAsync(alpha=0.5), rounds=24, network=net, **KW)
    assert json.dumps(again.rounds[-1]["arrivals"]) == json.dumps(h.rounds[-1]["arrivals"])
    assert _max_diff(again.final_state, h.final_state) == 0.0


def test_fedbuff_does_not_wait_for_the_slow_site(sites):
    net = {"site-1": FAST, "site-2": FAST, "site-3": SLOW}
    sync = fl.run(sites, strategy="fedavg", rounds=4, network=net, **KW)
    buff = fl.run(sites, strategy=FedBuff(k=2), rounds=4, network=net, **KW)
    assert buff.rounds[-1]["sim_total_s"] < 0.5 * sync.rounds[-1]["sim_total_s"]


def test_async_run_resumes_from_its_checkpoint_to_the_same_result(sites, tmp_path):
    net = {"site-1": FAST, "site-2": FAST, "site-3": SLOW}
    whole = fl.run(sites, strategy=FedBuff(k=2), rounds=6, network=net, **KW)
    fl.run(sites, strategy=FedBuff(k=2), rounds=3, network=net, run_dir=tmp_path, **KW)
    resumed = fl.run(sites, strategy=FedBuff(k=2), rounds=6, network=net, run_dir=tmp_path,
                     resume=True, **KW)
    assert _max_diff(whole.final_state, resumed.final_state) == 0.0
    assert json.dumps(whole.rounds[-1]["arrivals"]) == json.dumps(resumed.rounds[-1]["arrivals"])


def test_availability_windows_outages_join_and_leave():
    night = Availability(offline=((22, 6),))
    assert not night.online(0.0) and night.next_online(0.0) == 6 * HOUR
    assert night.online(12 * HOUR) and not night.online(23 * HOUR)
    assert night.next_online(23 * HOUR) == 30 * HOUR  # 06:00 the next day
    late = Availability(join_h=5, leave_h=10)
    assert late.next_online(0) == 5 * HOUR and late.online(7 * HOUR)
    assert late.gone(10 * HOUR) and late.next_online(9.99 * HOUR) == 9.99 * HOUR
    assert late.next_online(11 * HOUR) is None
    flaky = Availability(outages_per_day=4, outage_h=2, seed=3)
    times = np.arange(0, 5 * 24 * HOUR, 600.0)
    off = np.mean([not flaky.online(t) for t in times])
    assert 0.1 < off < 0.5  # about 4 x 2 h a day, overlaps aside
    again = Availability(outages_per_day=4, outage_h=2, seed=3)
    assert [again.online(t) for t in times[:200]] == [flaky.online(t) for t in times[:200]]
    spec = get_availability("site-2=night-off", ["site-1", "site-2"])
    assert spec["site-1"].online(0) and not spec["site-2"].online(0)


def test_synchronous_run_skips_an_offline_site_and_waits_when_all_are_off(sites):
    h = fl.run(sites, strategy="fedavg", rounds=2, network=FAST,
               availability={"site-2": "night-off"}, **KW)
    skipped = [e for e in h.events if e["site"] == "site-2"]
    assert len(skipped) == 2 and "offline" in skipped[0]["event"]
    assert all(r["participants"] == 2 for r in h.rounds)
    everyone = fl.run(sites, strategy="fedavg", rounds=1, network=FAST,
                      availability="night-off", **KW)
    row = everyone.rounds[0]
    assert row["wait_s"] == pytest.approx(6 * HOUR) and row["participants"] == 3
    assert row["sim_total_s"] > 6 * HOUR


def test_async_sites_join_late_and_leave_for_good(sites):
    avail = {"site-1": Availability(leave_h=3e-4), "site-2": Availability(join_h=1),
             "site-3": Availability(leave_h=1e-4)}
    h = fl.run(sites, strategy=FedAsync(), rounds=10, network=FAST, availability=avail, **KW)
    a = fl.comm.arrivals(h)
    for site, leave in (("site-1", 3e-4), ("site-3", 1e-4)):  # nothing after they left
        assert (a[a["site"] == site]["arrival_s"] <= leave * HOUR).all()
    late = a[a["site"] == "site-2"]
    assert len(late) > 0 and (late["start_s"] >= HOUR).all()  # the newcomer carries on
    events = " ".join(e["event"] for e in h.events)
    assert "offline until 1.00 h" in events and "left the federation" in events


def test_evaluate_federated_scores_a_newcomer_without_training(sites):
    train_on, newcomer = list(sites)[:2], list(sites)[2]
    h = fl.run(train_on, strategy="fedavg", rounds=2, **KW)
    table = fl.evaluate_federated(h, [newcomer])
    assert list(table.index) == [newcomer.name, "global"]
    direct = fl.evaluate(fl.models.create_model("cnn"), [newcomer], h.final_state)
    assert table.loc[newcomer.name, "accuracy"] == direct.loc[newcomer.name, "accuracy"]
    net = fl.models.create_model("cnn")
    net.load_state_dict(h.final_state)
    tuned = fl.run([newcomer], model=net, strategy="local", rounds=1, **KW)
    assert tuned.final_state.keys() == h.final_state.keys()
    with pytest.raises(TypeError, match="nn.Module or a History"):
        fl.evaluate_federated("cnn", [newcomer])


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="fedasync"), "pass network="),
    (dict(strategy="fedbuff", network="mixed", topology="ring"), "is asynchronous"),
    (dict(strategy="fedavg", availability="night-off"), "availability needs network="),
    (dict(strategy="fedavg", network="mixed", availability="weekends"), "availability must be"),
    (dict(strategy="fedavg", network="mixed", availability={"site-9": "flaky"}),
     "unknown sites"),
])
def test_bad_async_settings(sites, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fl.run(sites, rounds=1, **(KW | kwargs))


def test_wrappers_refuse_an_asynchronous_strategy(sites):
    from fedlab.privacy import DP

    with pytest.raises(ValueError, match="cannot wrap an asynchronous strategy"):
        fl.run(sites, strategy=DP(FedAsync(), noise_multiplier=0.0, clip=1.0), rounds=1,
               network="mixed", **KW)


def test_fedbuff_refuses_a_buffer_larger_than_the_federation(sites):
    with pytest.raises(ValueError, match="use k <= 3"):
        fl.run(sites, strategy=FedBuff(k=4), rounds=1, network="mixed", **KW)


def test_bad_async_strategy_parameters():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        FedBuff(k=0)
    with pytest.raises(ValueError, match="alpha must be in"):
        FedAsync(alpha=0)
    with pytest.raises(ValueError, match="drop combine"):
        FedAsync(combine="median")
    with pytest.raises(ValueError, match="offline windows"):
        Availability(offline=((25, 3),))
    with pytest.raises(ValueError, match="leave_h must be after"):
        Availability(join_h=3, leave_h=2)


def test_cli_async_run_with_availability(tmp_path):
    from fedlab.cli import main

    out = tmp_path / "run"
    code = main(["run", "--dataset", "synthetic", "--sites", "3", "--strategy", "fedbuff",
                 "--param", "k=2", "--network", "mixed", "--availability", "site-3=night-off",
                 "--rounds", "3", "--local-steps", "2", "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 3 and summary["sim_s"] > 0
    history = fl.History.load(out / "history.json")
    assert history.config["availability"]["site-3"]["offline"] == [[22.0, 6.0]]
    assert len(fl.comm.arrivals(history)) == 6


def test_figures_of_sync_and_async_runs(sites):
    from fedlab.comm import plots

    net = {"site-1": FAST, "site-2": FAST, "site-3": SLOW}
    sync = fl.run(sites, strategy="fedavg", rounds=2, network=net, **KW)
    buff = fl.run(sites, strategy=FedBuff(k=2), rounds=4, network=net, **KW)
    for h in (sync, buff):
        j = fl.comm.jobs(h)
        assert (j["end_s"] >= j["start_s"]).all() and set(j["site"]) <= set(sites.names)
        fig = plots.job_timeline(h)
        assert len(fig.data) == 3
    info = plots.accuracy_vs_time_info({"sync": sync, "fedbuff": buff})
    assert info.groupby("run")["seconds"].max()["fedbuff"] < info.groupby(
        "run")["seconds"].max()["sync"] * 2
    plots.accuracy_vs_time({"sync": sync, "fedbuff": buff})
    plots.staleness_histogram({"fedbuff": buff})
    t = fl.comm.time_to_target(buff, 0.0)
    assert t == 0.0 and math.isnan(fl.comm.time_to_target(buff, 2.0))
    with pytest.raises(ValueError, match="not an asynchronous run"):
        fl.comm.arrivals(sync)
