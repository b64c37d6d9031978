"""All cores: one load run split over worker processes, one Trio loop each, merged into
one view and one report (``tunnelswarm run --workers N``).

Theory of operation
-------------------
:class:`Coordinator` runs one :class:`~tunnelswarm.fleet.engine.LoadSpec` with N worker
processes (``multiprocessing``, the "spawn" context). It does no load itself:

1. **Headend.** Against ``--headend`` every worker connects to it (each makes its own
   preflight). Without one the coordinator starts the embedded mock ASA in a process of
   its own (real loopback sockets, a free port) and hands its URL and pin to the workers;
   its syslog lines come back to the coordinator's ``on_syslog``. Virtual time is one
   Trio run only: :class:`ConfigError` for more than one worker.
2. **The plan split** (:func:`split_spec`). Worker ``k`` of ``N`` runs the global
   sessions ``k + N*i`` (its engine's ``index_base``/``index_stride``: credentials,
   source addresses and client seeds are those of the global session number).
   *Closed model*: worker ``k`` has the slots ``k, k+N, ...`` -- its own
   :class:`ClosedModel` with ``ceil``/``floor`` of ``concurrency / N`` slots, ramp rates
   divided by N and its plan starting ``k / rate`` later, so the slots start at the
   times one process would start them; its hold is stretched so that every worker's hold
   ends when the single plan's does (a ramp-down is approximate: within ``N-1`` slots).
   *Open model*: each worker has ``rate / N`` arrivals (constant arrivals: worker ``k``'s
   shifted by ``k / rate``, so the merged arrivals are the single plan's; Poisson: a seed
   of its own), ``max_concurrency`` split like the slots. A worker with no share (more
   workers than slots) is not started. The workers start their plans together: each says
   it is ready, the coordinator says go.
3. **The wire.** Each worker sends, with the end of every second, a delta of its stats
   (``RunStats.to_wire`` of the seconds that changed: a message that does not grow with
   the run), its timeline entries (when asked), its outages and its engine's lines, over
   a pipe; at the end its whole final stats and counts. The coordinator keeps each
   worker's stats in a :class:`~tunnelswarm.fleet.stats.StatsMerger` and, when every
   running worker has reported a second, hands the merge of all of them (re-merged only
   where something changed) to ``on_second`` (the live console, ``--json-lines``, the
   report's checkpoints).
   :meth:`Coordinator.result` is one :class:`LoadResult` of the merged stats (thresholds
   are evaluated on it), with ``workers`` and ``lost_workers``.
4. **Stopping.** SIGINT/SIGTERM to the coordinator (or :meth:`Coordinator.interrupt`):
   every worker is told to stop (its engine's interrupt: live sessions close within
   ``stop_grace``); a second signal tells them again (close at once). A worker that has
   not sent its final stats ``stop_grace + STOP_EXTRA`` seconds after the stop is killed
   and counted lost. The workers ignore SIGINT themselves (a terminal's Ctrl-C reaches
   the whole process group; the coordinator decides).
5. **A worker that dies** (killed, crashed, broke its pipe) is reported -- a line, the
   summary's ``lost_workers`` and the ``workers_lost`` metric -- with its last stats kept
   in the merge (its gauges, e.g. ``sessions_up``, zero from its next second: its
   sessions went with it); the others run on. With ``on_lost="replace"`` a new worker
   runs the rest of its share (:func:`replacement_share`; its seconds shifted into the
   run's). Only when no worker could make the run at all (e.g. every preflight failed)
   is the run not made (:class:`RunSetupError`).
6. **Transports.** The worker body (:func:`_worker_main`) and its messages are one code
   path; a :class:`Launcher` only places workers and carries their messages, each
   worker behind a :class:`WorkerLink` (``take``/``tell``/``kill``/``close``).
   :class:`ProcessLauncher` (the default): processes on this machine and two pipes each.
   :class:`tunnelswarm.fleet.ray_workers.RayLauncher` (``--ray``): Ray actors on a
   cluster, which run the same :func:`_worker_main` in a thread. Each worker's own
   facts (where it ran, its own counts) are in :meth:`Coordinator.worker_facts` and the
   result's ``worker_details``.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final, Literal, Protocol

import trio

from tunnelswarm.asa.certs import Identity
from tunnelswarm.asa.server import MockAsaConfig, serve_mock_asa
from tunnelswarm.asa.syslog import CallbackSink
from tunnelswarm.errors import ConfigError, TunnelswarmError
from tunnelswarm.fleet.engine import (
    CLIENT_LOGGER,
    SYSLOG_LEVEL,
    LoadEngine,
    LoadResult,
    LoadSpec,
    RunSetupError,
    _leaf,
    load_mock_config,
)
from tunnelswarm.fleet.faults import Fault, Outage
from tunnelswarm.fleet.plan import ClosedModel, OpenModel
from tunnelswarm.fleet.stats import RunStats, StatsMerger
from tunnelswarm.scenario.run import TimelineEntry

__all__ = [
    "STOP_EXTRA",
    "CoordinatedResult",
    "Coordinator",
    "Launcher",
    "LostPolicy",
    "ProcessLauncher",
    "Sender",
    "Share",
    "WorkerLink",
    "default_workers",
    "replacement_share",
    "split_spec",
]

#: seconds past ``stop_grace`` a stopped worker has to send its final stats
STOP_EXTRA: Final = 10.0
#: seconds past the plan's end (and the setup timeout) after which a worker that has not
#: ended is stopped, then killed: a hung worker never hangs the run
OVERDUE: Final = 30.0
#: seconds the processes have to start (import, Trio up) and say they are ready
START_TIMEOUT: Final = 60.0
#: how often a worker flushes its batched timeline entries / the mock its syslog lines
FLUSH_EVERY: Final = 0.25


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ------------------------------------------------------------------ the split
@dataclass(frozen=True)
class Share:
    """Worker ``k``'s part of a run: its spec (model and seed its own) and where its
    sessions sit in the global numbering (``index_base + index_stride * i``)."""

    k: int
    spec: LoadSpec
    index_base: int
    index_stride: int
    plan_offset: float


def _part(total: int, k: int, n: int) -> int:
    """How many of ``0..total-1`` are ``k`` modulo ``n``."""
    return len(range(k, total, n))


def split_spec(spec: LoadSpec, workers: int) -> list[Share]:
    """``spec`` split over at most ``workers`` workers (module docstring); pure."""
    if workers < 1:
        raise ConfigError(f"--workers: must be at least 1, got {workers}")
    m = spec.model
    shares: list[Share] = []
    if isinstance(m, ClosedModel):
        n = min(workers, m.concurrency)
        rate = m.ramp_up_rate
        for k in range(n):
            c_k = _part(m.concurrency, k, n)
            last = k + n * (c_k - 1)  # the worker's last slot, globally
            offset = 0.0 if rate is None else k / rate
            hold = m.hold + (0.0 if rate is None else (m.concurrency - 1 - last) / rate)
            model = replace(
                m,
                concurrency=c_k,
                ramp_up_rate=None if rate is None else rate / n,
                hold=hold,
                ramp_down_rate=None if m.ramp_down_rate is None else m.ramp_down_rate / n,
            )
            shares.append(Share(k, _worker_spec(spec, model, k), k, n, offset))
        return shares
    n = workers if m.max_concurrency is None else min(workers, m.max_concurrency)
    for k in range(n):
        offset = k / m.arrival_rate if m.arrivals == "constant" else 0.0
        duration = m.duration - offset
        if duration <= 0:
            break  # fewer arrivals than workers: this one and the rest have none
        cap = None if m.max_concurrency is None else _part(m.max_concurrency, k, n)
        open_model = replace(
            m, arrival_rate=m.arrival_rate / n, duration=duration, max_concurrency=cap
        )
        shares.append(Share(k, _worker_spec(spec, open_model, k), k, n, offset))
    return shares


def _worker_spec(spec: LoadSpec, model: ClosedModel | OpenModel, k: int) -> LoadSpec:
    return replace(spec, model=model, seed=spec.seed + 1_000_003 * k)


# ------------------------------------------------------------------ the processes
def _quiet_sigint() -> None:
    # a terminal's Ctrl-C goes to the whole process group: the coordinator decides
    with contextlib.suppress(ValueError):  # not the main thread (a Ray actor's thread)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class Sender(Protocol):
    """Where a worker's messages go: a pipe's end, or a Ray actor's outbox."""

    def send(self, obj: Any) -> None: ...


