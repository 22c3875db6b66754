"""Communication cost: codecs, sizes, client sampling, the network model, the run loop."""

import math

import numpy as np
import pytest
import torch
from conftest import seeded
from safetensors.torch import load, save

import fedlab as fl
from fedlab.comm import (
    Cast,
    CodecContext,
    Delta,
    Identity,
    Int8,
    Link,
    TopK,
    get_codec,
    roundtrip,
    serialized_size,
)

FAST = dict(model="mlp", rounds=2, batch_size=32, optimizer="sgd", lr=0.05, progress=False)


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(40, 25, generator=g), "b": torch.randn(25, generator=g),
            "bn.num_batches_tracked": torch.tensor(7)}


# -- codecs ----------------------------------------------------------------------------
def test_fp16_and_bf16_roundtrip_within_their_precision():
    s = _state()
    for dtype, eps in (("fp16", 2.0 ** -11), ("bf16", 2.0 ** -8)):
        wire, out = roundtrip(Cast(dtype), s)
        assert wire["w"].element_size() == 2 and out["w"].dtype == torch.float32
        assert ((out["w"] - s["w"]).abs() <= eps * s["w"].abs()).all()  # relative rounding
        assert torch.equal(out["bn.num_batches_tracked"], s["bn.num_batches_tracked"])


@pytest.mark.parametrize("stochastic, bound", [(False, 0.5), (True, 1.0)])
def test_int8_error_is_within_half_a_step_or_one_step(stochastic, bound):
    s = _state()
    ctx = CodecContext(generator=torch.Generator().manual_seed(0))
    wire, out = roundtrip(Int8(stochastic=stochastic), s, ctx)
    step = s["w"].abs().max() / 127
    assert wire["w::q"].dtype == torch.int8 and wire["w::scale"].item() == pytest.approx(step)
    assert ((out["w"] - s["w"]).abs() <= bound * step + 1e-7).all()
    assert (out["w"] - s["w"]).abs().max() > 0  # lossy


def test_int8_hand_checked_values():
    wire, out = roundtrip(Int8(), {"x": torch.tensor([127.0, -63.4, 0.2])})
    assert wire["x::q"].tolist() == [127, -63, 0]
    assert out["x"].tolist() == [127.0, -63.0, 0.0]


def test_stochastic_rounding_is_unbiased():
    x = {"x": torch.cat([torch.full((20000,), 0.3), torch.tensor([127.0])])}  # step 1
    ctx = CodecContext(generator=torch.Generator().manual_seed(1))
    _, out = roundtrip(Int8(stochastic=True), x, ctx)
    assert set(out["x"][:-1].unique().tolist()) == {0.0, 1.0}
    assert out["x"][:-1].mean().item() == pytest.approx(0.3, abs=0.02)
    _, plain = roundtrip(Int8(), x)
    assert plain["x"][:-1].abs().max() == 0  # round to nearest: always 0, biased


def test_topk_keeps_exactly_k_largest_entries():
    x = torch.tensor([0.1, -5.0, 0.3, 4.0, -0.2, 0.0, 2.0, 1.0, -3.0, 0.05])
    wire, out = roundtrip(TopK(0.3, dense_below=0), {"x": x})
    assert wire["x::values"].numel() == 3 and wire["x::indices"].dtype == torch.int32
    assert torch.equal(out["x"], torch.tensor([0, -5.0, 0, 4.0, 0, 0, 0, 0, -3.0, 0]))
    big = torch.randn(1000)
    _, out = roundtrip(TopK(0.01, dense_below=0), {"x": big})
    assert int((out["x"] != 0).sum()) == 10 == TopK(0.01).k(1000)


