"""The scenario model: what to run, what to do to it, and what should come out.

Theory of operation
-------------------
A :class:`Scenario` is data: a headend (the built-in mock ASA with a configuration in ASA
syntax, or the URL of a real one), the emulated clients (a profile, how many, with which
profile overrides), their traffic, a timeline of :class:`Action` s (impairments, admin
console commands to the mock), a duration, and :class:`~tunnelswarm.scenario.expect.
Expectation` s. Declarative scenarios are TOML files (:func:`load_scenario`); scripted
ones are Python files that define ``scenario`` (a :class:`Scenario`) and may define
``async def script(ctx)``, which runs beside the timeline (:func:`load_scenario` returns
it in :attr:`Scenario.script`).

TOML layout (every key optional except ``name``; durations accept ``ms``/``s``/``m``/``h``)::

    name = "dtls-blocked"
    description = "one line"
    duration = "10m"
    seed = 1
    [headend]
    base = "asa-9.1"                 # the mock's built-in configuration (default)
    asa_version = "8.4(6)"           # optional: replaces the base's version line
    config = '''...ASA lines...'''   # applied on top of the base, running-config syntax
    # url = "https://vpn.example/"   # a real headend instead of the mock
    # servercert = "pin-sha256:..."
    [clients]
    profile = "anyconnect-3.1"
    count = 1
    user = "test"
    password = "test"
    start = "0s"                     # when the first client starts
    stagger = "0s"                   # between client starts
    [clients.overrides]              # ClientProfile fields, e.g. dtls_give_up = 10
    [traffic]
    ping = { target = "10.1.1.1", interval = "1s", size = 56 }
    udp = { target = "10.1.1.1", port = 7, interval = "5s", size = 1400 }
    flows = { server = "10.1.1.1", port = 80, bytes = 200000, every = "20s" }
    inside_udp = { size = 1427, every = "10s" }   # mock ASA only: pushed to every client
    [[actions]]
    at = "0s"
    impair = { block_udp = true }    # see IMPAIRMENTS
    [[actions]]
    at = "30s"
    admin = ["configure terminal", "webvpn", "dtls port 444", "end"]
    [[expect]]
    check = "6 <= reconnects_per_10min[mtu] <= 11"
    why = "tech note: reason code 16 about a minute after every connect"
    [realtime]                       # `tunnelswarm run --quick`: a shortened real-time run
    duration = "150s"
    start = "5s"                     # replaces clients.start
    # [[realtime.actions]] ...       # replaces the timeline
    [realtime.overrides]             # shortened timers for a quick real-time run
    dtls_give_up = 10
    [[realtime.expect]]              # replaces [[expect]] in real time, if given
    check = "reconnects[mtu] >= 3"

Unknown keys, wrong types and bad values are refused with a one-line
:class:`~tunnelswarm.errors.ConfigError` that names the file and the key.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from tunnelswarm.errors import ConfigError
from tunnelswarm.scenario.expect import Expectation, parse_check, parse_number

__all__ = [
    "IMPAIRMENTS",
    "Action",
    "ClientsSpec",
    "FlowSpec",
    "HeadendSpec",
    "InsideUdpSpec",
    "PingSpec",
    "Scenario",
    "TrafficSpec",
    "UdpSpec",
    "load_scenario",
    "scenario_from_dict",
]

#: impairment name → what its value means (documented in docs/scenarios.md)
IMPAIRMENTS: Final[dict[str, str]] = {
    "block_udp": "true: drop every UDP datagram between client and headend; a port number:"
    " only datagrams to or from that headend port; false: lift it",
    "drop_icmp": "true: ICMP between the ASA and the inside hosts is filtered (no PMTUD:"
    " black hole); mock ASA only",
    "path_mtu": "bytes: datagrams larger than this (IP size) are dropped on the path; 0 lifts it",
    "latency": "one-way delay added to every packet between client and headend (e.g."
    " '50ms'); 0 lifts it",
    "loss": "probability (0..1) that a packet between client and headend is lost"
    " (seeded); 0 lifts it",
    "cut_tcp": "true: reset every TCP connection between client and headend once",
    "pause_headend": "duration: the headend neither sends nor receives for this long",
}

_BASES: Final = ("asa-9.1",)


def _where(source: str, key: str) -> str:
    return f"{source}: {key}"


def _seconds(source: str, key: str, value: object) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{_where(source, key)}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_number(value)
        except ConfigError:
            pass
    raise ConfigError(f"{_where(source, key)}: expected a duration like '30s', got {value!r}")


def _int(source: str, key: str, value: object, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_where(source, key)}: expected a whole number, got {value!r}")
    if value < low:
        raise ConfigError(f"{_where(source, key)}: must be at least {low}, got {value}")
    return value


def _str(source: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{_where(source, key)}: expected text, got {value!r}")
    return value


def _table(source: str, key: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(source, key)}: expected a table, got {value!r}")
    return value


def _only(source: str, key: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for k in table:
        if k not in allowed:
            raise ConfigError(
                f"{_where(source, f'{key}.{k}' if key else k)}: unknown key"
                f" (expected one of: {', '.join(allowed)})"
            )


# ------------------------------------------------------------------ parts
@dataclass(frozen=True, slots=True)
class HeadendSpec:
    """The mock ASA (``url`` None) with its configuration, or a real headend's URL."""

    url: str | None = None
    base: str = "asa-9.1"
    asa_version: str | None = None
    config: str = ""
    servercert: tuple[str, ...] = ()

    @property
    def is_mock(self) -> bool:
        return self.url is None


