"""The round engine's parts: the per-round context every topology works through, the
run's evaluation and the checks around the loop. :func:`fedlab.run` (in
:mod:`fedlab.simulation`) is the loop itself."""

from .context import SERVER, RoundContext

__all__ = ["SERVER", "RoundContext"]
