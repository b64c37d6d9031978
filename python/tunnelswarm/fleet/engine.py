"""The load engine: a :class:`~tunnelswarm.fleet.plan.Planner`'s sessions as emulated
clients in one Trio loop, measured into a :class:`~tunnelswarm.fleet.stats.RunStats`.

Theory of operation
-------------------
:class:`LoadEngine` runs one load run described by a :class:`LoadSpec` (the load model,
the client profile, credentials, source addresses, the traffic profile and the headend):

1. **Headend.** ``spec.headend`` (a URL) is a real ASA/FTD or ocserv: a *preflight* TCP
   connection to it must succeed, or the run cannot be made (:class:`RunSetupError`, exit
   2). Without a URL the mock ASA runs in-process (the embedded default): on real loopback
   sockets (127.0.0.1, a free port), or, with ``virtual_time``, on the in-memory network
   of :mod:`tunnelswarm.drive.memnet` under ``trio.testing.MockClock(autojump_threshold=0)``
   exactly as :mod:`tunnelswarm.scenario.run` does it (its address, epoch and client
   addresses are reused from there), so minutes of load run in seconds and replay with
   the seed; the network adds ``virtual_latency`` (1 ms) one way, so setup latencies
   count round trips. The mock's configuration is ``spec.asa_config`` when given, else its default
   configuration sized for load (:data:`LOAD_OVERLAY`: a /16 address pool and
   ``vpn-simultaneous-logins`` to match, so one user ``test`` can hold every session).
2. **Plan.** The planner is fed ``trio.current_time()``; the driver loop is the one of
   :mod:`tunnelswarm.fleet.plan`: stop what :meth:`~Planner.stops` names (the session's
   cancel scope is cancelled: it disconnects with DISCONNECT ``b0``, bounded), start what
   :meth:`~Planner.next_starts` hands out (:meth:`~Planner.record_start` at once; a start
   later than ``late_threshold`` counts in ``late_starts``), then sleep until the
   planner's next deadline or until a session ends (:meth:`~Planner.session_ended`, with
   ``failed`` when it ended in an error, so the closed model retries after its delay).
3. **Sessions.** Each start is one :func:`~tunnelswarm.client.session.open_client` with
   ``Credentials.get(index)``, the profile, ``SourcePool.get(index)`` as its source
   address (:func:`~tunnelswarm.drive.stream.bound_tcp_opener`,
   :func:`~tunnelswarm.drive.datagram.bound_udp_opener`) and a seed derived from the run's.
   The setup must finish within ``setup_timeout`` (else ``errors[setup-timeout]``). Once up
   the session runs the traffic profile (pings / UDP echo to ``target`` at their rate, a
   bulk flow every ``every`` seconds) until its lifetime is over or the planner stops it.
4. **Measurements** (names in :data:`METRICS`). Setup latency per phase, from the
   session's ``on_phase`` boundaries: ``setup_tcp`` from the *scheduled* start to TCP
   connected (so lateness is latency, never hidden: no coordinated omission),
   ``setup_tls``, ``setup_auth``, ``setup_connect`` each from the previous boundary,
   ``setup_total`` from the scheduled start to CONNECT answered (the tunnel carries
   data), ``setup_dtls`` from CONNECT to the first DTLS up. A reconnect's phases are not
   setup (only the first boundary of each phase counts); reconnects are counted by cause
   from the session's events. A session that fails counts in ``errors[cause]``
   (:attr:`TunnelswarmError.cause`) -- one client's failure never ends the run; an
   exception that is no :class:`TunnelswarmError` (a bug) counts in ``errors[internal]``
   and its traceback is kept in :attr:`LoadResult.internal_errors`. Every count and
   sample carries ``t`` (seconds since the plan's start; a setup's latencies carry its
   *scheduled* start), so RunStats fills its one-second buckets. A sampler task sets the
   ``sessions_up`` / ``dtls_up`` gauges at the end of every second and hands that second
   on: as a flat row (:func:`bucket_row`, ``on_bucket``) and as the whole stats with the
   end of that second (``on_second(stats, t)``: the live console, ``--json-lines``, the
   report's checkpoints).
5. **Observers.** ``on_event`` gets the run's timeline as
   :class:`~tunnelswarm.scenario.run.TimelineEntry` objects (source ``client N``:
   ``start``, ``up``, ``error``, ``end`` and the session's own events -- ``connect``,
   ``reconnect``, ``dtls-up``, ``dtls-fail``, ``dtls-down``, ``mtu``; source ``engine``:
   the engine's own lines). ``on_syslog`` gets the in-process mock's syslog lines
   (severity up to :data:`SYSLOG_LEVEL`; none against a real headend). Nothing is built
   for an observer that is not given.
6. **Interruption.** :meth:`LoadEngine.interrupt` (Ctrl-C / SIGTERM in :func:`run_load`):
   no new session starts, every live one is stopped and gets ``stop_grace`` seconds to
   close; then whatever is still open is cancelled. Every measurement taken so far stays
   in the result (``interrupted=True``). A second interrupt cancels at once.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import trio
import trio.testing

from tunnelswarm.asa.config import AsaConfig, parse_config
from tunnelswarm.asa.server import (
    DEFAULT_CONFIG_TEXT,
    MockAsa,
    MockAsaConfig,
    MockAsaInfo,
    serve_mock_asa,
)
from tunnelswarm.asa.syslog import CallbackSink, SyslogRecord
from tunnelswarm.client.flow import fetch
from tunnelswarm.client.session import (
    PHASES,
    ChannelCounters,
    ClientOptions,
    ClientSession,
    SessionEvent,
    open_client,
    parse_url,
)
from tunnelswarm.config.profile import OPENCONNECT_9_01, ClientProfile
from tunnelswarm.drive.datagram import DatagramOpener, bound_udp_opener, udp_opener
from tunnelswarm.drive.impair import (
    LinkImpairments,
    impaired_datagram_opener,
    impaired_stream_opener,
)
from tunnelswarm.drive.memnet import MemNetwork
from tunnelswarm.drive.stream import Opener, bound_tcp_opener, tcp_opener
from tunnelswarm.errors import ConfigError, TunnelswarmError
from tunnelswarm.fleet.faults import Fault, Outage, OutageTracker
from tunnelswarm.fleet.plan import (
    ClosedModel,
    Credentials,
    OpenModel,
    Planner,
    SourcePool,
    Start,
    TrafficProfile,
    make_planner,
)
from tunnelswarm.fleet.stats import RunStats, series_columns
from tunnelswarm.scenario.run import (
    CLIENT_LINK_MTU,
    TimelineEntry,
    client_host,
    seed_scheduler,
    virtual_mock,
)

__all__ = [
    "CLIENT_LOGGER",
    "DEFAULT_TARGET",
    "ENGINE_COUNTERS",
    "LOAD_OVERLAY",
    "METRICS",
    "PHASES",
    "SYSLOG_LEVEL",
    "LoadEngine",
    "LoadResult",
    "LoadSpec",
    "RunSetupError",
    "bucket_row",
    "error_cause",
    "load_mock_config",
    "phase_samples",
    "run_engine",
    "run_load",
]

#: the inside host the traffic goes to against the mock ASA (its ``inside`` interface)
DEFAULT_TARGET: Final = "10.1.1.1"
#: the first bulk flow starts this long after the session is up; each may take this long
FLOW_FIRST: Final = 5.0
FLOW_TIMEOUT: Final = 90.0
#: a preflight TCP connection to ``--headend`` must open within this many seconds
PREFLIGHT_TIMEOUT: Final = 10.0
#: client loggers (the sessions' own lines: reconnects, DTLS trouble); ``-v`` shows them
CLIENT_LOGGER: Final = "tunnelswarm.fleet.client"
#: the in-process mock's syslog lines up to this severity go to ``on_syslog``
#: (6, informational: the session messages; not the debug ones)
SYSLOG_LEVEL: Final = 6
#: the embedded mock's default configuration is sized for load with these lines (on top
#: of :data:`~tunnelswarm.asa.server.DEFAULT_CONFIG_TEXT`): 65,534 tunnel addresses and as
#: many simultaneous logins of user ``test`` (an ASA's default is 3 per user)
LOAD_OVERLAY: Final = """\
ip local pool load_pool 10.64.0.1-10.64.255.254 mask 255.255.0.0
group-policy ac_users_group attributes
 vpn-simultaneous-logins 65534
