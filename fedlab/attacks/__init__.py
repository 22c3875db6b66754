"""Attacks on a federation, to see them happen and to test defences against them.

- :mod:`~fedlab.attacks.poisoning`: a malicious site flips its labels
  (:func:`flip_labels`) or forges its update (:class:`Byzantine`: sign flip, boost,
  noise, NaN).
- :mod:`~fedlab.attacks.backdoor`: a trigger patch that makes the model answer a chosen
  class (:class:`Backdoor`, :class:`Trigger`), with its attack success rate.
- :mod:`~fedlab.attacks.inversion`: a curious server rebuilds a site's images from its
  update (:func:`invert_update`), scored by :func:`psnr` and :func:`ssim`.
- :mod:`~fedlab.attacks.membership`: was an image in the training data? The
  loss-threshold attack and its AUC (:func:`membership_info`).
- :mod:`~fedlab.attacks.report`: clean accuracy and attack success of several runs side
  by side (:func:`attack_info`, :func:`plot_attacks`, :func:`plot_trigger`).

Defences live with the strategies: :mod:`fedlab.strategies.robust`.
"""

from .backdoor import Backdoor, Trigger
from .inversion import InversionConfig, invert_update, psnr, site_update, ssim
from .membership import loss_threshold_attack, membership_info, plot_membership
from .poisoning import KINDS, Byzantine, flip_labels, poison_update
from .report import attack_info, plot_attacks, plot_trigger

__all__ = ["KINDS", "Backdoor", "Byzantine", "Trigger", "attack_info", "flip_labels",
           "plot_attacks", "plot_trigger", "poison_update"]
__all__ += ["InversionConfig", "invert_update", "loss_threshold_attack", "membership_info",
            "plot_membership", "psnr", "site_update", "ssim"]
