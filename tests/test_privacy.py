"""fedlab.privacy: secure aggregation, client-level DP, its accountant, DP-SGD."""

from __future__ import annotations

import importlib.util
import math
import random

import numpy as np
import pytest
import torch
from conftest import seeded
from torch import nn

import fedlab as fl
from fedlab.privacy import DP, DPSGD, DPFedAvg, SecAgg, clip_delta, epsilon, noise_std
from fedlab.privacy.crypto import (
    KEY_BYTES,
    SEAL_BYTES,
    SHARE_BYTES,
    agree,
    decode,
    encode,
    keypair,
    shamir_reconstruct,
    shamir_share,
)
from fedlab.strategies import FedAvg, Scaffold, weighted_average
from fedlab.strategies.base import ClientContext, Update
from fedlab.training import TrainConfig

needs_opacus = pytest.mark.skipif(importlib.util.find_spec("opacus") is None,
                                  reason="the accountant needs opacus (the [privacy] extra)")

KW = {"model": "mlp", "rounds": 1, "progress": False, "seed": 0, "local_steps": 2}


# -- secure aggregation -------------------------------------------------------------
def test_fixed_point_round_trip_within_resolution():
    x = torch.tensor([-3.14159, -1e-7, 0.0, 2.5, 1000.123456])
    back = decode(encode(x, 20, 48), 20, 48)
    assert torch.allclose(back, x.double(), atol=2.0**-21)
    assert encode(torch.tensor([-1.0]), 20, 48).item() == 2**48 - 2**20  # wraps modulo 2**48


def test_shamir_threshold_recovers_and_fewer_shares_do_not():
    secret, rng = 123456789012345, random.Random(0)
    shares = shamir_share(secret, n=5, t=3, rng=rng)
    for pick in ([0, 1, 2], [4, 2, 0], [1, 3, 4], [0, 1, 2, 3, 4]):
        assert shamir_reconstruct([shares[i] for i in pick]) == secret
    assert shamir_reconstruct(shares[:2]) != secret


def test_shamir_shares_a_32_byte_key_in_one_element():
    secret = int.from_bytes(bytes(range(1, 33)), "big")
    shares = shamir_share(secret, n=4, t=2, rng=random.Random(1))
    assert shamir_reconstruct(shares[2:]) == secret


def test_x25519_agreement_is_symmetric_and_labelled():
    (a, pa), (b, pb), (_, pc) = (keypair(bytes([i]) * 32) for i in (1, 2, 3))
    assert len(pa) == KEY_BYTES
    assert agree(a, pb, "mask") == agree(b, pa, "mask")
    assert agree(a, pb, "mask") != agree(a, pc, "mask")
    assert agree(a, pb, "mask") != agree(a, pb, "shares")  # one key per use


def test_a_tampered_share_is_refused_and_sizes_are_the_real_ones():
    names = ("a", "b", "c", "d")
    agg = SecAgg(sites=names, threshold=3, dropped=("b",))
    payloads = {s: {"w": torch.ones(4)} for s in names}
    counts = dict.fromkeys(names, 1)
    sealed = {s: agg.sealed_shares(s, 1) for s in names}
    assert all(len(blob) == 2 * SHARE_BYTES + SEAL_BYTES
               for boxes in sealed.values() for blob in boxes.values())
    assert agg.unmask(1, _masked(agg, payloads, counts), sealed)["w"].tolist() == [3.0] * 4
    blob = bytearray(sealed["b"]["a"])  # b's share for a, relayed by the server
    blob[20] ^= 1
    tampered = {**sealed, "b": {**sealed["b"], "a": bytes(blob)}}
    with pytest.raises(ValueError, match="failed authentication"):
        agg.unmask(1, _masked(agg, payloads, counts), tampered)
    swapped = {**sealed, "b": {**sealed["b"], "a": sealed["c"]["a"]}}  # another sender's
    with pytest.raises(ValueError, match="failed authentication"):
        agg.unmask(1, _masked(agg, payloads, counts), swapped)