def test_topk_sends_small_tensors_whole():
    net = fl.models.create_model("cnn")
    state = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    wire, out = roundtrip(TopK(0.01), state)
    for k, v in state.items():
        if v.numel() < 1024:  # biases, norm layers, the first convolution
            assert torch.equal(wire[k], v) and torch.equal(out[k], v)
        else:
            assert k not in wire and wire[k + "::values"].numel() == TopK(0.01).k(v.numel())
            assert int((out[k] != 0).sum()) == TopK(0.01).k(v.numel())
    every = roundtrip(TopK(0.01, dense_below=0), state)[0]
    assert all(k + "::values" in every for k in state)
    assert serialized_size(every) < serialized_size(wire) < 1.2 * serialized_size(every)
    with pytest.raises(ValueError, match="dense_below must be an int >= 0"):
        TopK(0.01, dense_below=-1)


def test_error_feedback_sent_plus_residual_equals_the_inputs():
    codec, ctx = TopK(0.05, error_feedback=True, dense_below=0), CodecContext()
    g = torch.Generator().manual_seed(3)
    inputs = [torch.randn(200, generator=g) for _ in range(6)]
    sent = torch.zeros(200)
    for x in inputs:
        ctx.like = {"x": (x.shape, x.dtype)}
        sent += codec.decode(codec.encode({"x": x}, ctx), ctx)["x"]
    residual = ctx.memory["x"]
    assert torch.allclose(sent + residual, torch.stack(inputs).sum(0), atol=1e-5)
    assert residual.abs().sum() > 0


def test_delta_sends_the_change_and_restores_the_weights():
    ref, new = _state(0), _state(1)
    ctx = CodecContext(ref=ref)
    wire, out = roundtrip(Delta(), new, ctx)
    assert torch.allclose(wire["w"], new["w"] - ref["w"])
    assert all(torch.allclose(out[k].float(), new[k].float(), atol=1e-6) for k in new)
    assert torch.equal(wire["bn.num_batches_tracked"], new["bn.num_batches_tracked"])


def test_codecs_compose_and_parse_by_name():
    chain = Delta() | TopK(0.1, error_feedback=True) | Cast("fp16")
    assert str(chain) == "delta|topk-ef:0.1|fp16" == str(get_codec("topk-ef:0.1|fp16"))
    assert str(get_codec("delta|topk:0.1")) == "delta|topk:0.1"  # one Delta stage
    assert isinstance(get_codec(None), Identity) and str(get_codec("int8-sr")) == "int8-sr"
    every = get_codec("topk-ef:0.01:0")
    assert every.stages[1] == TopK(0.01, error_feedback=True, dense_below=0)
    assert str(every) == "delta|topk-ef:0.01:0" and str(get_codec(str(every))) == str(every)
    s = _state()
    wire, out = roundtrip(get_codec("topk:1.0|int8"), s, CodecContext(ref=s))
    assert torch.equal(out["w"], s["w"])  # all of a zero change, int8 of zeros: exact
    for bad in ("gzip", "topk:2", "topk:x", "topk:0.1:x", "topk:0.1:-1"):
        with pytest.raises(ValueError, match="codec|fraction|dense_below"):
            get_codec(bad)


def test_serialized_size_is_the_length_of_real_safetensors_bytes():
    s = _state()
    wire = get_codec("topk-ef:0.1|fp16").encode(s, CodecContext(ref={}))
    blob = save({k: v.contiguous() for k, v in wire.items()})
    assert serialized_size(wire) == len(blob)
    assert set(load(blob)) == set(wire)
    assert serialized_size({}) == 0


# -- sizes -----------------------------------------------------------------------------
def test_model_size_counts_parameters_and_shrinks_with_codecs():
    net = fl.models.create_model("cnn")
    sizes = fl.comm.model_sizes([net], codecs=["identity", "fp16", "int8", "topk:0.01"])
    n = sum(p.numel() for p in net.parameters())
    assert (sizes["parameters"] == n).all()
    raw = sizes["raw_mb"].iloc[0]
    assert raw == pytest.approx(serialized_size(net.state_dict()) / 1e6)
    assert 4 * n / 1e6 < raw < 4 * n / 1e6 + 0.01
    assert sizes["ratio"].tolist()[:3] == pytest.approx([1, 2, 4], rel=0.05)
    assert sizes["ratio"].iloc[3] > 20


