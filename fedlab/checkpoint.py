"""Round checkpoints of a run directory, in safetensors (never pickle).

A run directory holds ``config.json`` (the run's arguments), ``history.json`` (the
History so far) and ``checkpoints/round_NNNN.safetensors`` with the global model, the
server state of the strategy, every site's own state and codec state, and for the
decentralised topologies every site's shared model and the topology's memory, after
that round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .history import History
from .state import State, Tree, empty_paths, flatten, unflatten

__all__ = ["Checkpoint", "save_round", "load_latest", "check_config"]


def _path(run_dir: Path, round: int) -> Path:
    return run_dir / "checkpoints" / f"round_{round:04d}.safetensors"


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
                                           "empty": json.dumps(empty)})
    tmp.replace(path)
    history.save(run_dir / "history.json")


def load_latest(run_dir: Path, n_sites: int, device: torch.device,
                ) -> tuple[Checkpoint, History] | None:
    """The newest checkpoint whose History is also on disk (and that History, cut to
    its round), or None if there is none."""
    ckpts = sorted((run_dir / "checkpoints").glob("round_*.safetensors"))
    if not ckpts or not (run_dir / "history.json").exists():
        return None
    history = History.load(run_dir / "history.json")
    path = ckpts[-1]
    round = int(path.stem.split("_")[1])
    if history.last_round < round:  # interrupted between the two writes
        path, round = _path(run_dir, history.last_round), history.last_round
        if not path.exists():
            return None
    with safe_open(str(path), framework="pt", device=str(device)) as f:  # one read
        saved = set(f.keys())
        meta = f.metadata() or {}
        order, paths = json.loads(meta.get("order", "[]")), json.loads(meta.get("paths", "{}"))
        empty = {h: [tuple(p) for p in v] for h, v in json.loads(meta.get("empty", "{}")).items()}
        keys = [k for k in order if k in saved] + sorted(saved - set(order))
        tensors = {k: f.get_tensor(k) for k in keys}
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
    return ckpt, history.truncate(round)


def check_config(run_dir: Path, config: dict[str, Any], resume: bool) -> None:
    """Write ``config.json``; when resuming, refuse a run directory of another run."""
    path = run_dir / "config.json"
    run_dir.mkdir(parents=True, exist_ok=True)
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
                f"({', '.join(sorted(changed))} differ)")
    path.write_text(json.dumps(config, indent=1, sort_keys=True))
