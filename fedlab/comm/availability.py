"""When a hospital can work: availability on the simulated clock.

Real sites are not always there: a clinic's server is switched off at night, a VPN
drops, a hospital joins the federation months after it started or leaves for good. An
:class:`Availability` says, for one site, when it is reachable on the run's simulated
clock (seconds since the run started, as the network model counts them:
:mod:`fedlab.comm.network`): daily offline windows, random outages (a seeded Poisson
process), a join time and a leave time.

A synchronous run (:func:`fedlab.run` with ``network=`` and ``availability=``) skips a
sampled site that is offline when its round starts, and waits for the first site to
come back when none is online; an asynchronous run (FedAsync, FedBuff) starts a site's
next job only when it is online and holds its upload until it is. The History's events
record every skip, join and leave.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Availability", "AVAILABILITY", "get_availability", "availability_config"]

HOUR = 3600.0


@dataclass(frozen=True)
class Availability:
    """One site's reachability on the simulated clock.

    Parameters
    ----------
    offline : sequence of (float, float)
        Daily windows ``(start_h, end_h)`` in hours of the day when the site is off; a
        window may wrap midnight (``(22, 6)``: from 22:00 to 06:00). The run starts at
        midnight.
    outages_per_day : float
        Mean number of random outages a day (a Poisson process, seeded), >= 0.
    outage_h : float
        Length of each random outage, in hours (> 0).
    join_h : float
        The site joins this many hours after the run started (0: from the start).
    leave_h : float, optional
        The site leaves for good at this hour; None: it stays.
    seed : int
        Seed of the random outages.
    """

    offline: tuple[tuple[float, float], ...] = ()
    outages_per_day: float = 0.0
    outage_h: float = 1.0
    join_h: float = 0.0
    leave_h: float | None = None
    seed: int = 0
    _outages: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        windows = tuple(tuple(float(v) for v in w) for w in self.offline)
        for w in windows:
            if len(w) != 2 or not all(0 <= v <= 24 for v in w):
                raise ValueError(f"offline windows must be (start_h, end_h) with hours in "
                                 f"[0, 24], got {self.offline!r}")
        object.__setattr__(self, "offline", windows)
        if not self.outages_per_day >= 0:
            raise ValueError(f"outages_per_day must be >= 0, got {self.outages_per_day!r}")
        if not self.outage_h > 0:
            raise ValueError(f"outage_h must be > 0, got {self.outage_h!r}")
        if not self.join_h >= 0:
            raise ValueError(f"join_h must be >= 0, got {self.join_h!r}")
        if self.leave_h is not None and not self.leave_h > self.join_h:
            raise ValueError(f"leave_h must be after join_h ({self.join_h}), got "
                             f"{self.leave_h!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("_outages")
        d["offline"] = [list(w) for w in self.offline]
        return d

    def _outage_windows(self, until_s: float) -> list[tuple[float, float]]:
        """The random outages that start before ``until_s``: drawn from the seed over a
        horizon that doubles as the clock advances (so always the same outages)."""
        if self.outages_per_day == 0:
            return []
        if not self._outages or self._outages[-1][0] < until_s:
            horizon = max(2 * until_s, 7 * 24 * HOUR)
            rng = np.random.default_rng([self.seed, 11])
            windows, t = [], 0.0
            while t < horizon:
                t += rng.exponential(24 * HOUR / self.outages_per_day)
                windows.append((t, t + self.outage_h * HOUR))
            self._outages[:] = windows
        return self._outages

    def _blocked_until(self, t: float) -> float | None:
        """If the site is off at ``t`` (but has not left), when that spell ends."""
        if t < self.join_h * HOUR:
            return self.join_h * HOUR
        hour = (t / HOUR) % 24
        day = math.floor(t / (24 * HOUR)) * 24 * HOUR
        for start, end in self.offline:
            if start <= end and start <= hour < end:
                return day + end * HOUR
            if start > end and (hour >= start or hour < end):  # wraps midnight
                return day + (end + (24 if hour >= start else 0)) * HOUR
        for start, end in self._outage_windows(t):
            if start <= t < end:
                return end
        return None

    def gone(self, t: float) -> bool:
        """Has the site left for good at time ``t`` (seconds)?"""
        return self.leave_h is not None and t >= self.leave_h * HOUR

    def online(self, t: float) -> bool:
        """Is the site reachable at time ``t`` (seconds since the run started)?"""
        return not self.gone(t) and self._blocked_until(t) is None

    def next_online(self, t: float) -> float | None:
        """The first time at or after ``t`` when the site is online; None if it has left
        by then.

        Parameters
        ----------
        t : float
            Seconds since the run started.
        """
        for _ in range(10_000):  # offline spells and outages chain; each step moves on
            if self.gone(t):
                return None
            until = self._blocked_until(t)
            if until is None:
                return t
            t = until
        raise RuntimeError("availability: no online time found (offline all day?)")


#: Illustrative profiles: "always"; "night-off" switched off 22:00-06:00; "office-hours"
#: on 08:00-18:00 only; "flaky" about two random one-hour outages a day.
AVAILABILITY: dict[str, Availability] = {
    "always": Availability(),
    "night-off": Availability(offline=((22, 6),)),
    "office-hours": Availability(offline=((18, 8),)),
    "flaky": Availability(outages_per_day=2.0, outage_h=1.0),
}


def _one(value, what: str) -> Availability:
    if isinstance(value, Availability):
        return value
    if isinstance(value, Mapping):  # as stored in a History's config
        return Availability(**{k: v for k, v in value.items()})
    if isinstance(value, str) and value in AVAILABILITY:
        return AVAILABILITY[value]
    raise ValueError(f"{what} must be an Availability or one of {sorted(AVAILABILITY)}, got "
                     f"{value!r}")


def get_availability(spec, sites: Sequence[str], seed: int = 0) -> dict[str, Availability]:
    """An :class:`Availability` per site.

    ``spec``: one Availability or profile name for every site; a dict site -> one
    (sites not named are always online); or a string ``"site-3=night-off,site-1=flaky"``
    (the command line's form). Random outages get a seed per site from ``seed`` unless
    the Availability has its own.

    Parameters
    ----------
    spec : Availability, str or dict
        As above.
    sites : sequence of str
        The site names, in order.
    seed : int
        The run's seed.
    """
    if isinstance(spec, str) and "=" in spec:
        pairs = [p.split("=", 1) for p in spec.split(",") if p.strip()]
        spec = {k.strip(): v.strip() for k, v in pairs}
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(sites))
        if unknown:
            raise ValueError(f"availability names unknown sites {unknown}; the sites are "
                             f"{list(sites)}")
        given = {s: _one(spec.get(s, "always"), f"availability[{s!r}]") for s in sites}
    else:
        given = dict.fromkeys(sites, _one(spec, "availability"))
    out = {}
    for i, (name, a) in enumerate(given.items()):
        if a.outages_per_day > 0 and a.seed == 0:
            a = Availability(a.offline, a.outages_per_day, a.outage_h, a.join_h, a.leave_h,
                             seed=int(np.random.SeedSequence([seed, i, 5]).generate_state(1)[0]))
        out[name] = a
    return out


def availability_config(avail: Mapping[str, Availability]) -> dict[str, dict]:
    """The sites' availability as plain dicts (a History's JSON config).

    Parameters
    ----------
    avail : dict of str to Availability
        From :func:`get_availability`.
    """
    return {s: a.as_dict() for s, a in avail.items()}