@dataclass
class _Outbox:
    """Batched messages to the coordinator (timeline entries, syslog lines)."""

    conn: Sender
    kind: str
    items: list[Any] = field(default_factory=list)

    def add(self, item: Any) -> None:
        self.items.append(item)

    def flush(self) -> None:
        if self.items:
            items, self.items = self.items, []
            self.conn.send((self.kind, items))

    async def run(self) -> None:
        while True:
            await trio.sleep(FLUSH_EVERY)
            self.flush()


def _mock_main(
    asa_config: str | None,
    syslog: bool,
    ctrl: Connection,
    out: Connection,
    port: int = 0,
    identity: Identity | None = None,
) -> None:
    """The embedded mock ASA's process: ``("ready", url, pin, version, identity)`` once
    it listens; stops on any message from the coordinator (or when its pipe closes).
    ``port``/``identity``: a restart comes back on the same port with the same
    certificate."""
    _quiet_sigint()
    try:
        trio.run(_mock_serve, asa_config, syslog, ctrl, out, port, identity)
    except BaseException as e:  # reported to the coordinator
        leaf = _leaf(e) if isinstance(e, BaseExceptionGroup) else e
        with contextlib.suppress(OSError):
            out.send(("error", " ".join(f"{leaf}".split()) or type(leaf).__name__, True))


