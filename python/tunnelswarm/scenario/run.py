"""Run a scenario: the headend, the clients, the timeline, the measurements, the verdicts.

Theory of operation
-------------------
:func:`run_scenario` (sync: it owns the Trio run) and :func:`run_scenario_async` (inside
a Trio run the caller owns, real time only) do the same steps:

1. **Network.** In virtual time an in-memory network
   (:class:`~tunnelswarm.drive.memnet.MemNetwork`) joins the mock ASA (at its outside
   interface address, ports exactly as configured) and the clients (one address each,
   ``198.51.100.0/22``); the run uses ``trio.testing.MockClock(autojump_threshold=0)``, so
   time jumps whenever every task waits. Trio's scheduler tie-breaks and the clients'
   randomness are seeded, so the same seed gives the same timeline. In real time the
   clients use real loopback sockets wrapped by the impairment layer
   (:mod:`tunnelswarm.drive.impair`) and the mock listens on 127.0.0.1 (ports shifted,
   see :mod:`tunnelswarm.asa.server`) — or the clients go to ``headend.url``.
2. **Headend.** The mock ASA runs in-process with the scenario's configuration (the base,
   an optional ``asa_version``, then the scenario's lines); its syslog is captured into
   the timeline with the run's clock.
3. **Clients.** ``clients.count`` sessions of the profile (plus overrides) start at
   ``clients.start`` + ``i × stagger``; each runs the traffic of the scenario (pings,
   UDP echo, bulk flows) until the end. A client that fails is recorded with its cause,
   never the end of the run.
4. **Timeline.** Actions fire at their times: impairments on the shared
   :class:`~tunnelswarm.drive.impair.LinkImpairments`, ``drop_icmp`` as the mock's
   ``icmp deny any unreachable inside``, admin lines through a privileged console of the
   mock (their output, e.g. an ``ERROR:``, goes into the timeline).
5. **Measurements.** At the end, :class:`~tunnelswarm.scenario.expect.Metrics` (see
   :data:`METRICS` for names and meanings) are computed from the clients' event
   timelines and counters and the mock's counters and syslog, the expectations are
   evaluated, and a :class:`ScenarioResult` comes back. Every event also went to the
   ``on_line`` callback as it happened (the live timeline of ``tunnelswarm run``).
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import trio
import trio.testing

from tunnelswarm.asa.config import AsaConfig, parse_config
from tunnelswarm.asa.server import DEFAULT_CONFIG_TEXT, MockAsa, MockAsaConfig, serve_mock_asa
from tunnelswarm.asa.syslog import CallbackSink, SyslogRecord
from tunnelswarm.client.flow import fetch
from tunnelswarm.client.session import ClientOptions, ClientSession, SessionEvent, open_client
from tunnelswarm.config.profile import ClientProfile, load_profile
from tunnelswarm.drive.datagram import udp_opener
from tunnelswarm.drive.impair import (
    LinkImpairments,
    impaired_datagram_opener,
    impaired_stream_opener,
)
from tunnelswarm.drive.memnet import MemNetwork
from tunnelswarm.drive.stream import tcp_opener
from tunnelswarm.errors import ConfigError, TunnelswarmError
from tunnelswarm.scenario.expect import Metrics, Verdict, evaluate
from tunnelswarm.scenario.model import Action, Scenario

__all__ = [
    "METRICS",
    "ClientRecord",
    "RunOptions",
    "ScenarioResult",
    "ScriptContext",
    "TimelineEntry",
    "client_host",
    "run_scenario",
    "run_scenario_async",
    "seed_scheduler",
    "virtual_mock",
]

#: the mock's outside address in the in-memory network (the default configuration's)
VIRTUAL_HEADEND: Final = "172.16.11.1"
#: a fixed wall-clock start for virtual runs (syslog timestamps replay identically)
VIRTUAL_EPOCH: Final = datetime(2026, 1, 1, 9, 0, 0)
#: the first bulk transfer starts this long after a client is up; each may take this long
FLOW_FIRST: Final = 5.0
FLOW_TIMEOUT: Final = 90.0
#: the link MTU of the emulated clients' physical interface
CLIENT_LINK_MTU: Final = 1500
DROP_NAMES: Final = ("mp-svc-no-fragment", "mp-svc-no-session", "mp-svc-bad-framing")

#: metric name → meaning (docs/scenarios.md lists the same)
METRICS: Final[dict[str, str]] = {
    "clients": "emulated clients in the run",
    "clients_failed": "clients whose session ended in an error (errors[cause] by cause)",
    "dtls_up_ratio": "fraction of clients with DTLS up at the end",
    "dtls_ever_up_ratio": "fraction of clients whose DTLS came up at least once",
    "dtls_attempts_per_10min": "DTLS handshakes that ended (up or failed), per client per"
    " 10 minutes",
    "adapter_mtu": "smallest virtual-adapter MTU among the clients at the end",
    "adapter_mtu_max": "largest virtual-adapter MTU among the clients at the end",
    "reconnects[cause]": "reconnects by cause (mtu, dpd, transport, rekey), all clients",
    "reconnects_per_10min[cause]": "reconnects by cause per client per 10 minutes",
    "asp_drop[name]": "the mock ASA's 'show asp drop' counters",
    "syslog[id]": "the mock ASA's syslog messages by id (e.g. syslog[722036])",
    "icmp_too_big_sent": "ICMP 3/4 the mock sent toward inside senders",
    "icmp_too_big_blocked": "ICMP 3/4 the mock did not send (icmp deny: black hole)",
    "adapter_rx_dropped": "packets the clients' adapters dropped as larger than their MTU",
    "ping_sent": "echo requests sent by all clients",
    "ping_loss": "fraction of echo requests without a reply",
    "flows": "bulk transfers started",
    "flows_completed": "transfers completed without trouble",
    "flows_slowed": "transfers completed after retransmissions or PMTUD",
    "flows_stalled": "transfers that did not complete (timeout or reset)",
    "udp_blocked": "datagrams the impairment layer dropped as blocked",
    "script_failed": "1 when a Python scenario's script raised (see the timeline)",
    "dtls_listen_port": "the DTLS port the mock's socket listens on (ASA numbering)",
    "dtls_advertised_port": "the X-DTLS-Port the mock advertises (ASA numbering)",
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of the run's timeline: ``t`` seconds from the start."""

    t: float
    source: str  # "client 3", "asa", "action"
    text: str
    kind: str = ""

    def line(self) -> str:
        return f"{self.t:9.3f}s  {self.source:<10} {self.text}"

    def as_dict(self) -> dict[str, object]:
        return {"t": round(self.t, 6), "source": self.source, "kind": self.kind, "text": self.text}


