"""Partial sharing (FedPer, LG-FedAvg, FedRep, FedBABU): which layers travel, proved by
the ledger, and what each keeps at the site."""

import pytest
import torch
from conftest import seeded

import fedlab as fl
from fedlab.comm.base import serialized_size
from fedlab.models import create_model
from fedlab.strategies import FedBABU, FedPer, FedRep, LGFedAvg, get, head_keys, shared_keys
from fedlab.strategies.fedrep import frozen
from fedlab.training import TrainConfig, train_epochs

FAST = dict(model="cnn", rounds=2, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.0,
            progress=False)


def test_head_is_the_last_layer_with_parameters_of_any_model():
    assert head_keys(create_model("cnn")) == ("head.4.weight", "head.4.bias")
    assert head_keys(create_model("mlp")) == ("net.3.weight", "net.3.bias")
    assert head_keys(create_model("resnet-tiny")) == ("fc.weight", "fc.bias")
    assert head_keys(create_model("cnn-bn")) == ("head.4.weight", "head.4.bias")


def test_shared_keys_by_name_prefix_or_predicate_and_bad_values():
    cnn = create_model("cnn")
    body = shared_keys(cnn, "body")
    assert set(body) | set(shared_keys(cnn, "head")) == set(cnn.state_dict())
    assert not set(body) & set(head_keys(cnn))
    assert shared_keys(cnn, ("features.",)) == tuple(k for k in cnn.state_dict()
                                                     if k.startswith("features."))
    assert shared_keys(cnn, lambda k: k.endswith(".bias")) == tuple(
        k for k in cnn.state_dict() if k.endswith(".bias"))
    for bad, match in [("torso", "shared must be"), (("nothing.",), "selects 0"),
                       (lambda k: True, "some shared and some kept")]:
        with pytest.raises(ValueError, match=match):
            shared_keys(cnn, bad)


@pytest.mark.parametrize("strategy", [FedPer(), LGFedAvg(), FedRep(), FedBABU(),
                                      FedPer(shared=("features.",))])
def test_kept_layers_never_travel_the_ledger_proves_it(federation, strategy):
    h = fl.run(federation, strategy=strategy, seed=seeded(), **FAST)
    net = create_model("cnn")
    keys = shared_keys(net, strategy.shared)
    shared = serialized_size({k: v for k, v in net.state_dict().items() if k in keys})
    assert {m["bytes"] for m in h.ledger} == {shared}  # every message, up and down
    assert shared < serialized_size(net.state_dict())
    # the server never saw the kept layers: the global model holds the initial ones
    initial = fl.run(federation, strategy=strategy, seed=seeded(), **{**FAST, "rounds": 0})
    for k in set(net.state_dict()) - set(keys):
        assert torch.equal(h.final_state[k], initial.final_state[k])
    # every site is scored with the shared layers and its own kept ones
    own = h.site_states
    for k in keys:
        if not isinstance(strategy, FedBABU):  # FedBABU scores its fine-tuned model
            assert all(torch.equal(s[k], h.final_state[k]) for s in own.values())
    kept = sorted(set(net.state_dict()) - set(keys))
    assert not torch.equal(own["site-1"][kept[0]], own["site-2"][kept[0]])


def test_lgfedavg_messages_are_a_fraction_of_fedavg(federation):
    lg = fl.run(federation, strategy="lgfedavg", seed=seeded(), **FAST)
    fedavg = fl.run(federation, strategy="fedavg", seed=seeded(), **FAST)
    assert lg.bytes() < 0.01 * fedavg.bytes()


def test_frozen_parameters_do_not_train_and_are_released_after():
    net = create_model("mlp")
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 2, (32,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    head = head_keys(net)
    with frozen(net, head):
        train_epochs(net, x, y, TrainConfig(optimizer="sgd", lr=0.5, batch_size=8,
                                            weight_decay=0.1), torch.Generator().manual_seed(0))
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in head)
    assert not torch.equal(after["net.1.weight"], before["net.1.weight"])
    assert all(p.requires_grad for p in net.parameters())


def test_fedbabu_keeps_the_head_at_its_initial_weights_and_finetunes_per_site(federation):
    h = fl.run(federation, strategy=FedBABU(), seed=seeded(), **FAST)
    start = fl.run(federation, strategy=FedBABU(), seed=seeded(), **{**FAST, "rounds": 0})
    for k in ("head.4.weight", "head.4.bias"):
        assert torch.equal(h.final_state[k], start.final_state[k])
        # the fine-tuned models every site is scored with did train the head
        assert all(not torch.equal(s[k], start.final_state[k]) for s in h.site_states.values())


def test_fedrep_differs_from_fedper_by_its_phases(federation):
    fedper = fl.run(federation, strategy=FedPer(), seed=seeded(), **FAST)
    fedrep = fl.run(federation, strategy=FedRep(head_epochs=2), seed=seeded(), **FAST)
    assert fedrep.bytes() == fedper.bytes()
    assert not torch.equal(fedrep.final_state["features.0.weight"],
                           fedper.final_state["features.0.weight"])
    with pytest.raises(ValueError, match="head_epochs"):
        FedRep(head_epochs=0)
    with pytest.raises(ValueError, match="finetune_epochs"):
        FedBABU(finetune_epochs=0)


def test_partial_sharing_by_name_and_cli_names():
    for name in ("fedper", "fedrep", "lgfedavg", "fedbabu", "lg-fedavg"):
        assert get(name).name == name.replace("-", "")