async def _mock_serve(
    asa_config: str | None,
    syslog: bool,
    ctrl: Connection,
    out: Connection,
    port: int,
    identity: Identity | None,
) -> None:
    cfg = load_mock_config(asa_config)
    box = _Outbox(out, "syslog")
    async with trio.open_nursery() as nursery:
        mcfg = MockAsaConfig(asa=cfg, port=port, identity=identity)
        info = await nursery.start(serve_mock_asa, mcfg)
        if info.tcp_port is None:
            raise RunSetupError("the mock ASA's configuration enables webvpn on no interface")
        if syslog:
            info.asa.taps.add(CallbackSink(lambda r: box.add(r.line()), level=SYSLOG_LEVEL))
            nursery.start_soon(box.run)
        out.send(("ready", info.url, info.pin, cfg.asa_version, info.asa.identity, info.tcp_port))
        await trio.lowlevel.wait_readable(ctrl.fileno())
        box.flush()
        nursery.cancel_scope.cancel()


def _worker_main(
    share: Share,
    mock: tuple[str, str] | None,
    events: bool,
    verbose: bool,
    ctrl: Connection,
    out: Sender,
) -> None:
    """One worker: its share of the run in a Trio run of its own, in a process of its own
    (:class:`ProcessLauncher`) or in a thread of a Ray actor
    (:mod:`tunnelswarm.fleet.ray_workers`). ``ctrl``: the coordinator's ``go``/``stop``/
    ``abort``; ``out``: the messages to it (module docstring, 3)."""
    _quiet_sigint()
    logging.getLogger(CLIENT_LOGGER).setLevel(0 if verbose else logging.CRITICAL + 1)
    box = _Outbox(out, "events")
    outages = _Outbox(out, "outages")

    def on_second(stats: RunStats, t: float) -> None:
        box.flush()
        outages.flush()
        out.send(("stats", stats.to_wire(seconds=stats.take_dirty()), t))

    engine = LoadEngine(
        share.spec,
        on_line=lambda text: out.send(("line", text)),
        on_second=on_second,
        on_event=(lambda e: box.add((e.t, e.source, e.text, e.kind))) if events else None,
        on_outage=lambda o: outages.add(astuple(o)),
        index_base=share.index_base,
        index_stride=share.index_stride,
        plan_offset=share.plan_offset,
        mock=mock,
    )
    try:
        result = trio.run(_worker_run, engine, ctrl, out, box)
    except BaseException as e:  # reported to the coordinator
        leaf = _leaf(e) if isinstance(e, BaseExceptionGroup) else e
        setup = isinstance(leaf, TunnelswarmError | OSError)
        text = str(leaf) if setup else " ".join(f"{type(leaf).__name__}: {leaf}".split())
        with contextlib.suppress(OSError):
            box.flush()
            outages.flush()
            out.send(("error", text, setup))
            out.send(("final", _final(engine.result())))
        return
    box.flush()
    outages.flush()
    out.send(("final", _final(result)))


def _final(r: LoadResult) -> dict[str, Any]:
    return {
        "stats": r.stats.to_wire(),
        "started": r.started,
        "late_starts": r.late_starts,
        "missed_starts": r.missed_starts,
        "max_lateness": r.max_lateness,
        "interrupted": r.interrupted,
        "run_seconds": r.run_seconds,
        "error_examples": r.error_examples,
        "internal_errors": r.internal_errors,
        "headend": r.headend,
    }


async def _worker_run(
    engine: LoadEngine, ctrl: Connection, out: Sender, box: _Outbox
) -> LoadResult:
    out.send(("ready",))
    await trio.lowlevel.wait_readable(ctrl.fileno())
    if _recv(ctrl) != "go":
        engine.interrupted = True
        return engine.result()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_ctrl, engine, ctrl)
        nursery.start_soon(box.run)
        result = await engine.run()
        nursery.cancel_scope.cancel()
    return result


def _recv(conn: Connection) -> str:
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        return "eof"
    return str(msg)


async def _watch_ctrl(engine: LoadEngine, ctrl: Connection) -> None:
    """Every ``stop`` (or the coordinator gone) interrupts the engine (twice: at once)."""
    while True:
        await trio.lowlevel.wait_readable(ctrl.fileno())
        msg = _recv(ctrl)
        engine.interrupt()
        if msg == "eof":
            engine.interrupt()
            return


# ------------------------------------------------------------------ the transports
Message = tuple[Any, ...]