@dataclass(frozen=True, slots=True)
class ClientsSpec:
    profile: str = "anyconnect-3.1"
    count: int = 1
    user: str = "test"
    password: str = "test"
    #: the first client starts this long after the run (e.g. after an admin change)
    start: float = 0.0
    stagger: float = 0.0
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PingSpec:
    target: str
    interval: float = 1.0
    size: int = 56


@dataclass(frozen=True, slots=True)
class UdpSpec:
    target: str
    port: int = 7
    interval: float = 5.0
    size: int = 1400


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """A bulk transfer from an inside "web server" every ``every`` seconds."""

    server: str
    port: int = 80
    bytes: int = 200_000
    every: float = 20.0


@dataclass(frozen=True, slots=True)
class InsideUdpSpec:
    """The mock ASA's inside network pushes a UDP datagram of ``size`` bytes (IP length,
    DF set unless ``df`` is false) to every client every ``every`` seconds — media or a
    large DNS answer the client did not size for (mock ASA only)."""

    size: int = 1427
    every: float = 10.0
    df: bool = True


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    ping: PingSpec | None = None
    udp: UdpSpec | None = None
    flows: FlowSpec | None = None
    inside_udp: InsideUdpSpec | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """One timed step: ``impair`` (name → value) or ``admin`` (console lines)."""

    at: float
    impair: Mapping[str, Any] = field(default_factory=dict)
    admin: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.impair.items()]
        if self.admin:
            parts.append("admin: " + "; ".join(self.admin))
        return ", ".join(parts)


