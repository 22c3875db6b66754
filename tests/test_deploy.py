"""fedlab.deploy without processes: records, site files, certificates, refusals, and the
monai.fl ClientAlgo driven through its contract against fedlab's server half."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fedlab as fl
from fedlab.deploy import RemoteSite, export_site, load_site, make_certificates, site_info
from fedlab.runspec import prepare, resolve_options
from fedlab.strategies.base import Update

flwr = pytest.importorskip("flwr", reason='Flower is the [deploy] extra: pip install '
                           '"fedlab-workbench[deploy]"')


def test_records_round_trip_nested_states_and_updates():
    from fedlab.deploy.records import (
        payload_bytes,
        record_state,
        record_update,
        state_record,
        update_record,
    )

    state = {"w": torch.randn(3, 2), "control": {"w": torch.ones(2), "b": torch.zeros(1)}}
    back = record_state(state_record(state))
    assert torch.equal(back["w"], state["w"]) and torch.equal(back["control"]["w"], torch.ones(2))
    u = record_update(update_record(Update("site-1", state, 7, {"train_loss": 0.25})))
    assert (u.site, u.n_examples, u.metrics) == ("site-1", 7, {"train_loss": 0.25})
    assert torch.equal(u.payload["control"]["b"], torch.zeros(1))
    # the wire size is the tensors' bytes plus a small framing
    raw = 4 * (6 + 2 + 1)
    assert raw < payload_bytes(update_record(Update("s", state, 1))) < raw + 1024
    slash = record_state(state_record({"control/w": torch.ones(1)}))  # SCAFFOLD's keys
    assert list(slash) == ["control/w"]
    with pytest.raises(ValueError, match="holds"):
        state_record({"a\x1fb": torch.ones(1)})
    with pytest.raises(TypeError, match="tensors"):
        state_record({"a": 1.0})


def test_site_file_round_trip_and_remote_view(tmp_path):
    site = fl.data.split(fl.data.make_synthetic(seed=0), n_sites=2, seed=0)[0]
    back = load_site(export_site(site, tmp_path / "s.npz"))
    assert back.name == site.name and back.classes == site.classes
    assert back.fingerprint() == site.fingerprint()
    remote = RemoteSite(site_info(site))
    assert remote.n_examples == site.n_examples and remote.size("test") == site.size("test")
    assert remote.fingerprint() == site.fingerprint()
    assert np.array_equal(remote.label_counts(), site.label_counts())
    spec = fl.models.ModelSpec.for_sites("cnn", [remote])
    assert spec == fl.models.ModelSpec.for_sites("cnn", [site])
    with pytest.raises(RuntimeError, match="stay at its node"):
        remote.tensors("train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_site(tmp_path / "nowhere.npz")


def test_certificates_chain_to_their_ca(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    paths = make_certificates(tmp_path)
    ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
    cert = x509.load_pem_x509_certificate(paths["cert"].read_bytes())
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                           ec.ECDSA(cert.signature_hash_algorithm))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct(paths["key"].stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("spec, match", [
    ({"topology": "gossip"}, "topology 'gossip'"),
    ({"strategy": "centralized"}, "centralised baseline"),
    ({"strategy": "ditto"}, "model of its own"),
    ({"uplink": "topk:0.1"}, "codecs"),
    ({"network": "mixed"}, "simulated network"),
])
def test_deploy_refuses_what_it_cannot_run_as_simulated(spec, match):
    from fedlab.deploy.flower_app import deployable
    from fedlab.options import strategy_from

    args = resolve_options({"dataset": "synthetic", **spec})
    with pytest.raises(ValueError, match=match):
        deployable(args, strategy_from(args.strategy, args.param, args.combine))


def test_deploy_names_unknown_drop_sites(tmp_path):
    from fedlab.deploy import deploy_flower

    with pytest.raises(ValueError, match=r"drop names unknown sites \['site-9'\]"):
        deploy_flower({"dataset": "synthetic", "sites": 2}, tmp_path, drop={"site-9": 1})


@pytest.mark.parametrize("strategy, param", [("fedavg", []), ("scaffold", [])])
def test_monai_client_algo_runs_the_client_half_of_a_run(strategy, param):
    """Two rounds driven through ClientAlgo (initialize/train/get_weights/evaluate) and
    fedlab's server half give fl.run's weights."""
    from monai.fl.utils.exchange_object import ExchangeObject

    from fedlab.deploy.monai import MonaiClient, update_of

    spec = {"dataset": "synthetic", "sites": 3, "rounds": 2, "strategy": strategy,
            "param": param, "seed": 3}
    run = prepare(spec)
    expected = run.run()
    sites, train = list(run.sites), fl.engine.config.resolve(
        None, None, None, fl.options.config_keywords(run.options))[0]
    examples = {s.name: s.n_examples for s in sites}
    clients = [MonaiClient(s, run.strategy, "cnn", examples, train, index=i, seed=3)
               for i, s in enumerate(sites)]
    for c in clients:
        c.initialize({})
    server = clients[0].bound  # bound as the server binds it
    global_state = server.init_global_state(fl.state.clone(clients[0].net.state_dict()))
    server_state = server.init_server_state(global_state)
    for _ in range(2):
        down = server.message_down(global_state, server_state)
        updates = []
        for c in clients:
            c.train(ExchangeObject(weights=down), {})
            updates.append(update_of(c.site.name, c.get_weights()))
        global_state, server_state, _ = server.server_step(global_state, updates, server_state)
    gap = max((global_state[k] - expected.final_state[k]).abs().max().item()
              for k in expected.final_state)
    assert gap < 1e-6
    metrics = clients[0].evaluate(ExchangeObject(weights=global_state), {}).metrics
    site_row = [r for r in expected.metrics if r["round"] == 2 and r["site"] == "site-1"
                and r["split"] == "test"][0]
    assert metrics["accuracy"] == pytest.approx(site_row["accuracy"])


def test_monai_client_refuses_out_of_order_calls():
    from fedlab.deploy.monai import MonaiClient

    site = fl.data.split(fl.data.make_synthetic(seed=0), n_sites=2, seed=0)[0]
    client = MonaiClient(site, fl.strategies.get("fedavg"), "cnn", {site.name: 1})
    with pytest.raises(RuntimeError, match="initialize"):
        client.get_weights()
    with pytest.raises(ValueError, match="examples must include"):
        MonaiClient(site, fl.strategies.get("fedavg"), "cnn", {})
