"""``tunnelswarm run``: one subcommand for scenario runs and load runs.

Usage::

    tunnelswarm run SCENARIO [--virtual-time] [--quick] [--seed N] [--report DIR] [-q]
    tunnelswarm run -n N [--rate 50/s] [--hold 30s] [--ramp-down R] [--retry-delay 1s] COMMON
    tunnelswarm run --open 20/s --duration 60s [--max-concurrency N]
                    [--arrivals constant|poisson] COMMON

    COMMON: [--lifetime 30s|uniform(a,b)|exponential(m)|until-end]
            [--headend URL [--servercert pin-sha256:B64]] [--asa-config FILE]
            [--user TEMPLATE] [--password TEMPLATE] [--credentials FILE.csv]
            [--profile NAME|FILE.toml] [--ping RATE[:SIZE]] [--udp RATE[:SIZE]]
            [--flows BYTES[:EVERY]] [--target ADDR] [--source 127.0.0.2-127.0.0.250]
            [--threshold 'setup_p99<500ms' ...] [--json-lines] [--virtual-time] [--seed N]
            [--setup-timeout 60s] [--late-threshold 1s] [--no-dtls] [--report DIR] [-q]
            [--workers N|auto] [--fault 'udp-blackout at 30s for 20s' ...]
            [--ray auto|ADDRESS [--ray-workers N] [--ray-placement spread|pack]
             [--ray-on-lost count|replace] [--ray-source SELECTOR=POOL ...]]

**Telling the two forms apart.** ``SCENARIO`` is an optional positional. Given, the run is
a scenario run (:mod:`tunnelswarm.scenario.cli`, unchanged) and no load flag may be given.
Not given, the run is a load run (:mod:`tunnelswarm.fleet.engine`) and needs exactly one
load model: ``-n/--clients N`` (closed model: N slots, ramped up at ``--rate``, held
``--hold``) or ``--open RATE`` (open model: arrivals at RATE for ``--duration``). Neither
is one line on stderr and exit status 2; so are scenario-only flags (``--quick``) in a
load run, closed-model flags with ``--open`` and open-model flags with
``-n``. Every load flag is read as text and checked here, so a bad value is always a
one-line ``tunnelswarm: error: ...`` (never argparse's usage dump) and exit status 2.

Without ``--headend`` the mock ASA runs in-process (real loopback sockets; ``--asa-config``
replaces its configuration; ``--virtual-time``: the in-memory network and a mock clock).
Credentials default to the mock's own user ``test``/``test``, and to the template
``user{n}``/``test`` against ``--headend``; ``--credentials FILE.csv`` gives
``user,password`` rows instead. ``--target`` (default the mock's inside host 10.1.1.1)
is where pings, UDP echo and flows go; with ``--headend`` and traffic it must be given.

Output: the run's plan, the live view (:class:`~tunnelswarm.report.live.LiveConsole` on
stderr, updated once a second: a panel on a terminal, one compact line per second
otherwise), then the summary (sessions planned / started / up / failed, late starts,
setup latency p50/p90/p99/max per phase, DTLS ratio, pings, reconnects and errors by
cause) and the threshold table. ``--json-lines``: stdout carries only JSON objects, one
per second (:class:`~tunnelswarm.report.live.JsonLinesSink`: ``{"type": "progress",
...}``) and a last one (``{"type": "summary", ...}``); the human text goes to stderr.
``-q``: no live view, only the summary and the table. ``-v``: also the clients' own log
lines (reconnects, DTLS trouble), which a run otherwise only counts. (In virtual time the
live view and the report's checkpoints come at most once a second of wall time; the JSON
lines come for every second of the run.)

``--workers N`` (default and ``auto``: one per core, at most one per client, one with
``--virtual-time``) splits the plan over N worker
processes, one Trio loop each (:mod:`tunnelswarm.fleet.workers`); without ``--headend``
the mock ASA then runs in a process of its own. The live view, the JSON lines, the
report and the thresholds are those of the merged stats; a worker that dies is reported
(``workers_lost``) and its last stats kept. Not with ``--virtual-time`` (one Trio run).
``--ray auto|ADDRESS`` places the same workers on a Ray cluster instead
(:mod:`tunnelswarm.fleet.ray_workers`, imported only then; ``docs/ray.md``); the
``--ray-*`` flags are checked first, without Ray.

``--fault 'KIND at T [for D | down D]'`` (repeatable; :mod:`tunnelswarm.fleet.faults`)
injects a fault T after the start: ``udp-blackout ... for D``, ``tcp-cut``,
``headend-pause ... for D`` (on the clients' own path, any headend) or ``headend-restart
... down D`` (the in-process mock only). The summary, the live view and the report then
show each client's outage and recovery (``outages.csv``; metrics ``outages[cause]``,
``outages_recovered``, ``outage_p99``, ``outages_unrecovered``, ``sessions_down``).

``--report DIR`` (:class:`~tunnelswarm.report.files.ReportDir`): ``summary.json``,
``timeseries.csv``, ``timeline.jsonl`` (the engine's timeline: each session's start, up,
errors, reconnects, DTLS events, outages, faults, end), ``outages.csv`` (one row per
client outage), ``syslog.log`` (the in-process mock's syslog; empty against
``--headend``) and ``report.html``, checkpointed once a second and finished
whatever way the run ends: ``"state": "completed"``, or ``"interrupted"`` after Ctrl-C /
SIGTERM or when the run broke off (its error text in ``run.error``). ``run`` holds the
run's facts (plan, headend, profile, seed, ...).

Exit status (:mod:`tunnelswarm.fleet.thresholds`): 0 every threshold held (or none was
given); 1 a threshold failed or the run was interrupted (Ctrl-C/SIGTERM: the live sessions
are closed and every measurement is kept and reported); 2 the run could not be made (bad
arguments, headend unreachable at preflight, the mock could not start, or not one session
came up).
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO, cast

from tunnelswarm.config.profile import load_profile
from tunnelswarm.errors import ConfigError, TunnelswarmError
from tunnelswarm.fleet.engine import (
    CLIENT_LOGGER,
    PHASES,
    LoadEngine,
    LoadResult,
    LoadSpec,
    load_mock_config,
    run_engine,
)
from tunnelswarm.fleet.faults import parse_fault
from tunnelswarm.fleet.plan import (
    ClosedModel,
    Credentials,
    Lifetime,
    OpenModel,
    SourcePool,
    TrafficProfile,
    parse_duration,
    parse_rate,
)
from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.fleet.thresholds import (
    EXIT_RUN_ERROR,
    Threshold,
    ThresholdResult,
    evaluate_all,
    exit_code,
    format_results,
    parse_thresholds,
    required_percentiles,
)
from tunnelswarm.fleet.workers import Coordinator, Launcher, LostPolicy, default_workers
from tunnelswarm.report.files import ReportDir
from tunnelswarm.report.live import JsonLinesSink, LiveConsole
from tunnelswarm.scenario.expect import format_number

if TYPE_CHECKING:
    from tunnelswarm.fleet.ray_options import RayOptions

__all__ = [
    "LOAD_FLAGS",
    "add_load_arguments",
    "build_spec",
    "extend_run_parser",
    "format_summary",
    "local_addresses",
    "parse_workers",
    "planned_duration",
    "planned_sessions",
    "run_command",
    "run_load_command",
]

PROG = "tunnelswarm"

#: dest → flag of every load-run option (all default to None)
LOAD_FLAGS: dict[str, str] = {
    "clients": "-n/--clients",
    "rate": "--rate",
    "ramp_down": "--ramp-down",
    "hold": "--hold",
    "retry_delay": "--retry-delay",
    "open": "--open",
    "duration": "--duration",
    "max_concurrency": "--max-concurrency",
    "arrivals": "--arrivals",
    "lifetime": "--lifetime",
    "headend": "--headend",
    "servercert": "--servercert",
    "user": "--user",
    "password": "--password",
    "credentials": "--credentials",
    "asa_config": "--asa-config",
    "profile": "--profile",
    "ping": "--ping",
    "udp": "--udp",
    "flows": "--flows",
    "target": "--target",
    "source": "--source",
    "threshold": "--threshold",
    "json_lines": "--json-lines",
    "setup_timeout": "--setup-timeout",
    "late_threshold": "--late-threshold",
    "no_dtls": "--no-dtls",
    "workers": "--workers",
    "fault": "--fault",
    "ray": "--ray",
    "ray_workers": "--ray-workers",
    "ray_placement": "--ray-placement",
    "ray_on_lost": "--ray-on-lost",
    "ray_source": "--ray-source",
}
#: the options that only go with --ray
_RAY_ONLY = ("ray_workers", "ray_placement", "ray_on_lost", "ray_source")
_CLOSED_ONLY = ("rate", "ramp_down", "hold", "retry_delay")
_OPEN_ONLY = ("duration", "max_concurrency", "arrivals")


def add_load_arguments(r: argparse.ArgumentParser) -> None:
    """The load-run flags, all read as text (checked by :func:`build_spec`)."""
    g = r.add_argument_group("load run (without SCENARIO)")
    a = g.add_argument
    a("-n", "--clients", metavar="N", help="closed model: N concurrent clients")
    a("--rate", metavar="RATE", help="closed: ramp-up rate, e.g. 50/s (default: all at once)")
    a("--ramp-down", metavar="RATE", help="closed: ramp-down rate (default: all at once)")
    a("--hold", metavar="DURATION", help="closed: hold after the ramp-up (default 30s)")
    a("--retry-delay", metavar="DURATION", help="closed: restart a failed slot after (1s)")
    a("--open", metavar="RATE", help="open model: sessions arrive at RATE, e.g. 20/s")
    a("--duration", metavar="DURATION", help="open: how long sessions arrive")
    a("--max-concurrency", metavar="N", help="open: at most N live (arrivals wait, late)")
    a("--arrivals", metavar="KIND", help="open: constant (default) or poisson")
    a(
        "--lifetime",
        metavar="L",
        help="session lifetime: 30s, uniform(10s,60s), exponential(5m) or until-end (default)",
    )
    a("--headend", metavar="URL", help="a real ASA/ocserv (default: the mock ASA in-process)")
    g.add_argument(
        "--no-preflight",
        action="store_true",
        help="against --headend: skip the preflight login (answers, limits, warnings)",
    )
    g.add_argument(
        "--servercert",
        action="append",
        metavar="pin-sha256:B64",
        help="accept the headend's certificate with this pin (repeatable)",
    )
    a("--user", metavar="TEMPLATE", help="user name, {n} = session number (user{n:04d})")
    a("--password", metavar="TEMPLATE", help="password, {n} allowed (default test)")
    a("--credentials", metavar="FILE.csv", help="user,password rows instead of templates")
    a("--asa-config", metavar="FILE", help="configuration of the in-process mock ASA")
    a("--profile", metavar="NAME|FILE.toml", help="client to emulate (default openconnect-9)")
    a("--ping", metavar="RATE[:SIZE]", help="ICMP echo per client, e.g. 1/s:56")
    a("--udp", metavar="RATE[:SIZE]", help="UDP echo per client, e.g. 0.2/s:1400")
    a("--flows", metavar="BYTES[:EVERY]", help="bulk download per client, e.g. 200k:20s")
    a("--target", metavar="ADDR", help="inside host for the traffic (mock: 10.1.1.1)")
    a("--source", metavar="POOL", help="source addresses, e.g. 127.0.0.2-127.0.0.250")
    g.add_argument(
        "--threshold",
        action="append",
        metavar="T",
        help="pass/fail check, e.g. 'setup_p99<500ms' or 'errors==0' (repeatable)",
    )
    g.add_argument(
        "--json-lines", action="store_true", default=None, help="one JSON object per second"
    )
    a("--setup-timeout", metavar="DURATION", help="a client's setup limit (default 60s)")
    a("--late-threshold", metavar="DURATION", help="a start later than this is late (1s)")
    g.add_argument("--no-dtls", action="store_true", default=None, help="clients do not offer DTLS")
    a(
        "--workers",
        metavar="N",
        help="worker processes, one Trio loop each, merged into one view (default and"
        " auto: one per core)",
    )
    g.add_argument(
        "--fault",
        action="append",
        metavar="F",
        help="inject a fault: 'udp-blackout at 30s for 20s', 'tcp-cut at 1m',"
        " 'headend-pause at 10s for 5s', 'headend-restart at 45s down 10s' (repeatable)",
    )
    ray = r.add_argument_group(
        "beyond one machine (Ray; pip install 'tunnelswarm[ray]', see docs/ray.md)"
    )
    ray.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run the workers on a Ray cluster: its head's HOST:6379, or auto (RAY_ADDRESS,"
        " this machine's `ray start`, or a local cluster for the run)",
    )
    ray.add_argument(
        "--ray-workers",
        metavar="N",
        help="workers on the cluster (default: one per node with spread, one per CPU with pack)",
    )
    ray.add_argument(
        "--ray-placement",
        metavar="spread|pack",
        help="spread: one worker per node (default); pack: as few nodes as possible",
    )
    ray.add_argument(
        "--ray-on-lost",
        metavar="count|replace",
        help="a lost worker's share: count it lost (default) or replace it with a new"
        " worker for the rest of the plan",
    )
    ray.add_argument(
        "--ray-source",
        action="append",
        metavar="SELECTOR=POOL",
        help="source addresses of the workers on the nodes SELECTOR names (IP, host name,"
        " node-id prefix or custom resource), e.g. 10.0.0.2=10.0.0.100-10.0.0.199"
        " (repeatable)",
    )


def extend_run_parser(r: argparse.ArgumentParser) -> None:
    """Make ``run``'s SCENARIO optional and add the load flags (module docstring)."""
    for action in r._actions:
        if action.dest == "scenario":
            action.nargs = "?"
            action.required = False
            action.default = None
            action.help = "built-in name, seed-matrix, or a file (omit for a load run)"
    r.usage = (
        "%(prog)s SCENARIO [scenario options] | -n N [load options] | --open RATE"
        " --duration D [load options]"
    )
    r.description = (
        (r.description or "")
        + " Without SCENARIO, a load run: -n N (closed model) or --open RATE (open model);"
        " exit 0 every --threshold held, 1 one failed or the run was interrupted, 2 the run"
        " could not be made."
    )
    add_load_arguments(r)


