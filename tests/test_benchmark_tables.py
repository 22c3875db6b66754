"""The communication benchmark's table: paired differences and the target verdict."""

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "comm_tradeoff", Path(__file__).parents[1] / "benchmarks" / "comm_tradeoff.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def _rows(accs, up):
    return [{"recipe": "sgd", "codec": c, "seed": s, "accuracy": a, "auc": 0.9,
             "up_mb": up[c], "seconds": 1.0}
            for c, per_seed in accs.items() for s, a in enumerate(per_seed)]


def test_gap_is_the_mean_of_differences_paired_by_seed():
    up = {"identity": 60.0, "topk-ef:0.01": 1.5}
    rows = _rows({"identity": [0.80, 0.90], "topk-ef:0.01": [0.79, 0.86]}, up)
    lines = bench.table(rows, "sgd", ["identity", "topk-ef:0.01"], [0, 1])
    row = next(line for line in lines if "topk-ef:0.01" in line and line.startswith("|"))
    assert "| -2.5; -4.0 |" in row and "| 40.0x |" in row  # (-1 - 4) / 2; worst -4
    assert "NOT met (-2.5 points against identity, 40x less uplink" in lines[-1]


def test_target_met_within_two_points_and_twenty_times():
    up = {"identity": 60.0, "topk-ef:0.01": 1.5}
    rows = _rows({"identity": [0.80, 0.90], "topk-ef:0.01": [0.80, 0.88]}, up)
    assert ": met (-1.0 points" in bench.table(rows, "sgd", list(up), [0, 1])[-1]
    rows = _rows({"identity": [0.80, 0.90], "topk-ef:0.01": [0.80, 0.90]},
                 {"identity": 60.0, "topk-ef:0.01": 4.0})  # 15x only
    assert "NOT met (+0.0 points" in bench.table(rows, "sgd", list(up), [0, 1])[-1]
