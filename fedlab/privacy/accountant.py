"""Privacy accounting: the (epsilon, delta) a sequence of noisy releases has spent.

Each round of DP federated averaging (or each step of DP-SGD) is one use of the
*sampled Gaussian mechanism*: a random subset (each member with probability ``q``)
contributes a clipped value, Gaussian noise of standard deviation
``noise_multiplier * clip`` is added to the sum. Composing ``steps`` of them is
accounted with Rényi DP (Mironov, "Rényi Differential Privacy", CSF 2017; Mironov,
Talwar and Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism",
arXiv 2019) or with the privacy-loss-random-variable accountant (Gopi, Lee and Wutschitz,
"Numerical Composition of Differential Privacy", NeurIPS 2021), both as implemented by
Opacus (Yousefpour et al., "Opacus: User-Friendly Differential Privacy Library in
PyTorch", 2021), an optional dependency imported only here.

For client-level DP (McMahan, Ramage, Talwar and Zhang, "Learning Differentially
Private Recurrent Language Models", ICLR 2018) the members are sites, ``q`` is the
fraction of sites taking part in a round and ``steps`` the number of rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = ["epsilon", "require_opacus", "ACCOUNTANTS"]

ACCOUNTANTS = ("rdp", "prv")
Accountant = Literal["rdp", "prv"]


def require_opacus():
    """Import and return ``opacus``, or fail with an error that says how to install it."""
    try:
        import opacus
    except ImportError as err:  # pragma: no cover - exercised only without opacus
        raise ImportError("fedlab.privacy needs the optional dependency opacus for privacy "
                          "accounting and DP-SGD: pip install 'fedlab-workbench[privacy]' "
                          "(or pip install 'opacus>=1.6,<2')") from err
    return opacus


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
            accountant: Accountant = "rdp",
            history: Sequence[tuple[float, float, int]] = ()) -> float:
    """The epsilon spent by ``steps`` sampled Gaussian releases, for a given ``delta``.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation over the clipping bound (sigma), > 0.
    sample_rate : float
        Probability that a member takes part in one release, in (0, 1].
    steps : int
        How many releases were composed (>= 0; 0 spends nothing).
    delta : float
        Target delta, in (0, 1); usually below 1 / (number of members).
    accountant : {"rdp", "prv"}
        Opacus' Rényi-DP accountant (default) or its PRV accountant (tighter, slower).
    history : sequence of (noise_multiplier, sample_rate, steps)
        Earlier phases with other settings, composed before this one.

    Returns
    -------
    float
        Epsilon (``inf`` when ``noise_multiplier`` is 0).
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    if not noise_multiplier >= 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    phases = [tuple(h) for h in history if h[2] > 0]
    if steps > 0:
        phases.append((float(noise_multiplier), float(sample_rate), int(steps)))
    if not phases:
        return 0.0
    if any(sigma == 0 for sigma, _, _ in phases):
        return float("inf")
    require_opacus()
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = phases
    return float(acc.get_epsilon(delta=delta))