# -- client sampling -------------------------------------------------------------------
def test_sampling_is_seeded_sized_and_varies_by_round():
    a = [fl.comm.sample_sites(10, 3, seed=0, rnd=r) for r in range(1, 6)]
    assert a == [fl.comm.sample_sites(10, 3, seed=0, rnd=r) for r in range(1, 6)]
    assert all(len(s) == len(set(s)) == 3 and s == sorted(s) for s in a)
    assert len({tuple(s) for s in a}) > 1
    assert fl.comm.sample_sites(10, 0.5, seed=0, rnd=1).__len__() == 5
    assert fl.comm.sample_sites(4, None, seed=0, rnd=1) == [0, 1, 2, 3]
    for bad in (0, 11, 1.5, 0.0, "3"):
        with pytest.raises(ValueError, match="clients_per_round"):
            fl.comm.participants_per_round(10, bad)


def test_partial_participation_logs_and_averages_only_participants(federation):
    h = fl.run(federation, clients_per_round=2, **{**FAST, "rounds": 3})
    ledger = h.to_frame("ledger")
    for row in h.rounds:
        assert row["participants"] == 2 and len(row["sites"]) == 2
        assert set(ledger[ledger["round"] == row["round"]]["site"]) == set(row["sites"])
    # the server averages the participants' updates only, weighted by their examples
    seen = []

    class Spy(fl.strategies.FedAvg):
        def aggregate(self, global_state, updates, server_state):
            out, server_state = super().aggregate(global_state, updates, server_state)
            seen.append(([u.site for u in updates], updates, out))
            return out, server_state

    h = fl.run(federation, strategy=Spy(), clients_per_round=2, **{**FAST, "rounds": 3})
    assert [s for s, _, _ in seen] == [r["sites"] for r in h.rounds]
    names, updates, out = seen[-1]
    n = {s.name: s.n_examples for s in federation}
    w = [n[s] / (n[names[0]] + n[names[1]]) for s in names]
    k = next(iter(out))
    mean = w[0] * updates[0].payload[k] + w[1] * updates[1].payload[k]
    assert torch.allclose(out[k], mean, atol=1e-6)


def test_scaffold_scales_its_control_update_by_the_share_of_examples(federation):
    from fedlab.strategies import Scaffold, Update

    s = Scaffold(param_keys=("w",)).bind(torch.nn.Linear(1, 1), {"a": 30, "b": 70})
    server = {"control": {"w": torch.zeros(2)}}
    up = Update("a", {"w": torch.ones(2), "control/w": torch.full((2,), 2.0)}, 30)
    _, new = s.aggregate({"w": torch.zeros(2)}, [up], server)
    assert torch.allclose(new["control"]["w"], torch.full((2,), 0.6))  # 2 * 30 / 100
    h = fl.run(federation, strategy="scaffold", clients_per_round=2, **FAST)
    assert np.isfinite(h.final("loss"))


@pytest.mark.parametrize("strategy", ["fedbn", "ditto", "fedadam"])
def test_strategies_with_site_or_server_state_run_with_sampling(federation, strategy):
    h = fl.run(federation, strategy=strategy, clients_per_round=2, uplink="topk-ef:0.1",
               downlink="fp16", **{**FAST, "model": "cnn-bn"})
    assert np.isfinite(h.final("loss")) and set(h.sites) == set(federation.names)


# -- codecs in the run loop --------------------------------------------------------------
def test_ledger_bytes_are_serialised_encoded_sizes(federation):
    h = fl.run(federation, uplink="int8", downlink="fp16", **FAST)
    state = h.final_state
    ledger = h.to_frame("ledger")
    up, down = ledger[ledger.direction == "up"], ledger[ledger.direction == "down"]
    wire, _ = roundtrip(Int8(), state)
    assert (up["bytes"] == serialized_size(wire)).all()
    assert (up["raw_bytes"] == serialized_size(state)).all()
    assert (down["bytes"] == serialized_size(Cast("fp16").encode(state, CodecContext()))).all()
    assert h.config["uplink"] == "int8" and h.config["downlink"] == "fp16"


