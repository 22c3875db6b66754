"""fl.sweep: grids × seeds of tiny synthetic runs, cached, resumable, parallel, with CIs."""

import json
import math

import pandas as pd
import pytest

import fedlab as fl
import fedlab.sweep_runs as sweep_runs
from fedlab.cli import main
from fedlab.sweeps import expand

BASE = dict(dataset="synthetic", sites=3, rounds=1, model="mlp", batch_size=64)
GRID = {"strategy": ["fedavg", "fedprox"],
        "partition": {"iid": {"partition": "iid"},
                      "dir1": {"partition": "dirichlet", "alpha": 1.0}}}
METRICS = ["accuracy", "auc", "site_mean", "site_worst"]

pytestmark = pytest.mark.filterwarnings("ignore::fedlab.history.CollapsedModelWarning")


def _run(**kw) -> pd.DataFrame:
    return fl.sweep(GRID, **{"seeds": (0, 1), "base": BASE, "progress": False, **kw})


def _no_runs(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(sweep_runs, "execute", fail)


def test_grid_expands_to_the_product_with_seeds_innermost():
    runs = expand(GRID, seeds=(0, 1, 2), base=BASE)
    assert len(runs) == 2 * 2 * 3
    labels = [r[0] for r in runs]
    assert labels[:4] == [{"strategy": "fedavg", "partition": "iid", "seed": s}
                          for s in (0, 1, 2)] + [{"strategy": "fedavg", "partition": "dir1",
                                                  "seed": 0}]
    desc = runs[3][1]
    assert desc["partition"] == "dirichlet" and desc["alpha"] == 1.0 and desc["sites"] == 3
    assert desc["lr"] == fl.Train().lr  # a default of `fedlab run`, filled in
    assert len({sweep_runs.run_id(d) for _, d in runs}) == 12


def test_frame_has_one_row_per_run_and_a_second_call_runs_nothing(tmp_path, monkeypatch):
    first = _run(out=tmp_path)
    assert list(first.columns) == ["strategy", "partition", "seed", *METRICS, "wall_s", "cached"]
    assert len(first) == 8 and not first["cached"].any()
    assert first["accuracy"].between(0, 1).all()
    assert len(list((tmp_path / "runs").glob("*.json"))) == 8
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert {"description", "metrics", "summary", "per_site", "wall_s"} <= set(record)
    _no_runs(monkeypatch)
    again = _run(out=tmp_path)
    assert again["cached"].all()
    pd.testing.assert_frame_equal(again.drop(columns="cached"), first.drop(columns="cached"))


def test_a_crash_keeps_the_finished_runs_and_the_sweep_resumes(tmp_path, monkeypatch):
    calls, real = [], sweep_runs.execute

    def crash_on_third(description, **kw):
        calls.append(description)
        if len(calls) == 3:
            raise RuntimeError("the machine went away")
        return real(description, **kw)

    monkeypatch.setattr(sweep_runs, "execute", crash_on_third)
    with pytest.raises(RuntimeError, match="went away") as info:
        _run(out=tmp_path)
    assert "run the sweep again to resume" in "".join(info.value.__notes__)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2
    monkeypatch.setattr(sweep_runs, "execute", real)
    resumed = _run(out=tmp_path)
    assert list(resumed["cached"]) == [True, True] + [False] * 6
    pd.testing.assert_frame_equal(resumed[METRICS], _run()[METRICS])


def test_two_workers_give_the_numbers_of_one(tmp_path):
    one = _run()
    two = _run(workers=2, out=tmp_path)
    assert not two["cached"].any()
    pd.testing.assert_frame_equal(two[["strategy", "partition", "seed", *METRICS]],
                                  one[["strategy", "partition", "seed", *METRICS]])


def test_ci_half_width_is_the_t_quantile_times_the_standard_error():
    frame = pd.DataFrame({"strategy": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0],
                          "accuracy": [0.5, 0.6, 0.7, 0.8]})
    table = fl.sweep_summary(frame)
    a, b = table.iloc[0], table.iloc[1]
    t_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom
    assert a["n"] == 3 and a["mean"] == pytest.approx(0.6) and a["std"] == pytest.approx(0.1)
    assert a["half_width"] == pytest.approx(t_2 * 0.1 / math.sqrt(3))
    assert a["low"] == pytest.approx(0.6 - t_2 * 0.1 / math.sqrt(3))
    assert b["n"] == 1 and math.isnan(b["half_width"]) and math.isnan(b["high"])
    t_2_90 = 2.919985580355516  # the 95% quantile: a 90% interval
    assert fl.sweep_summary(frame, level=0.9).iloc[0]["half_width"] == pytest.approx(
        t_2_90 * 0.1 / math.sqrt(3))


