"""The one engine: executors behind a seam, every topology in the same loop."""

from __future__ import annotations

import pickle

import pytest
import torch

import fedlab as fl
from fedlab.executors import Processes, Sequential, SiteTask, run_site_task

KW = {"model": "mlp", "local_steps": 3, "batch_size": 16, "lr": 0.05, "optimizer": "sgd",
      "seed": 3, "progress": False}


class Reversed:
    """A trivial executor: runs the tasks in reverse order (results in task order)."""

    def __init__(self) -> None:
        self.calls = 0

    def map(self, tasks):
        self.calls += 1
        done = {id(t): run_site_task(t) for t in reversed(list(tasks))}
        return [done[id(t)] for t in tasks]


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold", "ditto", "fedbn"])
def test_a_second_executor_gives_the_same_history(federation, strategy):
    kw = dict(KW, model="cnn-bn") if strategy == "fedbn" else KW
    ex = Reversed()
    a = fl.run(federation, strategy=strategy, rounds=2, **kw)
    b = fl.run(federation, strategy=strategy, rounds=2, executor=ex, **kw)
    assert ex.calls == 2
    assert a.equals(b)


def test_processes_executor_runs_pickled_tasks(federation):
    a = fl.run(federation, strategy="fedprox", rounds=2, **KW)
    b = fl.run(federation, strategy="fedprox", rounds=2, executor=Processes(workers=2), **KW)
    assert a.equals(b)


def test_executor_by_name_and_bad_names(federation):
    a = fl.run(federation, rounds=1, executor="sequential", **KW)
    assert a.last_round == 1
    with pytest.raises(ValueError, match="executor must be one of"):
        fl.run(federation, rounds=1, executor="gpu-magic", **KW)
    with pytest.raises(TypeError, match="executor must be a name or an object with map"):
        fl.run(federation, rounds=1, executor=42, **KW)
    with pytest.raises(ValueError, match="workers"):
        Processes(workers=0)


def test_site_task_is_pure_and_picklable(federation):
    spec = fl.models.ModelSpec.for_sites("mlp", federation)
    net = spec.build(seed=0)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    strategy = fl.strategies.Scaffold().bind(net, {s.name: s.n_examples for s in federation})
    own = {"control": {k: torch.full_like(v, 0.01)
                       for k, v in strategy.init_site_state(start)["control"].items()}}
    received = strategy.message_down(start, strategy.init_server_state(start))
    task = SiteTask(strategy, spec, federation[0], 0, 1, 3, received, own,
                    fl.training.TrainConfig(steps=2, batch_size=8, optimizer="sgd", lr=0.1))
    before = {k: v.clone() for k, v in own["control"].items()}
    torch.manual_seed(123)
    probe = torch.rand(1)
    torch.manual_seed(123)
    r1 = run_site_task(task)
    assert torch.equal(torch.rand(1), probe)  # the caller's random state is untouched
    assert all(torch.equal(own["control"][k], before[k]) for k in before)  # not edited
    r2 = run_site_task(pickle.loads(pickle.dumps(task)), Sequential()._network(task))
    assert all(torch.equal(r1.update.payload[k], r2.update.payload[k])
               for k in r1.update.payload)
    assert any(not torch.equal(r1.site_state["control"][k], before[k]) for k in before)


@pytest.mark.parametrize("topology", ["cyclic", "ring", "swarm"])
def test_peer_topologies_take_codecs(federation, topology):
    plain = fl.run(federation, rounds=2, topology=topology, **KW)
    coded = fl.run(federation, rounds=2, topology=topology, uplink="int8", downlink="fp16",
                   **KW)
    up = lambda h, d: sum(r["bytes"] for r in h.ledger if r["direction"] == d)  # noqa: E731
    assert up(coded, "up") < 0.5 * up(plain, "up")
    assert coded.config["uplink"] == "int8"
    assert abs(coded.final() - plain.final()) < 0.2  # int8 barely changes a model


def test_peer_topologies_refuse_a_delta_codec(federation):
    with pytest.raises(ValueError, match="reference"):
        fl.run(federation, rounds=1, topology="ring", uplink="delta|int8", **KW)


@pytest.mark.parametrize("topology", ["cyclic", "ring", "swarm"])
def test_peer_topologies_resume_to_the_same_result(federation, topology, tmp_path):
    full = fl.run(federation, rounds=3, topology=topology, uplink="int8-sr", **KW)
    fl.run(federation, rounds=2, topology=topology, uplink="int8-sr", run_dir=tmp_path,
           **KW)
    resumed = fl.run(federation, rounds=3, topology=topology, uplink="int8-sr",
                     run_dir=tmp_path, resume=True, **KW)
    assert resumed.equals(full)


def test_byzantine_nan_site_is_excluded_on_a_ring(federation):
    bad = fl.attacks.Byzantine(fl.strategies.FedAvg(), sites=(federation[1].name,), kind="nan")
    h = fl.run(federation, rounds=2, topology="ring", strategy=bad, **KW)
    assert [e["round"] for e in h.events] == [1, 2]
    assert all(r["excluded"] == 1 for r in h.rounds)
    assert all(torch.isfinite(v).all() for v in h.final_state.values()
               if v.is_floating_point())


def test_peer_topologies_refuse_a_server_strategy(federation):
    with pytest.raises(ValueError, match="cannot run without a server"):
        fl.run(federation, rounds=1, topology="swarm", strategy="fedadam", **KW)
    with pytest.raises(ValueError, match="needs a server that sees every update"):
        fl.run(federation, rounds=1, topology="ring", strategy=fl.strategies.Median(), **KW)