tunnel-group ac_users general-attributes
 address-pool load_pool
"""

#: metric name → meaning: what the engine feeds :class:`RunStats` (whose
#: :meth:`~RunStats.metrics` names them for ``--threshold``) and adds itself
METRICS: Final[dict[str, str]] = {
    "setup_pNN": "setup latency, scheduled start to CONNECT answered (seconds), percentile NN"
    " (also _mean, _min, _max, _count)",
    "setup_<phase>_pNN": "one phase's latency: tcp (from the scheduled start), tls, auth,"
    " connect (each from the previous phase), dtls (CONNECT to first DTLS up)",
    "start_lateness_pNN": "how late the engine took each start",
    "ping_rtt_pNN": "round-trip time of the echo replies through the tunnels (udp_rtt: UDP)",
    "sessions_planned": "sessions whose start time came (started + missed)",
    "sessions_started": "sessions the engine started",
    "setups_completed": "sessions whose tunnel came up (CONNECT answered)",
    "setup_success_ratio": "setups_completed / sessions_started",
    "sessions_failed": "sessions that ended in an error (errors[cause] by cause)",
    "setups_aborted": "sessions stopped while still setting up (run over, interrupt)",
    "errors[cause]": "failed sessions by cause (auth-failed, connection-lost, tls, ...)",
    "reconnects[cause]": "reconnects by cause (mtu, dpd, transport, rekey)",
    "late_starts": "starts later than the late threshold after their scheduled time",
    "missed_starts": "starts whose time came but never started (run over, slot retired)",
    "max_start_lateness": "the latest start, seconds after its scheduled time",
    "sessions_up": "the most sessions up at one sample (sessions_up_last: at the end)",
    "dtls_up": "the most sessions with DTLS up at one sample",
    "dtls_ratio": "DTLS-up session-seconds over up session-seconds",
    "dtls_established": "sessions whose DTLS came up at least once",
    "dtls_fallbacks": "sessions whose first DTLS attempt failed (data over CSTP meanwhile)",
    "ping_sent": "echo requests sent (ping_lost: unanswered; ping_loss: the fraction)",
    "flows[outcome]": "bulk transfers by outcome (completed, slowed, stalled, error)",
    "dpd_rtt_pNN": "round trip of the DPD requests the clients sent (dpd_rtt_cstp_pNN,"
    " dpd_rtt_dtls_pNN: per channel)",
    "bytes_tx[channel]": "inner bytes sent over cstp / dtls (bytes_rx, packets_tx, packets_rx"
    " alike; bytes_tx: both channels)",
    "outages[cause]": "clients that lost their tunnel, by cause (see fleet.faults)",
    "outages_recovered": "outages that ended with the client's tunnel up again",
    "outage_pNN": "how long recovered outages lasted (seconds; also _max, _count)",
    "outages_lost": "outages that ended with the client gone (open model: its session failed)",
    "outages_unrecovered": "outages still open when the run ended",
    "sessions_down": "the most clients in an outage at one sample",
    "dtls_outages[cause]": "clients whose DTLS went while the tunnel stayed or went"
    " (dtls_outages_recovered, dtls_outage_pNN, dtls_down: as for outages)",
    "faults[kind]": "faults injected (--fault)",
}
#: counters the engine adds to the metrics at 0 when nothing was counted
ENGINE_COUNTERS: Final = ("sessions_failed", "setups_aborted", "dtls_established")
#: counters added at 0 when the run had faults (so that thresholds on them always resolve)
OUTAGE_COUNTERS: Final = (
    "outages_recovered",
    "outages_lost",
    "outages_unrecovered",
    "dtls_outages_recovered",
    "dtls_outages_unrecovered",
)

Phase = str


class RunSetupError(TunnelswarmError):
    """The run could not be made: the headend is unreachable at preflight, no session
    could be started at all (exit status 2, see :mod:`tunnelswarm.fleet.thresholds`)."""

    cause = "run-setup"


# ------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class LoadSpec:
    """One load run. Defaults: the embedded mock ASA in real time, openconnect 9."""

    model: ClosedModel | OpenModel
    traffic: TrafficProfile = field(default_factory=TrafficProfile)
    profile: ClientProfile = OPENCONNECT_9_01
    #: None: ``test``/``test`` against the embedded mock, ``user{n}``/``test`` otherwise
    credentials: Credentials | None = None
    #: a real headend's URL (None: the in-process mock ASA)
    headend: str | None = None
    servercert: tuple[str, ...] = ()
    #: the embedded mock's ASA configuration text (None: its default + :data:`LOAD_OVERLAY`)
    asa_config: str | None = None
    #: local source addresses, round-robin by session index (None: the kernel chooses)
    sources: SourcePool | None = None
    #: where pings, UDP echo and flows go (an inside host)
    target: str = DEFAULT_TARGET
    virtual_time: bool = False
    #: virtual time: one-way latency of the in-memory network (a LAN; so that setup
    #: latencies count round trips instead of reading 0)
    virtual_latency: float = 0.001
    seed: int = 1
    late_threshold: float = 1.0
    setup_timeout: float = 60.0
    reconnect_timeout: float = 60.0
    no_dtls: bool = False
    #: seconds the live sessions get to close after an interrupt
    stop_grace: float = 5.0
    #: faults injected during the run (:mod:`tunnelswarm.fleet.faults`), in time order
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if self.headend is not None and self.virtual_time:
            raise ConfigError("--virtual-time runs the in-process mock ASA: drop --headend")
        if self.headend is not None and self.asa_config is not None:
            raise ConfigError("--asa-config configures the in-process mock ASA: drop --headend")
        if self.sources is not None and self.virtual_time:
            raise ConfigError("--source binds real sockets: it does not go with --virtual-time")
        if not math.isfinite(self.virtual_latency) or self.virtual_latency < 0:
            raise ConfigError(
                f"virtual latency: must be zero or more, got {self.virtual_latency!r}"
            )
        for what, value in (
            ("setup timeout", self.setup_timeout),
            ("stop grace", self.stop_grace),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{what}: must be more than zero, got {value!r}")
        for f in self.faults:
            if f.needs_mock and self.headend is not None:
                raise ConfigError(
                    f"--fault {f.describe()!r}: restarts the in-process mock ASA; against"
                    " --headend restart the headend yourself (outages are measured alike)"
                )
        object.__setattr__(self, "faults", tuple(sorted(self.faults, key=lambda f: f.at)))

    @property
    def effective_credentials(self) -> Credentials:
        if self.credentials is not None:
            return self.credentials
        if self.headend is None:
            return Credentials.template("test", "test")
        return Credentials()

    def describe(self) -> str:
        m = self.model
        if isinstance(m, ClosedModel):
            ramp = "at once" if m.ramp_up_rate is None else f"ramp-up {m.ramp_up_rate:g}/s"
            text = f"closed model: {m.concurrency} clients, {ramp}, hold {m.hold:g}s"
            if m.ramp_down_rate is not None:
                text += f", ramp-down {m.ramp_down_rate:g}/s"
        else:
            text = f"open model: {m.arrival_rate:g}/s ({m.arrivals}) for {m.duration:g}s"
            if m.max_concurrency is not None:
                text += f", at most {m.max_concurrency} live"
        if str(m.lifetime) != "until-end":
            text += f", lifetime {m.lifetime}"
        text = f"{text}; {self.profile.name}; {self.traffic.describe()}"
        if self.faults:
            text += "; faults: " + ", ".join(f.describe() for f in self.faults)
        return text


def load_mock_config(text: str | None) -> AsaConfig:
    """The embedded mock's configuration: ``text`` as given, or the default sized for load."""
    if text is not None:
        return parse_config(text)
    return parse_config(LOAD_OVERLAY, base=parse_config(DEFAULT_CONFIG_TEXT))


