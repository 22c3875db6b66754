"""Nothing lost: a killed run resumes to the same History, damaged files are found and
named, a run directory is never reused for another run, and runs that diverge fail."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

import fedlab as fl
from fedlab.cli import main

CLI = [sys.executable, "-m", "fedlab", "run", "--dataset", "synthetic", "--sites", "3",
       "--model", "mlp", "--local-steps", "2", "--batch-size", "16", "--optimizer", "sgd",
       "--lr", "0.05", "--quiet"]
KW = dict(model="mlp", local_steps=2, batch_size=16, optimizer="sgd", lr=0.05,
          progress=False, seed=0)


def _ckpts(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("round_*.safetensors"))


def test_a_killed_run_resumes_to_the_history_of_an_uninterrupted_one(tmp_path):
    rounds = "24"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run([*CLI, "--rounds", rounds, "--out", str(whole)], check=True,
                   capture_output=True)
    proc = subprocess.Popen([*CLI, "--rounds", rounds, "--out", str(cut)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_ckpts(cut)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # no clean-up of any kind: somewhere in a round
    proc.wait()
    done = len(_ckpts(cut))
    assert 3 <= done < int(rounds), f"the kill came too late to test anything ({done})"
    subprocess.run([*CLI, "--rounds", rounds, "--out", str(cut), "--resume"], check=True,
                   capture_output=True)
    a, b = fl.History.load(whole / "history.json"), fl.History.load(cut / "history.json")
    assert b.last_round == int(rounds) and b.equals(a)
    assert not list((cut / "checkpoints").glob("*.tmp"))


def test_ctrl_c_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    # far more rounds than it can finish before the signal, even on a loaded machine; the
    # child gets the default SIGINT handling even when this test runs in a background job
    # (which starts with SIGINT ignored, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen([*CLI, "--rounds", "5000", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while len(_ckpts(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()  # never leave the run behind if the signal did not stop it
    assert proc.returncode == 130, err
    assert "interrupted" in err and f"--resume --out {out}" in err and "Traceback" not in err


@pytest.fixture
def stopped(federation, tmp_path):
    """A 3-round run directory and the History of the same run done in one go."""
    full = fl.run(federation, rounds=4, **KW)
    fl.run(federation, rounds=3, run_dir=tmp_path, **KW)
    return tmp_path, full


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_checkpoint_is_reported_and_the_one_before_it_used(federation, stopped,
                                                                    damage):
    run_dir, full = stopped
    newest = _ckpts(run_dir)[-1]
    data = bytearray(newest.read_bytes())
    if damage == "truncate":  # as if the write had been cut off
        newest.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one flipped byte in the tensors (the end of the file)
        data[-3] ^= 0xFF
        newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=newest.name):
        resumed = fl.run(federation, rounds=4, run_dir=run_dir, resume=True, **KW)
    notes = [e for e in resumed.events if "damaged checkpoint" in e["event"]]
    assert len(notes) == 1 and newest.name in notes[0]["event"] and notes[0]["round"] == 2
    resumed.events.remove(notes[0])
    assert resumed.equals(full)  # from round 2's checkpoint to the same result


def test_resume_refuses_what_would_lose_or_mix_runs(federation, stopped):
    run_dir, _ = stopped
    with pytest.raises(ValueError, match="has run 3 rounds already, more than rounds=2"):
        fl.run(federation, rounds=2, run_dir=run_dir, resume=True, **KW)
    assert json.loads((run_dir / "config.json").read_text())["rounds"] == 3  # untouched
    other = [fl.attacks.flip_labels(s) for s in federation]
    assert [s.name for s in other] == [s.name for s in federation]
    with pytest.raises(ValueError, match="data: the sites hold other images or labels"):
        fl.run(other, rounds=4, run_dir=run_dir, resume=True, **KW)
    with pytest.raises(FileExistsError, match="already holds a run"):
        fl.run(federation, rounds=4, run_dir=run_dir, topology="ring", **KW)
    history = run_dir / "history.json"
    text = history.read_text()
    history.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"history\.json is not valid JSON"):
        fl.run(federation, rounds=4, run_dir=run_dir, resume=True, **KW)
    history.unlink()
    with pytest.raises(FileNotFoundError, match="holds checkpoints but no history.json"):
        fl.run(federation, rounds=4, run_dir=run_dir, resume=True, **KW)
    assert len(_ckpts(run_dir)) == 3  # nothing was overwritten


def test_history_files_carry_a_schema_and_round_trip(federation, tmp_path):
    h = fl.run(federation, rounds=2, clients_per_round=2, network="mixed", **KW)
    h.rounds[-1]["odd"] = float("inf")
    path = h.save(tmp_path / "h.json")
    data = json.loads(path.read_text())
    assert data["schema"] == fl.history.SCHEMA
    back = fl.History.load(path)
    assert back.equals(h) and back.rounds[-1]["odd"] == float("inf")
    assert all(back.to_frame(t).shape == h.to_frame(t).shape
               for t in ("metrics", "ledger", "rounds", "events"))
    path.write_text(json.dumps({**data, "schema": 99}))
    with pytest.raises(ValueError, match="schema 99; this fedlab reads schema 1"):
        fl.History.load(path)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a fedlab History"):
        fl.History.load(path)


def test_runs_that_diverge_fail_instead_of_reporting_an_untrained_model(federation):
    with pytest.raises(FloatingPointError, match="every site's update was non-finite"):
        fl.run(federation, rounds=2, **{**KW, "lr": float("inf")})
    with pytest.raises(FloatingPointError, match="global model is non-finite"):
        fl.run(federation, rounds=2, strategy=fl.strategies.FedAdam(server_lr=float("inf")),
               **KW)


def test_the_cli_answers_user_errors_in_one_line(tmp_path, capsys):
    base = ["run", "--dataset", "synthetic", "--sites", "3", "--model", "mlp", "--rounds",
            "1", "--quiet"]
    cases = [
        (["--strategy", "fedprox", "--param", "mu=abc"], 2, "mu must be a float"),
        (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"],
         2, "device"),
        (["--lr", "inf"], 3, "every site's update was non-finite"),
    ]
    for i, (extra, code, text) in enumerate(cases):
        assert main([*base, *extra, "--out", str(tmp_path / f"r{i}")]) == code
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err and err.count("\n") == 1, err
    assert main([*base, "--out", "/dev/null/x"]) == 2
    assert "cannot be created" in capsys.readouterr().err


def test_model_files_are_never_unpickled():
    pattern = re.compile(r"\b(pickle\.loads?|torch\.load)\(|weights_only\s*=\s*False")
    hits = []
    for path in (REPO / "fedlab").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "weights_only=True" not in line:
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert hits == [], "loads that can run pickled code:\n" + "\n".join(hits)