def test_resume_keeps_the_key_order_a_stochastic_codec_draws_in(federation, tmp_path):
    # safetensors sorts keys; the checkpoint restores each state's own order, or the
    # int8-sr noise of a resumed run lands on other tensors than in the full run
    kw = dict(KW, downlink="int8-sr", uplink="int8-sr")
    full = fl.run(federation, rounds=3, **kw)
    fl.run(federation, rounds=2, run_dir=tmp_path, **kw)
    assert fl.run(federation, rounds=3, run_dir=tmp_path, resume=True, **kw).equals(full)


@pytest.mark.parametrize("topology", ["cyclic", "ring", "swarm"])
def test_peer_topologies_sample_their_sites(federation, topology):
    full = fl.run(federation, rounds=3, topology=topology, **KW)
    h = fl.run(federation, rounds=3, topology=topology, clients_per_round=2, **KW)
    assert [r["participants"] for r in h.rounds] == [2, 2, 2]
    per_round = {}
    for row in h.ledger:
        per_round.setdefault(row["round"], set()).update({row["site"], row["peer"]})
    # the others sit out (in cyclic, last round's holder hands the model over)
    assert all(len(sites) <= (3 if topology == "cyclic" else 2) for sites in per_round.values())
    assert len(h.ledger) < len(full.ledger)
    assert all(torch.isfinite(v).all() for v in h.final_state.values()
               if v.is_floating_point())


def test_peer_topologies_take_a_network_model(federation):
    h = fl.run(federation, rounds=2, topology="swarm", network="rural-clinic", **KW)
    assert all(r["sim_s"] > 0 for r in h.rounds)
    assert h.rounds[-1]["sim_total_s"] > h.rounds[0]["sim_s"]


def test_config_objects_and_keywords_are_one_way_in(federation):
    by_keywords = fl.run(federation, rounds=2, uplink="int8", eval_every=2,
                         eval_splits=("test", "val"), **KW)
    kw = {k: v for k, v in KW.items() if k not in ("local_steps", "batch_size", "lr",
                                                   "optimizer")}
    by_objects = fl.run(federation, rounds=2, **kw,
                        train=fl.Train(steps=3, batch_size=16, lr=0.05, optimizer="sgd"),
                        comm=fl.Comm(uplink="int8"), evaluation=fl.Eval(every=2,
                                                                          splits=("test", "val")))
    assert by_keywords.equals(by_objects)
    # a keyword fills the object's field
    mixed = fl.run(federation, rounds=2, **kw, train=fl.Train(steps=3, batch_size=16,
                                                              optimizer="sgd", lr=0.5),
                   lr=0.05, comm=fl.Comm(uplink="int8"), eval_every=2,
                   eval_splits=("test", "val"))
    assert mixed.equals(by_keywords)


def test_config_errors_name_the_argument(federation):
    with pytest.raises(TypeError, match="unexpected keyword.*'lr_rate'.*local_steps"):
        fl.run(federation, rounds=1, lr_rate=0.1)
    with pytest.raises(ValueError, match="eval_splits"):
        fl.run(federation, rounds=1, eval_splits=("holdout",), **KW)
    with pytest.raises(ValueError, match="eval_every"):
        fl.Eval(every=0)
    with pytest.raises(TypeError, match="train must be a fedlab.Train"):
        fl.run(federation, rounds=1, train={"lr": 0.1})


def test_nested_states_survive_a_checkpoint_exactly(tmp_path):
    from fedlab.checkpoint import Checkpoint, load_latest, save_round

    server = {"base": {}, "dp": {"rates": torch.tensor([1.0, 0.5], dtype=torch.float64),
                                 "deep": {"x": torch.ones(2)}}, "flat/with/slash": torch.zeros(1)}
    sites = [{"control": {"w": torch.full((2,), float(i))}, "steps": torch.tensor(i)}
             for i in range(2)]
    ckpt = Checkpoint(1, {"w": torch.ones(2)}, server, sites, [{}, {}])
    history = fl.History({"rounds": 1})
    history.rounds.append({"round": 1})
    save_round(tmp_path, ckpt, history)
    back, _, skipped = load_latest(tmp_path, 2, torch.device("cpu"))
    assert skipped == []
    assert back.server_state.keys() == server.keys() and back.server_state["base"] == {}
    assert list(back.server_state["dp"]) == ["rates", "deep"]
    assert torch.equal(back.server_state["dp"]["deep"]["x"], torch.ones(2))
    assert torch.equal(back.server_state["flat/with/slash"], torch.zeros(1))
    assert [s["control"]["w"].tolist() for s in back.site_states] == [[0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("make", [
    lambda names: fl.privacy.DP(fl.strategies.FedAdam(), noise_multiplier=0.5, clip=1.0),
    lambda names: fl.privacy.SecAgg(fl.strategies.FedAvgM(), sites=names),
    lambda names: fl.privacy.DPSGD(noise_multiplier=1.0),
])
def test_wrappers_with_nested_state_resume_to_the_same_history(federation, tmp_path, make):
    strategy = make(tuple(s.name for s in federation))
    full = fl.run(federation, strategy=strategy, rounds=3, **KW)
    fl.run(federation, strategy=strategy, rounds=1, run_dir=tmp_path, **KW)
    resumed = fl.run(federation, strategy=strategy, rounds=3, run_dir=tmp_path, resume=True,
                     **KW)
    assert resumed.equals(full)