class _Fixed(FedAvg):
    """Sends a given payload: isolates the mechanism from training."""


def _masked(agg: SecAgg, payloads: dict, counts: dict, rnd: int = 1) -> list[Update]:
    return [Update(s, agg.mask(s, rnd, payloads[s], counts[s]), counts[s]) for s in agg.sites]


def test_client_half_sends_the_masked_payload():
    agg = SecAgg(sites=("a", "b"))
    fixed = _Fixed()
    object.__setattr__(fixed, "client_update", lambda c: c.update({"w": torch.ones(3)}))
    ctx = ClientContext("b", 2, nn.Identity(), {}, {}, TrainConfig(), 7, lambda **_: {})
    sent = SecAgg(fixed, sites=("a", "b")).client_update(ctx)
    assert sent.n_examples == 7 and sent.payload["w"].dtype == torch.int64
    assert torch.equal(sent.payload["w"], agg.mask("b", 2, {"w": torch.ones(3)}, 7)["w"])


@pytest.mark.parametrize("dropped", [(), ("b",), ("a", "d")])
def test_unmasked_sum_equals_plain_sum(dropped):
    gen = torch.Generator().manual_seed(0)
    names = ("a", "b", "c", "d", "e")
    payloads = {s: {"w": torch.randn(50, 3, generator=gen), "b": torch.randn(3, generator=gen)}
                for s in names}
    counts = dict(zip(names, [10, 20, 30, 40, 50], strict=True))
    agg = SecAgg(sites=names, threshold=3, dropped=dropped)
    total = agg.unmask(1, _masked(agg, payloads, counts))
    alive = [s for s in names if s not in dropped]
    for k in ("w", "b"):
        plain = sum(counts[s] * payloads[s][k].double() for s in alive)
        assert torch.allclose(total[k], plain, atol=len(alive) * 2.0**-24)
    assert total["secagg/n"].item() == pytest.approx(sum(counts[s] for s in alive))


def test_too_many_dropouts_cannot_unmask():
    names = ("a", "b", "c", "d")
    agg = SecAgg(sites=names, threshold=3, dropped=("a", "b"))
    payloads = {s: {"w": torch.ones(4)} for s in names}
    with pytest.raises(RuntimeError, match="threshold"):
        agg.unmask(1, _masked(agg, payloads, dict.fromkeys(names, 1)))


def test_masked_update_is_uncorrelated_with_the_real_one():
    gen = torch.Generator().manual_seed(1)
    names = ("a", "b", "c")
    payloads = {s: {"w": torch.randn(20_000, generator=gen)} for s in names}
    agg = SecAgg(sites=names)
    masked = _masked(agg, payloads, dict.fromkeys(names, 1))
    seen = masked[0].payload["w"].double()
    real = payloads["a"]["w"].double()
    r = np.corrcoef(seen.numpy(), real.numpy())[0, 1]
    assert abs(r) < 0.03
    # the masked values are uniform on the ring: a chi-square test over 64 equal bins
    # (63 degrees of freedom: 120 is far beyond its 99.99th percentile, about 113)
    counts = np.bincount((seen.numpy() / 2**agg.modulus_bits * 64).astype(int), minlength=64)
    expected = len(seen) / 64
    assert ((counts - expected) ** 2 / expected).sum() < 120


def test_secagg_run_matches_fedavg_and_logs_key_traffic(federation):
    names = tuple(federation.names)
    plain = fl.run(federation, strategy="fedavg", **KW)
    secure = fl.run(federation, strategy=SecAgg(FedAvg(), sites=names), **KW)
    for k, v in plain.final_state.items():
        assert torch.allclose(secure.final_state[k], v, atol=1e-6)
    ledger = secure.to_frame("ledger")
    assert {"keys", "shares"} <= set(ledger["what"])
    up = ledger[(ledger["what"] == "model") & (ledger["direction"] == "up")]["bytes"].sum()
    plain_up = plain.to_frame("ledger").query("direction == 'up'")["bytes"].sum()
    assert 1.99 < up / plain_up < 2.01  # int64 fixed point instead of float32


