"""A real Flower federation on this machine: a SuperLink and one SuperNode per site, each
an OS process on ``127.0.0.1``, started, watched and always stopped.

:class:`LocalFederation` starts ``flower-superlink`` and one ``flower-supernode`` per
site file (each node is given its own site's file only, as a hospital would hold its
own data), with TLS from certificates made for the run (:mod:`fedlab.deploy.certs`)
unless ``insecure=True``. :meth:`LocalFederation.submit` sends an app with ``flwr run
--stream`` and passes its log lines on. Every process starts in a process group of its
own, and stopping one stops its whole process tree (Flower starts its SuperExec and the
ServerApp and ClientApp processes detached, in sessions of their own, so the tree is
found with ``psutil`` before anything is signalled). :meth:`LocalFederation.stop` runs
on leaving the ``with`` block, on an error and on Ctrl-C; ``processes.json`` lists every
process it started and stopped, and :func:`leftovers` finds any process still running
with this federation's Flower home (a test checks there is none).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .certs import make_certificates

__all__ = ["LocalFederation", "free_port", "leftovers"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str) -> str:
    """The path of a Flower command installed beside this Python."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise RuntimeError(f"{name} not found beside {sys.executable}; install the deploy "
                           'extra: pip install "fedlab-workbench[deploy]"')
    return str(path)


class LocalFederation:
    """SuperLink + SuperNodes on this machine (see the module docstring).

    Parameters
    ----------
    folder : path
        Where the certificates, Flower's home, the logs and ``processes.json`` go.
    site_files : dict
        Site name -> the ``.npz`` file its SuperNode is given.
    insecure : bool
        Plain HTTP between the processes instead of TLS.
    threads : int
        Torch threads of each SuperNode's ClientApp (``OMP_NUM_THREADS``).
    """

    def __init__(self, folder: str | Path, site_files: Mapping[str, str | Path],
                 insecure: bool = False, threads: int = 1) -> None:
        self.folder = Path(folder).resolve()
        self.site_files = {k: Path(v).resolve() for k, v in site_files.items()}
        self.insecure, self.threads = insecure, int(threads)
        self.procs: dict[str, subprocess.Popen] = {}
        self.port: int | None = None
        self.home = self.folder / "flwr-home"
        self.stopped: set[int] = set()

    def __enter__(self) -> LocalFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- processes -----------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ, FLWR_HOME=str(self.home), OMP_NUM_THREADS=str(self.threads),
                   PYTHONUNBUFFERED="1")
        # Flower starts its helpers (flower-superexec, flwr-serverapp) from PATH
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("FEDLAB_SMOKE", None)
        return env

    def _spawn(self, role: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.folder / "logs" / f"{role}.log", "w")  # noqa: SIM115 (kept open)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                cwd=self.folder, start_new_session=True)
        self.procs[role] = proc
        self._record()
        return proc

    def _record(self) -> None:
        rows = {role: {"pid": p.pid, "argv": [str(a) for a in p.args]}
                for role, p in self.procs.items()}
        (self.folder / "processes.json").write_text(json.dumps(
            {"started": rows, "stopped": sorted(self.stopped)}, indent=1))

    def start(self) -> None:
        """Certificates, Flower's connection file, the SuperLink, then the SuperNodes."""
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        tls: list[str] = ["--insecure"]
        node_tls: list[str] = ["--insecure"]
        connection = f'address = "127.0.0.1:{self.port}"\n'
        if self.insecure:
            connection += "insecure = true\n"
        else:
            certs = make_certificates(self.folder / "certs")
            tls = ["--ssl-ca-certfile", str(certs["ca"]), "--ssl-certfile", str(certs["cert"]),
                   "--ssl-keyfile", str(certs["key"])]
            node_tls = ["--root-certificates", str(certs["ca"])]
            connection += f'root-certificates = "{certs["ca"]}"\n'
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "fedlab"\n\n[superlink.fedlab]\n{connection}')
        self._spawn("superlink", [_tool("flower-superlink"), *tls, "--port", str(self.port),
                                  "--disable-runtime-dependency-installation"])
        self._wait_port(self.port, "superlink")
        for name, path in self.site_files.items():
            self._spawn(f"supernode-{name}", [
                _tool("flower-supernode"), *node_tls, "--superlink", f"127.0.0.1:{self.port}",
                "--port", str(free_port()), "--node-config", f'site-file="{path}"'])

    def _wait_port(self, port: int, role: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.procs[role].poll() is not None:
                raise RuntimeError(f"{role} exited at start; see {self.folder}/logs/{role}.log")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{role} did not listen on port {port} within {timeout:g} s")

    def kill_node(self, site: str) -> None:
        """Kill the SuperNode of ``site`` and its ClientApp (SIGKILL: a hospital gone)."""
        self._end([self.procs[f"supernode-{site}"]], grace=0.0)

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process and what it started: SIGTERM, SIGKILL after ``grace`` s."""
        self._end(list(self.procs.values()), grace)

    def _end(self, procs: list[subprocess.Popen], grace: float) -> None:
        import psutil

        tree = []
        for proc in procs:
            try:
                leader = psutil.Process(proc.pid)
                tree += [leader, *leader.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        self.stopped.update(p.pid for p in tree)
        for p in tree:
            _send(p, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        _, alive = psutil.wait_procs(tree, timeout=grace if grace > 0 else 5.0)
        for p in alive:
            _send(p, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5.0)
        for proc in procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        if self.procs:
            self._record()

    # -- a run ---------------------------------------------------------------------------
    def submit(self, app: str | Path, echo: Callable[[str], None] = print,
               on_line: Callable[[str], None] | None = None, deadline_s: float = 3600.0) -> int:
        """``flwr run APP --stream`` on this federation; each log line goes to ``echo``
        and ``on_line``. Returns its exit code; past ``deadline_s`` it is killed."""
        proc = subprocess.Popen([_tool("flwr"), "run", str(app), "fedlab", "--stream"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self._env(), cwd=self.folder, start_new_session=True)
        self.procs["flwr-run"] = proc
        self._record()
        end = time.monotonic() + deadline_s
        assert proc.stdout is not None
        log = open(self.folder / "logs" / "run.log", "w")  # noqa: SIM115 (closed below)
        for line in proc.stdout:
            line = line.rstrip()
            log.write(line + "\n")
            echo(line)
            if on_line is not None:
                on_line(line)
            if "fedlab: wrote" in line or time.monotonic() > end:
                break  # the stream may outlive the run: stop reading once it is written
        log.close()
        self._end([proc], grace=10.0)
        return proc.returncode


def _send(p, sig: int) -> None:
    import psutil

    try:
        p.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


def leftovers(home: str | Path) -> list[int]:
    """Pids of the processes still running with Flower home ``home`` in their
    environment (what a federation started, at any depth); empty once it stopped."""
    import psutil

    home, found = str(Path(home).resolve()), []
    for p in psutil.process_iter():
        try:
            if p.environ().get("FLWR_HOME") == home:
                found.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found
