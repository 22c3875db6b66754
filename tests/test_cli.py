import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

import fedlab as fl
from fedlab.cli import main

ARGS = ["run", "--dataset", "synthetic", "--sites", "3", "--partition", "dirichlet",
        "--alpha", "1.0", "--rounds", "2", "--model", "mlp", "--seed", "0", "--quiet"]


def test_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "auc", "loss", "rounds", "bytes_up", "bytes_down", "wall_s"):
        assert key in summary
    assert summary["rounds"] == 2 and summary["bytes_up"] > 0
    history = fl.History.load(out / "history.json")
    assert history.summary()["accuracy"] == summary["accuracy"]
    weights = load_file(str(out / "model.safetensors"))
    model = fl.models.create_model("mlp")
    model.load_state_dict(weights)  # the saved weights are a complete model


@pytest.mark.parametrize("extra", [["--strategy", "centralized"], ["--strategy", "local"],
                                   ["--partition", "iid"]])
def test_run_variants(tmp_path, extra):
    assert main([*ARGS, *extra, "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["strategy"] == (extra[1] if extra[0] == "--strategy" else "fedavg")


def test_resume_flag(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main([*ARGS, "--out", out]) == 0
    assert main([*ARGS, "--out", out]) == 2  # refuses to overwrite
    assert "resume" in capsys.readouterr().err
    assert main([*ARGS[:-3], "--rounds", "3", "--quiet", "--out", out, "--resume"]) == 0
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["rounds"] == 3


def test_bad_alpha_is_a_clear_error(tmp_path, capsys):
    bad = [a if a != "1.0" else "0" for a in ARGS]
    assert main([*bad, "--out", str(tmp_path / "r")]) == 2
    assert "alpha must be" in capsys.readouterr().err


def test_help_lists_choices():
    res = subprocess.run([sys.executable, "-m", "fedlab", "run", "--help"],
                         capture_output=True, text=True, check=True)
    for word in ("fedavg", "centralized", "local", "dirichlet", "iid", "pneumoniamnist"):
        assert word in res.stdout


def test_data_list(capsys, tmp_path):
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    assert "pneumoniamnist" in capsys.readouterr().out


@pytest.mark.parametrize("strategy", fl.strategies.names())
def test_every_strategy_selectable(tmp_path, strategy):
    args = [a if a != "mlp" else "cnn-bn" for a in ARGS]  # fedbn needs norm layers
    args[args.index("--rounds") + 1] = "1"
    if getattr(fl.strategies.get(strategy), "asynchronous", False):  # they need a clock
        args += ["--network", "mixed"]
    assert main([*args, "--strategy", strategy, "--out", str(tmp_path / "r")]) == 0
    label = strategy if strategy in fl.strategies.STRATEGIES else f"fedavg+{strategy}"
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["strategy"] == label


def test_combine_puts_a_rule_in_any_strategy(tmp_path):
    assert main([*ARGS, "--strategy", "fedprox", "--param", "mu=0.1", "--combine", "krum",
                 "--out", str(tmp_path / "r")]) == 0
    history = fl.History.load(tmp_path / "r" / "history.json")
    assert history.config["strategy"] == "fedprox+krum"
    assert history.config["strategy_params"]["mu"] == 0.1
    assert all(sum(v for k, v in r.items() if k.startswith("krum_selected/")) == 1
               for r in history.rounds)


@pytest.mark.parametrize("extra", [["--partition", "pathological", "--classes-per-site", "1"],
                                   ["--partition", "shards"], ["--partition", "quantity"],
                                   ["--quantity-skew", "1.5"], ["--shift", "0.5"]])
def test_every_partitioner_selectable(tmp_path, extra):
    assert main([*ARGS, *extra, "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    name = {"pathological": "Pathological", "shards": "Shards", "quantity": "QuantitySkew",
            "--quantity-skew": "QuantitySkew", "--shift": "AcquisitionShift"}
    assert name[extra[1] if extra[0] == "--partition" else extra[0]] in summary["partition"]


def test_strategy_params(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*ARGS, "--strategy", "fedprox", "--param", "mu=0.5", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["strategy_params"]["mu"] == 0.5
    assert main([*ARGS, "--strategy", "fedprox", "--param", "nu=1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "KEY one of ['mu']" in capsys.readouterr().err


def test_run_with_codecs_sampling_and_network(tmp_path, capsys):
    out = tmp_path / "comm"
    assert main([*ARGS, "--uplink", "topk-ef:0.1|fp16", "--downlink", "int8",
                 "--clients-per-round", "2", "--network", "rural-clinic",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    history = fl.History.load(out / "history.json")
    assert history.config["uplink"] == "delta|topk-ef:0.1|fp16"
    assert all(r["participants"] == 2 for r in history.rounds)
    assert summary["sim_s"] == pytest.approx(history.rounds[-1]["sim_total_s"], abs=1e-3)
    assert summary["sim_s"] > 0
    ledger = history.to_frame("ledger")
    assert (ledger["bytes"] < ledger["raw_bytes"]).all()
    with pytest.raises(SystemExit) as stop:  # argparse refuses it before anything runs
        main([*ARGS, "--clients-per-round", "two", "--out", str(tmp_path / "bad")])
    assert stop.value.code == 2
    assert "argument --clients-per-round: a count (3) or a fraction" in capsys.readouterr().err
    assert main([*ARGS, "--uplink", "zip", "--out", str(tmp_path / "bad2")]) == 2
    assert "codec must be one of" in capsys.readouterr().err


def test_every_train_config_field_is_an_option():
    import dataclasses

    from fedlab.cli import build_parser
    from fedlab.training import TrainConfig

    text = build_parser().parse_args(["run", "--out", "x"])
    for f in dataclasses.fields(TrainConfig):
        name = {"epochs": "local_epochs", "steps": "local_steps"}.get(f.name, f.name)
        assert getattr(text, name) == f.default, name
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for flag in ("--local-steps", "--momentum", "--weight-decay", "--executor",
                 "--eval-splits"):
        assert flag in help_text


def test_cli_local_steps_momentum_and_executor_reach_the_run(tmp_path):
    import json

    from fedlab.cli import main

    out = tmp_path / "r"
    assert main(["run", "--dataset", "synthetic", "--sites", "2", "--rounds", "1",
                 "--model", "mlp", "--local-steps", "2", "--optimizer", "sgd",
                 "--momentum", "0.5", "--weight-decay", "0.001", "--executor", "sequential",
                 "--eval-splits", "test,val", "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["steps"] == 2 and cfg["train"]["momentum"] == 0.5
    assert cfg["train"]["weight_decay"] == 0.001 and cfg["eval_splits"] == ["test", "val"]
