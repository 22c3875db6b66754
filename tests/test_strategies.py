import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import seeded
from safetensors.torch import load_file

import fedlab as fl
from fedlab.strategies import (
    STRATEGIES,
    Ditto,
    FedAdam,
    FedAvgM,
    FedBN,
    FedMD,
    FedOpt,
    FedProx,
    FedYogi,
    FineTuned,
    Scaffold,
    Update,
    get,
    norm_keys,
)
from fedlab.strategies.fedprox import anchor, proximal_term

# plain SGD without momentum: "one step" is one plain step, and runs take well under 1 s
FAST = dict(model="mlp", rounds=2, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.0,
            progress=False)


def _final(federation, strategy, **kwargs):
    return fl.run(federation, strategy=strategy, **{**FAST, **kwargs}).final_state


def _close(a, b, atol=1e-6) -> bool:
    return a.keys() == b.keys() and all(
        torch.allclose(a[k].double(), b[k].double(), atol=atol) for k in a)


def _site_losses(h, rnd=1):
    return h.to_frame().query(f"round == {rnd} and site != 'global'")["loss"].to_numpy()


def _updates(*values, weights=(1, 1)):
    return [Update(f"s{i}", {"w": torch.tensor([v])}, n) for i, (v, n)
            in enumerate(zip(values, weights, strict=True))]


# -- equivalences that anchor the algorithms ---------------------------------------
@pytest.mark.quality
def test_fedprox_mu_zero_equals_fedavg_and_mu_pulls_to_global(federation, margin):
    fedavg = _final(federation, "fedavg", seed=seeded())
    assert _close(_final(federation, FedProx(mu=0.0), seed=seeded()), fedavg, atol=0)
    start = _final(federation, "fedavg", rounds=0, seed=seeded())

    def drift(state):
        return sum(float((state[k] - start[k]).norm()) for k in start)

    margin.below("FedProx(mu=10) drift / FedAvg drift", drift(_final(federation,
                 FedProx(mu=10.0), seed=seeded())) / drift(fedavg), 1.0)


def test_proximal_term_is_zero_at_step_zero_and_positive_after_a_step():
    torch.manual_seed(0)
    model = fl.models.MLP()
    ref = anchor(model)
    assert proximal_term(model, ref).item() == 0.0
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 2, (8,))
    F.cross_entropy(model(x), y).backward()
    opt.step()
    term = proximal_term(model, ref)
    assert term.item() > 0  # the reference is a copy, not a live view of the weights
    expected = sum(float(((p.detach() - ref[n]) ** 2).sum()) for n, p in model.named_parameters())
    assert term.item() == pytest.approx(expected)  # squared, not halved
    model.zero_grad()
    (0.5 * 3.0 * term).backward()  # d/dw of (mu / 2) ||w - w_ref||^2 is mu (w - w_ref)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, 3.0 * (p.detach() - ref[n]), atol=1e-6)


def test_fedavgm_with_server_lr_1_and_no_momentum_equals_fedavg(federation):
    fedavg = _final(federation, "fedavg")
    assert _close(_final(federation, FedAvgM(server_lr=1.0, beta=0.0)), fedavg)
    assert not _close(_final(federation, FedAvgM(server_lr=1.0, beta=0.9)), fedavg)


def test_fedopt_sgd_with_server_lr_1_equals_fedavg(federation):
    assert _close(_final(federation, FedOpt(server_lr=1.0)), _final(federation, "fedavg"))


def test_scaffold_with_zero_controls_and_one_step_equals_fedavg(federation):
    kw = dict(rounds=1, local_steps=1)
    fedavg = fl.run(federation, strategy="fedavg", **{**FAST, **kw})
    scaffold = fl.run(federation, strategy="scaffold", **{**FAST, **kw})
    assert _close(scaffold.final_state, fedavg.final_state)
    # c travels down with the model and dc up with dy: twice FedAvg's traffic (the
    # safetensors header of the longer message differs by a few bytes)
    assert scaffold.bytes("down") == scaffold.bytes("up")
    assert scaffold.bytes("up") == pytest.approx(2 * fedavg.bytes("up"), rel=1e-3)


