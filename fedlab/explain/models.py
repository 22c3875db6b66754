"""The trained models of finished runs, rebuilt for explanation: a run's global model
and every site's own model, by name (``"global"``, a site name, ``"<run> <model>"``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from ..history import GLOBAL, History
from ..models import MODELS, ModelSpec
from ..sites import Site

__all__ = ["build_model", "architecture", "history_models", "runs_models"]


def build_model(state: dict, model: str | nn.Module = "cnn",
                sites: Sequence[Site] | None = None, in_channels: int = 1,
                n_classes: int = 2, image_size: int = 28) -> nn.Module:
    """A model in eval mode carrying ``state`` (e.g. ``history.final_state``).

    ``model`` is a name of :data:`fedlab.models.MODELS` (shapes taken from ``sites``
    when given) or a module (copied, then loaded); built by
    :class:`~fedlab.models.ModelSpec`, as the run built it. Without ``sites``, the
    shapes are ``in_channels`` (image channels), ``n_classes`` (outputs) and
    ``image_size`` (side of the square images).
    """
    spec = (ModelSpec.for_sites(model, sites) if sites is not None
            else ModelSpec(model, in_channels, n_classes, image_size))
    net = spec.build()  # leaves the caller's random state as it was
    net.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    return net.eval()


def architecture(history: History, model: str | nn.Module | None = None) -> str | nn.Module:
    """What to rebuild a run's models with: ``model`` if given, else the run's model name."""
    if model is not None:
        return model
    name = history.config.get("model", "cnn")
    if name not in MODELS:
        raise ValueError(f"the run used a custom model ({name!r}) that cannot be rebuilt by "
                         "name: pass model= (an nn.Module of the same architecture)")
    return name


def history_models(history: History, sites: Sequence[Site],
                   model: str | nn.Module | None = None) -> dict[str, nn.Module]:
    """The trained models of a run: ``"global"`` (unless the run was local-only) and
    every site whose own model differs from the global one (local-only, personalised).

    ``history`` is the History returned by :func:`fedlab.run` (one loaded from JSON has
    no models), ``sites`` the run's sites (for the shapes), and ``model`` the
    architecture (default: the run's model name; needed for a custom module).
    """
    if history.final_state is None:
        raise ValueError("history has no final model: it was loaded from JSON; "
                         "use the History returned by fl.run")
    name = architecture(history, model)
    out: dict[str, nn.Module] = {}
    if history.config.get("strategy") != "local":
        out[GLOBAL] = build_model(history.final_state, name, sites)
    for site, state in history.site_states.items():
        if state is not history.final_state:
            out[site] = build_model(state, name, sites)
    return out


def runs_models(runs: Mapping[str, History], sites: Sequence[Site],
                globals_from: Sequence[str] | None = None,
                model: str | nn.Module | None = None) -> dict[str, nn.Module]:
    """The models of several runs in one dict, named ``"<run> <model>"``.

    ``<model>`` is ``global`` or a site name, as in :func:`history_models`. Only the runs
    named in ``globals_from`` contribute their global model (default: every run), so a
    personalised run's FedAvg-like global model need not appear twice.

    >>> runs_models({"FedAvg": h1, "local": h2}, sites)   # doctest: +SKIP
    {"FedAvg global": ..., "local site-1": ..., ...}
    """
    out: dict[str, nn.Module] = {}
    for label, history in runs.items():
        for key, net in history_models(history, sites, model).items():
            if key == GLOBAL and globals_from is not None and label not in globals_from:
                continue
            out[f"{label} {key}"] = net
    return out
