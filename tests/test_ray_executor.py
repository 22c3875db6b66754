"""The Ray executor: site actors keep the data, the History is the sequential one.

One local Ray (2 CPUs), started by the module's executor ``ex``, serves every test; the
last test closes ``ex`` and checks that this stops that Ray and all its processes.
"""

from __future__ import annotations

import gc
import pickle
import sys

import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.cli import build_parser
from fedlab.executors import EXECUTORS, Ray, SiteTask, get
from fedlab.executors.ray import SiteRef

ray = pytest.importorskip("ray", reason='the Ray executor needs ray: '
                                       'pip install "fedlab-workbench[ray]"')

KW = {"model": "mlp", "local_steps": 3, "batch_size": 16, "lr": 0.05, "optimizer": "sgd",
      "seed": 3, "progress": False}


@pytest.fixture(scope="module")
def ex():
    if ray.is_initialized():
        pytest.skip("a Ray is already initialised in this process")
    executor = Ray(num_cpus=2)  # starts a local Ray on first use, stopped by close()
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def five(synthetic):
    return fl.data.split(synthetic, n_sites=5, scheme=fl.data.Dirichlet(alpha=1.0),
                         seed=seeded())


def _same(sites, strategy: str, rounds: int, ex) -> None:
    """The run through ``ex`` has the sequential History and weights, exactly."""
    a = fl.run(sites, strategy=strategy, rounds=rounds, **KW)
    b = fl.run(sites, strategy=strategy, rounds=rounds, executor=ex, **KW)
    assert a.equals(b)
    for k, v in a.final_state.items():
        assert torch.equal(v, b.final_state[k]), k
    for site, state in a.site_states.items():
        for k, v in state.items():
            assert torch.equal(v, b.site_states[site][k]), (site, k)


def test_same_history_as_sequential_and_data_sent_once(ex, five, synthetic, monkeypatch):
    sent, light = [], ex.light
    monkeypatch.setattr(ex, "light", lambda task: sent.append(light(task)) or sent[-1])
    _same(five, "fedavg", 3, ex)
    assert ex.placements == 5 and len(ex.actors) == 2  # one actor per CPU
    assert 0 < ex.init_s <= ex.startup_s
    # SCAFFOLD keeps per-site state; the same sites are not sent again
    _same(five, "scaffold", 2, ex)
    assert ex.placements == 5
    # other sites under the same names are placed anew, not confused with these
    other = fl.data.split(synthetic, n_sites=5, scheme=fl.data.Dirichlet(alpha=0.5),
                          seed=seeded(1))
    assert other.names == five.names
    _same(other, "fedavg", 2, ex)
    assert ex.placements == 10 and len(ex.actors) == 2
    assert len(sent) == 5 * 3 + 5 * 2 + 5 * 2
    images = five[0].split("train").images.tobytes()[:512]
    for task in sent:  # what travels each round: a key for the site, never its images
        assert isinstance(task.site, SiteRef)
        assert images not in pickle.dumps(task)


@pytest.mark.parametrize("kw, actors", [({"sites_per_actor": 3}, 2), ({"max_actors": 1}, 1)])
def test_several_sites_per_actor(ex, five, kw, actors):
    with Ray(**kw) as ex:
        _same(five, "scaffold", 2, ex)
        assert len(ex.actors) == actors and ex.placements == 5


def test_by_name(ex, five):
    assert EXECUTORS["ray"] is Ray and isinstance(get("ray"), Ray)
    one = [five[0]]  # one site: one more actor to start
    assert fl.run(one, rounds=1, **KW).equals(fl.run(one, rounds=1, executor="ray", **KW))
    args = build_parser().parse_args(["run", "--executor", "ray", "--out", "x"])
    assert args.executor == "ray"


@pytest.mark.parametrize("kw, match", [
    ({"sites_per_actor": 0}, "sites_per_actor must be an integer >= 1"),
    ({"max_actors": 2.5}, "max_actors must be an integer"),
    ({"sites_per_actor": 2, "max_actors": 2}, "at most one of sites_per_actor and max_actors"),
    ({"address": "auto", "num_cpus": 2}, "num_cpus is for a local Ray"),
    ({"address": 3}, "address must be None, 'auto'"),
    ({"cpus_per_actor": 0}, "cpus_per_actor"),
    ({"gpus_per_actor": -1}, "gpus_per_actor must be a number >= 0"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        Ray(**kw)


def _task(site, device: str = "cpu") -> SiteTask:
    spec = fl.models.ModelSpec.for_sites("mlp", [site])
    net = spec.build(seed=0)
    strategy = fl.strategies.FedAvg().bind(net, {site.name: site.n_examples})
    return SiteTask(strategy, spec, site, 0, 1, 0, net.state_dict(), {},
                    fl.training.TrainConfig(steps=1, batch_size=8), device)


def test_too_many_actors_and_no_gpu_are_clear(ex, five):
    with Ray(max_actors=3) as ex, pytest.raises(ValueError, match="has CPUs for 2"):
        fl.run(five, rounds=1, executor=ex, **KW)
    with Ray() as ex, pytest.raises(ValueError, match="gpus_per_actor=0 gives the actors no"):
        ex.map([_task(five[0], "cuda:0")])


def test_missing_ray_says_what_to_install(five, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "fedlab-workbench\[ray\]"'):
        Ray().map([_task(five[0])])


def test_close_stops_the_ray_it_started_and_its_processes(ex, five):
    psutil = pytest.importorskip("psutil", reason="lists the processes Ray started")
    _same(five[:2], "fedavg", 1, ex)  # ex started this module's Ray (the first test may not run)
    kids = psutil.Process().children(recursive=True)
    assert ray.is_initialized() and kids
    gc.collect()  # executors given by name leave with their run
    ex.close()
    assert not ray.is_initialized() and ex.actors == []
    _, alive = psutil.wait_procs(kids, timeout=20)
    assert not alive, alive