ScriptFn = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    duration: float = 600.0
    seed: int = 1
    headend: HeadendSpec = field(default_factory=HeadendSpec)
    clients: ClientsSpec = field(default_factory=ClientsSpec)
    traffic: TrafficSpec = field(default_factory=TrafficSpec)
    actions: tuple[Action, ...] = ()
    expect: tuple[Expectation, ...] = ()
    #: real-time variant: duration, profile overrides and expectations (None: the same)
    realtime_duration: float | None = None
    realtime_overrides: Mapping[str, Any] = field(default_factory=dict)
    realtime_expect: tuple[Expectation, ...] | None = None
    #: real-time variant: its own timeline and client start (None: the same)
    realtime_actions: tuple[Action, ...] | None = None
    realtime_start: float | None = None
    #: Python scenarios: ``async def script(ctx)`` run beside the timeline
    script: ScriptFn | None = None
    source: str = "<built-in>"

    def for_real_time(self) -> Scenario:
        """The scenario as it runs in real time (shortened timers, its own checks)."""
        if (
            self.realtime_duration is None
            and not self.realtime_overrides
            and self.realtime_expect is None
            and self.realtime_actions is None
            and self.realtime_start is None
        ):
            return self
        clients = replace(
            self.clients,
            overrides={**self.clients.overrides, **self.realtime_overrides},
            start=self.clients.start if self.realtime_start is None else self.realtime_start,
        )
        return replace(
            self,
            duration=self.realtime_duration or self.duration,
            clients=clients,
            actions=self.actions if self.realtime_actions is None else self.realtime_actions,
            expect=self.expect if self.realtime_expect is None else self.realtime_expect,
            realtime_duration=None,
            realtime_overrides={},
            realtime_expect=None,
            realtime_actions=None,
            realtime_start=None,
        )


# ------------------------------------------------------------------ loading
def _headend(source: str, t: dict[str, Any]) -> HeadendSpec:
    _only(source, "headend", t, ("url", "base", "asa_version", "config", "servercert"))
    base = _str(source, "headend.base", t.get("base", "asa-9.1"))
    if base not in _BASES:
        raise ConfigError(
            f"{_where(source, 'headend.base')}: unknown base {base!r} (known: {', '.join(_BASES)})"
        )
    url = t.get("url")
    if url is not None:
        url = _str(source, "headend.url", url)
        if not url.startswith("https://"):
            raise ConfigError(f"{_where(source, 'headend.url')}: expected https://…, got {url!r}")
    cert = t.get("servercert", ())
    if isinstance(cert, str):
        cert = (cert,)
    if not isinstance(cert, (list, tuple)) or not all(isinstance(c, str) for c in cert):
        raise ConfigError(f"{_where(source, 'headend.servercert')}: expected text or a list")
    version = t.get("asa_version")
    return HeadendSpec(
        url=url,
        base=base,
        asa_version=None if version is None else _str(source, "headend.asa_version", version),
        config=_str(source, "headend.config", t.get("config", "")),
        servercert=tuple(cert),
    )


def _clients(source: str, t: dict[str, Any]) -> ClientsSpec:
    _only(
        source,
        "clients",
        t,
        ("profile", "count", "user", "password", "start", "stagger", "overrides"),
    )
    return ClientsSpec(
        profile=_str(source, "clients.profile", t.get("profile", "anyconnect-3.1")),
        count=_int(source, "clients.count", t.get("count", 1), low=1),
        user=_str(source, "clients.user", t.get("user", "test")),
        password=_str(source, "clients.password", t.get("password", "test")),
        start=_seconds(source, "clients.start", t.get("start", 0)),
        stagger=_seconds(source, "clients.stagger", t.get("stagger", 0)),
        overrides=dict(_table(source, "clients.overrides", t.get("overrides", {}))),
    )