@dataclass
class ClientRecord:
    """What one client did."""

    index: int
    events: list[SessionEvent] = field(default_factory=list)
    error: str | None = None
    error_cause: str | None = None
    final_mtu: int | None = None
    dtls_up: bool = False
    rx_dropped: int = 0
    ping_sent: int = 0
    ping_received: int = 0
    flows: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class RunOptions:
    virtual_time: bool = False
    #: replaces the scenario's seed
    seed: int | None = None
    #: live timeline lines (None: silent)
    on_line: Callable[[TimelineEntry], None] | None = None
    #: real time against the mock: where it keeps its certificate (None: a temp dir)
    state_dir: Path | None = None
    #: real time only: use the scenario's ``[realtime]`` section (shortened timers and
    #: duration, its own expectations) — quick runs and the test suite
    quick: bool = False


@dataclass
class ScenarioResult:
    scenario: Scenario
    virtual_time: bool
    seed: int
    metrics: Metrics
    verdicts: list[Verdict]
    timeline: list[TimelineEntry]
    syslog: list[str]
    clients: list[ClientRecord]
    wall_seconds: float = 0.0
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return not self.interrupted and all(v.passed for v in self.verdicts)

    def summary(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "virtual_time": self.virtual_time,
            "seed": self.seed,
            "duration": self.scenario.duration,
            "passed": self.passed,
            "interrupted": self.interrupted,
            "wall_seconds": round(self.wall_seconds, 3),
            "metrics": self.metrics.as_dict(),
            "verdicts": [v.as_dict() for v in self.verdicts],
            "clients": [
                {
                    "index": c.index,
                    "error": c.error,
                    "final_mtu": c.final_mtu,
                    "dtls_up": c.dtls_up,
                    "reconnects": dict(
                        Counter(e.cause or "?" for e in c.events if e.kind == "reconnect")
                    ),
                }
                for c in self.clients
            ],
        }


