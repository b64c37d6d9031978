"""Beyond one machine: the load run's workers as Ray actors on a Ray cluster
(``tunnelswarm run ... --ray auto|ADDRESS``; ``pip install 'tunnelswarm[ray]'``).

Theory of operation
-------------------
Ray only *places* the workers and *carries* their messages; everything else is the
coordinator of :mod:`tunnelswarm.fleet.workers` (the plan split, the ready/go start, the
per-second HDR deltas merged by :class:`~tunnelswarm.fleet.stats.StatsMerger`, stop and
lost-worker logic, the result) and the worker body (:func:`~tunnelswarm.fleet.workers.
_worker_main`: one :class:`~tunnelswarm.fleet.engine.LoadEngine` in a Trio run of its
own). :class:`RayLauncher` is that coordinator's :class:`~tunnelswarm.fleet.workers.
Launcher` for a cluster, in place of the local processes.

1. **Connecting** (:meth:`RayLauncher.connect`): ``--ray ADDRESS`` joins that cluster
   (``ray start --head`` on one host, ``ray start --address HEAD:6379`` on the others);
   ``--ray auto`` joins the cluster ``RAY_ADDRESS`` or this machine's ``ray start``
   names, or else starts a local one for the run. The driver (this process) needs no
   CPU of the cluster.
2. **Placing** (:meth:`RayLauncher.open`): one placement group, one bundle of
   ``{"CPU": 1}`` per worker. ``--ray-placement spread`` (default): one worker per node
   (``STRICT_SPREAD``; more workers than nodes: ``SPREAD``, best effort); ``pack``:
   as few nodes as possible (``PACK``), one worker per CPU. ``--ray-workers N``
   (default: one per node with ``spread``, one per CPU of the cluster with ``pack``; at
   most one per client). The group must be placed within :data:`START_TIMEOUT` s, or
   the run is not made (exit 2, with the cluster's CPUs and nodes in the message).
3. **A worker** is one :class:`_WorkerActor` (a threaded actor, ``max_concurrency=4``)
   in its bundle. ``start`` runs :func:`_worker_main` in a thread of the actor's
   process, with ``out`` the actor's outbox (a lock-guarded deque) and ``ctrl`` the read
   end of a pipe inside the actor process, written by the actor's ``tell`` -- so the
   worker body and its message protocol are the local ones, byte for byte. The
   coordinator long-polls every actor's ``drain`` (returns at once when there are
   messages, else after 0.25 s) and hands the messages to the shared loop.
4. **Sources per node** (``--ray-source SELECTOR=POOL``, repeatable): the workers on a
   node whose IP address, host name, node-id prefix or custom resource name (``ray
   start --resources '{"pool_a": 1}'``) is ``SELECTOR`` bind their sessions' source
   addresses from ``POOL`` (checked on that node: loopback or the node's own
   addresses); a node's workers take turns through its pool, so its sessions use every
   address of it. Nodes no selector matches use ``--source`` (the same pool
   everywhere) or the kernel's choice.
5. **A lost worker** (its actor died: node gone, process killed, ``ray.kill``) is
   reported like a local one (a line, ``lost_workers``, ``workers_lost``; its last stats
   kept, its levels zero from then on). ``--ray-on-lost replace``: a new actor, in the
   same bundle, runs the rest of its share (:func:`~tunnelswarm.fleet.workers.
   replacement_share`: closed model, the same slots ramped up again and held until the
   plan ends; open model, the rest of the arrival window at its rate); ``count``
   (default): nothing more.

Where each worker ran (node id and IP, pid) and its own counts are in the result's
``worker_details`` (the JSON summary) and the report's ``run.workers``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from tunnelswarm.errors import ConfigError, TunnelswarmError
from tunnelswarm.fleet.engine import LoadSpec, RunSetupError
from tunnelswarm.fleet.plan import ClosedModel, SourcePool
from tunnelswarm.fleet.ray_options import DRAIN_WAIT, NodeSourcePool, RayOptions
from tunnelswarm.fleet.workers import (
    START_TIMEOUT,
    Launcher,
    Message,
    Share,
    WorkerLink,
    _worker_main,
)

#: Ray has type hints of its own, not complete ones: it is used through ``Any``
ray: Any = importlib.import_module("ray")

__all__ = ["RayLauncher"]


# ------------------------------------------------------------------ the actor
class _WorkerActor:
    """A Ray actor holding one worker (module docstring, 3)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._box: deque[Message] = deque()
        self._ctrl_r, self._ctrl_w = multiprocessing.Pipe(duplex=False)
        self._thread: threading.Thread | None = None

    def start(
        self, share: Share, mock: tuple[str, str] | None, events: bool, verbose: bool
    ) -> dict[str, object]:
        """Start the worker; where it runs. A per-node pool is checked here, on its node."""
        sources = share.spec.sources
        if isinstance(sources, NodeSourcePool):
            from tunnelswarm.fleet.cli import local_addresses

            try:
                SourcePool.parse(sources.text, local=local_addresses(), what="--ray-source")
            except ConfigError as e:
                raise ConfigError(f"on host {socket.gethostname()}: {e}") from None
        self._thread = threading.Thread(
            target=_worker_main,
            args=(share, mock, events, verbose, self._ctrl_r, self),
            name=f"tunnelswarm-worker-{share.k}",
            daemon=True,
        )
        self._thread.start()
        ctx = ray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    def send(self, obj: Message) -> None:
        """The worker's ``out.send`` (from its thread)."""
        with self._cond:
            self._box.append(obj)
            self._cond.notify_all()

    def tell(self, msg: str) -> None:
        self._ctrl_w.send(msg)

    def drain(self, wait: float = DRAIN_WAIT) -> tuple[list[Message], bool]:
        """The messages so far (waiting up to ``wait`` s for one), and whether the
        worker's thread still runs (read first: a False comes with its last messages)."""
        alive = self._thread is not None and self._thread.is_alive()
        with self._cond:
            if not self._box and alive:
                self._cond.wait(wait)
            items = list(self._box)
            self._box.clear()
        return items, alive or bool(items)


