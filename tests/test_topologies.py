"""Topologies: graphs and mixing matrices, gossip averaging, cyclic, swarm, the ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

import fedlab as fl
from fedlab.cli import main
from fedlab.comm.codecs import serialized_size
from fedlab.topologies import Cyclic, Gossip, Swarm, consensus_distance, graphs, mix

G = graphs


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- graphs -----------------------------------------------------------------------
def test_ring_torus_complete_by_hand():
    assert G.ring(4).tolist() == [[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]
    t = G.torus(9)  # 3 x 3: four neighbours each
    assert (t.sum(axis=1) == 4).all() and t[0, 1] and t[0, 2] and t[0, 3] and t[0, 6]
    assert (G.torus(8).sum(axis=1) == 3).all()  # 2 x 4: up and down are the same site
    assert G.complete(3).tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    assert G.edges(G.ring(3)) == [(0, 1), (0, 2), (1, 2)]


def test_random_regular_is_seeded_regular_and_connected():
    a = G.random_regular(10, degree=3, seed=1)
    assert (a.sum(axis=1) == 3).all() and G.is_connected(a)
    assert (a == G.random_regular(10, degree=3, seed=1)).all()
    assert not (a == G.random_regular(10, degree=3, seed=2)).all()


@pytest.mark.parametrize("call, match", [
    (lambda: G.torus(7), "torus"),
    (lambda: G.random_regular(5, degree=3), "degree"),
    (lambda: G.adjacency("star", 4), "graph must be one of"),
    (lambda: G.check_adjacency([[0, 1], [0, 0]]), "symmetric"),
    (lambda: G.check_adjacency([[1, 0], [0, 0]]), "diagonal"),
    (lambda: G.check_adjacency(np.ones((2, 3))), "square"),
    (lambda: G.check_adjacency(G.ring(4), n=5), "5 sites"),
    (lambda: G.mixing_matrix(G.ring(4), "uniform"), "mixing must be one of"),
])
def test_bad_graphs_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_connectivity():
    assert G.is_connected(G.ring(5))
    two_pairs = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    assert not G.is_connected(two_pairs)


@pytest.mark.parametrize("rule", G.MIXINGS)
def test_mixing_matrices_are_symmetric_doubly_stochastic(rule):
    a = G.adjacency("random", 8, degree=3, seed=0)
    a[0, 1] = a[1, 0] = 1 - a[0, 1]  # irregular degrees
    w = G.mixing_matrix(a, rule)
    assert np.allclose(w, w.T) and (w >= 0).all()
    assert np.allclose(w.sum(axis=0), 1) and np.allclose(w.sum(axis=1), 1)
    assert ((w > 0) == (a + np.eye(8) > 0)).all()  # only neighbours (and itself) mix


def test_metropolis_hastings_by_hand():
    path = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])  # degrees 1, 2, 1
    w = G.metropolis_hastings(path)
    assert np.allclose(w, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]])


def test_spectral_gap_by_hand():
    assert G.spectral_gap(G.metropolis_hastings(G.complete(5))) == pytest.approx(1.0)
    assert G.spectral_gap(G.metropolis_hastings(G.ring(4))) == pytest.approx(2 / 3)
    disconnected = np.kron(np.eye(2, dtype=int), G.complete(2))
    assert G.spectral_gap(G.metropolis_hastings(disconnected)) == pytest.approx(0.0)
    assert G.spectral_gap(G.metropolis_hastings(G.ring(16))) < G.spectral_gap(
        G.metropolis_hastings(G.torus(16)))


# -- pure gossip functions ----------------------------------------------------------
def _states(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"w": torch.randn(3, 4, generator=g), "b": torch.randn(2, generator=g)}
            for _ in range(n)]


def test_consensus_distance_by_hand():
    states = [{"w": torch.tensor([0.0, 0.0])}, {"w": torch.tensor([2.0, 0.0])}]
    assert consensus_distance(states) == pytest.approx(1.0)
    assert consensus_distance([states[0], states[0]]) == 0.0


def test_doubly_stochastic_gossip_preserves_the_average():
    states = _states(6)
    w = G.metropolis_hastings(G.random_regular(6, 3, seed=0))
    mixed = mix(states, w)
    for key in ("w", "b"):
        before = torch.stack([s[key] for s in states]).mean(0)
        after = torch.stack([s[key] for s in mixed]).mean(0)
        assert torch.allclose(before, after, atol=1e-6)
        assert not torch.allclose(states[0][key], mixed[0][key])


def test_consensus_distance_shrinks_on_a_connected_graph():
    states, w = _states(8), G.metropolis_hastings(G.ring(8))
    dist = [consensus_distance(states)]
    for _ in range(20):
        states = mix(states, w)
        dist.append(consensus_distance(states))
    assert all(b < a for a, b in zip(dist, dist[1:], strict=False))
    assert dist[-1] < 0.2 * dist[0]


def test_disconnected_graph_does_not_reach_consensus():
    a = np.zeros((4, 4), dtype=int)
    a[0, 1] = a[1, 0] = a[2, 3] = a[3, 2] = 1
    states, w = _states(4), G.metropolis_hastings(a)
    for _ in range(50):
        states = mix(states, w)
    assert consensus_distance(states) > 1e-3  # the two islands keep their own averages


def test_mix_rejects_bad_weights():
    with pytest.raises(ValueError, match="rows summing to one"):
        mix(_states(2), np.array([[1.0, 1.0], [0.0, 1.0]]))


# -- runs -----------------------------------------------------------------------------
RUN = dict(model="mlp", rounds=2, progress=False, seed=0, local_steps=2)


def test_gossip_messages_are_two_per_edge_per_step(federation):
    topo = Gossip(graph="complete", steps=2)
    h = fl.run(federation, topology=topo, **RUN)
    n_edges = len(G.edges(G.complete(len(federation))))
    assert len(h.ledger) == 2 * n_edges * topo.steps * RUN["rounds"]
    size = serialized_size(h.final_state)  # the bytes of the safetensors message
    assert h.bytes() == len(h.ledger) * size
    names = {s.name for s in federation}
    assert all(r["peer"] in names and r["peer"] != r["site"] for r in h.ledger)
    assert [r["round"] for r in h.rounds] == [1, 2]
    assert all(r["consensus_distance"] >= 0 for r in h.rounds)


def test_gossip_run_records_own_and_pooled_scores(federation):
    h = fl.run(federation, topology="ring", **RUN)
    frame = h.to_frame()
    last = frame[frame["round"] == 2]
    assert set(last["split"]) == {"test", "pooled"}
    assert set(last[last["split"] == "pooled"]["site"]) == {s.name for s in federation}
    pooled_n = sum(s.size("test") for s in federation)
    assert (last[last["split"] == "pooled"]["n"] == pooled_n).all()
    assert h.config["topology"] == "gossip" and h.config["topology_params"]["graph"] == "ring"
    assert set(h.site_states) == {s.name for s in federation}
    # the sites did not agree exactly: their own models differ after gossip on a ring
    a, b = list(h.site_states.values())[:2]
    assert not _close(a, b)


def test_cyclic_with_one_site_equals_local_training(federation):
    one = [federation[0]]
    cyc = fl.run(one, topology=Cyclic(), **RUN)
    loc = fl.run(one, strategy="local", **RUN)
    name = federation[0].name
    assert _close(cyc.site_states[name], loc.site_states[name])
    assert cyc.final("accuracy") == loc.final("accuracy")
    assert cyc.ledger == []  # the model never leaves the site


@pytest.mark.parametrize("order, cycles", [("fixed", 1), ("shuffled", 2)])
def test_cyclic_counts_one_transfer_per_hop(federation, order, cycles):
    topo, n = Cyclic(order=order, cycles=cycles), len(federation)
    h = fl.run(federation, topology=topo, **RUN)
    visits = [i for r in range(1, RUN["rounds"] + 1) for c in range(cycles)
              for i in topo.visit_order(n, RUN["seed"], r, c)]
    hops = sum(a != b for a, b in zip(visits, visits[1:], strict=False))
    assert len(h.ledger) == hops
    if order == "fixed":
        assert hops == RUN["rounds"] * n - 1
    names = [s.name for s in federation]
    assert [(r["site"], r["peer"]) for r in h.ledger] == [
        (names[a], names[b]) for a, b in zip(visits, visits[1:], strict=False) if a != b]
    assert all(r["consensus_distance"] == 0 for r in h.rounds)


def test_swarm_with_all_peers_equals_fedavg(federation):
    swarm = fl.run(federation, topology=Swarm(), **RUN)
    star = fl.run(federation, strategy="fedavg", **RUN)
    for state in swarm.site_states.values():
        assert _close(state, star.final_state)
    n = len(federation)
    for rnd in (1, 2):
        rows = [r for r in swarm.ledger if r["round"] == rnd]
        leader = swarm.rounds[rnd - 1]["leader"]
        assert leader == federation[rnd - 1].name  # rotation
        assert sum(r["direction"] == "up" for r in rows) == n - 1
        assert sum(r["direction"] == "down" for r in rows) == n - 1
        assert {r["peer"] for r in rows} == {leader}
    assert len(star.ledger) == 2 * n * RUN["rounds"]
    # one model message costs the same bytes in every topology: costs compare directly
    assert {r["bytes"] for r in swarm.ledger} == {r["bytes"] for r in star.ledger}


def test_random_leader_is_seeded():
    topo = Swarm(leader="random")
    picks = [topo.choose_leader(5, 0, r) for r in range(1, 30)]
    assert picks == [topo.choose_leader(5, 0, r) for r in range(1, 30)]
    assert len(set(picks)) > 1 and all(0 <= p < 5 for p in picks)


def test_same_seed_same_history(federation):
    a = fl.run(federation, topology=Gossip(graph="ring"), **RUN)
    b = fl.run(federation, topology=Gossip(graph="ring"), **RUN)
    c = fl.run(federation, topology=Gossip(graph="ring"), **{**RUN, "seed": 1})
    assert a.equals(b) and not a.equals(c)


@dataclass(frozen=True)
class _Broken(fl.strategies.FedAvg):
    name: ClassVar[str] = "broken"

    def client_update(self, ctx):
        update = super().client_update(ctx)
        if ctx.site == "site-1":
            update.payload = {k: v * float("nan") if v.is_floating_point() else v
                              for k, v in update.payload.items()}
        return update


def test_non_finite_site_is_excluded_and_reported(federation):
    h = fl.run(federation, topology="ring", strategy=_Broken(), **RUN)
    assert all(fl.strategies.is_finite(s) for s in h.site_states.values())
    assert [e["site"] for e in h.events] == ["site-1", "site-1"]
    assert all(r["excluded"] == 1 for r in h.rounds)


@pytest.mark.parametrize("kwargs, match", [
    (dict(topology="hub"), "topology must be one of"),
    (dict(topology="swarm", strategy="scaffold"), "cannot run without a server"),
    (dict(topology="cyclic", strategy="centralized"), "cannot run without a server"),
    (dict(topology="torus"), "torus"),
])
def test_bad_topology_arguments(federation, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.run(federation, **{**RUN, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    (dict(order="random"), "order must be one of"), (dict(cycles=0), "cycles"),
])
def test_bad_cyclic_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Cyclic(**kwargs)


def test_bad_gossip_and_swarm_parameters():
    with pytest.raises(ValueError, match="steps"):
        Gossip(steps=0)
    with pytest.raises(ValueError, match="graph must be one of"):
        Gossip(graph="tree")
    with pytest.raises(ValueError, match="leader must be one of"):
        Swarm(leader="oldest")


def test_user_adjacency_is_stored_as_tuples_and_used(federation):
    a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    topo = Gossip(graph=a)
    assert topo.graph == ((0, 1, 0), (1, 0, 1), (0, 1, 0))
    h = fl.run(federation, topology=topo, **RUN)
    assert len(h.ledger) == 2 * 2 * RUN["rounds"]
    assert {(r["site"], r["peer"]) for r in h.ledger} == {
        ("site-1", "site-2"), ("site-2", "site-1"), ("site-2", "site-3"), ("site-3", "site-2")}


def test_gossip_runs_a_segmentation_federation():
    seg = fl.data.make_segmentation(n_train=40, n_val=8, n_test=16, image_size=32, seed=0)
    sites = fl.data.split_segmentation(seg, 3, seed=0)
    h = fl.run(sites, model="unet", topology="ring", rounds=1, local_steps=1, batch_size=8,
               progress=False)
    pooled = h.to_frame().query("round == 1 and split == 'pooled'")
    assert len(pooled) == 3 and pooled["dice"].between(0, 1).all()


def test_cli_topology(tmp_path):
    out = tmp_path / "r"
    args = ["run", "--dataset", "synthetic", "--sites", "3", "--rounds", "2", "--model", "mlp",
            "--quiet", "--topology", "swarm", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["topology"] == "swarm" and summary["bytes_up"] > 0
    assert fl.History.load(out / "history.json").config["topology"] == "swarm"


# -- figures --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(federation):
    return {"star": fl.run(federation, **RUN),
            "cyclic": fl.run(federation, topology="cyclic", **RUN),
            "ring": fl.run(federation, topology="ring", **RUN)}


def test_messages_info_follows_the_ledger(runs):
    P = fl.topologies.plots
    star = P.messages_info(runs["star"], round=1)
    assert len(star) == 6 and set(star["messages"]) == {1}
    assert set(star[star["sender"] == "server"]["receiver"]) == {"site-1", "site-2", "site-3"}
    cyc = P.messages_info(runs["cyclic"], round=2)  # site-3 -> 1 -> 2 -> 3
    assert list(zip(cyc["sender"], cyc["receiver"], strict=True)) == [
        ("site-3", "site-1"), ("site-1", "site-2"), ("site-2", "site-3")]
    assert P.messages_info(runs["cyclic"], round=7).empty
    fig = P.messages(runs["star"])
    assert len(fig.layout.annotations) == 6 and "server" in fig.data[0].text
    assert len(P.messages(runs["ring"]).layout.annotations) == 6


def test_topology_comparison_figures(runs):
    P = fl.topologies.plots
    cons = P.consensus_info(runs)
    assert set(cons["topology"]) == {"cyclic", "ring"} and len(cons) == 4
    assert len(P.consensus(runs).data) == 2
    acc = P.site_accuracy_info(runs)
    assert len(acc) == 3 * 3 * 3  # runs x sites x evaluations (rounds 0, 1, 2)
    assert len(P.site_accuracy(runs).data) == 9
    com = P.communication_info(runs)
    assert com.loc["star", "messages"] == 12 and com.loc["cyclic", "messages"] == 5
    assert com.loc["ring", "MB"] == pytest.approx(runs["ring"].bytes() / 1e6)
    assert com.loc["ring", "accuracy"] == runs["ring"].final("accuracy")
    assert len(P.communication(runs).data) == 3