# ------------------------------------------------------------------ configuration
def mock_config_text(sc: Scenario) -> str:
    """The mock ASA configuration the scenario asks for (base, version, its lines)."""
    text = DEFAULT_CONFIG_TEXT
    if sc.headend.asa_version is not None:
        lines = [ln for ln in text.splitlines() if not ln.startswith("ASA Version")]
        text = "\n".join([f"ASA Version {sc.headend.asa_version}", *lines]) + "\n"
    return text


def _profile(sc: Scenario) -> ClientProfile:
    try:
        prof = load_profile(sc.clients.profile)
    except ConfigError as e:
        raise ConfigError(f"{sc.source}: clients.profile: {e}") from None
    if sc.clients.overrides:
        prof = prof.with_overrides(sc.clients.overrides, source=f"{sc.source}: clients.overrides")
    return prof


def virtual_mock(
    cfg: AsaConfig, impairments: LinkImpairments, *, state_dir: Path | None = None
) -> tuple[MemNetwork, MockAsaConfig]:
    """An in-memory network whose impairments sit between the clients and the mock ASA
    at :data:`VIRTUAL_HEADEND`, and the mock's configuration for it: ports exactly as
    configured, syslog stamped :data:`VIRTUAL_EPOCH` + Trio's clock since now."""
    net = MemNetwork(impairments)
    net.add_headend(VIRTUAL_HEADEND)
    t0 = trio.current_time()
    mcfg = MockAsaConfig(
        asa=cfg,
        listen=VIRTUAL_HEADEND,
        network=net,
        state_dir=state_dir,
        wall_clock=lambda: VIRTUAL_EPOCH + timedelta(seconds=trio.current_time() - t0),
    )
    return net, mcfg


class ScriptContext:
    """What ``async def script(ctx)`` of a Python scenario can do, beside the timeline.

    Times are seconds from the start of the run (:meth:`now`, :meth:`sleep_until`);
    :meth:`impair` and :meth:`admin` act like the TOML actions; :meth:`say` writes a line
    into the timeline; :attr:`asa` is the in-process mock ASA (None against a URL) and
    :meth:`session` a client's live :class:`~tunnelswarm.client.session.ClientSession`
    (None while it is not connected). An exception in the script is shown in the
    timeline and makes the metric ``script_failed`` 1; the run goes on."""

    def __init__(self, run: _Run, nursery: trio.Nursery) -> None:
        self._run = run
        self._nursery = nursery

    def now(self) -> float:
        return self._run.now()

    async def sleep_until(self, t: float) -> None:
        await trio.sleep_until(self._run.t0 + t)

    def impair(self, **values: object) -> None:
        self._run.apply(Action(at=self.now(), impair=values), self._nursery)

    def admin(self, *lines: str) -> list[str]:
        """Lines on a privileged console of the mock; their output (also in the timeline)."""
        asa = self._run.asa
        if asa is None:
            raise ConfigError("admin lines need the mock ASA")
        self._run.emit("script", "admin: " + "; ".join(lines), "action")
        console = asa.console(privileged=True)
        out: list[str] = []
        for line in lines:
            for text in asa.admin_line(console, line):
                out.append(text)
                if text.strip():
                    self._run.emit("asa-cli", text, "admin")
        return out

    def say(self, text: str) -> None:
        self._run.emit("script", text, "script")

    @property
    def asa(self) -> MockAsa | None:
        return self._run.asa

    def session(self, index: int) -> ClientSession | None:
        return self._run.sessions.get(index)

    @property
    def clients(self) -> list[ClientRecord]:
        return self._run.records


