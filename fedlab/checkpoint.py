"""Round checkpoints of a run directory, in safetensors (never pickle).

A run directory holds ``config.json`` (the run's arguments), ``history.json`` (the
History so far) and ``checkpoints/round_NNNN.safetensors`` with the global model, the
server state of the strategy, every site's own state and codec state, and for the
decentralised topologies every site's shared model and the topology's memory, after
that round.

Nothing is lost when a run is killed: each file is written to a temporary name, flushed
to disk (``fsync``) and renamed, so a file is either whole or absent; each checkpoint
carries a SHA-256 of its tensors, and a checkpoint that is truncated or altered is
reported and skipped for the one before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .history import History
from .state import State, Tree, empty_paths, flatten, unflatten

__all__ = ["Checkpoint", "save_round", "load_latest", "check_config", "digest",
           "durable_replace"]


def _path(run_dir: Path, round: int) -> Path:
    return run_dir / "checkpoints" / f"round_{round:04d}.safetensors"


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the names, dtypes, shapes and bytes of ``tensors``, in their order.

    Parameters
    ----------
    tensors : dict of str to Tensor
        CPU tensors, as a checkpoint file holds them.
    """
    h = hashlib.sha256()
    for name, t in tensors.items():
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def durable_replace(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, rename it to ``path`` and flush the folder: after a crash
    ``path`` holds either its old content or the whole new one.

    Parameters
    ----------
    tmp, path : Path
        The finished temporary file and its final name (same folder).
    """
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder cannot be opened on some systems: the rename still holds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Checkpoint:
    """The state of a run after one round: everything needed to continue it exactly."""

    round: int
    global_state: State
    server_state: Tree
    site_states: list[Tree]
    codec_states: list[State]
    shared: list[State] = field(default_factory=list)  # decentralised: each site's model
    memory: dict[str, int] = field(default_factory=dict)  # the topology's integers


def save_round(run_dir: Path, ckpt: Checkpoint, history: History) -> None:
    """Write the checkpoint of ``ckpt.round`` and the History, each atomically."""
    tensors = {f"global/{k}": v for k, v in ckpt.global_state.items()}
    paths: dict[str, list[str]] = {}  # the nested states: each flat name's path of keys
    empty: dict[str, list[list[str]]] = {}  # and where they hold an empty dict

    def nested(head: str, tree: Tree) -> None:
        for path, v in flatten(tree).items():
            name = "/".join((head, *path))
            tensors[name] = v
            if len(path) > 1:
                paths[name] = list(path)
        if holes := empty_paths(tree):
            empty[head] = [list(p) for p in holes]

    nested("server", ckpt.server_state)
    for i, state in enumerate(ckpt.site_states):
        nested(f"site/{i}", state)
    for i, state in enumerate(ckpt.codec_states):
        tensors.update({f"codec/{i}/{k}": v for k, v in state.items()})
    first: dict[int, int] = {}  # the sites of a cyclic or swarm run share one model: once
    for i, state in enumerate(ckpt.shared):
        j = first.setdefault(id(state), i)
        if j == i:
            tensors.update({f"shared/{i}/{k}": v for k, v in state.items()})
        else:
            tensors[f"same/{i}"] = torch.tensor(j)
    tensors.update({f"memory/{k}": torch.tensor(int(v)) for k, v in ckpt.memory.items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    path = _path(run_dir, ckpt.round)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # safetensors sorts its keys: keep the order of every state (codecs draw per tensor
    # in that order, so a resumed run must see the same order to continue exactly)
    save_file(tensors, str(tmp), metadata={"round": str(ckpt.round),
                                           "order": json.dumps(list(tensors)),
                                           "paths": json.dumps(paths),
                                           "empty": json.dumps(empty),
                                           "sha256": digest(tensors)})
    durable_replace(tmp, path)
    history.save(run_dir / "history.json")


def _read(path: Path, device: torch.device) -> tuple[dict, dict]:
    """The tensors (in their saved order) and metadata of one checkpoint, verified."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:  # one read
            saved, meta = set(f.keys()), f.metadata() or {}
            order = json.loads(meta.get("order", "[]"))
            keys = [k for k in order if k in saved] + sorted(saved - set(order))
            tensors = {k: f.get_tensor(k) for k in keys}
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path.name} cannot be read ({type(err).__name__}: {err})") from None
    if "sha256" in meta and digest(tensors) != meta["sha256"]:
        raise ValueError(f"{path.name} does not match its checksum (altered or damaged)")
    return {k: v.to(device) for k, v in tensors.items()}, meta