@pytest.mark.parametrize("grid, words", [
    ({"strategi": ["fedavg"]}, ["unknown run option 'strategi'", "strategy"]),
    ({"partition": ["dirichlett"]}, ["partition='dirichlett'", "dirichlet", "iid"]),
    ({"alpha": [0.0], "partition": ["dirichlet"]}, ["alpha must be"]),
    ({"rounds": ["two"]}, ["rounds must be an integer"]),
    ({"param.mu": ["x"], "strategy": ["fedprox"]}, ["mu must be a float"]),
    ({"seed": [1]}, ["seeds=[...]"]),
])
def test_a_bad_option_is_a_clear_error_before_any_run(monkeypatch, grid, words):
    _no_runs(monkeypatch)
    with pytest.raises(ValueError) as info:
        fl.sweep({"strategy": ["fedavg"], **grid}, seeds=[0], base=BASE, progress=False)
    for word in words:
        assert word in str(info.value)


def test_strategy_parameters_and_float_axes(tmp_path):
    frame = fl.sweep({"param.mu": [0.0, 0.5]}, seeds=[0], base={**BASE, "strategy": "fedprox"},
                     progress=False, metrics=["accuracy", "loss"])
    assert list(frame["param.mu"]) == [0.0, 0.5] and frame["loss"].notna().all()
    frame.to_csv(tmp_path / "s.csv", index=False)
    table = fl.sweep_summary(pd.read_csv(tmp_path / "s.csv"), metric="loss")
    assert list(table["param.mu"]) == [0.0, 0.5] and list(table["n"]) == [1, 1]


def test_cli_sweep_writes_the_csvs(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('seeds = [0, 1]\n[base]\ndataset = "synthetic"\nsites = 3\nrounds = 1\n'
                      'model = "mlp"\n[grid]\nstrategy = ["fedavg", "local"]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    runs, summary = pd.read_csv(out / "sweep.csv"), pd.read_csv(out / "summary.csv")
    assert len(runs) == 4 and list(summary["strategy"]) == ["fedavg", "local"]
    assert list(summary["n"]) == [2, 2] and "half_width" in summary
    assert "95% confidence interval" in capsys.readouterr().out
    assert main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    assert pd.read_csv(out / "sweep.csv")["cached"].all()
    config.write_text('[grid]\nstrategy = ["fedavg"]\n[bsae]\nsites = 3\n')
    assert main(["sweep", str(config), "--out", str(out)]) == 2
    assert "unknown key(s) ['bsae']" in capsys.readouterr().err


def test_ci_figure_has_one_error_bar_per_configuration():
    frame = pd.DataFrame({"strategy": ["fedavg"] * 4 + ["fedprox"] * 4,
                          "partition": ["iid", "iid", "dir", "dir"] * 2, "seed": [0, 1] * 4,
                          "accuracy": [0.8, 0.9, 0.6, 0.7, 0.82, 0.88, 0.65, 0.7]})
    info = fl.viz.sweep_ci_info(frame, x="partition", color="strategy")
    assert len(info) == 4 and list(info["n"]) == [2, 2, 2, 2]
    assert info.iloc[0]["mean"] == pytest.approx(0.85)
    fig = fl.viz.sweep_ci(frame, x="partition", color="strategy")
    assert [t.name for t in fig.data] == ["fedavg", "fedprox"]
    assert sum(len(t.error_y.array) for t in fig.data) == 4
    assert list(fig.data[0].x) == ["iid", "dir"]
    assert fig.data[0].error_y.array[0] == pytest.approx(info.iloc[0]["half_width"])
    with pytest.raises(ValueError, match="also varies"):
        fl.viz.sweep_ci(frame, x="partition")
    assert len(fl.viz.sweep_ci(frame[frame.strategy == "fedavg"], x="partition").data) == 1
