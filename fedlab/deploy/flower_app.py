"""The Flower app of a fedlab run: a ``ServerApp`` and a ``ClientApp`` (flwr Message API).

Neither half holds an algorithm of its own. The **ServerApp** runs :func:`fedlab.run` —
fedlab's server half, unchanged — over :class:`~fedlab.deploy.sites.RemoteSite` views
of the sites and with :class:`~fedlab.deploy.grid.FlowerGrid` as its executor, then
writes the same ``history.json``, ``summary.json`` and ``model.safetensors`` as
``fedlab run``. The **ClientApp** answers three kinds of message at each SuperNode, on
the one site file its node was given (node config ``site-file``):

- ``query``: the site's summary (:func:`~fedlab.deploy.sites.site_info`), once;
- ``train``: :func:`fedlab.executors.run_site_task` — the site task the simulation
  runs — rebuilt from the run description and the message, its own state kept in the
  node's ``context.state``;
- ``evaluate``: the model it is sent, scored on one split of its data.

Both halves read the run description (the options of ``fedlab run``) from the run
config key ``fedlab-run``; :mod:`fedlab.deploy.launch` writes the app that loads them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from .records import record_state, state_record, update_record

__all__ = ["client_app", "server_app", "deployable"]

server_app = ServerApp()
client_app = ClientApp()


def _options(context: Context):
    from ..runspec import resolve_options

    return resolve_options(json.loads(str(context.run_config["fedlab-run"])))


def deployable(args, strategy) -> None:
    """Refuse, with the reason, a run this deployment cannot run as it is simulated."""
    from ..strategies.base import Strategy

    why = []
    if args.topology != "star":
        why.append(f"topology {args.topology!r} (a deployment has one server: star)")
    if getattr(strategy, "pooled", False):
        why.append("a centralised baseline (it pools every site's data)")
    if type(strategy).eval_state is not Strategy.eval_state:
        why.append(f"{strategy.label} scores each site with a model of its own")
    if (args.uplink or "none") != "none" or (args.downlink or "none") != "none":
        why.append("codecs (--uplink/--downlink): messages travel as float32 arrays")
    if args.network or args.availability:
        why.append("a simulated network or availability (the deployment has a real one)")
    if why:
        raise ValueError("fedlab deploy cannot run " + "; ".join(why))


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    from ..options import config_keywords, strategy_from
    from ..run_outputs import write_run
    from ..simulation import run
    from .grid import FlowerGrid
    from .sites import RemoteSite

    cfg = context.run_config
    args, names = _options(context), json.loads(str(cfg["fedlab-sites"]))
    timeout, out = float(cfg["fedlab-timeout"]), Path(str(cfg["fedlab-out"]))
    straggler = float(cfg["fedlab-straggler"]) if float(cfg["fedlab-straggler"]) > 0 else None
    strategy = strategy_from(args.strategy, args.param, args.combine)
    deployable(args, strategy)
    nodes = _wait_for_nodes(grid, len(names), timeout)
    info = _handshake(grid, nodes, max(timeout, 180.0))  # the first ClientApps start slowly
    missing = sorted(set(names) - set(info))
    if missing:
        raise RuntimeError(f"no SuperNode holds site(s) {missing}; the nodes hold "
                           f"{sorted(info)}")
    sites = [RemoteSite(info[n][1]) for n in names]
    executor = FlowerGrid(grid, {n: info[n][0] for n in names},
                          {s.name: s.n_examples for s in sites}, timeout=timeout,
                          straggler_s=straggler)
    print(f"fedlab: {len(sites)} sites connected: {names}", flush=True)

    def report(history, rnd) -> None:
        acc = history.final("accuracy")
        print(f"fedlab: round {rnd}/{args.rounds} done, accuracy {acc:.4f}", flush=True)

    t0 = time.perf_counter()
    history = run(sites, model=args.model or "cnn", strategy=strategy, rounds=args.rounds,
                  seed=args.seed, executor=executor, device="cpu", progress=False,
                  callbacks=[report], **config_keywords(args))
    history.config["deployment"] = {"engine": "flower", "global_metrics": "sample-weighted "
                                    "mean of the sites' metrics", "wall_s":
                                    time.perf_counter() - t0}
    summary = json.loads(str(cfg.get("fedlab-summary", "{}")))
    write_run(out, history, summary, args.model or "cnn")
    (out / "traffic.json").write_text(json.dumps({"messages": executor.traffic,
                                                  "lost": executor.lost}, indent=1))
    print(f"fedlab: wrote {out}/history.json", flush=True)


def _wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    end = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n:
            return nodes
        if time.monotonic() > end:
            raise RuntimeError(f"only {len(nodes)} of {n} SuperNodes connected within "
                               f"{timeout:g} s")
        time.sleep(0.2)


def _handshake(grid: Grid, nodes: list[int], timeout: float) -> dict[str, tuple[int, dict]]:
    """Site name -> (node id, the site's summary), from a ``query`` to every node."""
    ask = [Message(content=RecordDict({"task": ConfigRecord({"json": "{}"})}),
                   dst_node_id=n, message_type="query") for n in nodes]
    found = {}
    for reply in grid.send_and_receive(ask, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"SuperNode {reply.metadata.src_node_id} failed to describe "
                               f"its site: {reply.error.reason}")
        info = json.loads(str(reply.content["site"]["json"]))
        found[info["name"]] = (reply.metadata.src_node_id, info)
    return found


def _site(context: Context):
    from .sites import load_site

    if "site-file" not in context.node_config:
        raise ValueError("this SuperNode has no site: start it with --node-config "
                         "'site-file=\"PATH.npz\"'")
    return load_site(str(context.node_config["site-file"]))


def _reply(msg: Message, content: RecordDict) -> Message:
    return Message(content=content, reply_to=msg)


@client_app.query()
def client_query(msg: Message, context: Context) -> Message:
    from .sites import site_info

    info = site_info(_site(context))
    return _reply(msg, RecordDict({"site": ConfigRecord({"json": json.dumps(info)})}))


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    from ..executors.task import SiteTask, run_site_task
    from ..models import ModelSpec
    from ..options import strategy_from
    from ..state import clone
    from ..training import TrainConfig

    args, site = _options(context), _site(context)
    task = json.loads(str(msg.content["task"]["json"]))
    if task["site"] != site.name:
        raise ValueError(f"a task for site {task['site']!r} reached the node of {site.name!r}")
    spec = ModelSpec.for_sites(args.model or "cnn", [site])
    net = spec.build(args.seed)  # the common initial model, which every node can build
    strategy = strategy_from(args.strategy, args.param, args.combine).bind(
        net, task["examples"])
    if "fedlab-site-state" in context.state:  # kept by this node since its first round
        own = record_state(context.state["fedlab-site-state"])
    else:
        own = strategy.init_site_state(clone(net.state_dict()))
    result = run_site_task(SiteTask(
        strategy, spec, site, task["index"], task["round"], task["seed"],
        record_state(msg.content["received"]), own, TrainConfig(**task["config"]),
        task["device"]), net)
    context.state["fedlab-site-state"] = state_record(result.site_state)
    return _reply(msg, update_record(result.update))


@client_app.evaluate()
def client_evaluate(msg: Message, context: Context) -> Message:
    from ..engine.evaluate import score_sites
    from ..models import ModelSpec

    args, site = _options(context), _site(context)
    task = json.loads(str(msg.content["task"]["json"]))
    net = ModelSpec.for_sites(args.model or "cnn", [site]).build()
    (_, metrics), _ = score_sites(net, [record_state(msg.content["state"])], [site],
                                  task["split"], "cpu")
    text = json.dumps(metrics, default=float)
    return _reply(msg, RecordDict({"metrics": ConfigRecord({"json": text})}))