def test_secagg_rejects_bad_input():
    with pytest.raises(ValueError, match="sites"):
        SecAgg(FedAvg())
    with pytest.raises(ValueError, match="dropped"):
        SecAgg(sites=("a", "b"), dropped=("z",))
    with pytest.raises(ValueError, match="threshold"):
        SecAgg(sites=("a", "b"), threshold=3)


def test_secagg_roster_must_be_the_federation(federation):
    names = tuple(s.name for s in federation)
    with pytest.raises(ValueError, match=rf"roster.*missing \['{names[-1]}'\], unknown \['zz'\]"):
        fl.run(federation, strategy=SecAgg(FedAvg(), sites=(*names[:-1], "zz")), **KW)


# -- client-level DP ----------------------------------------------------------------
def test_clipped_norms_never_exceed_the_bound():
    gen = torch.Generator().manual_seed(0)
    for scale in (1e-3, 0.1, 1.0, 10.0, 1e3):
        delta = {"a": scale * torch.randn(30, 7, generator=gen),
                 "b": scale * torch.randn(5, generator=gen)}
        clipped, norm = clip_delta(delta, clip=0.5)
        new = math.sqrt(sum(float((v.double() ** 2).sum()) for v in clipped.values()))
        assert new <= 0.5 * (1 + 1e-6)
        if norm <= 0.5:  # small updates pass unchanged
            assert all(torch.equal(clipped[k], delta[k]) for k in delta)
        else:
            assert new == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("mode", ["central", "local"])
def test_noise_standard_deviation_follows_the_formula(mode):
    sigma, clip, m = 2.0, 0.1, 4
    still = _Fixed()  # sites that did not move: any change is noise
    object.__setattr__(still, "client_update", lambda c: c.update({"w": torch.zeros(200_000)}))
    dp = DP(still, noise_multiplier=sigma, clip=clip, mode=mode)
    glob = {"w": torch.zeros(200_000)}
    updates = [dp.client_update(ClientContext(f"s{i}", 1, nn.Identity(), glob, {},
                                              TrainConfig(), 10, lambda **_: {}))
               for i in range(m)]
    new, _ = dp.aggregate(glob, updates, dp.init_server_state(glob))
    expected = noise_std(sigma, clip, m, mode)
    assert expected == pytest.approx(sigma * clip / (m if mode == "central" else math.sqrt(m)))
    assert new["w"].std().item() == pytest.approx(expected, rel=0.02)


def _rdp_gaussian_epsilon(sigma, steps, delta):
    """Independent check: full participation, so each round is the Gaussian mechanism with
    RDP alpha / (2 sigma^2) (Mironov 2017), composed additively, converted to (eps, delta)
    as in Balle et al. 2020 (Theorem 21), minimised over Opacus' default orders."""
    orders = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)), float)
    rdp = steps * orders / (2 * sigma**2)
    eps = rdp - (np.log(delta) + np.log(orders)) / (orders - 1) + np.log((orders - 1) / orders)
    return float(np.nanmin(eps))


@needs_opacus
def test_epsilon_matches_the_accountant_for_a_known_configuration():
    from opacus.accountants import RDPAccountant

    sigma, rounds, delta = 1.1, 20, 1e-5
    acc = RDPAccountant()
    for _ in range(rounds):
        acc.step(noise_multiplier=sigma, sample_rate=1.0)
    ours = epsilon(sigma, 1.0, rounds, delta)
    assert ours == pytest.approx(acc.get_epsilon(delta), rel=1e-9)
    assert ours == pytest.approx(_rdp_gaussian_epsilon(sigma, rounds, delta), rel=1e-9)
    assert epsilon(sigma, 0.1, rounds, delta) < ours  # sampling amplifies privacy
    assert epsilon(2 * sigma, 1.0, rounds, delta) < ours
    assert epsilon(sigma, 1.0, 0, delta) == 0.0
    assert epsilon(0.0, 1.0, 3, delta) == math.inf
    with pytest.raises(ValueError, match="accountant"):
        epsilon(1.0, 1.0, 1, delta, accountant="moments")


