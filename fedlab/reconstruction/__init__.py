"""Reading federated reconstruction runs: PSNR per site, image panels, k-space.

Compute, then draw: each ``*_info`` returns the numbers or arrays, the plain name a
plotly ``go.Figure`` (never shown here). Sites come from
:func:`fedlab.data.undersample` (one MRI protocol per hospital) or
:func:`fedlab.data.make_reconstruction`; each site is scored with the model it would
use (the global model for FedAvg, its own for local-only or fine-tuned runs).
"""

from .images import kspace_info, panels_info, plot_kspace, plot_panels
from .tables import (
    UNITS,
    ZERO_FILLED,
    acceleration_info,
    plot_quality_by_site,
    plot_quality_vs_acceleration,
    quality_table,
)

__all__ = ["ZERO_FILLED", "UNITS", "quality_table", "plot_quality_by_site", "acceleration_info",
           "plot_quality_vs_acceleration", "panels_info", "plot_panels", "kspace_info",
           "plot_kspace"]