def load_latest(run_dir: Path, n_sites: int, device: torch.device,
                ) -> tuple[Checkpoint, History, list[str]] | None:
    """The newest readable checkpoint whose round the History on disk has reached, that
    History cut to its round, and a note for each newer checkpoint that was damaged and
    skipped; None when the run directory holds no checkpoint.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    n_sites : int
        How many sites (trainers) the run has.
    device : torch.device
        Where the tensors are loaded.
    """
    ckpts = sorted((run_dir / "checkpoints").glob("round_*.safetensors"))
    if not ckpts:
        return None
    if not (run_dir / "history.json").exists():
        raise FileNotFoundError(
            f"cannot resume: run_dir {str(run_dir)!r} holds checkpoints but no history.json "
            "(deleted?); move the folder aside and start again, or restore the file")
    history = History.load(run_dir / "history.json")
    skipped: list[str] = []
    for path in reversed(ckpts):
        round = int(path.stem.split("_")[1])
        if round > history.last_round:  # interrupted between the two writes
            continue
        try:
            tensors, meta = _read(path, device)
            break
        except ValueError as err:
            skipped.append(str(err))
            warnings.warn(f"{run_dir}: {err}; trying the checkpoint before it", stacklevel=3)
    else:
        raise ValueError(f"cannot resume: no readable checkpoint in {run_dir / 'checkpoints'}"
                         f" ({'; '.join(skipped) or 'none is as recent as history.json'})")
    paths, empty = json.loads(meta.get("paths", "{}")), json.loads(meta.get("empty", "{}"))
    empty = {h: [tuple(p) for p in v] for h, v in empty.items()}
    parts: dict[str, dict] = {"global": {}, "server": {}, "memory": {}, "same": {}}
    lists: dict[str, list[dict]] = {h: [{} for _ in range(n_sites)]
                                    for h in ("site", "codec", "shared")}
    for key, value in tensors.items():
        head, rest = key.split("/", 1)
        if head in lists:
            i, name = rest.split("/", 1)
            path = tuple(paths.get(key, [name]))
            lists[head][int(i)][path] = value
        else:
            parts[head][tuple(paths.get(key, [rest]))] = value
    parts = {h: unflatten(v, empty.get(h, [])) for h, v in parts.items()}
    lists = {h: [unflatten(s, empty.get(f"{h}/{i}", [])) for i, s in enumerate(states)]
             for h, states in lists.items()}
    for key, j in parts.pop("same").items():
        lists["shared"][int(key)] = lists["shared"][int(j)]
    shared = lists["shared"] if any(lists["shared"]) else []
    ckpt = Checkpoint(round, parts["global"], parts["server"], lists["site"], lists["codec"],
                      shared, {k: int(v) for k, v in parts["memory"].items()})
    return ckpt, history.truncate(round), skipped


def check_config(run_dir: Path, config: dict[str, Any], resume: bool) -> None:
    """Write ``config.json``; when resuming, refuse a run directory of another run (other
    arguments, other data under the same site names) or fewer rounds than it has run.

    Parameters
    ----------
    run_dir : Path
        The run directory (created if missing).
    config : dict
        The run's recorded arguments (``History.config``).
    resume : bool
        Whether the run continues the one in ``run_dir``.
    """
    path = run_dir / "config.json"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"run_dir {str(run_dir)!r} cannot be created: {err.strerror}") from None
    if path.exists():
        old = json.loads(path.read_text())
        if not resume:
            raise FileExistsError(
                f"run_dir {str(run_dir)!r} already holds a run; pass resume=True to continue "
                f"it, or choose an empty directory")
        changed = {k for k in set(old) | set(config)
                   if k not in ("rounds",) and old.get(k) != config.get(k)}
        if changed:
            raise ValueError(
                f"cannot resume: run_dir {str(run_dir)!r} was made with other arguments "
                f"({', '.join(sorted(changed))} differ"
                f"{'; data: the sites hold other images or labels' if 'data' in changed else ''})")
        if (run_dir / "history.json").exists():
            done = History.load(run_dir / "history.json").last_round
            if done > int(config.get("rounds", done)):
                raise ValueError(f"cannot resume: run_dir {str(run_dir)!r} has run {done} "
                                 f"rounds already, more than rounds={config.get('rounds')}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=1, sort_keys=True))
    durable_replace(tmp, path)
