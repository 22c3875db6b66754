"""A network model: how long a round takes when sites sit behind real links.

Each site has a :class:`Link`: uplink and downlink bandwidth (Mbit/s), a one-way latency
paid by every message, and the speed of its local training (samples/s). A message of
``b`` bytes takes ``latency + 8 b / bandwidth`` seconds. A site's round is its
downloads, then its local training, then its uploads; the server waits for the
slowest participant (the straggler), so the round takes the longest of those times::

    round_s = max over participating sites of (down_s + compute_s + up_s)

All times are computed from the History's ledger (the bytes actually sent) and the
local work each site did, so the same run can be replayed over other networks
(:func:`timeline`) without training again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

__all__ = ["Link", "PROFILES", "get_network", "network_config", "message_seconds",
           "round_seconds", "timeline", "time_to_accuracy"]


@dataclass(frozen=True)
class Link:
    """One site's connection and compute.

    Parameters
    ----------
    up_mbps, down_mbps : float
        Bandwidth from the site to the server and back, in Mbit/s (10^6 bit/s).
    latency_ms : float
        One-way delay paid by every message, in milliseconds.
    samples_per_s : float
        Local training speed (the small CNN trains about 4,000 28x28 images/s on a
        laptop CPU core pair).
    """

    up_mbps: float
    down_mbps: float
    latency_ms: float = 0.0
    samples_per_s: float = 4000.0

    def __post_init__(self) -> None:
        for name in ("up_mbps", "down_mbps", "samples_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms!r}")


#: Illustrative links (orders of magnitude, not measurements). "rural-clinic" uses the
#: 25/3 Mbit/s broadband benchmark of the US FCC's 2015 Broadband Progress Report;
#: "satellite" the ~300 ms one-way delay of a geostationary hop (36,000 km up and down).
PROFILES: dict[str, Link] = {
    "datacenter": Link(up_mbps=10_000, down_mbps=10_000, latency_ms=0.5, samples_per_s=20_000),
    "hospital-fibre": Link(up_mbps=1000, down_mbps=1000, latency_ms=10, samples_per_s=4000),
    "hospital-vpn": Link(up_mbps=50, down_mbps=100, latency_ms=30, samples_per_s=4000),
    "rural-clinic": Link(up_mbps=3, down_mbps=25, latency_ms=60, samples_per_s=1000),
    "satellite": Link(up_mbps=3, down_mbps=25, latency_ms=300, samples_per_s=1000),
}
#: "mixed": sites take these profiles in turn (site 0 fibre, site 1 VPN, ...)
MIXED = ("hospital-fibre", "hospital-vpn", "rural-clinic")


def get_network(spec: str | Link | Mapping[str, str | Link],
                sites: Sequence[str]) -> dict[str, Link]:
    """A :class:`Link` per site from a profile name, ``"mixed"``, a Link or a dict.

    Parameters
    ----------
    spec : str, Link or dict
        A name of :data:`PROFILES` (every site gets that link), ``"mixed"`` (sites take
        the fibre, VPN and rural-clinic profiles in turn), one Link for all sites, or a
        dict giving each site a name, a Link or a Link as a dict (every site needed).
    sites : sequence of str
        The site names, in order.
    """
    def one(s: str | Link, what: str) -> Link:
        if isinstance(s, Link):
            return s
        if isinstance(s, Mapping):  # a Link as a dict, as stored in a History's config
            return Link(**s)
        if isinstance(s, str) and s in PROFILES:
            return PROFILES[s]
        raise ValueError(f"{what} must be a Link or one of {sorted(PROFILES)}"
                         f"{' or mixed' if what == 'network' else ''}, got {s!r}")

    if isinstance(spec, Mapping):
        missing = [s for s in sites if s not in spec]
        if missing:
            raise ValueError(f"network has no link for sites {missing}")
        return {s: one(spec[s], f"network[{s!r}]") for s in sites}
    if spec == "mixed":
        return {s: PROFILES[MIXED[i % len(MIXED)]] for i, s in enumerate(sites)}
    link = one(spec, "network")
    return dict.fromkeys(sites, link)


def network_config(links: Mapping[str, Link]) -> dict[str, dict[str, float]]:
    """Links as plain dicts (for a History's JSON config); :func:`get_network` reads it.

    Parameters
    ----------
    links : dict of str to Link
        A link per site, e.g. from :func:`get_network`.
    """
    return {s: asdict(link) for s, link in links.items()}


def message_seconds(nbytes: int, mbps: float, latency_ms: float) -> float:
    """Seconds one message of ``nbytes`` takes: latency plus size over bandwidth.

    Parameters
    ----------
    nbytes : int
        Size of the message in bytes.
    mbps : float
        Bandwidth of the link in the message's direction, in Mbit/s.
    latency_ms : float
        One-way delay in milliseconds.
    """
    return latency_ms / 1e3 + 8.0 * nbytes / (mbps * 1e6)


def _site_rows(ledger: list[dict], rnd: int, local_samples: Mapping[str, int],
               links: Mapping[str, Link]) -> list[dict]:
    down: dict[str, float] = defaultdict(float)
    up: dict[str, float] = defaultdict(float)
    for r in ledger:
        if r["round"] != rnd or r["site"] not in links:
            continue
        link = links[r["site"]]
        if r["direction"] == "down":
            down[r["site"]] += message_seconds(r["bytes"], link.down_mbps, link.latency_ms)
        else:
            up[r["site"]] += message_seconds(r["bytes"], link.up_mbps, link.latency_ms)
    rows = []
    for site, n in local_samples.items():
        compute = n / links[site].samples_per_s
        rows.append({"round": rnd, "site": site, "down_s": down[site], "compute_s": compute,
                     "up_s": up[site], "total_s": down[site] + compute + up[site]})
    return rows


def round_seconds(ledger: list[dict], rnd: int, local_samples: Mapping[str, int],
                  links: Mapping[str, Link]) -> tuple[float, str | None]:
    """``(seconds, slowest site)`` of round ``rnd``; ``(0.0, None)`` with no participant.

    Parameters
    ----------
    ledger : list of dict
        The messages sent (``History.ledger``: ``round``, ``site``, ``direction``,
        ``bytes``); those of other rounds or of sites not in ``links`` are ignored.
    rnd : int
        The round.
    local_samples : dict of str to int
        Each participant's samples trained on in that round.
    links : dict of str to Link
        A link per site (from :func:`get_network`).
    """
    rows = _site_rows(ledger, rnd, local_samples, links)
    if not rows:
        return 0.0, None
    worst = max(rows, key=lambda r: r["total_s"])
    return worst["total_s"], worst["site"]


def timeline(history, network: str | Link | Mapping | None = None) -> pd.DataFrame:
    """Per round and participating site: download, compute, upload and total seconds.

    ``network`` defaults to the one the run used (``history.config["network"]``); any
    other replays the same ledger over other links. Adds ``round_s`` (the slowest
    participant's total) and ``straggler`` (True for that site).
    """
    network = network if network is not None else history.config.get("network")
    if network is None:
        raise ValueError("network is needed: the run was made without one")
    names = list(dict.fromkeys(s for r in history.rounds for s in r.get("local_samples", {})))
    links = get_network(network, names)
    rows = [row for r in history.rounds
            for row in _site_rows(history.ledger, r["round"], r.get("local_samples", {}), links)]
    cols = ["round", "site", "down_s", "compute_s", "up_s", "total_s"]
    df = pd.DataFrame(rows, columns=cols)
    df["round_s"] = df.groupby("round")["total_s"].transform("max")
    df["straggler"] = df["total_s"] == df["round_s"]
    return df


def time_to_accuracy(history, target: float, metric: str = "accuracy",
                     network: str | Link | Mapping | None = None) -> dict[str, float]:
    """First evaluated round whose global test ``metric`` reaches ``target``.

    Returns ``round``, ``seconds`` (simulated, cumulative) and ``mb_up`` / ``mb`` (MB
    sent so far: uplink, both directions); all NaN when the target is never reached.

    Parameters
    ----------
    history : History
        A finished run.
    target : float
        The value ``metric`` must reach (``>=``).
    metric : str
        A global test metric of the History (default ``"accuracy"``).
    network : str, Link or dict, optional
        The network to time the rounds on (as for :func:`get_network`); the one the run
        used by default.
    """
    rounds, values = history.series(metric)
    hit = [int(r) for r, v in zip(rounds, values, strict=True) if v >= target]
    nan = float("nan")
    if not hit:
        return {"round": nan, "seconds": nan, "mb_up": nan, "mb": nan}
    rnd = hit[0]
    per_round = timeline(history, network).groupby("round")["round_s"].max()
    upto = [r for r in history.ledger if r["round"] <= rnd]
    return {"round": rnd, "seconds": float(per_round[per_round.index <= rnd].sum()),
            "mb_up": sum(r["bytes"] for r in upto if r["direction"] == "up") / 1e6,
            "mb": sum(r["bytes"] for r in upto) / 1e6}
