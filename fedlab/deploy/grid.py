"""The deployment's executor: a round's site tasks sent to the sites' SuperNodes.

:class:`FlowerGrid` is an executor (``map(tasks) -> results``, see
:mod:`fedlab.executors`) whose tasks run at other processes over Flower's ``Grid``:
each task travels as a ``train`` message to the SuperNode holding its site — what the
site received as an ``ArrayRecord``, the round, seed and training settings as a
``ConfigRecord`` — and the node runs :func:`fedlab.executors.run_site_task` on its own
data (:mod:`fedlab.deploy.flower_app`). The site's own state (SCAFFOLD's control
variate, ...) starts and stays at the node: it is made there from the common initial
model, as the simulation makes it, and never sent. It
also scores the models at the nodes (``score_sites``, which :func:`fedlab.run` uses
when an executor offers it). A node that does not reply in ``timeout`` seconds (or
``straggler_s`` after the first reply), or replies with an error, drops out of that
round (``None``: the run records it in its events and goes on without the site). Later
messages still go to it, but once every other site has replied the server does not wait
for it; a reply in time makes it a full participant again.

Every message's size as Flower serialises it is kept in :attr:`FlowerGrid.traffic`, to
compare with the bytes fedlab's ledger counts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..executors.task import SiteResult, SiteTask
from ..history import GLOBAL
from .records import payload_bytes, record_update, state_record

__all__ = ["FlowerGrid"]


class FlowerGrid:
    """Runs site tasks at the SuperNodes of a Flower federation (module docstring).

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        The ServerApp's grid.
    nodes : dict
        Site name -> the node id of the SuperNode holding that site.
    examples : dict
        Site name -> training examples (each node binds the strategy to the federation
        the way the server does).
    timeout : float
        Seconds to wait for a round's replies.
    straggler_s : float, optional
        Once the first site has replied, wait at most this many seconds more for the
        others (a deadline for stragglers; the sites start their work together, so their
        replies come close together unless one is gone). None: ``timeout`` only.
    """

    name = "flower"

    def __init__(self, grid: Any, nodes: Mapping[str, int], examples: Mapping[str, int],
                 timeout: float = 120.0, straggler_s: float | None = None) -> None:
        self.grid, self.nodes, self.examples = grid, dict(nodes), dict(examples)
        self.timeout = float(timeout)
        self.straggler_s = None if straggler_s is None else float(straggler_s)
        self.traffic: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []
        self._suspect: set[str] = set()  # sites that missed an exchange (not waited for)
        self._round = 0  # the last round trained (what an evaluation follows)

    def __repr__(self) -> str:
        return f"FlowerGrid({len(self.nodes)} nodes, timeout={self.timeout:g})"

    def map(self, tasks: Sequence[SiteTask]) -> list[SiteResult | None]:
        from flwr.app import ConfigRecord, RecordDict

        self._round = tasks[0].round if tasks else self._round
        messages = []
        for t in tasks:
            content = RecordDict({"received": state_record(t.received), "task": ConfigRecord({
                "json": json.dumps({"round": t.round, "index": t.index, "seed": t.seed,
                                    "site": t.site.name, "device": "cpu",
                                    "config": dataclasses.asdict(t.config),
                                    "examples": self.examples})})})
            messages.append((t, content))
        replies = self._exchange("train", messages)
        results: list[SiteResult | None] = []
        for t, _ in messages:
            reply = replies.get(t.site.name)
            if reply is None:
                results.append(None)
                continue
            # the site keeps its own state; the server's copy stays as it was sent
            results.append(SiteResult(record_update(reply.content), t.site_state))
        return results

    def score_sites(self, net, states, sites, split: str, dev) -> list[tuple[str, dict]]:
        """Each site's model scored on its ``split`` at its node; ``"global"`` is the
        mean of the sites' metrics weighted by their samples (the server holds no
        patient's prediction, so it cannot pool them the way a simulation does)."""
        from flwr.app import ConfigRecord, RecordDict

        messages = [(site, RecordDict({"state": state_record(state), "task": ConfigRecord(
            {"json": json.dumps({"split": split, "site": site.name})})}))
            for site, state in zip(sites, states, strict=True)]
        replies = self._exchange("evaluate", messages)
        rows, weights = [], []
        for site, _ in messages:
            if site.name in replies:
                metrics = json.loads(str(replies[site.name].content["metrics"]["json"]))
                rows.append((site.name, metrics))
                weights.append(site.size(split))
        return rows + [(GLOBAL, _weighted_mean([m for _, m in rows], weights))]

    def _exchange(self, kind: str, messages: list[tuple[Any, Any]]) -> dict[str, Any]:
        """Send each (task or site, content) as a ``kind`` message; the replies by site
        name (those that came back without an error), traffic and losses recorded.

        Pushes and polls the grid itself (``push_messages`` / ``pull_messages``) every
        0.1 s: ``Grid.send_and_receive`` polls every 3 s, which a short round would feel.
        """
        from flwr.app import Message

        out, sent, t0 = [], [], time.perf_counter()
        for item, content in messages:
            name = item.site.name if isinstance(item, SiteTask) else item.name
            out.append(Message(content=content, dst_node_id=self.nodes[name],
                               message_type=kind))
            sent.append((name, payload_bytes(content)))
        rnd = self._round
        ids = list(self.grid.push_messages(out))
        waiting, got = dict(zip(ids, sent, strict=True)), {}
        end, first = time.monotonic() + self.timeout, 0.0
        while waiting and time.monotonic() < end:
            if {name for name, _ in waiting.values()} <= self._suspect:
                break  # only sites that missed an earlier exchange are left: not waited for
            if got and self.straggler_s is not None:
                end = min(end, first + self.straggler_s)
            for reply in self.grid.pull_messages(list(waiting)):
                name, down = waiting.pop(reply.metadata.reply_to_message_id, (None, 0))
                if name is None:
                    continue
                if reply.has_error():
                    self.lost.append({"site": name, "kind": kind, "round": rnd,
                                      "error": str(reply.error.reason)})
                    continue
                if not got:
                    first = time.monotonic()
                got[name] = reply
                self._suspect.discard(name)  # back in time: waited for again
                self.traffic.append({"kind": kind, "round": rnd, "site": name, "down": down,
                                     "up": payload_bytes(reply.content),
                                     "seconds": time.perf_counter() - t0})
            if waiting:
                time.sleep(0.1)
        for name, _ in waiting.values():
            late = (f"no reply within {self.straggler_s:g} s of the first" if got and
                    self.straggler_s is not None else f"no reply within {self.timeout:g} s")
            self.lost.append({"site": name, "kind": kind, "round": rnd, "error": late})
            self._suspect.add(name)
        return got


def _weighted_mean(metrics: list[dict], weights: list[int]) -> dict[str, float]:
    total = sum(weights)
    if not metrics or total == 0:
        return {}
    keys = [k for k in metrics[0] if all(isinstance(m.get(k), int | float) for m in metrics)]
    return {k: sum(w * m[k] for m, w in zip(metrics, weights, strict=True)) / total
            for k in keys}