def phase_samples(
    scheduled_at: float, boundaries: Mapping[Phase, float], name: Phase, t: float
) -> list[tuple[str, float]]:
    """``(histogram, seconds)`` to record when setup phase ``name`` ends at ``t``, given
    the ``boundaries`` seen before (module docstring): a phase counts from the latest
    earlier boundary, the first from ``scheduled_at``; CONNECT also gives ``setup_total``
    (from ``scheduled_at``); ``dtls`` counts from CONNECT (nothing without one). Pure."""
    if name == "dtls":
        connect = boundaries.get("connect")
        return [] if connect is None else [("setup_dtls", max(0.0, t - connect))]
    if name not in PHASES:
        return []
    earlier = PHASES[: PHASES.index(name)]
    prev = max((boundaries[k] for k in earlier if k in boundaries), default=scheduled_at)
    out = [(f"setup_{name}", max(0.0, t - prev))]
    if name == "connect":
        out.append(("setup_total", max(0.0, t - scheduled_at)))
    return out


def os_reason(e: OSError) -> str:
    """An OSError in words: its ``strerror``; for Trio's "all attempts to connect ...
    failed", the first attempt's (e.g. ``Connection refused``)."""
    cause = e.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return e.strerror or str(e)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def error_cause(exc: BaseException) -> tuple[str, str]:
    """``(cause, one-line reason)`` of a session's failure; a (nested) exception group
    counts as its first leaf. Anything that is no TunnelswarmError is ``internal``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TunnelswarmError):
        return exc.cause, str(exc)
    return "internal", " ".join(f"{type(exc).__name__}: {exc}".split())


# ------------------------------------------------------------------ the result
@dataclass
class LoadResult:
    """What a load run measured (also when it was interrupted)."""

    spec: LoadSpec
    stats: RunStats
    headend: str
    started: int
    late_starts: int
    missed_starts: int
    max_lateness: float
    interrupted: bool
    wall_seconds: float
    run_seconds: float
    error_examples: dict[str, str]
    internal_errors: list[str]
    #: worker processes that made the run (:mod:`tunnelswarm.fleet.workers`)
    workers: int = 1
    #: a coordinator made the run (worker processes or Ray actors; the built-in mock, if
    #: any, ran in a process of its own)
    coordinated: bool = False
    #: the workers lost mid-run ("worker 1: exit code -9"); their last stats are kept
    lost_workers: list[str] = field(default_factory=list)
    #: every client outage (:mod:`tunnelswarm.fleet.faults`), in the order they ended
    outages: list[Outage] = field(default_factory=list)

    def metrics(self, percentiles: Iterable[tuple[str, float]] = ()) -> dict[str, float]:
        """Flat metrics for thresholds (:data:`METRICS`): :meth:`RunStats.metrics` with
        ``percentiles`` (``(base, pct)`` pairs from
        :func:`~tunnelswarm.fleet.thresholds.required_percentiles`) and the planner's."""
        m = self.stats.metrics(list(percentiles))
        for name in (*ENGINE_COUNTERS, *OUTAGE_COUNTERS):
            m.setdefault(name, 0.0)
        m["sessions_planned"] = float(self.started + self.missed_starts)
        m["late_starts"] = float(self.late_starts)
        m["missed_starts"] = float(self.missed_starts)
        m["max_start_lateness"] = self.max_lateness
        if self.workers > 1:
            m["workers"] = float(self.workers)
            m["workers_lost"] = float(len(self.lost_workers))
        return m

    def summary(self) -> dict[str, Any]:
        """JSON-able: the spec in words, the counters, the stats' own summary."""
        return {
            "load": self.spec.describe(),
            "headend": self.headend,
            "virtual_time": self.spec.virtual_time,
            "seed": self.spec.seed,
            "interrupted": self.interrupted,
            "wall_seconds": round(self.wall_seconds, 3),
            "run_seconds": round(self.run_seconds, 3),
            "metrics": {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in self.metrics().items()
            },
            "error_examples": dict(self.error_examples),
            "internal_errors": list(self.internal_errors),
            "workers": self.workers,
            "lost_workers": list(self.lost_workers),
            "outages": _outage_summary(self.outages),
            "stats": self.stats.summary(),
        }