#: what becomes of a lost worker's share: ``count`` (its last stats are kept, the others
#: run on) or ``replace`` (also a new worker runs its share for the rest of the plan)
LostPolicy = Literal["count", "replace"]


class WorkerLink(abc.ABC):
    """One worker as the coordinator sees it: the messages it sent, a way to tell it
    ``go``/``stop``/``abort``, and whether it is gone. A :class:`Launcher` makes them;
    the coordinator's loop, merge and stop/lost logic are the same for every kind."""

    #: where it runs, for people and the report (``pid 1234``, ``node 10.0.0.2 ...``)
    where: str = ""

    def facts(self) -> dict[str, object]:
        """Where it runs, as JSON-able facts (the report's ``run.workers``)."""
        return {"where": self.where}

    @abc.abstractmethod
    def take(self) -> tuple[list[Message], bool]:
        """The messages that arrived (without waiting), and True when no more will come
        (the worker is gone: see :meth:`ended_why`)."""

    @abc.abstractmethod
    def tell(self, msg: str) -> None:
        """Send ``go``, ``stop`` or ``abort`` (never raises: a gone worker is let be)."""

    @abc.abstractmethod
    def ended_why(self) -> str:
        """Why it is gone (``its process ended (exit code -9)``)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """End it at once."""

    @abc.abstractmethod
    def close(self) -> None:
        """The run is over (it was told to stop): give it a moment, kill it, free its
        ends."""


class Launcher(abc.ABC):
    """Places the workers (:class:`ProcessLauncher`: processes on this machine;
    :class:`tunnelswarm.fleet.ray_workers.RayLauncher`: Ray actors on a cluster)."""

    @abc.abstractmethod
    def describe(self, n: int) -> str:
        """``3 worker process(es)``, for the run's first line."""

    def open(self, shares: list[Share]) -> None:  # noqa: B027 - optional hook
        """Before the mock and the workers start: reserve room for ``shares``
        (:class:`RunSetupError` when there is none)."""

    @abc.abstractmethod
    def launch(
        self, share: Share, mock: tuple[str, str] | None, events: bool, verbose: bool
    ) -> WorkerLink:
        """Start one worker on ``share`` (:func:`_worker_main`)."""

    @abc.abstractmethod
    def wait(self, links: list[WorkerLink], extra: list[Connection], timeout: float) -> None:
        """Wait until one of ``links`` (or ``extra``) may have something, or ``timeout``."""

    def notes(self, mock: bool) -> list[str]:
        """Lines for people once the workers are placed (e.g. where they run)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """The run is over (every link closed)."""


@dataclass(eq=False)
class _ProcessLink(WorkerLink):
    proc: BaseProcess
    ctrl: Connection
    data: Connection

    def __post_init__(self) -> None:
        self.where = f"pid {self.proc.pid}"

    def facts(self) -> dict[str, object]:
        return {"where": self.where, "pid": self.proc.pid}

    def take(self) -> tuple[list[Message], bool]:
        msgs: list[Message] = []
        try:
            while self.data.poll():
                msgs.append(self.data.recv())
        except (EOFError, OSError):
            self.proc.join(1.0)
            return msgs, True
        return msgs, not self.proc.is_alive() and not self.data.poll()

    def tell(self, msg: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.ctrl.send(msg)

    def ended_why(self) -> str:
        return f"its process ended (exit code {self.proc.exitcode})"

    def kill(self) -> None:
        self.proc.kill()

    def close(self) -> None:
        self.proc.join(2.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2.0)
        self.ctrl.close()
        self.data.close()


class ProcessLauncher(Launcher):
    """Worker processes on this machine (``multiprocessing``, "spawn"), one pipe each
    way: ``tunnelswarm run --workers N``."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")

    def describe(self, n: int) -> str:
        return f"{n} worker process(es)"

    def launch(
        self, share: Share, mock: tuple[str, str] | None, events: bool, verbose: bool
    ) -> WorkerLink:
        ctrl_r, ctrl_w = self._ctx.Pipe(duplex=False)
        data_r, data_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(share, mock, events, verbose, ctrl_r, data_w),
            name=f"tunnelswarm-worker-{share.k}",
            daemon=True,
        )
        proc.start()
        ctrl_r.close()
        data_w.close()
        return _ProcessLink(proc, ctrl_w, data_r)

    def wait(self, links: list[WorkerLink], extra: list[Connection], timeout: float) -> None:
        waitables: list[Any] = list(extra)
        for link in links:
            assert isinstance(link, _ProcessLink)
            waitables += [link.data, link.proc.sentinel]
        multiprocessing.connection.wait(waitables, timeout=timeout)


