"""Widgets work without a notebook front-end: sliders re-split, LiveCurves follows a run."""

import numpy as np
import pytest

import fedlab as fl
from fedlab import widgets

PLOTLY_MIME = "application/vnd.plotly.v1+json"


@pytest.fixture
def panel(synthetic):
    return widgets.heterogeneity_panel(synthetic, n_sites=4, alpha=1.0, strength=0.0, seed=0)


def test_panel_builds_figures(panel):
    assert set(panel.figures) == {"labels", "distances", "intensity", "images"}
    assert len(panel.federation) == 4
    for name, out in panel.outputs.items():
        assert PLOTLY_MIME in out.outputs[0]["data"], name
    assert "4 sites" in panel.summary.value
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


def test_alpha_slider_resplits(panel):
    before = np.array(panel.figures["labels"].data[0].z)
    payload = panel.outputs["labels"].outputs[0]["data"][PLOTLY_MIME]
    panel.sliders["alpha"].value = 0.01
    after = np.array(panel.figures["labels"].data[0].z)
    assert not np.allclose(before, after)
    assert panel.outputs["labels"].outputs[0]["data"][PLOTLY_MIME] != payload
    assert panel.federation.scheme.startswith("Dirichlet(alpha=0.01")


def test_sites_and_shift_sliders(panel):
    panel.sliders["n_sites"].value = 6
    assert np.array(panel.figures["distances"].data[0].z).shape == (6, 6)
    before = [np.array(t.y) for t in panel.figures["intensity"].data]
    panel.sliders["strength"].value = 0.6
    after = [np.array(t.y) for t in panel.figures["intensity"].data]
    assert all(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    assert not all(s.is_identity for s in panel.federation.scanners.values())


def test_panel_rejects_bad_site_count(synthetic):
    with pytest.raises(ValueError, match="n_sites"):
        widgets.heterogeneity_panel(synthetic, n_sites=1)


def test_live_curves_follow_a_run(federation, monkeypatch):
    shown = []
    monkeypatch.setattr(widgets.LiveCurves, "show", lambda self: shown.append(1))
    live = widgets.LiveCurves()
    seen = []

    def probe(history, rnd):
        seen.append([list(t.x) for t in live.figure.data if t.name == "global"][0])

    history = fl.run(federation, model="mlp", rounds=2, progress=False,
                     callbacks=[live, probe])
    assert len(history.rounds) == 2  # LiveCurves never stops a run
    assert seen == [[0, 1], [0, 1, 2]]  # updated after each round, during the run
    assert live.updates == 2 and not shown  # headless: nothing displayed
    assert {t.name for t in live.figure.data} == {"global", *federation.names}
    global_trace = [t for t in live.figure.data if t.name == "global"][0]
    assert list(global_trace.y) == list(history.series("accuracy")[1])
    assert PLOTLY_MIME in live.output.outputs[0]["data"]


def test_live_curves_display_when_asked(federation, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    live = widgets.LiveCurves(display=True, per_site=False)
    fl.run(federation, model="mlp", rounds=2, progress=False, callbacks=[live])
    assert shown == [live.output]  # displayed once, then updated in place
    assert [t.name for t in live.figure.data] == ["global"]