# ------------------------------------------------------------------ the link
@dataclass(eq=False)
class _RayLink(WorkerLink):
    actor: Any
    pending: Any
    node_id: str = ""
    node_ip: str = ""
    sources: str | None = None
    info: dict[str, object] = field(default_factory=dict)
    started: bool = False
    ended: bool = False
    why: str = ""

    def __post_init__(self) -> None:
        self.where = _node_name(self.node_ip, self.node_id)

    def facts(self) -> dict[str, object]:
        return {
            "where": self.where,
            "node_id": self.node_id,
            "node_ip": self.node_ip,
            "host": self.info.get("host"),
            "pid": self.info.get("pid"),
            "sources": self.sources,
        }

    def take(self) -> tuple[list[Message], bool]:
        if self.ended:
            return [], True
        ready, _ = ray.wait([self.pending], timeout=0)
        if not ready:
            return [], False
        exc = ray.exceptions
        try:
            value = ray.get(self.pending)
        except exc.RayActorError as e:
            return self._end(f"its Ray actor died on {self.where}: {_short(e)}")
        except exc.RayTaskError as e:
            cause = e.cause if isinstance(e.cause, BaseException) else e
            text = str(cause) if isinstance(cause, TunnelswarmError) else _short(cause)
            self._end(f"failed: {text}")
            return [("error", text, not self.started)], True
        except exc.RayError as e:
            return self._end(f"Ray lost it on {self.where}: {_short(e)}")
        if not self.started:
            self.started = True
            self.info = dict(value)
            self.node_id = str(value["node_id"])
            self.node_ip = str(value["node_ip"])
            self.where = _node_name(self.node_ip, self.node_id, value.get("pid"))
            self.pending = self.actor.drain.remote()
            return [], False
        msgs, alive = value
        if alive:
            self.pending = self.actor.drain.remote()
            return list(msgs), False
        self.ended = True
        self.why = f"its worker thread on {self.where} ended without its final stats"
        return list(msgs), True

    def _end(self, why: str) -> tuple[list[Message], bool]:
        self.ended, self.why = True, why
        return [], True

    def tell(self, msg: str) -> None:
        with contextlib.suppress(Exception):
            self.actor.tell.remote(msg)

    def ended_why(self) -> str:
        return self.why or "its Ray actor is gone"

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)

    def close(self) -> None:
        self.kill()