def _traffic(source: str, t: dict[str, Any]) -> TrafficSpec:
    _only(source, "traffic", t, ("ping", "udp", "flows", "inside_udp"))
    ping = udp = flows = inside_udp = None
    if "ping" in t:
        p = _table(source, "traffic.ping", t["ping"])
        _only(source, "traffic.ping", p, ("target", "interval", "size"))
        ping = PingSpec(
            target=_str(source, "traffic.ping.target", p.get("target", "10.1.1.1")),
            interval=_seconds(source, "traffic.ping.interval", p.get("interval", 1)),
            size=_int(source, "traffic.ping.size", p.get("size", 56)),
        )
    if "udp" in t:
        u = _table(source, "traffic.udp", t["udp"])
        _only(source, "traffic.udp", u, ("target", "port", "interval", "size"))
        udp = UdpSpec(
            target=_str(source, "traffic.udp.target", u.get("target", "10.1.1.1")),
            port=_int(source, "traffic.udp.port", u.get("port", 7), low=1),
            interval=_seconds(source, "traffic.udp.interval", u.get("interval", 5)),
            size=_int(source, "traffic.udp.size", u.get("size", 1400), low=28),
        )
    if "flows" in t:
        f = _table(source, "traffic.flows", t["flows"])
        _only(source, "traffic.flows", f, ("server", "port", "bytes", "every"))
        flows = FlowSpec(
            server=_str(source, "traffic.flows.server", f.get("server", "10.1.1.1")),
            port=_int(source, "traffic.flows.port", f.get("port", 80), low=1),
            bytes=_int(source, "traffic.flows.bytes", f.get("bytes", 200_000), low=1),
            every=_seconds(source, "traffic.flows.every", f.get("every", 20)),
        )
    if "inside_udp" in t:
        iu = _table(source, "traffic.inside_udp", t["inside_udp"])
        _only(source, "traffic.inside_udp", iu, ("size", "every", "df"))
        df = iu.get("df", True)
        if not isinstance(df, bool):
            raise ConfigError(f"{_where(source, 'traffic.inside_udp.df')}: expected true or false")
        inside_udp = InsideUdpSpec(
            size=_int(source, "traffic.inside_udp.size", iu.get("size", 1427), low=28),
            every=_seconds(source, "traffic.inside_udp.every", iu.get("every", 10)),
            df=df,
        )
    return TrafficSpec(ping=ping, udp=udp, flows=flows, inside_udp=inside_udp)


def _impairment(source: str, key: str, name: str, value: object) -> object:
    where = f"{key}.{name}"
    if name in ("block_udp",):
        if isinstance(value, bool):
            return value
        return _int(source, where, value, low=1)
    if name in ("drop_icmp", "cut_tcp"):
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(source, where)}: expected true or false, got {value!r}")
        return value
    if name == "path_mtu":
        mtu = _int(source, where, value)
        if 0 < mtu < 68:
            raise ConfigError(f"{_where(source, where)}: an IPv4 path MTU is at least 68")
        return mtu
    if name in ("latency", "pause_headend"):
        return _seconds(source, where, value)
    if name == "loss":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"{_where(source, where)}: expected a probability 0..1")
        return float(value)
    raise ConfigError(
        f"{_where(source, where)}: unknown impairment (known: {', '.join(IMPAIRMENTS)})"
    )