def _given(args: argparse.Namespace) -> list[str]:
    return [dest for dest in LOAD_FLAGS if getattr(args, dest, None) is not None]


def run_command(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """``tunnelswarm run``: a scenario run or a load run (module docstring); ``out`` and
    ``err`` default to the current ``sys.stdout`` / ``sys.stderr``."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    given = _given(args)
    if args.scenario is not None:
        if given:
            flags = ", ".join(LOAD_FLAGS[d] for d in given)
            return _fail(err, f"a scenario run takes no load options ({flags})")
        from tunnelswarm.scenario.cli import run_command as run_scenario_command

        return run_scenario_command(args, out)
    return run_load_command(args, out, err)


def _fail(err: TextIO, text: str) -> int:
    err.write(f"{PROG}: error: {' '.join(text.split())}\n")
    err.flush()
    return EXIT_RUN_ERROR


# ------------------------------------------------------------------ args → spec
def _whole(text: str, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"{what}: expected a whole number, got {text!r}") from None
    if n < 1:
        raise ConfigError(f"{what}: must be at least 1, got {text!r}")
    return n


def _choice(text: str | None, choices: tuple[str, ...], flag: str) -> str:
    """``text`` if it is one of ``choices`` (None: the first, the default)."""
    if text is None:
        return choices[0]
    if text not in choices:
        raise ConfigError(f"{flag}: expected {' or '.join(choices)}, got {text!r}")
    return text


def _opt_duration(text: str | None, what: str, default: float) -> float:
    return default if text is None else parse_duration(text, what)


def _model(args: argparse.Namespace) -> ClosedModel | OpenModel:
    closed, open_ = args.clients is not None, args.open is not None
    if closed == open_:
        raise ConfigError(
            "run needs a SCENARIO or one load model: -n N (closed) or --open RATE (open)"
            if not closed
            else "-n/--clients (closed model) and --open (open model) do not go together;"
            " with --open, cap the live sessions with --max-concurrency"
        )
    lifetime = Lifetime.until_end() if args.lifetime is None else Lifetime.parse(args.lifetime)
    if closed:
        bad = [LOAD_FLAGS[d] for d in _OPEN_ONLY if getattr(args, d) is not None]
        if bad:
            raise ConfigError(f"{', '.join(bad)}: open-model options, not for -n (closed model)")
        return ClosedModel(
            concurrency=_whole(args.clients, "-n/--clients"),
            ramp_up_rate=None if args.rate is None else parse_rate(args.rate, "--rate"),
            hold=_opt_duration(args.hold, "--hold", 30.0),
            ramp_down_rate=(
                None if args.ramp_down is None else parse_rate(args.ramp_down, "--ramp-down")
            ),
            lifetime=lifetime,
            retry_delay=_opt_duration(args.retry_delay, "--retry-delay", 1.0),
        )
    bad = [LOAD_FLAGS[d] for d in _CLOSED_ONLY if getattr(args, d) is not None]
    if bad:
        raise ConfigError(f"{', '.join(bad)}: closed-model options, not for --open")
    if args.duration is None:
        raise ConfigError("--open needs --duration (how long sessions arrive), e.g. 60s")
    arrivals = cast(
        Literal["constant", "poisson"],
        _choice(args.arrivals, ("constant", "poisson"), "--arrivals"),
    )
    return OpenModel(
        arrival_rate=parse_rate(args.open, "--open"),
        duration=parse_duration(args.duration, "--duration"),
        lifetime=lifetime,
        max_concurrency=(
            None
            if args.max_concurrency is None
            else _whole(args.max_concurrency, "--max-concurrency")
        ),
        arrivals=arrivals,
    )


def _credentials(args: argparse.Namespace) -> Credentials | None:
    if args.credentials is not None:
        if args.user is not None or args.password is not None:
            raise ConfigError("--credentials replaces --user/--password: give one or the other")
        return Credentials.from_csv(args.credentials)
    if args.user is None and args.password is None:
        return None
    default_user = "user{n}" if args.headend is not None else "test"
    return Credentials.template(args.user or default_user, args.password or "test")


def local_addresses() -> list[str]:
    """This machine's own addresses (Linux ``/proc``; none elsewhere), for ``--source``."""
    found: list[str] = []
    try:
        lines = Path("/proc/net/fib_trie").read_text(encoding="ascii").splitlines()
    except OSError:
        lines = []
    for prev, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            found.append(prev.strip().removeprefix("|-- ").strip())
    try:
        for line in Path("/proc/net/if_inet6").read_text(encoding="ascii").splitlines():
            hexaddr = line.split()[0]
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))))
    except (OSError, ValueError, IndexError):
        pass
    out = []
    for a in found:
        try:
            out.append(str(ipaddress.ip_address(a)))
        except ValueError:
            continue
    return sorted(set(out))


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"cannot read {what} {path}: {why}") from None