# ------------------------------------------------------------------ replacing a share
def replacement_share(share: Share, elapsed: float, started: int) -> Share | None:
    """The rest of ``share``'s plan for a worker that starts ``elapsed`` seconds into the
    run in place of a lost one (None: its plan was over). *Closed model*: the same slots
    (the same clients, credentials and source addresses), started again at the plan's
    ramp-up rate and held until the single plan ends. *Open model*: arrivals at the
    worker's rate for the rest of the arrival window; their session numbers go on after
    the ``started`` sessions the lost worker had reported. The replacement's plan starts
    at once (its own second 0 is the run's second ``floor(elapsed)``)."""
    m = share.spec.model
    left = share.plan_offset + m.duration - elapsed
    if left <= 0:
        return None
    seed = share.spec.seed + 7_919 * (1 + int(elapsed))
    if isinstance(m, ClosedModel):
        down = 0.0 if m.ramp_down_rate is None else (m.concurrency - 1) / m.ramp_down_rate
        hold = max(1e-3, left - m.ramp_up_span - down)
        spec = replace(share.spec, model=replace(m, hold=hold), seed=seed)
        return replace(share, spec=spec, plan_offset=0.0)
    spec = replace(share.spec, model=replace(m, duration=left), seed=seed)
    base = share.index_base + share.index_stride * started
    return replace(share, spec=spec, plan_offset=0.0, index_base=base)