def _node_name(ip: str, node_id: str, pid: object = None) -> str:
    text = f"node {ip or '?'} ({node_id[:8] or '?'})"
    return text + (f" pid {pid}" if pid is not None else "")


def _short(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------ the launcher
@dataclass(frozen=True)
class _Node:
    node_id: str
    ip: str
    host: str
    cpus: float
    resources: frozenset[str]

    def matches(self, selector: str) -> bool:
        return (
            selector in (self.ip, self.host)
            or (len(selector) >= 6 and self.node_id.startswith(selector))
            or selector in self.resources
        )


class RayLauncher(Launcher):
    """The workers as actors on a Ray cluster (module docstring)."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._connected = False
        self._pg: Any = None
        self._strategy = ""
        self._actor_cls: Any = None
        #: bundle (worker k) → node id, once the group is placed
        self._bundle_node: dict[int, str] = {}
        self._nodes: dict[str, _Node] = {}

    # ---------------------------------------------------------------- cluster
    def connect(self) -> None:
        """Join the cluster (or start a local one with ``auto``); :class:`RunSetupError`
        when there is none to join."""
        address = None if self.options.address == "auto" else self.options.address
        try:
            ray.init(
                address=address,
                namespace="tunnelswarm",
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=True,
            )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            raise RunSetupError(
                f"--ray {self.options.address}: cannot join the Ray cluster: {_short(e)}"
            ) from None
        self._connected = True
        self._nodes = self._alive_nodes()
        if not self._nodes:
            raise RunSetupError(f"--ray {self.options.address}: the cluster has no live node")

    def _alive_nodes(self) -> dict[str, _Node]:
        nodes = {}
        for n in ray.nodes():
            if not n.get("Alive"):
                continue
            res = n.get("Resources", {})
            nodes[n["NodeID"]] = _Node(
                node_id=n["NodeID"],
                ip=n.get("NodeManagerAddress", ""),
                host=n.get("NodeManagerHostname", ""),
                cpus=float(res.get("CPU", 0.0)),
                resources=frozenset(res),
            )
        return nodes

    def default_workers(self, spec: LoadSpec) -> int:
        """One per node (spread) or per CPU (pack) of the cluster; at most one per
        client of a closed model."""
        nodes = [n for n in self._nodes.values() if n.cpus >= 1]
        if self.options.placement == "spread":
            n = len(nodes)
        else:
            n = sum(int(node.cpus) for node in nodes)
        if isinstance(spec.model, ClosedModel):
            n = min(n, spec.model.concurrency)
        return max(1, n)

    # ---------------------------------------------------------------- Launcher
    def describe(self, n: int) -> str:
        return f"{n} Ray worker actor(s)"

    def open(self, shares: list[Share]) -> None:
        from ray.util.placement_group import (
            placement_group,
            placement_group_table,
        )

        n = len(shares)
        nodes = len([x for x in self._nodes.values() if x.cpus >= 1])
        if self.options.placement == "pack":
            self._strategy = "PACK"
        else:
            self._strategy = "STRICT_SPREAD" if n <= nodes else "SPREAD"
        self._pg = placement_group([{"CPU": 1.0}] * n, strategy=self._strategy)
        try:
            ray.get(self._pg.ready(), timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            cpus = sum(x.cpus for x in self._nodes.values())
            raise RunSetupError(
                f"--ray: the cluster could not place {n} worker(s) ({self._strategy}, one"
                f" CPU each) within {START_TIMEOUT:g} s: it has {cpus:g} CPU(s) on"
                f" {len(self._nodes)} node(s); give fewer --ray-workers or another"
                " --ray-placement"
            ) from None
        table = placement_group_table(self._pg)
        self._bundle_node = {int(k): str(v) for k, v in table["bundles_to_node_id"].items()}
        self._nodes = self._alive_nodes()
        self._actor_cls = ray.remote(num_cpus=1, max_concurrency=4)(_WorkerActor)

    def _sources(self, share: Share, node_id: str) -> SourcePool | None:
        node = self._nodes.get(node_id)
        if node is None:
            return share.spec.sources
        for selector, pool in self.options.sources:
            if node.matches(selector):
                mine = sorted(k for k, v in self._bundle_node.items() if v == node_id)
                position = mine.index(share.k) if share.k in mine else 0
                return NodeSourcePool(
                    pool,
                    base=share.index_base,
                    stride=share.index_stride,
                    position=position,
                    spread=max(1, len(mine)),
                )
        return share.spec.sources

    def launch(
        self, share: Share, mock: tuple[str, str] | None, events: bool, verbose: bool
    ) -> WorkerLink:
        from ray.util.scheduling_strategies import (
            PlacementGroupSchedulingStrategy,
        )

        node_id = self._bundle_node.get(share.k, "")
        sources = self._sources(share, node_id)
        if sources is not share.spec.sources:
            share = replace(share, spec=replace(share.spec, sources=sources))
        strategy = PlacementGroupSchedulingStrategy(
            placement_group=self._pg, placement_group_bundle_index=share.k
        )
        actor = self._actor_cls.options(scheduling_strategy=strategy).remote()
        node = self._nodes.get(node_id)
        return _RayLink(
            actor,
            actor.start.remote(share, mock, events, verbose),
            node_id=node_id,
            node_ip="" if node is None else node.ip,
            sources=None if sources is None else sources.text,
        )

    def wait(self, links: list[WorkerLink], extra: list[Connection], timeout: float) -> None:
        refs = [link.pending for link in links if isinstance(link, _RayLink) and not link.ended]
        if refs:
            ray.wait(refs, num_returns=1, timeout=timeout)
        else:
            time.sleep(timeout)

    def notes(self, mock: bool) -> list[str]:
        nodes = self._nodes
        cpus = sum(n.cpus for n in nodes.values())
        lines = [
            f"Ray cluster {self.options.address}: {len(nodes)} node(s), {cpus:g} CPU(s);"
            f" placement {self.options.placement} ({self._strategy}), lost workers:"
            f" {self.options.on_lost}"
        ]
        per_node: dict[str, list[int]] = {}
        for k, node_id in sorted(self._bundle_node.items()):
            per_node.setdefault(node_id, []).append(k)
        for node_id, ks in per_node.items():
            node = nodes.get(node_id)
            ip = "?" if node is None else node.ip
            lines.append(f"  {_node_name(ip, node_id)}: worker(s) {', '.join(str(k) for k in ks)}")
        if mock:
            here = ray.util.get_node_ip_address()
            far = sorted({nodes[n].ip for n in self._bundle_node.values() if n in nodes} - {here})
            if far:
                lines.append(
                    f"  warning: the in-process mock ASA listens on this host ({here}) only;"
                    f" workers on {', '.join(far)} cannot reach it: give --headend (e.g. a"
                    " `tunnelswarm mock-asa --listen 0.0.0.0` on a lab host)"
                )
        return lines

    def close(self) -> None:
        try:
            if self._pg is not None:
                from ray.util.placement_group import (
                    remove_placement_group,
                )

                with contextlib.suppress(Exception):
                    remove_placement_group(self._pg)
                self._pg = None
        finally:
            if self._connected:
                self._connected = False
                with contextlib.suppress(Exception):
                    ray.shutdown()
