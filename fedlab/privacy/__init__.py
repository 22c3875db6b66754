"""Privacy for federated learning: differential privacy and secure aggregation.

* :class:`DP` / :func:`DPFedAvg`: client-level DP (clip each site's update, add
  Gaussian noise at the server or at the sites), epsilon per round in ``History.rounds``.
* :class:`DPSGD`: sample-level DP-SGD inside each site (Opacus), epsilon per site.
* :class:`SecAgg`: secure aggregation by pairwise masking, with drop-out recovery.
* :func:`epsilon`: the accountant (Opacus' RDP or PRV, an optional dependency);
  :func:`plot_epsilon` and :func:`plot_masking` for the lesson's figures.
"""

from .accountant import epsilon
from .crypto import decode, encode, shamir_reconstruct, shamir_share
from .dp import DP, DPFedAvg, add_noise, clip_delta, delta_norm, noise_std, update_delta
from .dpsgd import DPSGD, dp_sgd_epochs
from .report import epsilon_info, masking_info, plot_epsilon, plot_masking
from .secagg import SecAgg

__all__ = ["DP", "DPFedAvg", "DPSGD", "SecAgg", "add_noise", "clip_delta", "decode",
           "delta_norm", "dp_sgd_epochs", "encode", "epsilon", "epsilon_info", "masking_info",
           "noise_std", "plot_epsilon", "plot_masking", "shamir_reconstruct", "shamir_share",
           "update_delta"]