def build_spec(args: argparse.Namespace) -> tuple[LoadSpec, list[Threshold]]:
    """The load run the flags describe; a bad flag is a one-line ConfigError."""
    if getattr(args, "quick", None):
        raise ConfigError("--quick is for scenario runs (give a SCENARIO)")
    model = _model(args)
    thresholds = parse_thresholds(args.threshold or [])
    traffic = TrafficProfile.parse(ping=args.ping, udp=args.udp, flows=args.flows)
    if args.headend is not None and args.target is None and traffic != TrafficProfile():
        raise ConfigError("traffic against --headend needs --target ADDR (an inside host)")
    target = args.target or "10.1.1.1"
    try:
        ipaddress.IPv4Address(target)
    except ValueError:
        raise ConfigError(f"--target: expected an IPv4 address, got {target!r}") from None
    asa_config = None
    if args.asa_config is not None:
        asa_config = _read(args.asa_config, "--asa-config")
        try:
            load_mock_config(asa_config)
        except ConfigError as e:
            raise ConfigError(f"--asa-config {args.asa_config}: {e}") from None
    servercert = tuple(args.servercert or ())
    for pin in servercert:
        if not pin.startswith("pin-sha256:"):
            raise ConfigError(f"--servercert {pin!r}: expected pin-sha256:<base64>")
    if servercert and args.headend is None:
        raise ConfigError("--servercert is for --headend (the in-process mock's pin is known)")
    if args.headend is not None:
        from tunnelswarm.client.session import parse_url

        parse_url(args.headend)
    sources = None
    if args.source is not None:
        sources = SourcePool.parse(args.source, local=local_addresses())
    spec = LoadSpec(
        model=model,
        traffic=traffic,
        profile=load_profile(args.profile or "openconnect-9"),
        credentials=_credentials(args),
        headend=args.headend,
        servercert=servercert,
        asa_config=asa_config,
        sources=sources,
        target=target,
        virtual_time=bool(args.virtual_time),
        seed=1 if args.seed is None else args.seed,
        late_threshold=_opt_duration(args.late_threshold, "--late-threshold", 1.0),
        setup_timeout=_opt_duration(args.setup_timeout, "--setup-timeout", 60.0),
        no_dtls=bool(args.no_dtls),
        faults=tuple(parse_fault(f) for f in args.fault or ()),
    )
    end = planned_duration(spec)
    for f in spec.faults:
        if f.at >= end:
            raise ConfigError(
                f"--fault {f.describe()!r}: the run's plan ends at {end:g} s, before the fault"
            )
    return spec, thresholds


