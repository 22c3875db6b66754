"""fedlab deploy flower with real processes: a SuperLink and one SuperNode per site on
127.0.0.1 (TLS). The deployed weights equal fl.run's; Flower's payload sizes match the
ledger up to framing; a killed SuperNode drops out of the round; Ctrl-C leaves no process.

Slow (each ClientApp message is a new process that imports torch): about a minute per run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

pytest.importorskip("flwr", reason='Flower is the [deploy] extra: pip install '
                    '"fedlab-workbench[deploy]"')

from fedlab.deploy import deploy_flower  # noqa: E402
from fedlab.deploy.launch import leftovers  # noqa: E402
from fedlab.runspec import execute  # noqa: E402

pytestmark = pytest.mark.deploy


def _simulated(spec: dict):
    """fl.run of ``spec`` with one torch thread, as each SuperNode trains."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return execute(spec)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("strategy, param", [
    ("fedavg", []), ("fedprox", ["mu=0.1"]), ("scaffold", [])])
def test_deployed_weights_equal_the_simulation(tmp_path, strategy, param):
    # 3 sites x 3 rounds; scored before round 1 and after the last (each exchange with the
    # nodes costs seconds of process start-up)
    spec = {"dataset": "synthetic", "sites": 3, "rounds": 3, "strategy": strategy,
            "param": param, "optimizer": "sgd", "lr": 0.05, "eval_every": 3, "seed": 1}
    deployed = deploy_flower(spec, tmp_path, echo=None)  # TLS
    simulated = _simulated(spec)
    gap = max((deployed.final_state[k] - simulated.final_state[k]).abs().max().item()
              for k in simulated.final_state)
    assert gap < 1e-5, gap
    for split_row in [r for r in simulated.metrics if r["site"] != "global"]:
        twin = [r for r in deployed.metrics if (r["round"], r["site"], r["split"]) ==
                (split_row["round"], split_row["site"], split_row["split"])]
        assert twin and twin[0]["accuracy"] == pytest.approx(split_row["accuracy"], abs=1e-9)
    assert leftovers(tmp_path / "flwr-home") == []
    # the bytes: Flower's serialised train messages against the ledger's model messages
    import json

    traffic = json.loads((tmp_path / "traffic.json").read_text())["messages"]
    for row in simulated.ledger:
        sent = [m for m in traffic if m["kind"] == "train" and m["round"] == row["round"]
                and m["site"] == row["site"]]
        assert len(sent) == 1
        flower = sent[0]["down" if row["direction"] == "down" else "up"]
        assert row["bytes"] < flower < row["bytes"] * 1.01 + 4096, (row, flower)
    assert (tmp_path / "summary.json").exists() and (tmp_path / "model.safetensors").exists()


def test_a_killed_supernode_drops_out_and_the_run_goes_on(tmp_path):
    spec = {"dataset": "synthetic", "sites": 3, "rounds": 2, "eval_every": 2, "seed": 0}
    history = deploy_flower(spec, tmp_path, insecure=True, straggler_s=20, drop={"site-3": 2},
                            echo=None)
    events = [(e["round"], e["site"], e["event"]) for e in history.events]
    assert events == [(2, "site-3", "dropped out: no reply this round")]
    assert [r["participants"] for r in history.rounds] == [3, 2]
    assert history.last_round == 2 and np.isfinite(history.final("accuracy"))
    scored = {r["site"] for r in history.metrics if r["round"] == 2}
    assert scored == {"site-1", "site-2", "global"}  # the lost site is not scored
    assert leftovers(tmp_path / "flwr-home") == []


def test_ctrl_c_stops_every_process(tmp_path):
    cmd = [sys.executable, "-m", "fedlab", "deploy", "flower", "--dataset", "synthetic",
           "--sites", "2", "--rounds", "40", "--insecure", "--out", str(tmp_path)]
    # interrupted as soon as the nodes are connected and the rounds begin
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    seen = []
    end = time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        if "sites connected" in line or time.monotonic() > end:
            break
    assert any("sites connected" in line for line in seen), "".join(seen[-20:])
    assert leftovers(tmp_path / "flwr-home")  # the federation is running
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, rest[-2000:]
    assert "interrupted" in rest
    assert leftovers(tmp_path / "flwr-home") == []
    assert not (tmp_path / "history.json").exists()
