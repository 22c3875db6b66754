"""Claims a lesson makes about its own results, checked from the numbers it computed.

A lesson's prose says things like "FedBN beats FedAvg under acquisition shift" or "DP
costs accuracy as sigma grows". Each such sentence is backed by a code cell tagged
``claim`` that calls :func:`check` on the computed number, with a margin::

    fl.claims.check("FedBN beats FedAvg under acquisition shift",
                    fedbn_acc - fedavg_acc, above=0.02, smoke=SMOKE)

At the teaching defaults the check asserts and prints the value and its margin; in smoke
mode (a few seconds of training, too short to mean anything) it prints that it was not
checked. ``make tutorials-check`` executes every lesson at its teaching defaults, so a
claim that stops holding fails it. With ``FEDLAB_CLAIMS_LOG=<file>`` every check is also
appended there as one JSON line (lesson, claim, value, bound, margin), which
``fedlab tutorials --check`` turns into a table of margins.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

__all__ = ["Claim", "ClaimError", "check"]


class ClaimError(AssertionError):
    """A lesson's claim does not hold for the numbers it computed."""


@dataclass(frozen=True)
class Claim:
    """The outcome of one :func:`check`: ``margin`` is how far ``value`` cleared ``bound``
    (negative when the claim fails); ``None`` values when it was not checked.

    Parameters
    ----------
    text : str
        The claim, as the lesson's prose says it.
    op : str
        ``">"`` (``value`` must exceed ``bound``) or ``"<"`` (stay below it).
    value, bound, margin : float or None
        The computed number, the bound it must clear and by how much it cleared it.
    checked : bool
        False in smoke mode, when nothing was asserted.
    """

    text: str
    op: str
    value: float | None
    bound: float | None
    margin: float | None
    checked: bool

    def _ipython_display_(self) -> None:
        """Nothing: :func:`check` has printed the claim already (a claim cell's last line
        would otherwise show it twice)."""

    def __str__(self) -> str:
        if not self.checked:
            return f"claim not checked (smoke mode): {self.text}"
        return (f"claim holds: {self.text} ({self.value:.4g} {self.op} {self.bound:.4g}, "
                f"margin {self.margin:.3g})")


def _lesson() -> str:
    return os.environ.get("FEDLAB_LESSON", "")


def check(text: str, value: float, *, above: float | None = None,
          below: float | None = None, smoke: bool = False) -> Claim:
    """Assert ``value > above`` or ``value < below`` (exactly one of them) and print it.

    Parameters
    ----------
    text : str
        The claim, as the lesson's prose says it.
    value : float
        The computed number the claim is about (a difference, a ratio, an accuracy).
    above, below : float
        The bound ``value`` must clear: the claim's margin. Give exactly one.
    smoke : bool
        The lesson's ``SMOKE`` flag: in smoke mode nothing is asserted.

    Raises
    ------
    ClaimError
        When the claim does not hold (never in smoke mode).
    """
    if (above is None) == (below is None):
        raise ValueError("give exactly one of above= or below=")
    bound, op = (above, ">") if above is not None else (below, "<")
    if smoke:
        result = Claim(text, op, None, None, None, checked=False)
        print(result)
        return result
    value = float(value)
    margin = value - bound if op == ">" else bound - value
    result = Claim(text, op, value, float(bound), margin, checked=True)
    log = os.environ.get("FEDLAB_CLAIMS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"lesson": _lesson(), **asdict(result)}) + "\n")
    if not margin > 0:
        raise ClaimError(f"claim does not hold: {text}: {value:.4g} is not {op} {bound:.4g}")
    print(result)
    return result