def _actions(source: str, items: object, name: str = "actions") -> tuple[Action, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{_where(source, name)}: expected [[{name}]] tables")
    out = []
    for i, raw in enumerate(items):
        key = f"{name}[{i}]"
        a = _table(source, key, raw)
        _only(source, key, a, ("at", "impair", "admin"))
        if "at" not in a:
            raise ConfigError(f"{_where(source, key)}: missing 'at'")
        imp = _table(source, f"{key}.impair", a.get("impair", {}))
        impair = {n: _impairment(source, f"{key}.impair", n, v) for n, v in imp.items()}
        admin = a.get("admin", [])
        if isinstance(admin, str):
            admin = [admin]
        if not isinstance(admin, list) or not all(isinstance(x, str) for x in admin):
            raise ConfigError(f"{_where(source, key + '.admin')}: expected a list of lines")
        if not impair and not admin:
            raise ConfigError(f"{_where(source, key)}: an action needs 'impair' or 'admin'")
        at = _seconds(source, f"{key}.at", a["at"])
        out.append(Action(at=at, impair=impair, admin=tuple(admin)))
    return tuple(sorted(out, key=lambda x: x.at))


def _expect(source: str, key: str, items: object) -> tuple[Expectation, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{_where(source, key)}: expected [[{key}]] tables")
    out = []
    for i, raw in enumerate(items):
        k = f"{key}[{i}]"
        e = _table(source, k, raw)
        _only(source, k, e, ("check", "why"))
        if "check" not in e:
            raise ConfigError(f"{_where(source, k)}: missing 'check'")
        try:
            out.append(parse_check(_str(source, k, e["check"]), _str(source, k, e.get("why", ""))))
        except ConfigError as err:
            raise ConfigError(f"{_where(source, k)}: {err}") from None
    return tuple(out)


def scenario_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Scenario:
    """Build a :class:`Scenario` from parsed TOML (see the module docstring)."""
    top = (
        "name",
        "description",
        "duration",
        "seed",
        "headend",
        "clients",
        "traffic",
        "actions",
        "expect",
        "realtime",
    )
    _only(source, "", data, top)
    if "name" not in data:
        raise ConfigError(f"{source}: missing 'name'")
    rt = _table(source, "realtime", data.get("realtime", {}))
    _only(source, "realtime", rt, ("duration", "start", "overrides", "expect", "actions"))
    headend = _headend(source, _table(source, "headend", data.get("headend", {})))
    actions = _actions(source, data.get("actions", []))
    traffic = _traffic(source, _table(source, "traffic", data.get("traffic", {})))
    if not headend.is_mock and traffic.inside_udp is not None:
        raise ConfigError(f"{source}: traffic.inside_udp needs the mock ASA")
    rt_actions = _actions(source, rt["actions"], "realtime.actions") if "actions" in rt else None
    if not headend.is_mock:
        for a in (*actions, *(rt_actions or ())):
            if a.admin or "drop_icmp" in a.impair:
                raise ConfigError(
                    f"{source}: actions at {a.at:g} s need the mock ASA (admin lines and"
                    " drop_icmp act on it), but headend.url names a real headend"
                )
    return Scenario(
        name=_str(source, "name", data["name"]),
        description=_str(source, "description", data.get("description", "")),
        duration=_seconds(source, "duration", data.get("duration", 600)),
        seed=_int(source, "seed", data.get("seed", 1)),
        headend=headend,
        clients=_clients(source, _table(source, "clients", data.get("clients", {}))),
        traffic=traffic,
        actions=actions,
        expect=_expect(source, "expect", data.get("expect", [])),
        realtime_duration=(
            _seconds(source, "realtime.duration", rt["duration"]) if "duration" in rt else None
        ),
        realtime_overrides=dict(_table(source, "realtime.overrides", rt.get("overrides", {}))),
        realtime_expect=(
            _expect(source, "realtime.expect", rt["expect"]) if "expect" in rt else None
        ),
        realtime_actions=rt_actions,
        realtime_start=(_seconds(source, "realtime.start", rt["start"]) if "start" in rt else None),
        source=source,
    )


def load_scenario(path: str | Path) -> Scenario:
    """A scenario from a ``.toml`` file, or a ``.py`` file that defines ``scenario``."""
    p = Path(path)
    if p.suffix == ".py":
        return _load_python(p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read scenario {p}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return scenario_from_dict(data, str(p))


def _load_python(p: Path) -> Scenario:
    if not p.is_file():
        raise ConfigError(f"cannot read scenario {p}: no such file")
    spec = importlib.util.spec_from_file_location(f"tunnelswarm_scenario_{p.stem}", p)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        raise ConfigError(f"cannot load scenario {p}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report it in one line
        raise ConfigError(f"{p}: {type(e).__name__}: {e}") from None
    sc = getattr(module, "scenario", None)
    if not isinstance(sc, Scenario):
        raise ConfigError(f"{p}: expected a module-level 'scenario = Scenario(...)'")
    script = getattr(module, "script", None)
    if script is not None and not callable(script):
        raise ConfigError(f"{p}: 'script' must be an async function")
    return replace(sc, script=script, source=str(p))
