"""Round checkpoints of a run directory, in safetensors (never pickle).

A run directory holds ``config.json`` (the run's arguments), ``history.json`` (the
History so far) and ``checkpoints/round_NNNN.safetensors`` with the global model, the
server state of the strategy and every site's own state after that round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .history import History

__all__ = ["save_round", "load_latest", "load_codec_states", "check_config"]

State = dict[str, torch.Tensor]


def _path(run_dir: Path, round: int) -> Path:
    return run_dir / "checkpoints" / f"round_{round:04d}.safetensors"


def save_round(run_dir: Path, round: int, global_state: State, server_state: State,
               site_states: list[State], history: History,
               codec_states: list[State] | None = None) -> None:
    """Write the checkpoint of ``round`` and the History, each atomically.

    ``codec_states``: each site's codec state (e.g. error-feedback residuals), if any.
    """
    tensors = {f"global/{k}": v for k, v in global_state.items()}
    tensors.update({f"server/{k}": v for k, v in server_state.items()})
    for i, state in enumerate(site_states):
        tensors.update({f"site/{i}/{k}": v for k, v in state.items()})
    for i, state in enumerate(codec_states or []):
        tensors.update({f"codec/{i}/{k}": v for k, v in state.items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    path = _path(run_dir, round)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"round": str(round)})
    tmp.replace(path)
    history.save(run_dir / "history.json")


def load_latest(run_dir: Path, n_sites: int, device: torch.device,
                ) -> tuple[int, State, State, list[State], History] | None:
    """The newest checkpoint whose History is also on disk, or None if there is none."""
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
    tensors = load_file(str(path), device=str(device))
    parts: dict[str, State] = {"global": {}, "server": {}}
    sites: list[State] = [{} for _ in range(n_sites)]
    for key, value in tensors.items():
        head, rest = key.split("/", 1)
        if head == "site":
            i, name = rest.split("/", 1)
            sites[int(i)][name] = value
        elif head == "codec":
            continue  # read by load_codec_states
        else:
            parts[head][rest] = value
    return round, parts["global"], parts["server"], sites, history.truncate(round)


def load_codec_states(run_dir: Path, round: int, n_sites: int,
                      device: torch.device) -> list[State]:
    """Each site's codec state saved with the checkpoint of ``round`` (empty if none)."""
    states: list[State] = [{} for _ in range(n_sites)]
    for key, value in load_file(str(_path(run_dir, round)), device=str(device)).items():
        head, rest = key.split("/", 1)
        if head == "codec":
            i, name = rest.split("/", 1)
            states[int(i)][name] = value
    return states


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