@needs_opacus
def test_dp_run_reports_epsilon_per_round(federation):
    dp = DPFedAvg(noise_multiplier=1.0, clip=0.5)
    hist = fl.run(federation, strategy=dp, **{**KW, "rounds": 3})
    eps = [r["epsilon"] for r in hist.rounds]
    assert eps == pytest.approx([dp.epsilon(r) for r in (1, 2, 3)])
    assert eps[0] < eps[1] < eps[2]
    assert all(0 <= r["clipped_fraction"] <= 1 for r in hist.rounds)
    sampled = fl.run(federation, strategy=dp, clients_per_round=2, **{**KW, "rounds": 3})
    assert sampled.rounds[-1]["epsilon"] < eps[-1]


@needs_opacus
def test_local_dp_accounts_for_sensitivity_two_clip(federation):
    # two updates in the ball of radius C differ by up to 2C: local noise sigma*C is the
    # Gaussian mechanism with multiplier sigma/2, and the server sees who sent (rate 1)
    sigma = 1.5
    local = DPFedAvg(noise_multiplier=sigma, clip=0.5, mode="local")
    central_half = DPFedAvg(noise_multiplier=sigma / 2, clip=0.5)
    assert local.accounting_sigma == sigma / 2
    assert local.epsilon(5) == pytest.approx(central_half.epsilon(5), rel=1e-12)
    assert local.epsilon(5) > DPFedAvg(noise_multiplier=sigma, clip=0.5).epsilon(5)
    assert local.epsilon(5, sample_rate=0.1) == local.epsilon(5)  # no amplification
    hist = fl.run(federation, strategy=local, clients_per_round=2, **{**KW, "rounds": 3})
    assert [r["epsilon"] for r in hist.rounds] == pytest.approx(
        [central_half.epsilon(r) for r in (1, 2, 3)])


def test_one_central_dp_round_moves_the_weights_by_the_noise_norm(federation):
    # sigma large enough that the clipped signal (norm <= C/m) is under 1% of the noise:
    # the model moves by the norm of a Gaussian vector, sigma * C / m * sqrt(d)
    sigma, clip, m = 100.0, 0.1, len(federation)
    dp = DPFedAvg(noise_multiplier=sigma, clip=clip, seed=seeded())
    start = fl.run(federation, strategy=dp, **{**KW, "rounds": 0}).final_state
    moved = fl.run(federation, strategy=dp, **KW).final_state
    floats = [k for k, v in start.items() if v.is_floating_point()]
    d = sum(start[k].numel() for k in floats)
    norm = math.sqrt(sum(float(((moved[k] - start[k]).double() ** 2).sum()) for k in floats))
    assert norm == pytest.approx(sigma * clip / m * math.sqrt(d), rel=0.03)


@needs_opacus
@pytest.mark.quality
def test_dp_noise_drives_accuracy_to_chance(margin):
    # three sites: the mean's noise is sigma * C / 3 per weight, so sigma = 1 already
    # buries the clipped signal of a small CNN; clipping alone costs nothing here
    data = fl.data.make_synthetic(n_train=300, n_val=30, n_test=200, seed=seeded())
    sites = fl.data.split(data, n_sites=3, seed=seeded())
    kw = dict(model="cnn", rounds=8, optimizer="adam", lr=1e-3, batch_size=16, progress=False,
              seed=seeded())
    runs = {sigma: fl.run(sites, strategy=DPFedAvg(noise_multiplier=sigma, clip=1.0,
                                                   seed=seeded()), **kw)
            for sigma in (0.0, 1.0)}
    majority = runs[0.0].summary()["majority"]
    margin.above("accuracy with clipping only", runs[0.0].final("accuracy"), 0.8)
    margin.below("accuracy at sigma 1 - majority baseline",
                 runs[1.0].final("accuracy") - majority, 0.1)
    assert runs[1.0].summary()["collapsed"] or runs[1.0].final("auc") < 0.7