class _TimelineHandler(logging.Handler):
    """A client's log lines (the agent's messages, DTLS trouble) into the timeline."""

    def __init__(self, run: _Run, source: str) -> None:
        super().__init__(logging.INFO)
        self.run = run
        self.source = source

    def emit(self, record: logging.LogRecord) -> None:
        self.run.emit(self.source, record.getMessage(), "log")


def client_host(i: int) -> str:
    """The in-memory network address of emulated client ``i`` (198.51.100.0/22)."""
    return f"198.51.{100 + i // 250}.{i % 250 + 1}"


# ------------------------------------------------------------------ the run
class _Run:
    def __init__(self, sc: Scenario, opts: RunOptions, seed: int) -> None:
        self.sc = sc
        self.opts = opts
        self.seed = seed
        self.t0 = 0.0
        self.timeline: list[TimelineEntry] = []
        self.syslog: list[str] = []
        self.syslog_ids: Counter[str] = Counter()
        self.records = [ClientRecord(i) for i in range(sc.clients.count)]
        self.imp = LinkImpairments(rng=random.Random(seed))
        self.net: MemNetwork | None = None
        self.asa: MockAsa | None = None
        self.url = sc.headend.url or ""
        self.pins = sc.headend.servercert
        self.stop = trio.Event()
        self.profile = _profile(sc)
        self.sessions: dict[int, ClientSession] = {}
        self.script_error: str | None = None

    def now(self) -> float:
        return trio.current_time() - self.t0

    def emit(self, source: str, text: str, kind: str = "") -> None:
        entry = TimelineEntry(self.now(), source, text, kind)
        self.timeline.append(entry)
        if self.opts.on_line is not None:
            self.opts.on_line(entry)

    # ---------------------------------------------------------------- syslog capture
    def _syslog(self, record: SyslogRecord) -> None:
        """The mock's syslog, every severity, into the timeline."""
        text = record.message.text
        self.syslog.append(record.line())
        self.syslog_ids[str(record.message.msg_id)] += 1
        self.emit("asa", text, "syslog")

    # ---------------------------------------------------------------- headend
    async def start_headend(self, nursery: trio.Nursery) -> None:
        sc = self.sc
        if not sc.headend.is_mock:
            return
        cfg = parse_config(mock_config_text(sc))
        if sc.headend.config.strip():
            try:
                cfg = parse_config(sc.headend.config, base=cfg)
            except TunnelswarmError as e:
                raise ConfigError(f"{sc.source}: headend.config: {e}") from None
        state = self.opts.state_dir or Path(tempfile.mkdtemp(prefix="tunnelswarm-run-"))
        if self.opts.virtual_time:
            self.net, mcfg = virtual_mock(cfg, self.imp, state_dir=state)
        else:
            mcfg = MockAsaConfig(asa=cfg, port=0, state_dir=state)
        info = await nursery.start(serve_mock_asa, mcfg)
        self.asa = info.asa
        self.asa.taps.add(CallbackSink(self._syslog))
        self.url = info.url
        self.pins = (info.pin,)
        self.emit("asa", f"mock ASA {cfg.asa_version} at {info.url}", "start")

    # ---------------------------------------------------------------- actions
    async def timeline_task(self, nursery: trio.Nursery) -> None:
        for action in self.sc.actions:
            await trio.sleep_until(self.t0 + action.at)
            self.apply(action, nursery)

    def apply(self, action: Action, nursery: trio.Nursery) -> None:
        self.emit("action", action.describe(), "action")
        for name, value in action.impair.items():
            if name == "drop_icmp":
                verb = "" if value else "no "
                self.admin(["configure terminal", f"{verb}icmp deny any unreachable inside", "end"])
            elif name == "pause_headend":
                duration = float(value)
                self.imp.pause(True)
                nursery.start_soon(self._resume_after, duration)
            else:
                self.imp.set(name, value)
        if action.admin:
            self.admin(list(action.admin))

    async def _resume_after(self, duration: float) -> None:
        await trio.sleep(duration)
        self.imp.pause(False)
        self.emit("action", "pause_headend ended", "action")

    def admin(self, lines: list[str]) -> None:
        asa = self.asa
        if asa is None:
            raise ConfigError(f"{self.sc.source}: admin lines need the mock ASA")
        console = asa.console(privileged=True)
        for line in lines:
            for out in asa.admin_line(console, line):
                if out.strip():
                    self.emit("asa-cli", out, "admin")

    # ---------------------------------------------------------------- clients
    def _options(self, i: int) -> ClientOptions:
        c = self.sc.clients
        return ClientOptions(
            url=self.url,
            user=c.user,
            password=c.password,
            servercert=self.pins,
            profile=self.profile,
            hostname=f"tunnelswarm-{i}",
            seed=self.seed * 1_000_003 + i,
            # the emulated client sits on an Ethernet LAN: X-CSTP-Base-MTU 1500, whatever
            # the loopback or in-memory path says (the tech note's numbers assume it)
            base_mtu=CLIENT_LINK_MTU,
        )

    def _openers(self, i: int) -> dict[str, Any]:
        if self.net is not None:
            host = client_host(i)
            return {
                "opener": self.net.stream_opener(host),
                "datagram_opener": self.net.datagram_opener(host),
            }
        return {
            "opener": impaired_stream_opener(tcp_opener, self.imp),
            "datagram_opener": impaired_datagram_opener(udp_opener, self.imp),
        }

    async def client_task(self, rec: ClientRecord) -> None:
        c = self.sc.clients
        await trio.sleep_until(self.t0 + c.start + rec.index * c.stagger)
        src = f"client {rec.index}"

        def on_event(ev: SessionEvent) -> None:
            rec.events.append(ev)
            text = ev.kind + (f" ({ev.cause})" if ev.cause else "")
            if ev.mtu is not None:
                text += f" {ev.mtu}"
            if ev.detail:
                text += f": {ev.detail}"
            self.emit(src, text, ev.kind)

        log = logging.getLogger(f"tunnelswarm.run.{id(self)}.client{rec.index}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.handlers[:] = [_TimelineHandler(self, src)]
        try:
            async with open_client(
                self._options(rec.index),
                on_event=on_event,
                log=log,
                **self._openers(rec.index),
            ) as s:
                self.sessions[rec.index] = s
                async with trio.open_nursery() as nursery:
                    self._traffic(nursery, s, rec)
                    await self.stop.wait()
                    nursery.cancel_scope.cancel()
                self._snapshot(s, rec)
                self.sessions.pop(rec.index, None)
        except TunnelswarmError as e:
            self.sessions.pop(rec.index, None)
            rec.error, rec.error_cause = str(e), e.cause
            self.emit(src, f"failed ({e.cause}): {e}", "error")

    def _snapshot(self, s: ClientSession, rec: ClientRecord) -> None:
        rec.final_mtu = s.adapter.mtu
        rec.dtls_up = s.dtls is not None and s.dtls.up
        rec.rx_dropped = s.adapter.counters.rx_dropped_oversize

    def _traffic(self, nursery: trio.Nursery, s: ClientSession, rec: ClientRecord) -> None:
        t = self.sc.traffic
        if t.ping is not None:
            nursery.start_soon(
                self._ping_loop, s, rec, t.ping.target, t.ping.interval, "icmp", t.ping.size
            )
        if t.flows is not None:
            nursery.start_soon(self._flow_loop, nursery, s, rec)
        if t.udp is not None:
            nursery.start_soon(
                self._ping_loop, s, rec, t.udp.target, t.udp.interval, "udp", t.udp.size - 28
            )

    async def _flow_loop(self, nursery: trio.Nursery, s: ClientSession, rec: ClientRecord) -> None:
        """A bulk transfer every ``flows.every`` seconds, each in its own task (a slow one
        may overlap the next), the first 5 s after the client is up."""
        f = self.sc.traffic.flows
        assert f is not None
        start = trio.current_time() + FLOW_FIRST
        k = 0
        while True:
            await trio.sleep_until(start + k * f.every)
            nursery.start_soon(self._one_flow, s, rec, f.server, f.port, f.bytes)
            k += 1

    async def _one_flow(
        self, s: ClientSession, rec: ClientRecord, server: str, port: int, nbytes: int
    ) -> None:
        if s.adapter.address is None:
            return
        result = await fetch(s.adapter, server, nbytes, port=port, timeout=FLOW_TIMEOUT)
        rec.flows[result.outcome] += 1
        why = f" ({', '.join(result.reasons)})" if result.reasons else ""
        self.emit(
            f"client {rec.index}",
            f"flow {server}:{port} {nbytes} B {result.outcome}{why} in {result.elapsed:.1f} s",
            "flow",
        )

    async def _inside_udp_loop(self) -> None:
        iu = self.sc.traffic.inside_udp
        asa = self.asa
        if iu is None or asa is None:
            return
        k = 1
        while True:
            await trio.sleep_until(self.t0 + self.sc.clients.start + k * iu.every)
            sent = asa.push_inside_udp(iu.size, df=iu.df)
            self.emit("asa", f"inside host pushed {iu.size}-byte UDP to {sent} clients", "push")
            k += 1

    async def _ping_loop(
        self,
        s: ClientSession,
        rec: ClientRecord,
        target: str,
        interval: float,
        kind: str,
        size: int,
    ) -> None:
        while True:
            start = trio.current_time()
            try:
                report = await s.adapter.ping(
                    target, count=1, timeout=min(2.0, interval), payload_len=size, kind=kind
                )
                rec.ping_sent += report.transmitted
                rec.ping_received += report.received
            except RuntimeError:  # between tunnels: no address yet
                pass
            await trio.sleep_until(start + interval)

    # ---------------------------------------------------------------- main
    async def _script_task(self, nursery: trio.Nursery) -> None:
        script = self.sc.script
        assert script is not None
        ctx = ScriptContext(self, nursery)
        try:
            await script(ctx)
        except TunnelswarmError as e:
            self.emit("script", f"failed ({e.cause}): {e}", "error")
            self.script_error = str(e)
        except Exception as e:  # the user's code: reported in the timeline, the run goes on
            self.emit("script", f"failed: {type(e).__name__}: {e}", "error")
            self.script_error = f"{type(e).__name__}: {e}"

    async def main(self) -> None:
        self.t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            await self.start_headend(nursery)
            nursery.start_soon(self.timeline_task, nursery)
            nursery.start_soon(self._inside_udp_loop)
            if self.sc.script is not None:
                nursery.start_soon(self._script_task, nursery)
            async with trio.open_nursery() as clients:
                for rec in self.records:
                    clients.start_soon(self.client_task, rec)
                await trio.sleep_until(self.t0 + self.sc.duration)
                self.stop.set()
            nursery.cancel_scope.cancel()

    def metrics(self) -> Metrics:
        sc = self.sc
        m = Metrics()
        n = max(len(self.records), 1)
        scale = 600.0 / sc.duration / n if sc.duration > 0 else math.nan
        m.set("clients", len(self.records))
        m.set("clients_failed", sum(r.error is not None for r in self.records))
        m.family("errors", Counter(r.error_cause for r in self.records if r.error_cause))
        m.set("dtls_up_ratio", sum(r.dtls_up for r in self.records) / n)
        ever = sum(any(e.kind == "dtls-up" for e in r.events) for r in self.records)
        m.set("dtls_ever_up_ratio", ever / n)
        ended = sum(e.kind in ("dtls-up", "dtls-fail") for r in self.records for e in r.events)
        m.set("dtls_attempts_per_10min", ended * scale)
        mtus = [r.final_mtu for r in self.records if r.final_mtu]
        m.set("adapter_mtu", min(mtus) if mtus else math.nan)
        m.set("adapter_mtu_max", max(mtus) if mtus else math.nan)
        causes = Counter(
            e.cause or "unknown" for r in self.records for e in r.events if e.kind == "reconnect"
        )
        m.family("reconnects", causes)
        m.family("reconnects_per_10min", {k: v * scale for k, v in causes.items()})
        m.set("adapter_rx_dropped", sum(r.rx_dropped for r in self.records))
        sent = sum(r.ping_sent for r in self.records)
        got = sum(r.ping_received for r in self.records)
        m.set("ping_sent", sent)
        m.set("ping_loss", (sent - got) / sent if sent else math.nan)
        flows: Counter[str] = Counter()
        for r in self.records:
            flows.update(r.flows)
        m.set("flows", sum(flows.values()))
        for k in ("completed", "slowed", "stalled"):
            m.set(f"flows_{k}", flows[k])
        m.set("udp_blocked", self.imp.counters.udp_blocked)
        m.set("script_failed", 0 if self.script_error is None else 1)
        asa = self.asa
        if asa is not None:
            m.family("asp_drop", {name: asa.drops[name] for name in DROP_NAMES})
            m.family("syslog", self.syslog_ids)
            m.set("icmp_too_big_sent", asa.forwarding.icmp_unreachable_sent)
            m.set("icmp_too_big_blocked", asa.forwarding.icmp_unreachable_blocked)
            listen = asa.sockets.listening_dtls_port(asa.config.interface)
            m.set("dtls_listen_port", math.nan if listen is None else listen)
            m.set("dtls_advertised_port", asa.sockets.dtls_port)
        return m


def seed_scheduler(seed: int) -> None:
    """Make Trio's scheduling tie-breaks repeatable (its private RNG; best effort)."""
    from trio._core import _run

    rng = getattr(_run, "_r", None)
    if isinstance(rng, random.Random):
        rng.seed(seed)


def _result(run: _Run, wall: float, interrupted: bool) -> ScenarioResult:
    metrics = run.metrics()
    return ScenarioResult(
        scenario=run.sc,
        virtual_time=run.opts.virtual_time,
        seed=run.seed,
        metrics=metrics,
        verdicts=evaluate(run.sc.expect, metrics),
        timeline=run.timeline,
        syslog=run.syslog,
        clients=run.records,
        wall_seconds=wall,
        interrupted=interrupted,
    )


async def run_scenario_async(sc: Scenario, opts: RunOptions) -> ScenarioResult:
    """Run ``sc`` in real time inside the caller's Trio run (Ctrl-C keeps the results)."""
    if opts.virtual_time:
        raise ConfigError("virtual time needs its own Trio run: use run_scenario()")
    if opts.quick:
        sc = sc.for_real_time()
    run = _Run(sc, opts, sc.seed if opts.seed is None else opts.seed)
    import time

    start = time.monotonic()
    interrupted = False
    try:
        await run.main()
    except KeyboardInterrupt:
        interrupted = True
    return _result(run, time.monotonic() - start, interrupted)


def run_scenario(sc: Scenario, opts: RunOptions) -> ScenarioResult:
    """Run ``sc`` (virtual time: in a Trio run of its own with a MockClock)."""
    import time

    seed = sc.seed if opts.seed is None else opts.seed
    if not opts.virtual_time:
        return trio.run(run_scenario_async, sc, opts)
    run = _Run(sc, opts, seed)
    seed_scheduler(seed)
    start = time.monotonic()
    interrupted = False
    try:
        trio.run(run.main, clock=trio.testing.MockClock(autojump_threshold=0))
    except KeyboardInterrupt:
        interrupted = True
    return _result(run, time.monotonic() - start, interrupted)