@pytest.mark.quality
def test_topk_with_error_feedback_cuts_uplink_and_still_learns(synthetic, margin):
    sites = fl.data.split(synthetic, n_sites=3, seed=seeded())
    # 8 rounds: after 4 the run is still climbing (0.66 to 0.99 across seed offsets)
    kw = dict(model="cnn", rounds=8, optimizer="adam", lr=1e-3, batch_size=16, progress=False,
              seed=seeded())
    full = fl.run(sites, **kw)
    ef = fl.run(sites, uplink="topk-ef:0.05", **kw)
    assert full.bytes("up") / ef.bytes("up") > 5
    margin.above("top-k 5% + EF accuracy", ef.final("accuracy"), 0.7)


def test_error_feedback_changes_the_run_from_its_second_round(federation):
    plain = fl.run(federation, uplink="topk:0.05", **{**FAST, "rounds": 1})
    ef = fl.run(federation, uplink="topk-ef:0.05", **{**FAST, "rounds": 1})
    assert all(torch.equal(v, ef.final_state[k]) for k, v in plain.final_state.items())
    plain2 = fl.run(federation, uplink="topk:0.05", **FAST)
    ef2 = fl.run(federation, uplink="topk-ef:0.05", **FAST)
    assert not all(torch.equal(v, ef2.final_state[k]) for k, v in plain2.final_state.items())


class _NaNOnce(fl.strategies.FedAvg):
    """site-2 sends a non-finite update in round 1 only."""

    def client_update(self, ctx):
        update = super().client_update(ctx)
        if ctx.site == "site-2" and ctx.round == 1:
            update.payload = {k: v * float("nan") if v.is_floating_point() else v
                              for k, v in update.payload.items()}
        return update


def test_a_non_finite_update_does_not_poison_the_error_feedback_residual(federation):
    h = fl.run(federation, strategy=_NaNOnce(), uplink="topk-ef:0.1", **{**FAST, "rounds": 3})
    assert h.to_frame("rounds")["excluded"].tolist() == [1, 0, 0]  # site-2 is back
    assert all(torch.isfinite(v).all() for v in h.final_state.values())


def test_scaffold_changes_are_not_delta_encoded_twice(federation):
    plain = fl.run(federation, strategy="scaffold", **FAST)
    delta = fl.run(federation, strategy="scaffold", uplink="delta", **FAST)
    for k, v in plain.final_state.items():
        assert torch.allclose(v, delta.final_state[k], atol=1e-6), k


def test_resume_with_error_feedback_reproduces_the_run(federation, tmp_path):
    kw = {**FAST, "rounds": 4, "uplink": "topk-ef:0.1", "downlink": "topk-ef:0.2",
          "clients_per_round": 2, "seed": 5}
    full = fl.run(federation, run_dir=tmp_path / "full", **kw)
    part = tmp_path / "part"
    fl.run(federation, run_dir=part, **{**kw, "rounds": 2})
    from safetensors.torch import load_file

    saved = load_file(str(part / "checkpoints" / "round_0002.safetensors"))
    residuals = [k for k in saved if k.startswith("codec/") and "/up/" in k]
    assert residuals and any(saved[k].abs().sum() > 0 for k in residuals)
    resumed = fl.run(federation, run_dir=part, resume=True, **kw)
    assert resumed.equals(full)
    for k, v in full.final_state.items():
        assert torch.equal(v, resumed.final_state[k])


# -- the network model -----------------------------------------------------------------
def test_message_time_by_hand():
    # 1 MB over 8 Mbit/s = 1 s, plus 50 ms latency
    assert fl.comm.message_seconds(1_000_000, 8.0, 50.0) == pytest.approx(1.05)