def test_scaffold_option_ii_controls_are_full_batch_gradients(federation, tmp_path):
    torch.manual_seed(0)
    model = fl.models.MLP()
    fl.run(federation, strategy="scaffold", run_dir=tmp_path,
           **{**FAST, "model": model, "rounds": 1, "local_steps": 1, "batch_size": 10_000})
    ckpt = load_file(str(tmp_path / "checkpoints" / "round_0001.safetensors"))
    weights = np.array([s.n_examples for s in federation], dtype=float)
    for key in ("net.1.weight", "net.3.bias"):
        grads = []
        for site in federation:
            ref = copy.deepcopy(model)
            x, y = site.tensors("train")
            F.cross_entropy(ref(x), y).backward()
            grads.append(ref.get_parameter(key).grad)
        for i, g in enumerate(grads):  # c_i = (x - y) / (K lr) = the site's gradient at x
            assert torch.allclose(ckpt[f"site/{i}/control/{key}"], g, atol=1e-5)
        mean = sum(w * g for w, g in zip(weights / weights.sum(), grads, strict=True))
        assert torch.allclose(ckpt[f"server/control/{key}"], mean.float(), atol=1e-5)


# -- server steps by hand ----------------------------------------------------------
def test_server_steps_by_hand():
    g = {"w": torch.tensor([0.0])}
    avg_is_2 = _updates(1.0, 3.0)
    s = FedOpt(server_lr=0.5)
    assert s.aggregate(g, avg_is_2, {})[0]["w"].item() == pytest.approx(1.0)
    m = FedAvgM(server_lr=1.0, beta=0.5)
    x1, st = m.aggregate(g, avg_is_2, m.init_server_state(g))  # v = 2
    x2, _ = m.aggregate(x1, _updates(2.0, 2.0), st)  # delta 0: v = 0.5 * 2
    assert (x1["w"].item(), x2["w"].item()) == pytest.approx((2.0, 3.0))
    a = FedAdam(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    x, st = a.aggregate(g, avg_is_2, a.init_server_state(g))
    mom, v = 0.1 * 2.0, 0.99 * 1e-6 + 0.01 * 4.0
    assert x["w"].item() == pytest.approx(0.1 * mom / (v ** 0.5 + 1e-3), rel=1e-5)
    assert (st["m"]["w"].item(), st["v"]["w"].item()) == pytest.approx((mom, v), rel=1e-5)
    y = FedYogi(beta2=0.99, tau=1e-3)
    st = y.aggregate(g, avg_is_2, y.init_server_state(g))[1]
    assert st["v"]["w"].item() == pytest.approx(1e-6 + 0.01 * 4.0, rel=1e-5)


def test_scaffold_aggregate_by_hand():
    s = Scaffold(server_lr=0.5)
    g = {"w": torch.tensor([1.0]), "n": torch.tensor(4)}
    server = {"control": {"w": torch.tensor([0.1])}}
    ups = [Update("a", {"w": torch.tensor([2.0]), "n": torch.tensor(2),
                        "control/w": torch.tensor([0.3])}, 3),
           Update("b", {"w": torch.tensor([-2.0]), "n": torch.tensor(2),
                        "control/w": torch.tensor([-0.1])}, 1)]
    new, server2 = s.aggregate(g, ups, server)  # weights 3/4 and 1/4
    assert new["w"].item() == pytest.approx(1.0 + 0.5 * 1.0)  # params: server_lr * mean
    assert new["n"].item() == 6  # buffers: plain mean change, no server_lr
    assert server2["control"]["w"].item() == pytest.approx(0.1 + 0.2)
    assert server["control"]["w"].item() == pytest.approx(0.1)  # inputs untouched


# -- FedBN: the normalisation layers never leave the site --------------------------
def test_fedbn_never_sends_norm_layers(federation, tmp_path):
    model = fl.models.create_model("cnn-bn")
    local = {f"features.{i}.{k}" for i in (1, 5) for k in
             ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert set(norm_keys(model)) == local  # nn.Sequential indices, found by module type
    strategy = FedBN().bind(model, {"a": 1})
    state = model.state_dict()
    shared = {k: v for k, v in state.items() if k not in local}
    assert set(strategy.message_down(state, {})) == set(shared)
    h = fl.run(federation, strategy="fedbn", run_dir=tmp_path,
               **{**FAST, "model": "cnn-bn", "rounds": 1, "local_steps": 2})
    ledger = h.to_frame("ledger")
    size = fl.comm.serialized_size
    assert (ledger["bytes"] == size(shared)).all() and len(ledger) == 2 * len(federation)
    assert h.bytes() < 2 * len(federation) * size(state)
    ckpt = load_file(str(tmp_path / "checkpoints" / "round_0001.safetensors"))
    mean0, mean1 = (ckpt[f"site/{i}/features.1.running_mean"] for i in (0, 1))
    assert not torch.allclose(mean0, mean1)  # each site keeps its own statistics
    assert torch.equal(h.final_state["features.1.running_mean"], state["features.1.running_mean"])


def test_fedbn_without_norm_layers_says_what_to_do(federation):
    with pytest.raises(ValueError, match="cnn-bn"):
        fl.run(federation, strategy="fedbn", **FAST)
    with pytest.raises(ValueError, match="local_keys"):
        FedBN(local_keys=("nope",)).bind(fl.models.MLP(), {"a": 1})


# -- every registered strategy runs, checkpoints and resumes -------------------------
@pytest.mark.parametrize("name", fl.strategies.names())
def test_every_strategy_runs_and_resumes(federation, tmp_path, name):
    strategy = get(name)
    if name in fl.strategies.RULES:  # a robust rule's name: FedAvg with the rule
        assert strategy.label == f"fedavg+{name}" and strategy.rule.name == name
    else:
        assert strategy.name == name and type(strategy) is STRATEGIES[name]
    kw = {**FAST, "model": "cnn-bn", "local_steps": 2, "seed": 1}
    if strategy.asynchronous:  # FedAsync, FedBuff run on the network's clock
        kw["network"] = "mixed"
    if name == "fedmd":  # it needs a public set every site holds
        images = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
        strategy = FedMD(public=images)
    full = fl.run(federation, strategy=strategy, run_dir=tmp_path / "full", **kw)
    assert np.isfinite(full.series("loss")[1]).all() and not full.events
    fl.run(federation, strategy=strategy, run_dir=tmp_path / "part", **{**kw, "rounds": 1})
    resumed = fl.run(federation, strategy=strategy, run_dir=tmp_path / "part", resume=True,
                     **kw)
    assert resumed.equals(full)
    assert all(torch.equal(v, resumed.final_state[k]) for k, v in full.final_state.items())


def test_get_names_aliases_and_bad_values():
    assert isinstance(get("FedAdam", server_lr=0.1), FedAdam)
    assert isinstance(get("fine-tuned"), FineTuned) and isinstance(get("centralised"), type(
        get("centralized")))
    with pytest.raises(ValueError, match="strategy must be one of"):
        get("fedsomething")
    for make, match in [(lambda: FedProx(mu=-1), "mu"), (lambda: FedAvgM(beta=1.0), "beta"),
                        (lambda: FedAdam(tau=0), "tau"), (lambda: Ditto(lam=-1), "lam"),
                        (lambda: Scaffold(server_lr=0), "server_lr")]:
        with pytest.raises(ValueError, match=match):
            make()


# -- what makes each strategy different ----------------------------------------------
def test_personalised_models_differ_from_the_global_one(federation):
    fedavg = fl.run(federation, strategy="fedavg", **FAST)
    for strategy in (FineTuned(), Ditto(lam=0.1)):
        h = fl.run(federation, strategy=strategy, **FAST)
        assert not np.allclose(_site_losses(h), _site_losses(fedavg))
        # the global model is trained exactly as FedAvg's
        assert _close(h.final_state, fedavg.final_state, atol=0)


def test_adaptive_server_steps_differ_from_fedavg(federation):
    fedavg = _final(federation, "fedavg", rounds=1)
    adam = _final(federation, FedAdam(), rounds=1)
    yogi = _final(federation, FedYogi(), rounds=1)
    assert not _close(adam, fedavg) and not _close(yogi, fedavg) and not _close(adam, yogi)

