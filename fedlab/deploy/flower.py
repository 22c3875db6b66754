"""``fedlab deploy flower``: a run description deployed as a Flower federation.

:func:`deploy_flower` takes the same description as ``fedlab run`` (a dict of its
options, or the parsed command line), splits the data into sites exactly as the
simulation does, writes each site to its own file, writes a Flower app whose
ServerApp and ClientApp are fedlab's (:mod:`fedlab.deploy.flower_app`), starts a
:class:`~fedlab.deploy.launch.LocalFederation` (SuperLink + one SuperNode per site,
TLS), submits the run and stops every process at the end. The run directory then holds
what ``fedlab run`` writes (``history.json``, ``summary.json``, ``model.safetensors``),
plus ``traffic.json`` (every message's size as Flower serialised it), the logs of every
process, ``processes.json`` and ``deploy.json`` (wall times).

``drop={"site-2": 2}`` kills that site's SuperNode once round 2 has started — a
hospital that goes offline mid-run; the server waits ``timeout`` seconds for it (or
``straggler_s`` after the first reply), then goes on without it, and the History's
events say so.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["deploy_flower", "write_app"]

APP_MODULE = "fedlab_deployment"


def write_app(folder: str | Path, run_config: Mapping[str, Any]) -> Path:
    """A Flower app folder whose components are fedlab's ServerApp and ClientApp, with
    ``run_config`` as its ``[tool.flwr.app.config]``."""
    import tomli_w

    folder = Path(folder)
    pkg = folder / APP_MODULE
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('"""fedlab\'s Flower app (see fedlab.deploy)."""\n')
    for half in ("server", "client"):  # an assignment: Flower checks the name statically
        (pkg / f"{half}.py").write_text(f"from fedlab.deploy import flower_app\n\n"
                                        f"app = flower_app.{half}_app\n")
    project = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": "fedlab-deployment", "version": "1.0.0", "license": "Apache-2.0",
                    "description": "a fedlab run on Flower", "dependencies": []},
        "tool": {"flwr": {"app": {
            "publisher": "fedlab",
            "components": {"serverapp": f"{APP_MODULE}.server:app",
                           "clientapp": f"{APP_MODULE}.client:app"},
            "config": dict(run_config)}}}}
    (folder / "pyproject.toml").write_text(tomli_w.dumps(project))
    return folder


def deploy_flower(options: Mapping[str, Any] | Any, out: str | Path, *, insecure: bool = False,
                  timeout: float = 120.0, straggler_s: float | None = None,
                  drop: Mapping[str, int] | None = None,
                  threads: int = 1, echo: Callable[[str], None] | None = print):
    """Run the described run on a local Flower federation; its History.

    Parameters
    ----------
    options : dict or argparse.Namespace
        The run description (``fedlab run``'s options; see :mod:`fedlab.runspec`).
    out : path
        The run directory (see the module docstring).
    insecure : bool
        Plain HTTP instead of TLS between the processes.
    timeout : float
        Seconds the server waits for a round's replies; a node silent that long drops
        out of the round.
    straggler_s : float, optional
        Once one site replied, seconds the server waits for the others before they drop
        out of the round (None: ``timeout`` only).
    drop : dict, optional
        Site name -> the round at whose start its SuperNode is killed.
    threads : int
        Torch threads per SuperNode.
    echo : callable or None
        Gets every log line of the run (``None``: quiet).
    """
    from ..history import History
    from ..runspec import describe, prepare
    from .flower_app import deployable
    from .launch import LocalFederation
    from .sites import export_site

    out = Path(out).resolve()
    run = prepare(options)
    deployable(run.options, run.strategy)
    names = [s.name for s in run.sites]
    unknown = sorted(set(drop or {}) - set(names))
    if unknown:
        raise ValueError(f"drop names unknown sites {unknown}; the sites are {names}")
    for old in ("history.json", "summary.json", "model.safetensors", "traffic.json"):
        (out / old).unlink(missing_ok=True)
    files = {s.name: export_site(s, out / "sites" / f"{s.name}.npz") for s in run.sites}
    app = write_app(out / "app", {
        "fedlab-run": json.dumps(describe(run.options)), "fedlab-sites": json.dumps(names),
        "fedlab-out": str(out), "fedlab-timeout": float(timeout),
        "fedlab-straggler": float(straggler_s or 0.0),
        "fedlab-summary": json.dumps(run.setting())})
    pending, say = dict(drop or {}), echo or (lambda line: None)
    t0 = time.perf_counter()
    with LocalFederation(out, files, insecure=insecure, threads=threads) as fed:
        started = time.perf_counter()

        def watch(line: str) -> None:
            m = re.search(r"fedlab: round (\d+)/", line)
            done = int(m.group(1)) if m else (0 if "sites connected" in line else None)
            for site, rnd in list(pending.items()):
                if done is not None and done + 1 >= rnd:
                    fed.kill_node(site)
                    say(f"fedlab deploy: killed the SuperNode of {site} (round {rnd})")
                    del pending[site]

        code = fed.submit(app, echo=say, on_line=watch,
                          deadline_s=300.0 + (run.options.rounds + 2) * timeout)
    wall = time.perf_counter() - t0
    if not (out / "history.json").exists():
        lines = (out / "logs" / "run.log").read_text().splitlines()
        errors = [x for x in lines if "Error" in x or "error" in x][-3:]
        raise RuntimeError(f"the deployed run wrote no History (flwr run exited with {code})"
                           + (": " + " | ".join(errors) if errors else "")
                           + f"; the run's log: {out}/logs/run.log, the processes' logs "
                           f"beside it")
    from safetensors.torch import load_file

    history = History.load(out / "history.json")
    history.final_state = load_file(out / "model.safetensors")
    (out / "deploy.json").write_text(json.dumps({
        "wall_s": wall, "start_s": started - t0, "sites": names, "tls": not insecure,
        "server_run_s": history.config.get("deployment", {}).get("wall_s")}, indent=1))
    return history
