"""fedlab.viz.sweep: the "accuracy against heterogeneity" figure of lesson 01."""

import pandas as pd
import plotly.graph_objects as go
import pytest

import fedlab as fl
from fedlab import viz


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "accuracy": [0.87, 0.85, 0.625],
        "worst site accuracy": [0.80, 0.64, 0.0],
        "majority": [0.625, 0.625, 0.625],
        "collapsed": [False, False, True],
    }, index=pd.Index(["IID", "alpha=0.3", "alpha=0.1"], name="run"))


def test_sweep_info_numbers():
    info = viz.sweep_info(_table())
    assert len(info) == 6
    assert list(info["run"][:3]) == ["IID", "alpha=0.3", "alpha=0.1"]
    worst = info[info["series"] == "FedAvg: worst-served hospital"]
    assert list(worst["value"]) == [0.80, 0.64, 0.0]
    assert list(info["collapsed"][:3]) == [False, False, True]
    only = viz.sweep_info(_table(), runs=["alpha=0.1"], columns={"accuracy": "pooled"})
    assert only.to_dict("records") == [
        {"run": "alpha=0.1", "series": "pooled", "value": 0.625, "collapsed": True}]


def test_sweep_figure_marks_collapse_and_baselines():
    fig = viz.sweep(_table(), references={"centralised": 0.886},
                    points={"centralised, shifted": ("alpha=0.1", 0.85)})
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names[:2] == ["FedAvg: all hospitals' patients", "FedAvg: worst-served hospital"]
    collapsed = fig.data[names.index("collapsed (one answer for all)")]
    assert list(collapsed.x) == ["alpha=0.1"] and list(collapsed.y) == [0.625]
    assert list(fig.data[names.index("centralised, shifted")].y) == [0.85]
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    assert lines == [0.625, 0.886]  # majority baseline and the reference


@pytest.mark.filterwarnings("ignore::fedlab.history.CollapsedModelWarning")
def test_sweep_without_collapse_columns(federation):
    h = fl.run(federation, model="mlp", rounds=1, progress=False)
    table = fl.compare({"a": h, "b": h})
    fig = viz.sweep(table.drop(columns=["majority", "collapsed"], errors="ignore"))
    assert len(fig.data) == 2 and not fig.layout.shapes
