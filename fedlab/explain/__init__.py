"""Explainability and fairness across sites: what a model looks at, whom it serves,
and which hospitals it learned from.

>>> import fedlab as fl
>>> models = fl.explain.history_models(history, sites)      # global + each site's own
>>> maps = {name: fl.explain.saliency(m, images, "gradcam") for name, m in models.items()}
>>> fl.explain.agreement_matrix(maps)                        # rank correlation of maps
>>> report = fl.explain.site_report(history, sites)          # accuracy, AUC, ECE per site
>>> fl.explain.fairness(report)                              # worst site and spread
>>> v = fl.explain.fl_utility(sites, rounds=3)
>>> fl.explain.contributions(sites.names, v)                 # leave-one-out and Shapley

MONAI (Grad-CAM, occlusion) is imported only when a saliency map is computed; plotly
only with the figures (``fedlab.explain.plots``).
"""

from .agreement import (
    agreement,
    agreement_matrix,
    border_mask,
    mass_in,
    rank_correlation,
    top_overlap,
)
from .contribution import CachedUtility, contributions, fl_utility, leave_one_out, shapley
from .models import build_model, history_models, runs_models
from .report import (
    confusion_matrices,
    fairness,
    fairness_table,
    reliability_info,
    site_predictions,
    site_report,
)
from .saliency import (
    METHODS,
    find_target_layer,
    grad_cam,
    integrated_gradients,
    occlusion,
    saliency,
)
from .sanity import corner_artefact, randomization_check, randomized_model

__all__ = [
    "METHODS", "agreement", "agreement_matrix", "border_mask", "build_model", "CachedUtility",
    "confusion_matrices", "contribution_bars", "contributions", "corner_artefact", "fairness",
    "fairness_table", "find_target_layer", "fl_utility", "grad_cam", "history_models",
    "integrated_gradients", "leave_one_out", "mass_in", "occlusion", "randomization_check",
    "randomized_model", "rank_correlation", "reliability_diagram", "reliability_info",
    "runs_models", "saliency", "saliency_grid", "saliency_grid_info", "shapley", "site_metrics",
    "site_metrics_info", "site_predictions", "site_report", "top_overlap", "volume_slices",
    "volume_slices_info",
]

_PLOTS = ("overlay", "saliency_grid_info", "saliency_grid", "site_metrics_info",
          "site_metrics", "reliability_diagram", "contribution_bars", "volume_slices_info",
          "volume_slices")


def __getattr__(name: str):
    # plotly loads on first use of a figure, as for fedlab.viz
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'fedlab.explain' has no attribute {name!r}")
