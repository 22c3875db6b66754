"""What a finished run leaves in its directory, the same for ``fedlab run`` and a
deployment (``fedlab deploy flower``): ``history.json`` (the History), ``summary.json``
(its summary and the run's setting) and ``model.safetensors`` (the final weights)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_run"]


def write_run(out: str | Path, history, setting: Mapping[str, Any], model: str) -> dict:
    """Write ``history`` to ``out`` (see the module docstring); returns the summary, with
    ``setting`` (dataset, task, partition, ...) added to it."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history.save(out / "history.json")
    summary = history.summary()
    summary.update(setting)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    state = {k: v.detach().cpu().contiguous() for k, v in history.final_state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"model": model})
    return summary