def test_round_time_of_a_known_profile_by_hand(federation):
    link = Link(up_mbps=2.0, down_mbps=10.0, latency_ms=100.0, samples_per_s=500.0)
    h = fl.run(federation, network={s.name: link for s in federation}, **FAST)
    ledger = h.to_frame("ledger")
    expected = []
    for r in h.rounds:
        times = []
        for s in federation:
            rows = ledger[(ledger["round"] == r["round"]) & (ledger.site == s.name)]
            down = int(rows[rows.direction == "down"]["bytes"].sum())
            up = int(rows[rows.direction == "up"]["bytes"].sum())
            times.append(0.1 + down * 8 / 10e6 + s.n_examples / 500 + 0.1 + up * 8 / 2e6)
        expected.append(max(times))
        assert r["sim_s"] == pytest.approx(max(times))
        assert r["straggler"] == federation[int(np.argmax(times))].name
    assert h.rounds[-1]["sim_total_s"] == pytest.approx(sum(expected))
    tl = fl.comm.timeline(h)
    assert tl.groupby("round")["round_s"].max().tolist() == pytest.approx(expected)
    slower = fl.comm.timeline(h, "rural-clinic")["round_s"].max()
    assert slower > tl["round_s"].max() / 10  # replayed on another network


def test_time_to_accuracy_and_network_errors(federation):
    h = fl.run(federation, network="mixed", **FAST)
    assert [fl.comm.get_network("mixed", federation.names)[s] for s in federation.names] == [
        fl.comm.PROFILES[p] for p in ("hospital-fibre", "hospital-vpn", "rural-clinic")]
    got = fl.comm.time_to_accuracy(h, 0.0)
    assert got["round"] == 0 and got["seconds"] == 0 and got["mb"] == 0
    never = fl.comm.time_to_accuracy(h, 1.1)
    assert math.isnan(never["seconds"])
    best = fl.comm.time_to_accuracy(h, h.series("accuracy")[1].max())
    rnd = best["round"]
    assert best["seconds"] == pytest.approx(sum(r["sim_s"] for r in h.rounds if r["round"] <= rnd))
    assert best["mb_up"] == pytest.approx(
        sum(r["bytes"] for r in h.ledger if r["direction"] == "up" and r["round"] <= rnd) / 1e6)
    with pytest.raises(ValueError, match="network must be"):
        fl.comm.get_network("dial-up", ["a"])
    with pytest.raises(ValueError, match="up_mbps"):
        Link(up_mbps=0, down_mbps=1)
    with pytest.raises(ValueError, match="network is needed"):
        fl.comm.timeline(fl.run(federation, **{**FAST, "rounds": 1}))


# -- figures ---------------------------------------------------------------------------
def test_figures_hold_the_ledger_numbers(federation):
    from fedlab.comm import plots

    runs = {"fp32": fl.run(federation, network="hospital-vpn", **FAST),
            "int8": fl.run(federation, uplink="int8", network="hospital-vpn", **FAST)}
    info = plots.accuracy_vs_mb_info(runs)
    last = info[info["round"] == 2].set_index("run")["mb"]
    assert last["fp32"] == pytest.approx(runs["fp32"].bytes("up") / 1e6)
    assert last["fp32"] / last["int8"] > 3.5
    fig = plots.accuracy_vs_mb(runs)
    assert [t.name for t in fig.data] == ["fp32", "int8"] and len(fig.data[0].x) == 2
    per = plots.bytes_per_round_info(runs["int8"])
    assert per["mb"].sum() == pytest.approx(runs["int8"].bytes() / 1e6)
    assert len(plots.bytes_per_round(runs["int8"]).data) == 2 * len(federation)
    t = plots.accuracy_vs_time_info(runs)
    assert t.groupby("run")["seconds"].max()["int8"] < t.groupby("run")["seconds"].max()["fp32"]
    assert len(plots.accuracy_vs_time(runs, target=0.5).data) == 2
    fig = plots.stragglers(runs["fp32"])
    assert len(fig.data) == 3 * len(federation)
    outlined = sum(sum(w > 0 for w in tr.marker.line.width) for tr in fig.data)
    assert outlined == 3 * 2  # one straggler per round, its 3 parts outlined
