import plotly.graph_objects as go

import fedlab as fl
from fedlab import viz


def test_label_distribution_numbers_and_figure(federation):
    info = viz.label_distribution_info(federation)
    assert info["count"].sum() == sum(s.size() for s in federation)
    fig = viz.label_distribution(federation)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == len(federation.classes)
    assert list(fig.data[0].x) == federation.names


def test_sample_images_grid(federation):
    fig = viz.sample_images(federation, per_site=2)
    assert sum(isinstance(t, go.Image) for t in fig.data) == 2 * len(federation)


def test_learning_curves_and_comparison(federation):
    h = fl.run(federation, model="mlp", rounds=2, progress=False)
    info = viz.learning_curves_info(h)
    assert set(info["site"]) == {"global", *federation.names}
    fig = viz.learning_curves(h)
    assert len(fig.data) == len(federation) + 1
    assert list(fig.data[-1].y) == list(h.series("accuracy")[1])
    cmp = viz.compare_runs({"a": h, "b": h}, metric="auc")
    assert [t.name for t in cmp.data] == ["a", "b"]


def test_package_never_shows(monkeypatch, federation):
    calls = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: calls.append(1))
    viz.label_distribution(federation)
    viz.sample_images(federation)
    assert not calls
