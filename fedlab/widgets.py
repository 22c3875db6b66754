"""ipywidgets for the notebooks: a live non-IID panel and live learning curves.

Figures are plain ``go.Figure`` objects shown inside ``ipywidgets.Output`` widgets as
plotly's own MIME bundle (``application/vnd.plotly.v1+json``, what the
``plotly_mimetype`` renderer emits): no plotly.js is embedded, and ``anywidget``, which
``go.FigureWidget`` needs since plotly 6, is not required. Everything builds and updates
without a notebook front-end, so tests can move the sliders and run the callbacks.

>>> panel = fl.widgets.heterogeneity_panel(data)       # last line of a cell shows it
>>> live = fl.widgets.LiveCurves()
>>> history = fl.run(sites, rounds=20, callbacks=[live])
"""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio

from . import viz
from .data import AcquisitionShift, Dirichlet, ImageDataset, split

__all__ = ["heterogeneity_panel", "HeterogeneityPanel", "LiveCurves", "render"]

PANEL_FIGURES = ("labels", "distances", "intensity", "images")


def render(output: widgets.Output, fig: go.Figure) -> None:
    """Show ``fig`` in ``output``, replacing what it showed (works without a kernel)."""
    title = fig.layout.title.text or "plotly figure"
    output.outputs = ({
        "output_type": "display_data",
        "data": {"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
                 "text/plain": f"<Figure: {title}>"},
        "metadata": {},
    },)


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook, or papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class HeterogeneityPanel:
    """Sliders for label skew (alpha), number of sites and acquisition shift, and the
    figures of the resulting split, re-drawn whenever a slider is released.

    Attributes
    ----------
    widget : ipywidgets.VBox
        What is displayed (the panel displays itself as the last line of a cell).
    sliders : dict
        ``"alpha"`` (log scale, 0.01-100), ``"n_sites"``, ``"strength"`` (0-1).
    federation : Federation
        The current split.
    figures : dict of go.Figure
        ``"labels"`` (:func:`~fedlab.viz.label_heatmap`), ``"distances"``
        (:func:`~fedlab.viz.site_distances`), ``"intensity"``
        (:func:`~fedlab.viz.intensity_histograms`), ``"images"``
        (:func:`~fedlab.viz.sample_images`).

    Parameters
    ----------
    data : ImageDataset
        The dataset to split.
    n_sites, alpha, strength : int, float, float
        The sliders' first values: sites (2 to ``min(20, len(data.train) // 10)``), the
        Dirichlet alpha and the shift strength (0: no shift).
    seed : int
        Seed of the split, the same at every redraw.
    split : str
        The split shown: ``"train"``, ``"val"`` or ``"test"``.
    metric : {"js", "tv", "emd"}
        The label distance (see :func:`fedlab.data.label_distance`).
    per_site, max_samples : int
        Example images shown per site; images per site read for the intensities.
    """

    def __init__(self, data: ImageDataset, n_sites: int = 5, alpha: float = 0.5,
                 strength: float = 0.0, seed: int = 0, split: str = "train",
                 metric: str = "js", per_site: int = 3, max_samples: int = 500) -> None:
        self.data, self.seed, self.split, self.metric = data, seed, split, metric
        self.per_site, self.max_samples = per_site, max_samples
        max_sites = max(2, min(20, len(data.train) // 10))
        if not 2 <= n_sites <= max_sites:
            raise ValueError(f"n_sites must be in [2, {max_sites}], got {n_sites!r}")
        style = dict(continuous_update=False, style={"description_width": "80px"})
        self.sliders = {
            "alpha": widgets.FloatLogSlider(value=alpha, base=10, min=-2, max=2, step=0.1,
                                            description="alpha", **style),
            "n_sites": widgets.IntSlider(value=n_sites, min=2, max=max_sites,
                                         description="sites", **style),
            "strength": widgets.FloatSlider(value=strength, min=0.0, max=1.0, step=0.05,
                                            description="shift", **style),
        }
        self.summary = widgets.HTML()
        self.outputs = {name: widgets.Output() for name in PANEL_FIGURES}
        self.figures: dict[str, go.Figure] = {}
        self.federation = None
        for slider in self.sliders.values():
            slider.observe(self._on_change, names="value")
        o = self.outputs
        self.widget = widgets.VBox([
            widgets.HBox(list(self.sliders.values())), self.summary,
            widgets.HBox([o["labels"], o["distances"]]), o["intensity"], o["images"],
        ])
        self.update()

    def _on_change(self, change: dict[str, Any]) -> None:
        self.update()

    def update(self) -> None:
        """Re-split with the sliders' values and redraw every figure."""
        n = int(self.sliders["n_sites"].value)
        strength = float(self.sliders["strength"].value)
        scheme = Dirichlet(float(self.sliders["alpha"].value),
                           min_size=min(10, len(self.data.train) // n))
        shift = AcquisitionShift(strength) if strength > 0 else None
        fed = split(self.data, n, scheme, seed=self.seed, shift=shift)
        self.federation = fed
        skew = viz.label_skew_info(fed, self.metric, self.split)
        self.figures = {
            "labels": viz.label_heatmap(fed, self.split),
            "distances": viz.site_distances(fed, self.metric, self.split),
            "intensity": viz.intensity_histograms(fed, self.split,
                                                  max_samples=self.max_samples),
            "images": viz.sample_images(fed, per_site=self.per_site, split=self.split),
        }
        for name, fig in self.figures.items():
            if name != "images":
                fig.update_layout(width=480, height=360)
            render(self.outputs[name], fig)
        sizes = [s.size(self.split) for s in fed]
        self.summary.value = (
            f"<b>{n} sites</b>, {self.split} sizes {min(sizes)}-{max(sizes)}; mean "
            f"{self.metric} distance to the global labels <b>{skew['distance'].mean():.3f}</b>"
            f"; scanner strength {strength:.2f}")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def heterogeneity_panel(data: ImageDataset, n_sites: int = 5, alpha: float = 0.5,
                        strength: float = 0.0, seed: int = 0, **kwargs) -> HeterogeneityPanel:
    """A live panel: move alpha, the number of sites or the shift strength, and see the
    split's label heatmap, site distances, intensity histograms and example images.

    Extra keyword arguments (``split``, ``metric``, ``per_site``, ``max_samples``) go to
    :class:`HeterogeneityPanel`. The first move of the shift slider imports MONAI
    (a few seconds).

    Parameters
    ----------
    data, n_sites, alpha, strength, seed
        As for :class:`HeterogeneityPanel`.
    """
    return HeterogeneityPanel(data, n_sites, alpha, strength, seed, **kwargs)


class LiveCurves:
    """A run callback that draws the learning curves while the run goes on.

    ``fl.run(sites, ..., callbacks=[LiveCurves()])``: after each round the figure
    (global model in bold, each site thinner) is updated from the History. In a notebook
    it displays itself at the first round; elsewhere (scripts, tests, CI) nothing is
    displayed and nothing fails. ``figure`` always holds the current ``go.Figure``.

    Parameters
    ----------
    metric, split : str
        What to plot (as :func:`fedlab.viz.learning_curves`).
    per_site : bool
        Also draw each site's curve.
    display : bool, optional
        Display at the first round: default only inside a Jupyter kernel.
    """

    def __init__(self, metric: str = "accuracy", split: str = "test", per_site: bool = True,
                 display: bool | None = None) -> None:
        self.metric, self.split, self.per_site = metric, split, per_site
        self.figure = go.Figure()
        self.figure.update_layout(title=f"{metric} ({split})", xaxis_title="round",
                                  yaxis_title=metric)
        self.output = widgets.Output()
        self.updates = 0
        self._display = _in_kernel() if display is None else bool(display)
        self._shown = False

    def __call__(self, history, round: int) -> None:
        if not any(r["split"] == self.split for r in history.metrics):
            return None
        new = viz.learning_curves(history, self.metric, self.split, self.per_site)
        _sync(self.figure, new)
        self.updates += 1
        render(self.output, self.figure)
        if self._display and not self._shown:
            self.show()
        return None  # True would stop the run

    def show(self) -> None:
        """Display the live figure (in a notebook; harmless elsewhere)."""
        from IPython.display import display

        self._shown = True
        display(self.output)

    def _repr_mimebundle_(self, **kwargs):
        return self.output._repr_mimebundle_(**kwargs)


def _sync(fig: go.Figure, new: go.Figure) -> None:
    """Update ``fig`` in place to show ``new``: traces matched by name keep their style."""
    existing = {t.name: t for t in fig.data}
    for trace in new.data:
        if trace.name in existing:
            existing[trace.name].update(x=trace.x, y=trace.y)
        else:
            fig.add_trace(trace.to_plotly_json())
    fig.layout.title = new.layout.title