def test_dp_without_noise_and_large_clip_is_fedavg_with_equal_weights(federation):
    class EqualWeights(FedAvg):
        def aggregate(self, global_state, updates, server_state):
            states = [u.payload for u in updates]
            return weighted_average(states, [1] * len(states)), server_state

    hist = fl.run(federation, strategy=DP(FedAvg(), noise_multiplier=0.0, clip=1e9), **KW)
    equal = fl.run(federation, strategy=EqualWeights(), **KW)
    weighted = fl.run(federation, strategy=FedAvg(), **KW)
    for k, v in hist.final_state.items():
        assert torch.allclose(v, equal.final_state[k], atol=1e-6)
    assert not all(torch.allclose(v, weighted.final_state[k], atol=1e-6)
                   for k, v in hist.final_state.items())


def test_dp_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        DP(FedAvg(), mode="global")
    with pytest.raises(ValueError, match="clip"):
        DP(FedAvg(), clip=0)
    with pytest.raises(ValueError, match="weights"):
        DP(Scaffold())


# -- DP-SGD -------------------------------------------------------------------------
@needs_opacus
def test_dpsgd_reports_epsilon_per_site_and_leaves_the_model_clean(federation):
    strat = DPSGD(noise_multiplier=1.2, max_grad_norm=1.0, delta=1e-4)
    hist = fl.run(federation, strategy=strat, model="mlp", rounds=2, progress=False,
                  local_epochs=1, batch_size=32)
    last = hist.rounds[-1]
    for site in federation:
        n = site.n_examples
        q = min(1.0, 32 / n)
        steps = 2 * math.ceil(n / 32)
        assert last[f"epsilon/{site.name}"] == pytest.approx(epsilon(1.2, q, steps, 1e-4))
    assert last["epsilon"] == max(last[f"epsilon/{s}"] for s in federation.names)
    assert hist.rounds[0]["epsilon"] < last["epsilon"]
    net = fl.models.create_model("mlp")
    net.load_state_dict(hist.final_state)  # plain keys: no Opacus wrapper left in the state
    assert not any(hasattr(p, "grad_sample") for p in net.parameters())


@needs_opacus
def test_dpsgd_clips_per_sample_gradients():
    from fedlab.privacy import dp_sgd_epochs

    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = 1e3 * torch.randn(64, 4), torch.randint(0, 2, (64,))
    cfg = TrainConfig(steps=1, batch_size=64, optimizer="sgd", lr=1.0, momentum=0.0)
    dp_sgd_epochs(net, x, y, cfg, torch.Generator().manual_seed(0), 1e-6, 0.01)
    moved = math.sqrt(sum(float(((net.state_dict()[k] - v) ** 2).sum())
                          for k, v in before.items()))
    assert moved <= 0.01 * 1.01  # the mean of clipped gradients cannot exceed the bound


@needs_opacus
def test_dp_and_secagg_resume_to_the_same_result(federation, tmp_path):
    names = tuple(federation.names)
    for i, strat in enumerate([DPFedAvg(noise_multiplier=1.0, clip=0.5, seed=3),
                               SecAgg(FedAvg(), sites=names, dropped=names[:1])]):
        kw = {**KW, "rounds": 3}
        straight = fl.run(federation, strategy=strat, **kw)
        fl.run(federation, strategy=strat, run_dir=tmp_path / str(i), **{**kw, "rounds": 2})
        resumed = fl.run(federation, strategy=strat, run_dir=tmp_path / str(i), resume=True,
                         **kw)
        assert resumed.equals(straight)


def test_secagg_refuses_a_lossy_uplink(federation):
    names = [s.name for s in federation]
    with pytest.raises(ValueError, match="uplink=.*secure aggregation"):
        fl.run(federation, strategy=SecAgg(FedAvg(), sites=names), uplink="fp16", **KW)
