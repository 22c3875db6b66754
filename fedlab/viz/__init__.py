"""plotly figures. Each plot is compute → info → figure: ``*_info`` returns the numbers
(a DataFrame, testable without rendering), the plain name returns a ``go.Figure``.
Nothing here calls ``.show()``.
"""

from .data import (
    intensity_histograms,
    intensity_histograms_info,
    label_distribution,
    label_distribution_info,
    label_heatmap,
    label_skew,
    label_skew_info,
    sample_images,
    site_distances,
    site_distances_info,
)
from .palette import PALETTE
from .runs import (
    compare_runs,
    compare_runs_info,
    cross_site_heatmap,
    learning_curves,
    learning_curves_info,
    sweep,
    sweep_info,
)
from .sweeps import sweep_ci, sweep_ci_info

__all__ = [
    "PALETTE", "label_distribution_info", "label_distribution", "sample_images",
    "learning_curves_info", "learning_curves", "compare_runs_info", "compare_runs",
    "cross_site_heatmap", "label_heatmap", "label_skew_info", "label_skew",
    "site_distances_info", "site_distances", "intensity_histograms_info",
    "intensity_histograms", "sweep_info", "sweep", "sweep_ci_info", "sweep_ci",
]