# ------------------------------------------------------------------ the report
def _ms(seconds: float) -> str:
    """A latency for people: ``0.8ms``, ``231.0ms``, ``1.23s``; ``-`` for no samples."""
    if math.isnan(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    return f"{seconds * 1000:.1f}ms"


def _by_key(metrics: dict[str, float], name: str) -> str:
    """``auth-failed 7, tls 1`` (most first) from ``name[key]`` metrics; ``none``."""
    prefix = name + "["
    fam = {
        k[len(prefix) : -1]: v
        for k, v in metrics.items()
        if k.startswith(prefix) and k.endswith("]") and v
    }
    if not fam:
        return "none"
    return ", ".join(
        f"{k} {format_number(v)}" for k, v in sorted(fam.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _latency_table(m: dict[str, float]) -> list[str]:
    rows: list[list[str]] = [["phase", "count", "p50", "p90", "p99", "max"]]
    for phase in (*PHASES, "total"):
        base = "setup" if phase == "total" else f"setup_{phase}"
        rows.append(
            [
                phase,
                format_number(m.get(f"{base}_count", 0.0)),
                *(_ms(m.get(f"{base}_p{p}", math.nan)) for p in (50, 90, 99)),
                _ms(m.get(f"{base}_max", math.nan)),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        out.append("  " + "  ".join(cells))
    return out


def format_summary(result: LoadResult, metrics: dict[str, float]) -> str:
    """The plain-text summary of a load run (module docstring)."""
    m = metrics
    spec = result.spec
    where = "headend"
    if spec.headend is None:
        where = "mock ASA (own process)" if result.coordinated else "in-process mock ASA"
    mode = "virtual time" if spec.virtual_time else "real time"
    lines = [
        f"load run {'INTERRUPTED' if result.interrupted else 'completed'}: {spec.describe()}",
        f"{where} {result.headend or '-'} ({mode}); {result.run_seconds:.1f} s of run time,"
        f" {result.wall_seconds:.1f} s wall",
        f"sessions: {format_number(m['sessions_planned'])} planned,"
        f" {format_number(m['sessions_started'])} started,"
        f" {format_number(m['setups_completed'])} up,"
        f" {format_number(m['sessions_failed'])} failed; at most"
        f" {format_number(m['sessions_up'])} up at once",
        *(
            [f"workers: {result.workers} processes, {len(result.lost_workers)} lost"]
            if result.workers > 1
            else []
        ),
        *(f"  lost {w}" for w in result.lost_workers),
        f"starts: {format_number(m['late_starts'])} late (more than {spec.late_threshold:g} s"
        f" after schedule), {format_number(m['missed_starts'])} missed; the latest"
        f" {_ms(m['max_start_lateness'])} after schedule",
        "setup latency (tcp from the scheduled start, each phase from the one before,"
        " dtls from connect; total = scheduled start to CONNECT answered):",
        *_latency_table(m),
    ]
    ratio = m.get("dtls_ratio", math.nan)
    lines.append(
        "DTLS: "
        + ("-" if math.isnan(ratio) else f"up {ratio:.1%} of the session time")
        + f"; came up in {format_number(m['dtls_established'])} of"
        f" {format_number(m['setups_completed'])} sessions"
        + (
            f", first attempt failed in {format_number(m['dtls_fallbacks'])}"
            if m.get("dtls_fallbacks")
            else ""
        )
    )
    if m.get("ping_sent"):
        lines.append(
            f"pings: {format_number(m['ping_sent'])} sent, {m['ping_loss']:.1%} lost, rtt"
            f" p50 {_ms(m.get('ping_rtt_p50', math.nan))} p99"
            f" {_ms(m.get('ping_rtt_p99', math.nan))}"
        )
    if m.get("packets_tx") or m.get("packets_rx"):
        lines.append(
            "tunnel traffic (inner packets / bytes): "
            + "; ".join(
                f"{ch.upper()} sent {format_number(m.get(f'packets_tx[{ch}]', 0.0))}"
                f" / {format_number(m.get(f'bytes_tx[{ch}]', 0.0))} B, received"
                f" {format_number(m.get(f'packets_rx[{ch}]', 0.0))}"
                f" / {format_number(m.get(f'bytes_rx[{ch}]', 0.0))} B"
                for ch in ("cstp", "dtls")
            )
        )
    if m.get("dpd_rtt_count"):
        lines.append(
            f"DPD round trips: {format_number(m['dpd_rtt_count'])}, p50"
            f" {_ms(m.get('dpd_rtt_p50', math.nan))} p99 {_ms(m.get('dpd_rtt_p99', math.nan))}"
        )
    if m.get("udp_sent"):
        lost = m.get("udp_lost", 0.0) / m["udp_sent"]
        lines.append(f"udp echo: {format_number(m['udp_sent'])} sent, {lost:.1%} lost")
    if m.get("flows"):
        lines.append(f"flows: {_by_key(m, 'flows')}")
    lines.append(f"reconnects: {_by_key(m, 'reconnects')}")
    if spec.faults or m.get("outages"):
        lines += _outage_lines(result, m)
    lines.append(f"errors: {_by_key(m, 'errors')}")
    for cause, example in sorted(result.error_examples.items()):
        lines.append(f"  {cause}: {example}")
    for tb in result.internal_errors[:1]:
        lines.append("internal error (please report):")
        lines += ["  " + ln for ln in tb.rstrip().splitlines()]
    return "\n".join(lines)


# ------------------------------------------------------------------ the command
def planned_sessions(spec: LoadSpec) -> int | None:
    """Sessions the plan starts in all, when that is known in advance: a closed model
    whose sessions live until the end (one per slot), an open model with constant
    arrivals; None otherwise (churn, retries, Poisson arrivals)."""
    m = spec.model
    if isinstance(m, ClosedModel):
        return m.concurrency if str(m.lifetime) == "until-end" else None
    if m.arrivals == "constant":
        return round(m.arrival_rate * m.duration)
    return None


def planned_duration(spec: LoadSpec) -> float:
    """The plan's length in seconds (closed: ramp-up, hold and ramp-down; open: the
    arrival window)."""
    return spec.model.duration


def parse_workers(text: str | None, spec: LoadSpec | None = None) -> int:
    """``--workers``: a whole number, or ``auto``; by default (and with ``auto``) one per
    core, but never more than the clients at once (closed model: its slots) and one
    with ``--virtual-time`` (one Trio run). More than one does not go with
    ``--virtual-time``."""
    if text is None or text == "auto":
        if spec is not None and spec.virtual_time:
            return 1
        n = default_workers()
        if spec is not None and isinstance(spec.model, ClosedModel):
            n = min(n, spec.model.concurrency)
        return max(1, n)
    n = _whole(text, "--workers")
    if n > 1 and spec is not None and spec.virtual_time:
        raise ConfigError("--virtual-time is one Trio run: it does not go with --workers > 1")
    return n


def _outage_lines(result: LoadResult, m: dict[str, float]) -> list[str]:
    """Faults and outages in the summary: the faults, the outages by cause and how they
    ended, recovery percentiles, and the clients down longest."""
    spec = result.spec
    lines = [f"faults: {f.describe()}" for f in spec.faults]
    n = m.get("outages", 0.0)
    lines.append(
        f"outages: {format_number(n)} ({_by_key(m, 'outages')}) in"
        f" {len({o.slot for o in result.outages if o.channel == 'tunnel'})} clients;"
        f" {format_number(m['outages_recovered'])} recovered"
        + (
            f" (p50 {_ms(m.get('outage_p50', math.nan))}, p99"
            f" {_ms(m.get('outage_p99', math.nan))}, max {_ms(m.get('outage_max', math.nan))})"
            if m["outages_recovered"]
            else ""
        )
        + f", {format_number(m['outages_lost'])} lost,"
        f" {format_number(m['outages_unrecovered'])} unrecovered;"
        f" at most {format_number(m.get('sessions_down', 0.0))} clients down at once"
    )
    if m.get("dtls_outages"):
        lines.append(
            f"DTLS outages: {format_number(m['dtls_outages'])} ({_by_key(m, 'dtls_outages')});"
            f" {format_number(m['dtls_outages_recovered'])} had DTLS again"
            + (
                f" (p50 {_ms(m.get('dtls_outage_p50', math.nan))}, p99"
                f" {_ms(m.get('dtls_outage_p99', math.nan))})"
                if m["dtls_outages_recovered"]
                else ""
            )
            + (
                f", {format_number(m['dtls_outages_lost'])} lost"
                if m.get("dtls_outages_lost")
                else ""
            )
            + f", {format_number(m['dtls_outages_unrecovered'])} unrecovered"
        )
    worst = sorted((o for o in result.outages if o.channel == "tunnel"), key=lambda o: -o.seconds)[
        :3
    ]
    for o in worst:
        lines.append(
            f"  client {o.slot}: down {o.start:.1f}-{o.end:.1f} s ({o.seconds:.1f} s,"
            f" {o.cause}, {o.ended_by})"
        )
    return lines


def _run_facts(spec: LoadSpec, engine: LoadEngine | Coordinator) -> dict[str, object]:
    """The ``run`` object of the report: what was run, against what (and, with
    workers, where each ran and its own counts)."""
    facts: dict[str, object] = {
        "kind": "load",
        "plan": spec.describe(),
        "model": "closed" if isinstance(spec.model, ClosedModel) else "open",
        "planned_sessions": planned_sessions(spec),
        "planned_duration": planned_duration(spec),
        "headend": engine.url or spec.headend,
        "mock": spec.headend is None,
        "profile": spec.profile.name,
        "seed": spec.seed,
        "virtual_time": spec.virtual_time,
        "traffic": spec.traffic.describe(),
        "faults": [
            {"kind": f.kind, "at": f.at, "duration": f.duration, "text": f.describe()}
            for f in spec.faults
        ],
    }
    if isinstance(engine, Coordinator):
        facts["workers"] = engine.worker_facts()
    return facts


def _make_engine(
    spec: LoadSpec,
    workers: int,
    say: Callable[[str], None],
    on_second: Callable[[RunStats, float], None],
    report: ReportDir | None,
    *,
    verbose: bool,
    launcher: Launcher | None = None,
    on_lost: LostPolicy = "count",
) -> LoadEngine | Coordinator:
    """One engine in this process, or (``workers > 1``, or a ``launcher``: ``--ray``)
    the coordinator of workers (:mod:`tunnelswarm.fleet.workers`), fed the same
    observers."""
    if workers > 1 or launcher is not None:
        return Coordinator(
            spec,
            workers,
            on_line=lambda t: say("  " + t),
            on_second=on_second,
            on_event=None if report is None else report.event,
            on_syslog=None if report is None else report.syslog,
            on_outage=None if report is None else report.outage,
            verbose=verbose,
            launcher=launcher,
            on_lost=on_lost,
        )
    return LoadEngine(
        spec,
        on_line=lambda t: say("  " + t),
        on_second=on_second,
        on_event=None if report is None else report.event,
        on_syslog=None if report is None else report.syslog,
        on_outage=None if report is None else report.outage,
    )


def _show_down_clients(console: LiveConsole, engine: LoadEngine | Coordinator) -> None:
    """In one process the live view names the clients down longest."""
    if isinstance(engine, LoadEngine):
        console.down_clients = engine.outages.open_outages


def _run_engine(engine: LoadEngine | Coordinator) -> LoadResult:
    return engine.run() if isinstance(engine, Coordinator) else run_engine(engine)


def _ray_options(args: argparse.Namespace, spec: LoadSpec) -> RayOptions | None:
    """The ``--ray*`` flags (None without ``--ray``); checked without importing Ray."""
    if getattr(args, "ray", None) is None:
        bad = [LOAD_FLAGS[d] for d in _RAY_ONLY if getattr(args, d, None) is not None]
        if bad:
            raise ConfigError(f"{', '.join(bad)}: only with --ray auto|ADDRESS")
        return None
    from tunnelswarm.fleet.ray_options import RayOptions, parse_ray_source

    if getattr(args, "workers", None) is not None:
        raise ConfigError("--ray places the workers: give --ray-workers N instead of --workers")
    if spec.virtual_time:
        raise ConfigError("--virtual-time is one Trio run: it does not go with --ray")
    placement = cast(
        Literal["spread", "pack"],
        _choice(args.ray_placement, ("spread", "pack"), "--ray-placement"),
    )
    on_lost = cast(LostPolicy, _choice(args.ray_on_lost, ("count", "replace"), "--ray-on-lost"))
    return RayOptions(
        address=args.ray,
        workers=None if args.ray_workers is None else _whole(args.ray_workers, "--ray-workers"),
        placement=placement,
        on_lost=on_lost,
        sources=tuple(parse_ray_source(t) for t in args.ray_source or ()),
    )


def _ray_launcher(options: RayOptions, spec: LoadSpec) -> tuple[Launcher, int]:
    """Join the Ray cluster (:mod:`tunnelswarm.fleet.ray_workers`, imported only here):
    the launcher and the number of workers."""
    try:
        from tunnelswarm.fleet.ray_workers import RayLauncher
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] == "ray":
            raise ConfigError(
                "--ray needs the Ray engine: pip install 'tunnelswarm[ray]'"
            ) from None
        raise
    launcher = RayLauncher(options)
    launcher.connect()
    try:
        workers = options.workers or launcher.default_workers(spec)
    except BaseException:
        launcher.close()
        raise
    return launcher, workers


def _prepare(
    args: argparse.Namespace, err: TextIO
) -> tuple[LoadSpec, list[Threshold], int, Launcher | None, LostPolicy]:
    """The run the flags describe, checked (the headend's preflight; with ``--ray``,
    the cluster joined): spec, thresholds, workers, launcher, lost-worker policy."""
    spec, thresholds = build_spec(args)
    ray_options = _ray_options(args, spec)
    workers = 1 if ray_options is not None else parse_workers(getattr(args, "workers", None), spec)
    from tunnelswarm.fleet.preflight import cli_preflight  # --headend: report to stderr

    cli_preflight(spec, err, args, skip=bool(getattr(args, "no_preflight", False)))
    if ray_options is None:
        return spec, thresholds, workers, None, "count"
    launcher, workers = _ray_launcher(ray_options, spec)
    return spec, thresholds, workers, launcher, ray_options.on_lost


def run_load_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        spec, thresholds, workers, launcher, on_lost = _prepare(args, err)
    except TunnelswarmError as e:
        return _fail(err, str(e))
    # the clients' own log lines (one per reconnect, per DTLS failure, per client) only
    # with -v; failures are counted by cause and shown once in the summary anyway
    verbose = getattr(args, "verbose", 0) or 0
    logging.getLogger(CLIENT_LOGGER).setLevel(logging.CRITICAL + 1 if not verbose else 0)
    json_lines = bool(args.json_lines)
    text = err if json_lines else out
    quiet = bool(args.quiet)
    percentiles = required_percentiles(thresholds)

    def say(line: str) -> None:
        if not quiet:
            text.write(line + "\n")
            text.flush()

    report: ReportDir | None = None
    report_path = getattr(args, "report", None)
    if report_path is not None:
        try:
            report = ReportDir(report_path, percentiles=percentiles)
        except OSError as e:
            return _fail(err, f"--report {report_path}: {e.strerror or e}")
    console = LiveConsole(
        spec.describe(),
        planned_sessions(spec),
        planned_duration(spec),
        stream=err,
        enabled=not quiet,
    )
    feed = JsonLinesSink(out) if json_lines else None
    shown_at = -math.inf

    def on_second(stats: RunStats, t: float) -> None:
        nonlocal shown_at
        if feed is not None:
            feed.update(stats, t)
        if spec.virtual_time:  # many run seconds per wall second: at most one a second
            now = time.monotonic()
            if now - shown_at < 1.0:
                return
            shown_at = now
        console.update(stats, t)
        if report is not None:
            report.checkpoint(stats, _run_facts(spec, engine))

    engine = _make_engine(
        spec,
        workers,
        say,
        on_second,
        report,
        verbose=bool(verbose),
        launcher=launcher,
        on_lost=on_lost,
    )
    _show_down_clients(console, engine)
    mode = "virtual time" if spec.virtual_time else "real time"
    say(f"== load run ({mode}, seed {spec.seed}): {spec.describe()}")
    result: LoadResult | None = None
    results: list[ThresholdResult] = []
    error: str | None = None
    code: int | None = None
    try:
        try:
            result = _run_engine(engine)
        except (TunnelswarmError, OSError) as e:
            error = str(e)
            return _fail(err, str(e))
        except BaseException as e:
            error = " ".join(f"{type(e).__name__}: {e}".split())
            raise
        finally:
            console.close()
            if feed is not None:
                feed.close()
        results, code = _conclude(result, thresholds, out, err, json_lines=json_lines)
        return code
    finally:
        if report is not None:
            _finish_report(report, engine, result, results, code, error)
            say(f"report: {report.path}")


def _conclude(
    result: LoadResult,
    thresholds: list[Threshold],
    out: TextIO,
    err: TextIO,
    *,
    json_lines: bool,
) -> tuple[list[ThresholdResult], int]:
    """Print the summary and the threshold table (and the last JSON line); the threshold
    results and the exit status."""
    text = err if json_lines else out
    metrics = result.metrics(tuple(required_percentiles(thresholds)))
    results = evaluate_all(thresholds, metrics)
    code = exit_code(results, interrupted=result.interrupted)
    text.write("\n" + format_summary(result, metrics) + "\n\n" + format_results(results) + "\n")
    text.flush()
    no_session = (
        not result.interrupted
        and metrics["sessions_started"] > 0
        and not metrics["setups_completed"]
    )
    if no_session:
        code = EXIT_RUN_ERROR
    if json_lines:
        final = {
            "type": "summary",
            **result.summary(),
            "thresholds": [r.as_dict() for r in results],
            "exit_code": code,
        }
        out.write(_json(final) + "\n")
        out.flush()
    if no_session:
        _fail(
            err,
            f"no session came up: all {int(metrics['sessions_started'])} failed"
            f" ({_by_key(metrics, 'errors')})",
        )
    return results, code


def _finish_report(
    report: ReportDir,
    engine: LoadEngine | Coordinator,
    result: LoadResult | None,
    results: list[ThresholdResult],
    code: int | None,
    error: str | None,
) -> None:
    """The report's last word, however the run ended (a crash counts as interrupted)."""
    if result is None:
        result = engine.result()
    facts = _run_facts(engine.spec, engine)
    facts.update(
        interrupted=result.interrupted,
        run_seconds=round(result.run_seconds, 3),
        wall_seconds=round(result.wall_seconds, 3),
        exit_code=code,
        error=error,
        error_examples=dict(result.error_examples),
    )
    report.finish(result.stats, results, facts, interrupted=result.interrupted or error is not None)


def _clean(value: object) -> object:
    """JSON-safe: NaN and infinities become null (JSON has no NaN), tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _json(value: object) -> str:
    return json.dumps(_clean(value), default=str, allow_nan=False)