def _shift_wire(data: bytes, by: int) -> bytes:
    """A stats wire message with its per-second buckets ``by`` seconds later (a
    replacement's second 0 is the run's second ``by``); bad bytes are left for
    :meth:`RunStats.from_wire` to refuse."""
    if not by:
        return data
    try:
        doc = json.loads(data)
        doc["series"] = {str(int(s) + by): b for s, b in doc["series"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return data
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


# ------------------------------------------------------------------ the coordinator
@dataclass(eq=False)
class _Worker:
    share: Share
    link: WorkerLink
    #: 0: placed at the start; 1, 2, ...: the replacements of a lost worker
    gen: int = 0
    #: whole seconds of run time before its own second 0 (a replacement's start)
    offset: int = 0
    stats: RunStats = field(default_factory=RunStats)
    t: float = 0.0
    ready: bool = False
    told_go: bool = False
    final: dict[str, Any] | None = None
    error: str | None = None
    setup_error: bool = False
    lost: str | None = None
    done: bool = False

    @property
    def name(self) -> str:
        return f"worker {self.share.k}" + (f" (replacement {self.gen})" if self.gen else "")

    @property
    def key(self) -> object:
        return self.share.k if not self.gen else (self.share.k, self.gen)

    @property
    def proc(self) -> BaseProcess:
        """A local worker's process (:class:`ProcessLauncher`)."""
        if not isinstance(self.link, _ProcessLink):
            raise AttributeError(f"{self.name} is not a local process")
        return self.link.proc

    def facts(self) -> dict[str, object]:
        c = self.stats.counters
        return {
            "worker": self.share.k,
            "name": self.name,
            **self.link.facts(),
            "state": "lost" if self.lost is not None else "done" if self.done else "running",
            "lost": self.lost,
            "sessions_started": int(c.get("sessions_started", 0)),
            "setups_completed": int(c.get("setups_completed", 0)),
            "sessions_failed": int(c.get("sessions_failed", 0)),
        }


@dataclass
class CoordinatedResult(LoadResult):
    """A :class:`LoadResult` of several workers, with each worker's own facts (where it
    ran, its own counts, lost or not) in :meth:`summary`'s ``worker_details``."""

    worker_details: list[dict[str, object]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "worker_details": list(self.worker_details)}


class Coordinator:
    """Runs ``spec`` over ``workers`` workers (module docstring): :meth:`run` in the
    main thread; :meth:`result` at any time. The observers are those of
    :class:`~tunnelswarm.fleet.engine.LoadEngine`, fed with the merged stats.
    ``launcher`` places the workers (default: processes on this machine);
    ``on_lost``: what becomes of a lost worker's share (:data:`LostPolicy`)."""

    def __init__(
        self,
        spec: LoadSpec,
        workers: int,
        *,
        on_line: Callable[[str], None] | None = None,
        on_second: Callable[[RunStats, float], None] | None = None,
        on_event: Callable[[TimelineEntry], None] | None = None,
        on_syslog: Callable[[str], None] | None = None,
        on_outage: Callable[[Outage], None] | None = None,
        verbose: bool = False,
        launcher: Launcher | None = None,
        on_lost: LostPolicy = "count",
    ) -> None:
        if spec.virtual_time and workers > 1:
            raise ConfigError("--virtual-time is one Trio run: it does not go with --workers > 1")
        self.spec = spec
        self.shares = split_spec(spec, workers)
        self.on_line = on_line
        self.on_second = on_second
        self.on_event = on_event
        self.on_syslog = on_syslog
        self.on_outage = on_outage
        self.outages: list[Outage] = []
        self.verbose = verbose
        self.launcher: Launcher = ProcessLauncher() if launcher is None else launcher
        self.on_lost: LostPolicy = on_lost
        self.url = spec.headend or ""
        self.interrupted = False
        self.workers: list[_Worker] = []
        self._merger = StatsMerger()
        self._ctx = multiprocessing.get_context("spawn")
        self._mock: tuple[BaseProcess, Connection, Connection] | None = None
        self._mock_url: tuple[str, str] | None = None
        #: the mock's port and certificate, for a restart (--fault headend-restart)
        self._mock_port = 0
        self._mock_identity: Identity | None = None
        #: headend-restart faults still to do: (monotonic time to stop it, fault)
        self._restarts: list[tuple[float, Fault]] = []
        #: the mock is down until this monotonic time (then started again)
        self._mock_down_until: float | None = None
        self._stops = 0
        self._stops_sent = 0
        self._stop_deadline = math.inf
        self._overdue = False
        self._emitted = 0.0
        self._wall0 = time.monotonic()
        #: monotonic time of the ``go`` (the plans' start)
        self._go_at: float | None = None

    # ---------------------------------------------------------------- public
    def interrupt(self) -> None:
        """Tell every worker to stop (twice: to close at once). Signal-safe: it only
        counts; the run loop does the telling."""
        self.interrupted = True
        self._stops += 1

    def worker_facts(self) -> list[dict[str, object]]:
        """Each worker's facts: where it runs, its own counts, lost or not."""
        return [w.facts() for w in self.workers]

    def result(self) -> CoordinatedResult:
        """The merged result of every worker so far."""
        ws = self.workers
        finals = [w.final for w in ws if w.final is not None]
        examples: dict[str, str] = {}
        for f in finals:
            for cause, text in f["error_examples"].items():
                examples.setdefault(cause, text)
        internal = [tb for f in finals for tb in f["internal_errors"]][:10]
        return CoordinatedResult(
            spec=self.spec,
            stats=self._merger.merged(),
            headend=self.url,
            started=sum(int(f["started"]) for f in finals)
            + sum(int(w.stats.counters.get("sessions_started", 0)) for w in ws if w.final is None),
            late_starts=sum(int(f["late_starts"]) for f in finals),
            missed_starts=sum(int(f["missed_starts"]) for f in finals),
            max_lateness=max((float(f["max_lateness"]) for f in finals), default=0.0),
            interrupted=self.interrupted or any(f["interrupted"] for f in finals),
            wall_seconds=time.monotonic() - self._wall0,
            run_seconds=max((float(f["run_seconds"]) for f in finals), default=self._max_t()),
            error_examples=examples,
            internal_errors=internal,
            workers=len(self.shares),
            coordinated=True,
            lost_workers=[f"{w.name}: {w.lost}" for w in ws if w.lost is not None],
            outages=list(self.outages),
            worker_details=self.worker_facts(),
        )

    def run(self, *, watch_signals: bool = True) -> CoordinatedResult:
        """Make the run; :class:`RunSetupError` when not one worker could make it (or
        the mock could not start, or the launcher found no room for the workers)."""
        self._wall0 = time.monotonic()
        old: dict[signal.Signals, Any] = {}
        if watch_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError):  # not the main thread
                    old[sig] = signal.signal(sig, self._on_signal)
        try:
            self.launcher.open(self.shares)
            mock = self._start_mock() if self.spec.headend is None else None
            if self.interrupted:
                return self.result()
            self._mock_url = mock
            self._start_workers(mock)
            self._loop()
        finally:
            self._shutdown()
            for sig, handler in old.items():
                signal.signal(sig, handler)
        if self.workers and all(w.setup_error for w in self.workers):
            raise RunSetupError(self.workers[0].error or "no worker could make the run")
        r = self.result()
        self._emit(final=True)
        return r

    # ---------------------------------------------------------------- internals
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.interrupt()

    def _say(self, text: str) -> None:
        if self.on_line is not None:
            self.on_line(text)
        if self.on_event is not None:
            self.on_event(TimelineEntry(self._max_t(), "engine", text, "engine"))

    def _max_t(self) -> float:
        return max((w.t for w in self.workers), default=0.0)

    def _spawn_mock(self) -> tuple[BaseProcess, Connection, Connection]:
        ctrl_r, ctrl_w = self._ctx.Pipe(duplex=False)
        data_r, data_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_mock_main,
            args=(
                self.spec.asa_config,
                self.on_syslog is not None,
                ctrl_r,
                data_w,
                self._mock_port,
                self._mock_identity,
            ),
            name="tunnelswarm-mock-asa",
            daemon=True,
        )
        proc.start()
        ctrl_r.close()
        data_w.close()
        self._mock = (proc, ctrl_w, data_r)
        return self._mock

    def _start_mock(self) -> tuple[str, str]:
        proc, _ctrl, data_r = self._spawn_mock()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.interrupted:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunSetupError(f"the mock ASA did not start within {START_TIMEOUT:g} s")
            if not data_r.poll(min(left, 0.25)):
                continue
            try:
                msg = data_r.recv()
            except EOFError:
                raise RunSetupError(
                    f"the mock ASA's process ended (exit code {proc.exitcode})"
                ) from None
            if msg[0] == "ready":
                _, url, pin, version, self._mock_identity, self._mock_port = msg
                self.url = url
                self._say(
                    f"mock ASA {version} in its own process at {url};"
                    f" {self.launcher.describe(len(self.shares))}"
                )
                return url, pin
            if msg[0] == "error":
                raise RunSetupError(f"the mock ASA could not start: {msg[1]}")
        return "", ""

    def _start_workers(self, mock: tuple[str, str] | None) -> None:
        events = self.on_event is not None
        for share in self.shares:
            link = self.launcher.launch(share, mock, events, self.verbose)
            self.workers.append(_Worker(share, link))
        for line in self.launcher.notes(mock is not None):
            self._say(line)

    def _loop(self) -> None:
        start_deadline = time.monotonic() + START_TIMEOUT
        while True:
            live = [w for w in self.workers if not w.done]
            if not live:
                return
            self._go(live, start_deadline)
            self._restart_mock()
            if self._stops > self._stops_sent:
                self._stops_sent = self._stops
                if self._stops_sent == 1:
                    self._say(f"interrupted: stopping {len(live)} worker(s)")
                    self._stop_deadline = time.monotonic() + self.spec.stop_grace + STOP_EXTRA
                for w in live:
                    w.link.tell("stop" if w.told_go else "abort")
            self._check_overdue(live)
            if time.monotonic() > self._stop_deadline:
                for w in live:
                    w.link.kill()
                    self._lose(w, "no final stats after the stop: killed")
                return
            extra = [] if self._mock is None else [self._mock[2]]
            self.launcher.wait([w.link for w in live], extra, 0.25)
            if self._mock is not None:
                self._drain_mock(self._mock[2], 0.0)
            for w in live:
                msgs, ended = w.link.take()
                for msg in msgs:
                    if not w.done:
                        self._handle(w, msg)
                if ended and not w.done:
                    self._lose(w, w.link.ended_why())
            self._emit()

    def _check_overdue(self, live: list[_Worker]) -> None:
        """A worker still running :data:`OVERDUE` s (plus the setup timeout) after the
        plan's end is hung: every live one is told to stop, and killed (lost) if it has
        not sent its final stats ``stop_grace + STOP_EXTRA`` later -- a run always ends."""
        if self._go_at is None or self._overdue or self._stops_sent:
            return
        spec = self.spec
        end = self._go_at + spec.model.duration + spec.setup_timeout + OVERDUE
        now = time.monotonic()
        if now <= end:
            return
        self._overdue = True
        self._say(
            f"{len(live)} worker(s) still running {now - self._go_at - spec.model.duration:.0f} s"
            " after the plan's end: stopping them"
        )
        self._stop_deadline = now + spec.stop_grace + STOP_EXTRA
        for w in live:
            w.link.tell("stop")

    def _go(self, live: list[_Worker], start_deadline: float) -> None:
        """``go`` to every worker once all are ready (or at the start deadline); later,
        to a replacement as soon as it is ready."""
        if self._go_at is not None:
            for w in live:
                if w.ready and not w.told_go:
                    w.told_go = True
                    w.link.tell("abort" if self._stops_sent else "go")
            return
        if not all(w.ready for w in live) and time.monotonic() <= start_deadline:
            return
        self._go_at = time.monotonic()
        for w in live:
            w.told_go = True
            w.link.tell("go")
        if self._mock is not None:
            now = time.monotonic()
            self._restarts = [
                (now + f.at, f) for f in self.spec.faults if f.kind == "headend-restart"
            ]

    def _handle(self, w: _Worker, msg: Message) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
        elif kind == "stats":
            w.stats = self._merger.update(w.key, _shift_wire(msg[1], w.offset))
            w.t = max(w.t, w.offset + float(msg[2]))
        elif kind == "events":
            if self.on_event is not None:
                for t, source, text, ev_kind in msg[1]:
                    self.on_event(TimelineEntry(w.offset + t, source, text, ev_kind))
        elif kind == "outages":
            for fields in msg[1]:
                o = Outage(*fields)
                if w.offset:
                    o = replace(o, start=o.start + w.offset, end=o.end + w.offset)
                self.outages.append(o)
                if self.on_outage is not None:
                    self.on_outage(o)
        elif kind == "line":
            if self.on_line is not None:
                self.on_line(f"[{w.name}] {msg[1]}")
        elif kind == "error":
            w.error, w.setup_error = msg[1], bool(msg[2])
            w.lost = f"failed: {msg[1]}"
            self._say(f"{w.name} failed: {msg[1]}")
        elif kind == "final":
            final = dict(msg[1])
            final["run_seconds"] = float(final["run_seconds"]) + w.offset
            w.final = final
            w.stats = self._merger.update(w.key, _shift_wire(final["stats"], w.offset))
            w.done = True

    def _lose(self, w: _Worker, why: str) -> None:
        if w.done:
            return
        w.done = True
        if w.lost is None:
            w.lost = why
            self._say(f"{w.name} lost ({why}); its last stats are kept")
        # its sessions went with it: from its next second on, its levels are zero
        if w.stats.gauges:
            for name in list(w.stats.gauges):
                w.stats.set_gauge(name, 0.0, t=w.t + 1.0)
            self._merger.set(w.key, w.stats)
        if self.on_lost == "replace" and not w.setup_error:
            self._replace(w)

    def _replace(self, w: _Worker) -> None:
        """``on_lost="replace"``: a new worker for the rest of ``w``'s share."""
        if self.interrupted or self._stops_sent or self._go_at is None:
            return
        elapsed = time.monotonic() - self._go_at
        started = int(w.stats.counters.get("sessions_started", 0))
        share = replacement_share(w.share, elapsed, started)
        if share is None:
            self._say(f"{w.name}: its plan is over, nothing to replace")
            return
        gen = 1 + max(x.gen for x in self.workers if x.share.k == w.share.k)
        events = self.on_event is not None
        try:
            link = self.launcher.launch(share, self._mock_url, events, self.verbose)
        except (TunnelswarmError, OSError) as e:
            self._say(f"{w.name}: could not start a replacement: {e}")
            return
        new = _Worker(share, link, gen=gen, offset=int(elapsed))
        new.t = float(new.offset)
        self.workers.append(new)
        self._say(
            f"{new.name} started for the rest of worker {w.share.k}'s plan"
            f" ({share.spec.model.duration:.1f} s from run second {new.offset})"
            + (f" on {link.where}" if link.where else "")
        )

    def _emit(self, final: bool = False) -> None:
        """The merged stats to ``on_second`` for every second all running workers have
        reported (with ``final``: up to the last second any worker reported)."""
        if self.on_second is None:
            return
        running = [w.t for w in self.workers if not w.done]
        t = self._max_t() if final or not running else min(running)
        if t <= self._emitted:
            return
        merged = self._merger.merged()
        second = self._emitted
        while second < t:
            second = min(t, math.floor(second) + 1.0)
            self.on_second(merged, second)
        self._emitted = t

    def _shutdown(self) -> None:
        try:
            for w in self.workers:
                if not w.done:
                    w.link.tell("stop")
            for w in self.workers:
                w.link.close()
        finally:
            self.launcher.close()
        if self._mock is not None:
            proc, ctrl, data = self._mock
            with contextlib.suppress(OSError, ValueError):
                ctrl.send("stop")
            deadline = time.monotonic() + 5.0
            while proc.is_alive() and time.monotonic() < deadline:
                self._drain_mock(data, 0.1)
            self._drain_mock(data, 0.0)
            if proc.is_alive():
                proc.kill()
            proc.join(2.0)
            ctrl.close()
            data.close()

    def _drain_mock(self, data: Connection, timeout: float) -> None:
        """The mock process's messages: syslog lines, and after a restart its
        ``ready`` (or ``error``)."""
        try:
            while data.poll(timeout):
                msg = data.recv()
                if msg[0] == "syslog" and self.on_syslog is not None:
                    for line in msg[1]:
                        self.on_syslog(line)
                elif msg[0] == "ready":
                    self._say(f"fault over: mock ASA up again at {msg[1]}")
                elif msg[0] == "error":
                    self._say(f"fault: the mock ASA could not start again: {msg[1]}")
                timeout = 0.0
        except (EOFError, OSError):
            return

    def _restart_mock(self) -> None:
        """``--fault headend-restart``: kill the mock's process when its time comes (as a
        crash: SIGKILL), start it again ``down`` later on the same port with the same
        certificate. The workers' clients see it as any headend that went away."""
        now = time.monotonic()
        if self._mock_down_until is not None and now >= self._mock_down_until:
            self._mock_down_until = None
            self._spawn_mock()  # its "ready" comes through _drain_mock
        if not self._restarts or now < self._restarts[0][0] or self._mock is None:
            return
        _, fault = self._restarts.pop(0)
        proc, ctrl, data = self._mock
        self._say(f"fault: {fault.describe()}: killing the mock ASA's process")
        proc.kill()
        proc.join(5.0)
        self._drain_mock(data, 0.0)
        ctrl.close()
        data.close()
        self._mock = None
        self._mock_down_until = now + fault.duration