def _outage_summary(outages: list[Outage]) -> dict[str, object]:
    """The outages in numbers (the records themselves are the report's outages.csv)."""
    by_end: dict[str, int] = {}
    for o in outages:
        by_end[o.ended_by] = by_end.get(o.ended_by, 0) + 1
    recovered = [o.seconds for o in outages if o.recovered]
    return {
        "count": len(outages),
        "clients": len({o.slot for o in outages}),
        "ended_by": dict(sorted(by_end.items())),
        "longest_recovered_seconds": round(max(recovered), 3) if recovered else None,
    }


# ------------------------------------------------------------------ one live session
@dataclass(eq=False)
class _Live:
    start: Start
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    session: ClientSession | None = None
    boundaries: dict[Phase, float] = field(default_factory=dict)
    dtls_seen: bool = False
    fell_back: bool = False
    #: (cause, reason) of the failure the session ended in
    failure: tuple[str, str] | None = None
    #: its DTLS channel is up (from its events)
    dtls_up: bool = False
    #: the session's channel counters as last counted into the stats
    counted: ChannelCounters = field(default_factory=ChannelCounters)


# ------------------------------------------------------------------ the engine
class LoadEngine:
    """Runs one :class:`LoadSpec` (see the module docstring). ``await engine.run()`` inside
    a Trio run; :meth:`interrupt` from anywhere in it; :meth:`result` at any time."""

    def __init__(
        self,
        spec: LoadSpec,
        *,
        on_bucket: Callable[[dict[str, Any]], None] | None = None,
        on_line: Callable[[str], None] | None = None,
        on_second: Callable[[RunStats, float], None] | None = None,
        on_event: Callable[[TimelineEntry], None] | None = None,
        on_syslog: Callable[[str], None] | None = None,
        on_outage: Callable[[Outage], None] | None = None,
        index_base: int = 0,
        index_stride: int = 1,
        plan_offset: float = 0.0,
        mock: tuple[str, str] | None = None,
    ) -> None:
        """``index_base``/``index_stride``: this engine's sessions are the global
        sessions ``index_base + index_stride * i`` (a worker's share of a run, see
        :mod:`tunnelswarm.fleet.workers`); ``plan_offset``: the plan starts this many
        seconds after the stats' second 0; ``mock``: ``(url, pin)`` of an embedded mock
        ASA already running elsewhere (``spec.headend`` None: driven as the mock);
        ``on_outage``: each client outage as it ends (:mod:`tunnelswarm.fleet.faults`)."""
        self.spec = spec
        self.index_base = index_base
        self.index_stride = index_stride
        self.plan_offset = plan_offset
        self.mock = mock
        self.credentials = spec.effective_credentials
        self.on_bucket = on_bucket
        self.on_line = on_line
        self.on_second = on_second
        self.on_event = on_event
        self.on_syslog = on_syslog
        self.on_outage = on_outage
        self.outages = OutageTracker()
        self.dtls_outages = OutageTracker("dtls")
        self.outage_records: list[Outage] = []
        #: the clients' path (faults act on it); the in-memory network's in virtual time
        self.imp: LinkImpairments | None = None
        self._outer: trio.Nursery | None = None
        self._mock_cfg: MockAsaConfig | None = None
        self._mock_scope: trio.CancelScope | None = None
        self._mock_done: trio.Event | None = None
        self.stats: RunStats | None = None
        self.planner: Planner | None = None
        self.asa: MockAsa | None = None
        self.net: MemNetwork | None = None
        self.url = spec.headend or ""
        self.pins = spec.servercert
        self.interrupted = False
        self.live: dict[int, _Live] = {}
        self.error_examples: dict[str, str] = {}
        self.internal_errors: list[str] = []
        self._wake = trio.Event()
        self._hard_stop: trio.CancelScope | None = None
        self._startup: trio.CancelScope | None = None
        self._rng = random.Random(f"tunnelswarm.fleet.engine:{spec.seed}")
        self._log = logging.getLogger(CLIENT_LOGGER)
        self._wall0 = time.monotonic()
        self._t_plan = 0.0
        self._t_end: float | None = None
        self._finished = False
        self._next_second = 0

    # ---------------------------------------------------------------- public
    def interrupt(self) -> None:
        """Stop starting sessions and close the live ones (bounded); twice: at once."""
        if self.interrupted and self._hard_stop is not None:
            self._hard_stop.cancel()
        if self.planner is None and self._startup is not None:
            self._startup.cancel()  # still starting the headend: nothing to close
        self.interrupted = True
        self._poke()

    def result(self) -> LoadResult:
        """Everything measured so far."""
        stats = self.stats if self.stats is not None else RunStats()
        p = self.planner
        if p is not None and not self._finished:
            self._finished = True
            stats.count("missed_starts", p.missed_starts)
        end = self._t_end
        if end is None:
            try:
                end = trio.current_time()
            except RuntimeError:  # outside the Trio run (it ended by an exception)
                end = self._t_plan
        return LoadResult(
            spec=self.spec,
            stats=stats,
            headend=self.url,
            started=0 if p is None else p.started,
            late_starts=0 if p is None else p.late_starts,
            missed_starts=0 if p is None else p.missed_starts,
            max_lateness=0.0 if p is None else p.max_lateness,
            interrupted=self.interrupted,
            wall_seconds=time.monotonic() - self._wall0,
            run_seconds=max(0.0, end - self._t_plan) if p is not None else 0.0,
            error_examples=dict(self.error_examples),
            internal_errors=list(self.internal_errors),
            outages=list(self.outage_records),
        )

    async def run(self) -> LoadResult:
        """Make the run (headend, plan, sessions, sampler) and return its result."""
        self._wall0 = time.monotonic()
        async with trio.open_nursery() as outer:
            self._outer = outer
            with trio.CancelScope() as startup:
                self._startup = startup
                await self._start_headend(outer)
            if self.interrupted:
                outer.cancel_scope.cancel()
                return self.result()
            self._t_plan = trio.current_time()
            self.stats = RunStats()
            self.planner = make_planner(
                self.spec.model,
                start=self._t_plan + self.plan_offset,
                seed=self.spec.seed,
                late_threshold=self.spec.late_threshold,
            )
            outer.start_soon(self._sampler)
            for fault in self.spec.faults:
                outer.start_soon(self._fault, fault)
            with trio.CancelScope() as hard:
                self._hard_stop = hard
                async with trio.open_nursery() as sessions:
                    await self._drive(sessions)
            self._t_end = trio.current_time()
            for tracker in (self.outages, self.dtls_outages):
                for outage in tracker.finish(self._t()):
                    self._outage_ended(outage)
            self._final_sample()
            outer.cancel_scope.cancel()
        return self.result()

    # ---------------------------------------------------------------- headend
    def _say(self, text: str) -> None:
        if self.on_line is not None:
            self.on_line(text)
        self._emit("engine", text, "engine")

    def _emit(self, source: str, text: str, kind: str) -> None:
        """One timeline entry for ``on_event`` (``t``: seconds since the plan's start;
        0 before it started)."""
        if self.on_event is None:
            return
        try:
            t = self._t() if self.stats is not None else 0.0
        except RuntimeError:  # outside the Trio run
            t = 0.0
        self.on_event(TimelineEntry(max(0.0, t), source, text, kind))

    def _syslog(self, record: SyslogRecord) -> None:
        """The mock's syslog tap: one line to ``on_syslog``."""
        if self.on_syslog is not None:
            self.on_syslog(record.line())

    async def _start_headend(self, nursery: trio.Nursery) -> None:
        spec = self.spec
        if not spec.virtual_time and any(not f.needs_mock for f in spec.faults):
            self.imp = LinkImpairments(rng=random.Random(spec.seed))
        if spec.headend is not None:
            await self._preflight()
            return
        if self.mock is not None:  # the coordinator's mock ASA (another process)
            self.url, pin = self.mock
            self.pins = (pin,)
            return
        cfg = load_mock_config(spec.asa_config)
        if spec.virtual_time:
            imp = LinkImpairments(latency=spec.virtual_latency, rng=random.Random(spec.seed))
            self.imp = imp
            self.net, mcfg = virtual_mock(cfg, imp)
        else:
            mcfg = MockAsaConfig(asa=cfg, port=0)
        info: MockAsaInfo = await nursery.start(self._serve_mock, mcfg)
        if info.tcp_port is None:
            raise RunSetupError("the mock ASA's configuration enables webvpn on no interface")
        # a restart (--fault headend-restart) comes back with the same certificate and
        # ports, as a reloaded ASA does
        port = mcfg.port if self.net is not None else info.tcp_port
        self._mock_cfg = replace(mcfg, port=port, identity=info.asa.identity)
        self._mock_started(info)
        self.url = info.url
        self.pins = (info.pin,)
        self._say(f"mock ASA {cfg.asa_version} in-process at {info.url}")

    def _mock_started(self, info: MockAsaInfo) -> None:
        self.asa = info.asa
        if self.on_syslog is not None:
            self.asa.taps.add(CallbackSink(self._syslog, level=SYSLOG_LEVEL))

    async def _serve_mock(
        self,
        mcfg: MockAsaConfig,
        *,
        task_status: trio.TaskStatus[MockAsaInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The embedded mock ASA, in a cancel scope of its own (a restart cancels it)."""
        done = self._mock_done = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._mock_scope = scope
                await serve_mock_asa(mcfg, task_status=task_status)
        finally:
            done.set()

    async def _preflight(self) -> None:
        """One TCP connection to the headend (from the first source address): the run
        cannot be made when even that fails."""
        target = parse_url(self.url)
        opener = self._stream_opener(0)
        try:
            with trio.fail_after(PREFLIGHT_TIMEOUT):
                stream = await opener(target.host, target.port)
        except trio.TooSlowError:
            raise RunSetupError(
                f"headend {target.url} unreachable: no TCP connection within"
                f" {PREFLIGHT_TIMEOUT:g} s"
            ) from None
        except OSError as e:
            raise RunSetupError(f"headend {target.url} unreachable: {os_reason(e)}") from None
        await stream.aclose()

    # ---------------------------------------------------------------- the plan
    def _t(self, now: float | None = None) -> float:
        """Seconds since the plan's start (RunStats' timeline)."""
        return (trio.current_time() if now is None else now) - self._t_plan

    def _poke(self) -> None:
        self._wake.set()
        self._wake = trio.Event()

    async def _drive(self, nursery: trio.Nursery) -> None:
        p, stats = self.planner, self.stats
        assert p is not None
        assert stats is not None
        while not self.interrupted:
            now = trio.current_time()
            if p.done(now):
                return
            for slot in p.stops(now):
                live = self.live.get(slot)
                if live is not None:
                    live.scope.cancel()
            for st in p.next_starts(now):
                lateness = p.record_start(st, now)
                t = self._t(now)
                stats.record("start_lateness", lateness, t=t)
                if lateness > p.late_threshold:
                    stats.count("late_starts", t=t)
                live = _Live(st)
                self.live[st.slot] = live
                nursery.start_soon(self._session, live)
            deadline = p.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
        # interrupted: stop everything, give it stop_grace to close, then cancel
        self._say(f"interrupted: closing {len(self.live)} live session(s)")
        for live in self.live.values():
            live.scope.cancel()
        if self._hard_stop is not None:
            self._hard_stop.deadline = trio.current_time() + self.spec.stop_grace

    # ---------------------------------------------------------------- sessions
    def _index(self, start: Start) -> int:
        """The global session number of ``start`` (credentials, sources, seed)."""
        return self.index_base + self.index_stride * start.index

    def _stream_opener(self, index: int) -> Opener:
        if self.net is not None:
            return self.net.stream_opener(client_host(index % 1000))
        if self.spec.sources is not None:
            return bound_tcp_opener(self.spec.sources.get(index))
        return tcp_opener

    def _openers(self, index: int) -> dict[str, Any]:
        if self.net is not None:  # its impairments sit in the in-memory network
            host = client_host(index % 1000)
            return {
                "opener": self.net.stream_opener(host),
                "datagram_opener": self.net.datagram_opener(host),
            }
        stream: Opener = tcp_opener
        datagram: DatagramOpener = udp_opener
        if self.spec.sources is not None:
            src = self.spec.sources.get(index)
            stream, datagram = bound_tcp_opener(src), bound_udp_opener(src)
        elif self.imp is None:
            return {}
        if self.imp is not None:  # faults act on this process's own sockets
            stream = impaired_stream_opener(stream, self.imp)
            datagram = impaired_datagram_opener(datagram, self.imp)
        return {"opener": stream, "datagram_opener": datagram}

    def _options(self, index: int) -> ClientOptions:
        spec = self.spec
        user, password = self.credentials.get(index)
        return ClientOptions(
            url=self.url,
            user=user,
            password=password,
            servercert=self.pins,
            profile=spec.profile,
            hostname=f"tunnelswarm-{index}",
            seed=spec.seed * 1_000_003 + index,
            # the embedded mock is reached over loopback (MTU 65536): announce the
            # Ethernet LAN an emulated client sits on; a real headend: the real path
            base_mtu=CLIENT_LINK_MTU if spec.headend is None else None,
            reconnect_timeout=spec.reconnect_timeout,
            connect_timeout=min(30.0, spec.setup_timeout),
            no_dtls=spec.no_dtls,
        )

    def _failed(
        self,
        cause: str,
        reason: str,
        exc: BaseException | None = None,
        who: str = "client",
        live: _Live | None = None,
    ) -> None:
        stats = self.stats
        assert stats is not None
        t = self._t()
        if live is not None and live.failure is None:
            live.failure = (cause, reason)
        self._emit(who, f"failed ({cause}): {reason}", "error")
        stats.count("errors", key=cause, t=t)
        stats.count("sessions_failed", t=t)
        if cause not in self.error_examples:
            self.error_examples[cause] = reason
            self._say(f"first error ({cause}): {reason}")
        if cause == "internal" and exc is not None and len(self.internal_errors) < 10:
            self.internal_errors.append("".join(traceback.format_exception(exc)))

    async def _session(self, live: _Live) -> None:
        p, stats = self.planner, self.stats
        assert p is not None
        assert stats is not None
        stats.count("sessions_started", t=self._t())
        who = f"client {self._index(live.start)}"
        self._emit(who, f"start (slot {live.start.slot})", "start")
        failed = False
        try:
            with live.scope:
                failed = await self._one_session(live)
            if live.scope.cancelled_caught and "connect" not in live.boundaries:
                # stopped (run over, interrupt) while setting up
                stats.count("setups_aborted", t=self._t())
        except Exception as e:  # a failure that came out beside a stop: still counted
            failed = True
            self._failed(*error_cause(e), e, who=who, live=live)
        finally:
            self._session_over(live, failed)
            self.live.pop(live.start.slot, None)
            p.session_ended(live.start.slot, trio.current_time(), failed=failed)
            self._emit(who, "ended in an error" if failed else "closed", "end")
            self._poke()

    async def _one_session(self, live: _Live) -> bool:
        """One session's life; True when it ended in an error (counted here)."""
        stats = self.stats
        assert stats is not None
        index = self._index(live.start)

        def on_phase(name: str, t: float) -> None:
            if name in live.boundaries or (name != "dtls" and "connect" in live.boundaries):
                return  # only the first of each phase is setup; a reconnect's are not
            # a setup belongs to the second it was scheduled in (RunStats' time series)
            scheduled = self._t(live.start.scheduled_at)
            for histogram, seconds in phase_samples(
                live.start.scheduled_at, live.boundaries, name, t
            ):
                stats.record(histogram, seconds, t=scheduled)
            live.boundaries[name] = t

        who = f"client {index}"

        def on_event(ev: SessionEvent) -> None:
            self._session_event(live, who, ev)

        def on_sample(name: str, seconds: float) -> None:
            t = self._t()
            stats.record("dpd_rtt", seconds, t=t)
            stats.record(name, seconds, t=t)

        setup = trio.CancelScope(deadline=trio.current_time() + self.spec.setup_timeout)
        try:
            with setup:
                async with open_client(
                    self._options(index),
                    log=self._log,
                    on_event=on_event,
                    on_phase=on_phase,
                    on_sample=on_sample,
                    **self._openers(index),
                ) as s:
                    setup.deadline = math.inf
                    live.session = s
                    stats.count("setups_completed", t=self._t())
                    self._outage_over(live, new_session=True)
                    if self.on_event is not None:
                        took = self._t() - self._t(live.start.scheduled_at)
                        self._emit(who, f"up: setup {took * 1000:.1f} ms", "up")
                    await self._hold(s)
        except Exception as e:
            self._failed(*error_cause(e), e, who=who, live=live)
            return True
        finally:
            if live.session is not None:
                self._count_traffic(live, live.session, self._t())
            live.session = None
        if setup.cancelled_caught:
            self._failed(
                "setup-timeout",
                f"no tunnel within {self.spec.setup_timeout:g} s of the start",
                who=who,
                live=live,
            )
            return True
        return False

    def _count_traffic(self, live: _Live, s: ClientSession, t: float) -> None:
        """Count what the session's channels carried since the last count (each second,
        and when it ends) into ``bytes_tx[cstp|dtls]``, ``packets_rx[...]`` etc."""
        stats = self.stats
        assert stats is not None
        now, was = s.channel_counters(), live.counted
        if now == was:
            return
        live.counted = now
        for channel in ("cstp", "dtls"):
            for way in ("tx", "rx"):
                for unit, family in (("packets", f"packets_{way}"), ("bytes", f"bytes_{way}")):
                    field_name = f"{channel}_{way}_{unit}"
                    n = getattr(now, field_name) - getattr(was, field_name)
                    if n > 0:
                        stats.count(family, n, key=channel, t=t)

    # ---------------------------------------------------------------- outages
    def _session_event(self, live: _Live, who: str, ev: SessionEvent) -> None:
        """One event of a session's timeline: the observers, counters and outages."""
        stats = self.stats
        assert stats is not None
        if self.on_event is not None:
            text = ev.kind + (f" ({ev.cause})" if ev.cause else "")
            if ev.detail:
                text += f": {ev.detail}"
            self._emit(who, text, ev.kind)
        if ev.kind == "reconnect":
            stats.count("reconnects", key=ev.cause or "unknown", t=self._t())
            self._outage_begins(live, ev.cause or "unknown", ev.detail)
        elif ev.kind == "connect" and "connect" in live.boundaries:
            self._outage_over(live, new_session=False)  # the same session is back
        elif ev.kind == "dtls-down":
            self._dtls_outage_begins(live, "dtls-down", ev.detail)
        elif ev.kind == "dtls-up":
            live.dtls_up = True
            o = self.dtls_outages.end(self._slot(live), self._t(), "dtls up")
            if o is not None:
                self._outage_ended(o)
            if not live.dtls_seen:
                live.dtls_seen = True
                stats.count("dtls_established", t=self._t())
        elif ev.kind == "dtls-fail" and not live.dtls_seen and not live.fell_back:
            live.fell_back = True
            stats.count("dtls_fallbacks", t=self._t())

    def _slot(self, live: _Live) -> int:
        """The global slot (emulated client) of ``live`` (a worker's share: see
        :meth:`_index`)."""
        return self.index_base + self.index_stride * live.start.slot

    def _outage_begins(self, live: _Live, cause: str, detail: str) -> None:
        """The client of ``live`` lost its tunnel (and with it DTLS, if it was up)."""
        stats = self.stats
        assert stats is not None
        self._dtls_outage_begins(live, cause, detail)
        index = self._index(live.start)
        if self.outages.lost_tunnel(self._slot(live), index, self._t(), cause, detail):
            stats.count("outages", key=cause, t=self._t())
            self._emit(f"client {index}", f"outage begins ({cause})", "outage")

    def _dtls_outage_begins(self, live: _Live, cause: str, detail: str) -> None:
        """The client of ``live`` lost the DTLS channel it had."""
        stats = self.stats
        assert stats is not None
        if not live.dtls_up:
            return
        live.dtls_up = False
        index = self._index(live.start)
        if self.dtls_outages.lost_tunnel(self._slot(live), index, self._t(), cause, detail):
            stats.count("dtls_outages", key=cause, t=self._t())
            self._emit(f"client {index}", f"DTLS outage begins ({cause})", "outage")

    def _outage_over(self, live: _Live, *, new_session: bool) -> None:
        o = self.outages.tunnel_up(self._slot(live), self._t(), new_session=new_session)
        if o is not None:
            self._outage_ended(o)

    def _session_over(self, live: _Live, failed: bool) -> None:
        """Outage bookkeeping when a session ends (module :mod:`~tunnelswarm.fleet.faults`):
        a session that had its tunnel and failed begins an outage of its client; in the
        open model the client is gone with its session."""
        if "connect" not in live.boundaries or self.stats is None:
            return
        if failed:
            cause, reason = live.failure or ("unknown", "")
            self._outage_begins(live, cause, reason)
        if isinstance(self.spec.model, OpenModel):
            slot, t = self._slot(live), self._t()
            for tracker in (self.outages, self.dtls_outages):
                o = tracker.lost(slot, t) if failed else tracker.gone(slot, t)
                if o is not None:
                    self._outage_ended(o)

    def _outage_ended(self, o: Outage) -> None:
        """Count an ended outage (a DTLS one under ``dtls_``) and hand it on."""
        stats = self.stats
        assert stats is not None
        t = self._t()
        prefix = "dtls_" if o.channel == "dtls" else ""
        what = "DTLS" if o.channel == "dtls" else "tunnel"
        if o.recovered:
            stats.count(f"{prefix}outages_recovered", t=t)
            stats.record(f"{prefix}outage", o.seconds, t=t)
            text = f"{what} back after {o.seconds:.1f} s ({o.ended_by})"
        else:
            stats.count(f"{prefix}outages_{o.ended_by}", t=t)
            text = f"{what} outage over: {o.ended_by} after {o.seconds:.1f} s"
        self.outage_records.append(o)
        self._emit(f"client {o.client}", text, "recovered" if o.recovered else o.ended_by)
        if self.on_outage is not None:
            self.on_outage(o)

    # ---------------------------------------------------------------- faults
    def _fault_line(self, text: str) -> None:
        if self.on_line is not None:
            self.on_line(text)
        self._emit("engine", text, "fault")

    async def _fault(self, fault: Fault) -> None:
        """Inject one fault at its time (see :mod:`tunnelswarm.fleet.faults`)."""
        stats = self.stats
        assert stats is not None
        await trio.sleep_until(self._t_plan + fault.at)
        if self.index_base == 0:  # one count per run, not one per worker process
            stats.count("faults", key=fault.kind, t=self._t())
        if fault.kind == "headend-restart":
            await self._restart_mock(fault)
            return
        imp = self.imp
        assert imp is not None
        self._fault_line(f"fault: {fault.describe()}")
        if fault.kind == "tcp-cut":
            imp.cut_tcp()
            return
        if fault.kind == "udp-blackout":
            imp.block_udp = True
        else:
            imp.pause(True)
        await trio.sleep(fault.duration)
        if fault.kind == "udp-blackout":
            imp.block_udp = False
        else:
            imp.pause(False)
        self._fault_line(f"fault over: {fault.kind} after {fault.duration:g} s")

    async def _restart_mock(self, fault: Fault) -> None:
        if self.mock is not None:  # the coordinator's mock process restarts it
            return
        scope, done, mcfg, outer = self._mock_scope, self._mock_done, self._mock_cfg, self._outer
        assert scope is not None
        assert done is not None
        assert mcfg is not None
        assert outer is not None
        self._fault_line(f"fault: {fault.describe()}: stopping the mock ASA")
        scope.cancel()
        await done.wait()
        await trio.sleep(fault.duration)
        try:
            info: MockAsaInfo = await outer.start(self._serve_mock, mcfg)
        except OSError as e:
            self._fault_line(f"fault: the mock ASA could not start again: {e}")
            return
        self._mock_started(info)
        self._fault_line(f"fault over: mock ASA up again at {info.url}")

    # ---------------------------------------------------------------- traffic
    async def _hold(self, s: ClientSession) -> None:
        t = self.spec.traffic
        if t.ping is None and t.udp is None and t.flows is None:
            await trio.sleep_forever()  # (no nursery to open and close per session)
        async with trio.open_nursery() as nursery:
            if t.ping is not None:
                nursery.start_soon(self._probe_loop, s, t.ping.interval, "icmp", t.ping.size)
            if t.udp is not None:
                nursery.start_soon(self._probe_loop, s, t.udp.interval, "udp", t.udp.size - 28)
            if t.flows is not None:
                nursery.start_soon(self._flow_loop, nursery, s)
            await trio.sleep_forever()

    async def _probe_loop(self, s: ClientSession, interval: float, kind: str, size: int) -> None:
        stats = self.stats
        assert stats is not None
        name = "ping" if kind == "icmp" else "udp"
        # spread the clients' probes over the interval (seeded: replays identically)
        start = trio.current_time() + self._rng.uniform(0.0, interval)
        k = 0
        while True:
            await trio.sleep_until(start + k * interval)
            k += 1
            try:
                report = await s.adapter.ping(
                    self.spec.target,
                    count=1,
                    timeout=min(2.0, interval),
                    payload_len=size,
                    kind=kind,
                )
            except RuntimeError:  # between tunnels: no address yet
                continue
            t = self._t()
            stats.count(f"{name}_sent", report.transmitted, t=t)
            stats.count(f"{name}_lost", report.transmitted - report.received, t=t)
            for reply in report.replies:
                stats.record(f"{name}_rtt", reply.rtt_ms / 1000.0, t=t)

    async def _flow_loop(self, nursery: trio.Nursery, s: ClientSession) -> None:
        f = self.spec.traffic.flows
        assert f is not None
        start = trio.current_time() + FLOW_FIRST
        k = 0
        while True:
            await trio.sleep_until(start + k * f.every)
            nursery.start_soon(self._one_flow, s, f.bytes)
            k += 1

    async def _one_flow(self, s: ClientSession, nbytes: int) -> None:
        stats = self.stats
        assert stats is not None
        if s.adapter.address is None:
            return
        try:
            result = await fetch(s.adapter, self.spec.target, nbytes, timeout=FLOW_TIMEOUT)
        except TunnelswarmError:  # the tunnel went away under it (between tunnels)
            stats.count("flows", key="error", t=self._t())
            return
        stats.count("flows", key=result.outcome, t=self._t())

    # ---------------------------------------------------------------- sampling
    async def _sampler(self) -> None:
        """At the end of every second of the run: its gauges and its bucket."""
        while True:
            await trio.sleep_until(self._t_plan + self._next_second + 1)
            self._sample(self._next_second)

    def _final_sample(self) -> None:
        """The levels at the end of the run, for every second not yet sampled up to the
        one the run ended in (usually just that one)."""
        if self.stats is None:
            return
        for second in range(self._next_second, math.floor(self._t()) + 1):
            self._sample(second)

    def _sample(self, second: int) -> None:
        """Set the gauges as the levels at the end of ``second`` and hand it on."""
        stats = self.stats
        assert stats is not None
        self._next_second = second + 1
        up = dtls = 0
        for live in self.live.values():
            s = live.session
            if s is None:
                continue
            up += s.connected.is_set()
            dtls += s.dtls is not None and s.dtls.up
            self._count_traffic(live, s, second)
        stats.set_gauge("sessions_up", up, t=second)
        stats.set_gauge("dtls_up", dtls, t=second)
        stats.set_gauge("sessions_down", self.outages.down, t=second)
        stats.set_gauge("dtls_down", self.dtls_outages.down, t=second)
        if self.on_bucket is not None:
            self.on_bucket(bucket_row(stats, second))
        if self.on_second is not None:
            self.on_second(stats, float(second + 1))


def bucket_row(stats: RunStats, second: int) -> dict[str, Any]:
    """One second of the run as a flat JSON-able row (``--json-lines``): the counters
    counted in it, the gauges' levels, that second's setup latency (``setup_count``,
    ``setup_p50/p90/p99``, ``setup_max``, seconds, None without setups) and running
    totals (``total_*``) of the main counters."""
    b = stats.series.get(second)
    row: dict[str, Any] = {"second": second, **dict(sorted((b.counters if b else {}).items()))}
    gauges = ("sessions_up", "dtls_up")
    cols = series_columns(b, {g: stats.level_at(g, second) for g in gauges}, (50.0, 90.0, 99.0))
    for name in gauges:
        row[name] = int(cols[name])
    for name in ("setup_count", "setup_p50", "setup_p90", "setup_p99", "setup_max"):
        v = cols[name]
        row[name] = None if isinstance(v, float) and math.isnan(v) else v
    for name in ("sessions_started", "setups_completed", "sessions_failed"):
        row[f"total_{name}"] = stats.counters.get(name, 0)
    for name in ("errors", "reconnects"):
        row[f"total_{name}"] = sum(stats.families.get(name, {}).values())
    return row


# ------------------------------------------------------------------ running it
async def _watch_signals(engine: LoadEngine) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            engine.interrupt()


async def _main(engine: LoadEngine, watch_signals: bool) -> LoadResult:
    async with trio.open_nursery() as nursery:
        if watch_signals:
            nursery.start_soon(_watch_signals, engine)
        result = await engine.run()
        nursery.cancel_scope.cancel()
    return result


def run_load(
    spec: LoadSpec,
    *,
    on_bucket: Callable[[dict[str, Any]], None] | None = None,
    on_line: Callable[[str], None] | None = None,
    watch_signals: bool = True,
) -> LoadResult:
    """Run ``spec`` in a Trio run of its own (virtual time: with a MockClock); see
    :func:`run_engine`."""
    engine = LoadEngine(spec, on_bucket=on_bucket, on_line=on_line)
    return run_engine(engine, watch_signals=watch_signals)


def run_engine(engine: LoadEngine, *, watch_signals: bool = True) -> LoadResult:
    """Run ``engine`` (made by the caller, with its observers) in a Trio run of its own
    (virtual time: with a MockClock). Afterwards, also when this raised,
    :meth:`LoadEngine.result` has everything measured.

    Ctrl-C / SIGTERM interrupt it (see :meth:`LoadEngine.interrupt`) and the result says
    so; :class:`RunSetupError`, :class:`ConfigError` and ``OSError`` (e.g. the mock cannot
    bind) mean the run could not be made."""
    spec = engine.spec
    clock = None
    if spec.virtual_time:
        seed_scheduler(spec.seed)
        clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        return trio.run(_main, engine, watch_signals, clock=clock)
    except KeyboardInterrupt:  # before the signal watcher was up, or after it was gone
        engine.interrupted = True
        return engine.result()
    except BaseExceptionGroup as group:
        # the run could not be made (RunSetupError, ConfigError, the mock cannot bind):
        # raise it by itself, not inside the nurseries' groups
        leaf = _leaf(group)
        if isinstance(leaf, KeyboardInterrupt):
            engine.interrupted = True
            return engine.result()
        if isinstance(leaf, TunnelswarmError | OSError):
            raise leaf from None
        raise
