"""A careless user and a hostile input: each bad argument gets a clear error that names the
argument (or the file, site or split) and what is allowed, never a traceback from deep
inside torch, numpy or json, and never a silent, questionable result.

One table: (case, what to call, exception type, a pattern the message must contain).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fedlab as fl
from fedlab.cli import main

RUN = dict(model="mlp", rounds=1, local_steps=1, batch_size=16, progress=False, seed=0)


@pytest.fixture(scope="module")
def data():
    return fl.data.make_synthetic(n_train=120, n_val=20, n_test=40, image_size=16, seed=0)


@pytest.fixture(scope="module")
def sites(data):
    return fl.data.split(data, n_sites=3, seed=0)


def _split_with(data, **change):
    train = fl.data.base.Split(change.get("images", data.train.images),
                               change.get("labels", data.train.labels))
    return fl.data.ImageDataset("x", train, data.val, data.test, data.classes)


def _history_file(tmp_path, content):
    path = tmp_path / "h.json"
    path.write_text(content)
    return lambda: fl.History.load(path)


S, R, D = "sites", "run", "data"  # what a case needs: the federation, fl.run, the dataset
CASES = [
    # -- datasets and their contents ---------------------------------------------------
    ("load unknown", D, lambda d, s, t: fl.data.load("cifar10"), ValueError, "pneumoniamnist"),
    ("synthetic classes", D, lambda d, s, t: fl.data.make_synthetic(n_classes=1), ValueError,
     "n_classes"),
    ("NaN pixels", D, lambda d, s, t: _split_with(
        d, images=np.full_like(d.train.images, np.nan)), ValueError, "NaN or infinite"),
    ("float labels", D, lambda d, s, t: _split_with(
        d, labels=d.train.labels.astype(np.float32)), TypeError, "integer class indices"),
    ("label out of range", D, lambda d, s, t: _split_with(
        d, labels=d.train.labels + 5), ValueError, r"class indices in \[0, 2\)"),
    ("negative label", D, lambda d, s, t: _split_with(
        d, labels=d.train.labels - 1), ValueError, r"got \[-1\]"),
    ("images 3d", D, lambda d, s, t: fl.data.base.Split(d.train.images[:, 0], d.train.labels),
     ValueError, r"\(N, C, H, W\)"),
    ("labels shape", D, lambda d, s, t: fl.data.base.Split(d.train.images, d.train.labels[:3]),
     ValueError, "labels must have shape"),
    ("folders missing", D, lambda d, s, t: fl.data.from_folders(t / "nowhere"), Exception,
     "nowhere"),
    # -- partitioners ------------------------------------------------------------------
    ("zero sites", D, lambda d, s, t: fl.data.split(d, n_sites=0), ValueError, "n_sites"),
    ("too many sites", D, lambda d, s, t: fl.data.split(d, n_sites=10_000), ValueError,
     "n_sites"),
    ("dirichlet alpha", D, lambda d, s, t: fl.data.Dirichlet(alpha=0), ValueError, "alpha"),
    ("dirichlet nan", D, lambda d, s, t: fl.data.Dirichlet(alpha=float("nan")), ValueError,
     "alpha"),
    ("pathological k", D, lambda d, s, t: fl.data.split(
        d, 3, scheme=fl.data.Pathological(classes_per_site=5)), ValueError, "classes_per_site"),
    ("shards", D, lambda d, s, t: fl.data.Shards(shards_per_site=0), ValueError,
     "shards_per_site"),
    ("quantity skew", D, lambda d, s, t: fl.data.QuantitySkew(skew=-1), ValueError, "skew"),
    ("shift strength", D, lambda d, s, t: fl.data.AcquisitionShift(strength=2), ValueError,
     "strength"),
    ("names count", D, lambda d, s, t: fl.data.split(d, 3, names=["a"]), ValueError, "names"),
    # -- sites given to fl.run ---------------------------------------------------------
    ("no sites", R, lambda d, s, t: fl.run([], **RUN), ValueError, "at least one Site"),
    ("not a site", R, lambda d, s, t: fl.run([1, 2], **RUN), TypeError, "Site objects"),
    ("duplicate names", R, lambda d, s, t: fl.run([s[0], s[0]], **RUN), ValueError,
     "unique names"),
    ("other classes", R, lambda d, s, t: fl.run([s[0], fl.Site(
        "x", *(s[1].split(k) for k in ("train", "val", "test")), ("cat", "dog"))], **RUN),
     ValueError, "one class list"),
    # -- the run's own settings ----------------------------------------------------------
    ("rounds negative", R, lambda d, s, t: fl.run(s, **{**RUN, "rounds": -1}), ValueError,
     "rounds"),
    ("rounds float", R, lambda d, s, t: fl.run(s, **{**RUN, "rounds": 2.5}), ValueError,
     "rounds"),
    ("lr negative", R, lambda d, s, t: fl.run(s, **RUN, lr=-1), ValueError, "lr"),
    ("batch size", R, lambda d, s, t: fl.run(s, **{**RUN, "batch_size": 0}), ValueError,
     "batch_size"),
    ("optimizer", R, lambda d, s, t: fl.run(s, **RUN, optimizer="rmsprop"), ValueError,
     "optimizer"),
    ("epochs", R, lambda d, s, t: fl.run(s, **RUN, local_epochs=0), ValueError, "epochs"),
    ("momentum", R, lambda d, s, t: fl.run(s, **RUN, momentum=-0.5), ValueError, "momentum"),
    ("lr decay", R, lambda d, s, t: fl.run(s, **RUN, lr_decay=0), ValueError, "lr_decay"),
    ("unknown keyword", R, lambda d, s, t: fl.run(s, **RUN, learning_rate=0.1), TypeError,
     "learning_rate"),
    ("model name", R, lambda d, s, t: fl.run(s, **{**RUN, "model": "vgg"}), ValueError,
     "model must be one of"),
    ("model type", R, lambda d, s, t: fl.run(s, **{**RUN, "model": 3}), TypeError, "model"),
    ("train object", R, lambda d, s, t: fl.run(s, train={"lr": 1}, **RUN), TypeError,
     "train must be"),
    ("eval every", R, lambda d, s, t: fl.run(s, **RUN, eval_every=0), ValueError,
     "eval_every"),
    ("eval splits", R, lambda d, s, t: fl.run(s, **RUN, eval_splits=("holdout",)),
     ValueError, "eval_splits"),
    ("device", R, lambda d, s, t: fl.run(s, **RUN, device="quantum"), ValueError, "device"),
    ("executor", R, lambda d, s, t: fl.run(s, **RUN, executor="gpu"), ValueError,
     "executor must be one of"),
    ("resume without dir", R, lambda d, s, t: fl.run(s, **RUN, resume=True), ValueError,
     "run_dir"),
    ("run dir is a file", R, lambda d, s, t: fl.run(s, **RUN, run_dir="/dev/null/x"),
     ValueError, "cannot be created"),
    # -- strategies and their parameters -------------------------------------------------
    ("strategy name", R, lambda d, s, t: fl.run(s, strategy="fedsgd", **RUN), ValueError,
     "strategy must be one of"),
    ("fedprox mu", D, lambda d, s, t: fl.strategies.FedProx(mu=-1), ValueError, "mu"),
    ("fedavgm beta", D, lambda d, s, t: fl.strategies.FedAvgM(beta=1), ValueError, "beta"),
    ("fedadam tau", D, lambda d, s, t: fl.strategies.FedAdam(tau=0), ValueError, "tau"),
    ("ditto lam", D, lambda d, s, t: fl.strategies.Ditto(lam=-1), ValueError, "lam"),
    ("scaffold lr", D, lambda d, s, t: fl.strategies.Scaffold(server_lr=0), ValueError,
     "server_lr"),
    ("fedbn without bn", R, lambda d, s, t: fl.run(s, strategy="fedbn", **RUN), ValueError,
     "cnn-bn"),
    ("combine name", D, lambda d, s, t: fl.strategies.FedAvg(combine="mode"), ValueError,
     "combine must be one of"),
    ("combine on scaffold", D, lambda d, s, t: fl.strategies.Scaffold(combine="median"),
     ValueError, "send their weights"),
    ("trimmed beta", D, lambda d, s, t: fl.strategies.TrimmedMean(beta=0.5), ValueError,
     "beta"),
    ("krum f too large", R, lambda d, s, t: fl.run(s, strategy=fl.strategies.Krum(
        n_byzantine=10), **RUN), ValueError, "n_byzantine"),
    ("byzantine kind", D, lambda d, s, t: fl.attacks.Byzantine(sites=["a"], kind="zero"),
     ValueError, "kind must be one of"),
    ("byzantine unknown site", R, lambda d, s, t: fl.run(s, strategy=fl.attacks.Byzantine(
        sites=["nobody"]), **RUN), ValueError, "sites must name sites"),
    ("byzantine under secagg", D, lambda d, s, t: fl.attacks.Byzantine(
        fl.privacy.SecAgg(sites=("a", "b")), sites=["a"], kind="nan"), ValueError, "SecAgg"),
    # -- codecs, sampling, network -------------------------------------------------------
    ("codec name", R, lambda d, s, t: fl.run(s, **RUN, uplink="zip"), ValueError,
     "codec must be one of"),
    ("topk fraction", R, lambda d, s, t: fl.run(s, **RUN, uplink="topk:2"), ValueError,
     "fraction"),
    ("clients per round", R, lambda d, s, t: fl.run(s, **RUN, clients_per_round=10),
     ValueError, "clients_per_round"),
    ("network profile", R, lambda d, s, t: fl.run(s, **RUN, network="5g"), ValueError,
     "hospital-fibre"),
    ("lossy codec and secagg", R, lambda d, s, t: fl.run(s, strategy=fl.privacy.SecAgg(
        sites=tuple(x.name for x in s)), uplink="int8", **RUN), ValueError, "secure aggregation"),
    # -- topologies ------------------------------------------------------------------
    ("topology name", R, lambda d, s, t: fl.run(s, topology="mesh", **RUN), ValueError,
     "topology must be one of"),
    ("server strategy on a ring", R, lambda d, s, t: fl.run(s, topology="ring",
     strategy="fedadam", **RUN), ValueError, "cannot run without a server"),
    ("graph without edges", R, lambda d, s, t: fl.run(s, topology=fl.topologies.Gossip(
        graph=np.zeros((3, 3), dtype=int)), **RUN), ValueError, "graph"),
    ("random graph degree", R, lambda d, s, t: fl.run(s, topology="random", **RUN),
     ValueError, "degree"),
    # -- DP and SecAgg options -------------------------------------------------------
    ("dp clip", D, lambda d, s, t: fl.privacy.DP(clip=0), ValueError, "clip"),
    ("dp mode", D, lambda d, s, t: fl.privacy.DP(mode="global"), ValueError, "mode"),
    ("dp delta", D, lambda d, s, t: fl.privacy.DP(delta=1), ValueError, "delta"),
    ("dpsgd noise", D, lambda d, s, t: fl.privacy.DPSGD(noise_multiplier=0), ValueError,
     "noise_multiplier"),
    ("secagg roster", D, lambda d, s, t: fl.privacy.SecAgg(sites=("a",)), ValueError,
     "at least two sites"),
    ("secagg threshold", D, lambda d, s, t: fl.privacy.SecAgg(sites=("a", "b"), threshold=5),
     ValueError, "threshold"),
    # -- History files ---------------------------------------------------------------
    ("history truncated", D, lambda d, s, t: _history_file(t, '{"config": {')(), ValueError,
     "not valid JSON"),
    ("history foreign", D, lambda d, s, t: _history_file(t, '{"a": 1}')(), ValueError,
     "not a fedlab History"),
    ("history future", D, lambda d, s, t: _history_file(
        t, json.dumps({"schema": 7, "config": {}}))(), ValueError, "schema 7"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(case, data, sites, tmp_path):
    _, _, call, kind, pattern = case
    with pytest.raises(kind, match=pattern):
        call(data, sites, tmp_path)


def test_there_are_enough_cases():
    assert len(CASES) >= 60


CLI = ["run", "--dataset", "synthetic", "--sites", "3", "--model", "mlp", "--rounds", "1",
       "--quiet"]


@pytest.mark.parametrize("extra, text", [
    (["--strategy", "fedprox", "--param", "mu=abc"], "mu must be a float"),
    (["--strategy", "fedprox", "--param", "nu=1"], "KEY one of ['mu']"),
    (["--uplink", "zip"], "codec must be one of"),
    (["--topology", "random"], "degree"),
    (["--partition", "dirichlet", "--alpha", "0"], "alpha"),
    (["--sites", "0"], "n_sites"),
])
def test_the_cli_says_it_in_one_line(extra, text, tmp_path, capsys):
    assert main([*CLI, *extra, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and err.count("\n") == 1, err
