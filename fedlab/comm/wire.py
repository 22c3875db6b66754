"""The wire of a star-topology run: codecs both ways, bytes in the ledger, codec state.

:class:`Wire` is what :func:`fedlab.run` uses to send each message. Every message is
encoded, serialised to count its bytes (``History.log_message``: ``bytes`` is the
length of the safetensors bytes of what the codec emits, ``raw_bytes`` the same for the
uncompressed tensors) and decoded again; the receiver works with the decoded message,
so lossy codecs really change what the sites train from and what the server averages.

Codec state belongs to the side that encodes and is kept per site:

- ``up/...``: the site's uplink memory (error-feedback residuals), held by the site;
- ``down/...``: the server's downlink memory for that site (its residuals);
- ``ref/...``: the last downlink message the site decoded (both ends hold it), the
  reference of a downlink :class:`~fedlab.comm.Delta`.

A site's uplink :class:`~fedlab.comm.Delta` is taken against what it received this
round; a strategy whose payload already is a change (``payload = "changes"``, e.g.
SCAFFOLD) is sent as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..strategies.aggregate import is_finite
from ..training import derive_seed
from .codecs import Codec, CodecContext, Identity, SizeCounter, get_codec

__all__ = ["Wire", "sample_sites", "participants_per_round"]

State = dict[str, torch.Tensor]


def sample_sites(n_sites: int, clients_per_round: int | float | None, seed: int,
                 rnd: int) -> list[int]:
    """Indices of the sites taking part in round ``rnd`` (sorted, seeded, no repeats).

    Parameters
    ----------
    n_sites : int
        Number of sites in the federation.
    clients_per_round : int, float or None
        None (every site), an int ``k`` (1 <= k <= n_sites) or a fraction in (0, 1]
        (``k = max(1, round(fraction * n_sites))``).
    seed : int
        The run's seed; with ``rnd`` it fixes the draw, so a rerun samples the same sites.
    rnd : int
        The round.
    """
    k = participants_per_round(n_sites, clients_per_round)
    if k == n_sites:
        return list(range(n_sites))
    rng = np.random.default_rng(derive_seed(seed, rnd, 7919))
    return sorted(int(i) for i in rng.choice(n_sites, size=k, replace=False))


def participants_per_round(n_sites: int, clients_per_round: int | float | None) -> int:
    """How many sites take part each round.

    Parameters
    ----------
    n_sites : int
        Number of sites in the federation.
    clients_per_round : int, float or None
        None (all ``n_sites``), a count ``1 <= k <= n_sites``, or a fraction in (0, 1]
        of the sites (rounded, at least 1); anything else raises ValueError.
    """
    c = clients_per_round
    if c is None:
        return n_sites
    if isinstance(c, bool) or not isinstance(c, int | float):
        raise ValueError(f"clients_per_round must be None, an int or a fraction, got {c!r}")
    if isinstance(c, float):  # a fraction of the sites; an int is a count
        if not 0 < c <= 1:
            raise ValueError(f"clients_per_round as a fraction must be in (0, 1], got {c!r}")
        return max(1, round(c * n_sites))
    if not 1 <= c <= n_sites:
        raise ValueError(f"clients_per_round must be between 1 and the number of sites "
                         f"({n_sites}), got {c!r}")
    return int(c)


def _split(state: State, prefix: str) -> State:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class Wire:
    """Codecs of a run and their per-site state (see the module docstring).

    Parameters
    ----------
    uplink, downlink : str, Codec or None
        The codec of site-to-server and of server-to-site messages (as for
        :func:`~fedlab.comm.get_codec`; None sends the tensors as they are).
    n_sites : int
        Number of sites (one codec state each).
    seed : int
        The run's seed; each message's codec randomness derives from it, the round and
        who sends to whom.
    payload : str
        What a site uploads: ``"weights"`` (default; an uplink delta is taken against
        what the site received) or ``"changes"`` (already an update, sent as it is).
    """

    def __init__(self, uplink: str | Codec | None, downlink: str | Codec | None,
                 n_sites: int, seed: int, payload: str = "weights") -> None:
        self.up, self.down = get_codec(uplink), get_codec(downlink)
        self.seed, self.payload = seed, payload
        self.states: list[State] = [{} for _ in range(n_sites)]
        self._plain_down = isinstance(self.down, Identity)
        self._size = SizeCounter()  # serialised size by (key, shape, dtype)s

    def start(self, first_message: State) -> None:
        """Give every site the downlink reference both ends can build from the seed."""
        if self.down.uses_ref:
            for st in self.states:
                st.update({"ref/" + k: v.clone() for k, v in first_message.items()})

    def send_down(self, history, rnd: int, i: int, site: str, message: State) -> State:
        """Server -> site ``i``: log the message, return what the site decodes."""
        if self._plain_down:
            size = self._size(message)
            history.log_message(rnd, site, "down", size, size)
            return message
        st = self.states[i]
        memory = _split(st, "down/")
        ctx = self._ctx(message, _split(st, "ref/"), memory, rnd, (i, 2))
        wire = self.down.encode(message, ctx)
        history.log_message(rnd, site, "down", self._size(wire), self._size(message))
        received = self.down.decode(wire, ctx)
        self._store(i, "down/", memory)
        if self.down.uses_ref:
            self._store(i, "ref/", {k: v.clone() for k, v in received.items()})
        return received

    def send_up(self, history, rnd: int, i: int, site: str, payload: State,
                received: State) -> State:
        """Site ``i`` -> server: log the update's message, return what the server decodes."""
        raw = self._size(payload)
        if isinstance(self.up, Identity):
            history.log_message(rnd, site, "up", raw, raw)
            return payload
        memory = _split(self.states[i], "up/")
        ref = received if self.payload == "weights" else {}
        ctx = self._ctx(payload, ref, memory, rnd, (i, 3))
        wire = self.up.encode(payload, ctx)
        history.log_message(rnd, site, "up", self._size(wire), raw)
        if is_finite(memory):
            self._store(i, "up/", memory)
        # else: a non-finite update (the server excludes it) would poison the residual for
        # good; the site keeps the residual it had before this round
        return self.up.decode(wire, ctx)

    def send_peer(self, history, rnd: int, site: int, peer: int, names: Sequence[str],
                  state: State, direction: str) -> State:
        """A site-to-site message, logged at ``site`` (``direction="up"``: it sends to
        ``peer``; ``"down"``: it receives from ``peer``); returns what the receiver
        decodes. The uplink codec encodes what a site sends, the downlink codec what it
        receives; the sender keeps the codec's memory per link."""
        codec = self.up if direction == "up" else self.down
        if isinstance(codec, Identity):
            history.log_message(rnd, names[site], direction, self._size(state),
                                peer=names[peer])
            return state
        sender, receiver = (site, peer) if direction == "up" else (peer, site)
        prefix = f"peer/{receiver}/{direction}/"
        memory = _split(self.states[sender], prefix)
        ctx = self._ctx(state, {}, memory, rnd, (sender, receiver, 4))
        wire = codec.encode(state, ctx)
        history.log_message(rnd, names[site], direction, self._size(wire), self._size(state),
                            peer=names[peer])
        if is_finite(memory):
            self._store(sender, prefix, memory)
        return codec.decode(wire, ctx)

    def check_peers(self) -> None:
        """Site-to-site messages have no common reference: refuse codecs that need one."""
        for side, codec in (("uplink", self.up), ("downlink", self.down)):
            if codec.uses_ref:
                raise ValueError(f"{side}={codec} needs a reference that both ends hold "
                                 "(a delta); between sites there is none: use it with "
                                 "topology='star', or a codec of the whole model such as "
                                 "'fp16' or 'int8'")

    def _ctx(self, message: State, ref: State, memory: State, rnd: int,
             stream: tuple[int, ...]) -> CodecContext:
        """``stream``: who sends (and to whom) and a direction tag, to derive the seed."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, rnd, *stream))
        like = {k: (v.shape, v.dtype) for k, v in message.items()}
        return CodecContext(ref=ref, like=like, memory=memory, generator=gen)

    def _store(self, i: int, prefix: str, tensors: State) -> None:
        st = self.states[i]
        for k in [k for k in st if k.startswith(prefix)]:
            del st[k]
        st.update({prefix + k: v for k, v in tensors.items()})

    def load(self, states: Sequence[State]) -> None:
        """Restore the per-site codec state (from a checkpoint)."""
        self.states = [dict(s) for s in states]
