"""Golden Histories: the engine reproduces the recorded runs of tests/golden/.

On the machine that recorded them (``FEDLAB_GOLDEN_EXACT=1``) every number must match
exactly: metrics, ledger, rounds (timings aside) and events. On another CPU, float32
rounding differs, so the metrics are compared with a tolerance while everything that
does not depend on rounding (message sizes, sites, rounds, events) stays exact.
Re-record with ``python tests/golden/cases.py`` only in a commit that changes the
numbers on purpose and says why.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
import torch

from fedlab.history import TIMING_KEYS

GOLDEN = Path(__file__).parent / "golden"
_spec = importlib.util.spec_from_file_location("golden_cases", GOLDEN / "cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

EXACT = os.environ.get("FEDLAB_GOLDEN_EXACT", "0") == "1"
CASES = cases.cases()


@pytest.fixture(scope="module")
def sites():
    return cases.federation()


def _close(a, b, key: str) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return a == b
        if EXACT:
            return a == b or (math.isnan(a) and math.isnan(b))
        if key == "loss" or key.endswith("_s"):
            return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4)
        return abs(a - b) <= 0.06  # one or two test images of a small site
    return a == b


def _rows_match(got: list[dict], want: list[dict], what: str, drop=()) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} rows, recorded {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = {k: v for k, v in g.items() if k not in drop}
        w = {k: v for k, v in w.items() if k not in drop}
        assert g.keys() == w.keys(), f"{what} row {i}: keys {sorted(g)} != {sorted(w)}"
        bad = [k for k in g if not _close(g[k], w[k], k)]
        assert not bad, f"{what} row {i}: {[(k, g[k], w[k]) for k in bad]}"


def test_every_case_has_a_recording():
    recorded = {p.stem for p in GOLDEN.glob("*.json")}
    assert recorded == set(CASES), (f"missing: {sorted(set(CASES) - recorded)}, "
                                    f"stale: {sorted(recorded - set(CASES))}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, sites, tmp_path):
    torch.set_num_threads(1)
    want = json.loads((GOLDEN / f"{name}.json").read_text())
    got = json.loads(CASES[name](sites).save(tmp_path / "h.json").read_text())
    # the config may gain keys (a redesign records more), never change recorded ones
    changed = {k for k in want["config"] if got["config"].get(k) != want["config"][k]}
    assert not changed, f"config differs in {sorted(changed)}"
    _rows_match(got["metrics"], want["metrics"], "metrics")
    _rows_match(got["ledger"], want["ledger"], "ledger")
    _rows_match(got["rounds"], want["rounds"], "rounds", drop=TIMING_KEYS)
    assert got["events"] == want["events"]
