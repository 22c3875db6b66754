"""fedlab.claims: the checks behind a lesson's sentences about its own results."""

import json

import pytest

import fedlab as fl
from fedlab.claims import ClaimError, check


def test_check_asserts_with_a_margin_and_logs(tmp_path, monkeypatch, capsys):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("FEDLAB_CLAIMS_LOG", str(log))
    monkeypatch.setenv("FEDLAB_LESSON", "02_strategies")
    ok = check("FedBN beats FedAvg under shift", 0.10, above=0.02)
    assert ok.checked and ok.margin == pytest.approx(0.08)
    assert "claim holds: FedBN beats FedAvg under shift" in capsys.readouterr().out
    low = check("the attack fails", 0.1, below=0.3)
    assert low.margin == pytest.approx(0.2)
    with pytest.raises(ClaimError, match="is not > 0.02"):
        check("FedBN beats FedAvg", 0.01, above=0.02)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["lesson"] for r in rows] == ["02_strategies"] * 3
    assert rows[2]["margin"] == pytest.approx(-0.01)


def test_smoke_mode_checks_nothing(capsys):
    skipped = check("DP costs accuracy", -5.0, above=0.0, smoke=True)
    assert not skipped.checked and skipped.value is None
    assert "not checked (smoke mode)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="exactly one of above= or below="):
        check("both", 1.0, above=0.0, below=2.0)
    assert fl.claims.check is check


def test_tutorials_check_refuses_smoke():
    from fedlab.cli import main

    assert main(["tutorials", "--check", "--smoke"]) == 2
