"""Headend preflight: one login and CONNECT before a load run, and what it tells us.

Theory of operation
-------------------
:func:`preflight` logs in once with the run's first credentials (one
:func:`~tunnelswarm.client.session.open_client`), waits a bounded time for DTLS, and
keeps what the headend answered: its identity (``X-CSTP-Server-Name``, or a ``Server``
header when one reached the CONNECT answer), the TLS version and cipher, X-CSTP-MTU /
X-DTLS-MTU, whether DTLS was offered, with which cipher and whether it came up, DPD,
keepalive, rekey, the idle / session / disconnected timeouts, the address and netmask
(the netmask bounds the address pool: a /24 holds at most 253 clients, network,
broadcast and the headend's own address taken) and the split-include routes.

Then, while the first session is up, a second login of the *same user*: a headend with a
per-user cap either refuses it (ocserv ``max-same-clients``: the login or the CONNECT is
refused) or lets it in and ends the first (ASA ``vpn-simultaneous-logins``: the user's
longest-idle session is preempted, its cookie then gets ``401``). Both sessions are
closed cleanly (DISCONNECT ``b0``) at the end.

Each session runs in a task of its own, so that a preempted first session (a typed
error out of its ``open_client``) is an observation, not the end of the preflight.

:func:`preflight_warnings` turns the answers into one-line warnings, each with its
reason: an address pool smaller than the planned sessions, a per-user cap below the
plan's sessions per user, ocserv (its ban score and ``rate-limit-ms`` distort a load
test from one source address), DTLS offered but not up, short idle or session
timeouts. :class:`PreflightReport` holds all of it; :meth:`PreflightReport.render` is a
small table.

:func:`cli_preflight` is what ``tunnelswarm run --headend URL`` calls before the load
(``--no-preflight`` skips it): the report goes to stderr; a failed first login is the
one-line reason the run cannot be made (exit status 2).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Literal, TextIO

import trio

from tunnelswarm.client.session import (
    ClientOptions,
    ClientSession,
    StreamOpener,
    open_client,
    parse_url,
)
from tunnelswarm.config.params import TunnelParams
from tunnelswarm.drive.datagram import DatagramOpener
from tunnelswarm.drive.stream import tcp_opener
from tunnelswarm.errors import TunnelswarmError

__all__ = [
    "PREFLIGHT_TIMEOUT",
    "SHORT_IDLE_TIMEOUT",
    "PreflightError",
    "PreflightReport",
    "SecondLogin",
    "cli_preflight",
    "looks_like_ocserv",
    "planned_counts",
    "pool_size",
    "preflight",
    "preflight_warnings",
]

#: the whole preflight (two logins, the DTLS wait, the close) must end within this
PREFLIGHT_TIMEOUT = 60.0
#: seconds DTLS gets to come up before the preflight reports it as not up
DTLS_WAIT = 5.0
#: seconds the first session gets to show it was preempted by the second login
PREEMPT_WAIT = 3.0
#: an idle timeout below this ends idle load-test sessions early
SHORT_IDLE_TIMEOUT = 600

SecondOutcome = Literal["both-up", "preempted", "refused", "not-tried"]


class PreflightError(TunnelswarmError):
    """The preflight's first login or CONNECT failed: the run cannot be made."""

    cause = "preflight"


@dataclass(frozen=True, slots=True)
class SecondLogin:
    """What a second login of the same user did while the first session was up."""

    outcome: SecondOutcome
    detail: str = ""

    @property
    def cap(self) -> int | None:
        """The per-user session cap this shows (1), None when none was found."""
        return 1 if self.outcome in ("preempted", "refused") else None

    def describe(self) -> str:
        text = {
            "both-up": "none at 2: a second login of the same user came up, the first stayed",
            "preempted": "1: a second login of the same user ended the first (preempted)",
            "refused": "1: a second login of the same user was refused",
            "not-tried": "not probed",
        }[self.outcome]
        return f"{text} ({self.detail})" if self.detail else text


def pool_size(params: TunnelParams) -> int | None:
    """Most clients the netmask allows (network, broadcast and the headend's own address
    taken: /24 → 253); None without an IPv4 address and netmask or for /31 and /32."""
    if params.address is None or params.netmask is None:
        return None
    try:
        net = ipaddress.IPv4Network(f"{params.address}/{params.netmask}", strict=False)
    except ValueError:
        return None
    if net.prefixlen > 30:
        return None
    return net.num_addresses - 3


def looks_like_ocserv(params: TunnelParams) -> bool:
    """The answers are ocserv's: its server name, a ``Server: ocserv`` header or
    PSK-NEGOTIATE DTLS (ocserv/openconnect only, §5.4)."""
    names = [params.server_name or "", *params.get_extra("Server")]
    if any(n.strip().lower().startswith("ocserv") for n in names):
        return True
    return params.dtls_cipher_suite == "PSK-NEGOTIATE"


def _server(params: TunnelParams) -> str | None:
    return params.server_name or next(iter(params.get_extra("Server")), None)


def sessions_per_user(planned_sessions: int, planned_users: int) -> int:
    return math.ceil(max(planned_sessions, 0) / max(planned_users, 1))


def preflight_warnings(
    params: TunnelParams,
    *,
    planned_sessions: int,
    planned_users: int,
    second: SecondLogin,
    dtls_up: bool | None,
    dtls_detail: str = "",
    planned_duration: float | None = None,
    user: str | None = None,
) -> list[str]:
    """One line per limit that will distort the load test (module docstring).
    ``dtls_up`` None: DTLS was not asked for (``--no-dtls``) or not offered."""
    out: list[str] = []
    size = pool_size(params)
    if size is not None and size < planned_sessions:
        prefix = ipaddress.IPv4Network(f"0.0.0.0/{params.netmask}").prefixlen
        out.append(
            f"address pool: the netmask /{prefix} leaves room for at most {size} clients,"
            f" fewer than the {planned_sessions} planned sessions (the rest will not get an"
            " address)"
        )
    spu = sessions_per_user(planned_sessions, planned_users)
    who = f"user {user!r}" if user else "one user"
    if second.cap is not None and second.cap < spu:
        how = "ended the first" if second.outcome == "preempted" else "was refused"
        out.append(
            f"per-user cap: a second login of {who} {how}, but the plan puts {spu} sessions"
            " on each user (ASA vpn-simultaneous-logins / ocserv max-same-clients); give"
            " distinct users (--user 'user{n}' or --credentials)"
        )
    elif second.outcome == "both-up" and spu > 2:
        out.append(
            f"per-user cap: only 2 sessions of {who} were tried, the plan puts {spu} on each"
            " user (an ASA allows 3 by default, vpn-simultaneous-logins; ocserv 2,"
            " max-same-clients)"
        )
    if looks_like_ocserv(params):
        out.append(
            f"ocserv detected ({_server(params) or 'PSK-NEGOTIATE DTLS'}): failed logins raise"
            " a source address's ban score (max-ban-score, ban-points-*) and rate-limit-ms"
            " spaces out new connections; both distort a load test from one address: give"
            " per-client --source addresses or set max-ban-score = 0 and rate-limit-ms = 0"
        )
    if dtls_up is False and params.dtls_offered:
        why = f" ({dtls_detail})" if dtls_detail else ""
        out.append(
            f"DTLS: offered ({params.dtls_cipher or '-'}) but not up within {DTLS_WAIT:g} s"
            f"{why}: UDP port {params.dtls_port or '-'} blocked? sessions will carry data"
            " over TLS only"
        )
    idle = params.idle_timeout
    if idle:
        short = idle < SHORT_IDLE_TIMEOUT
        shorter_than_run = planned_duration is not None and idle < planned_duration
        if short or shorter_than_run:
            run = f", shorter than the run's {planned_duration:g} s" if shorter_than_run else ""
            out.append(
                f"idle timeout {idle} s{run}: sessions without tunnel traffic will be ended;"
                " send traffic (--ping) or raise the idle timeout"
            )
    limit = params.auth_expiry
    if limit and planned_duration is not None and limit < planned_duration:
        out.append(
            f"session timeout {limit} s, shorter than the run's {planned_duration:g} s:"
            " sessions will be ended before the run is over"
        )
    return out


def _secs(v: int | None) -> str:
    return "none" if v is None else f"{v} s"


@dataclass(frozen=True)
class PreflightReport:
    """What one login and CONNECT against the headend showed (module docstring)."""

    url: str
    params: TunnelParams
    tls_version: str | None = None
    tls_cipher: str | None = None
    #: None: DTLS not offered or not asked for; else whether it came up in time
    dtls_up: bool | None = None
    #: the DTLS mode and cipher that came up, or why it did not
    dtls_detail: str = ""
    second: SecondLogin = field(default_factory=lambda: SecondLogin("not-tried"))
    planned_sessions: int = 1
    planned_users: int = 1
    user: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def server(self) -> str | None:
        return _server(self.params)

    @property
    def ocserv(self) -> bool:
        return looks_like_ocserv(self.params)

    @property
    def pool_size(self) -> int | None:
        return pool_size(self.params)

    def rows(self) -> list[tuple[str, str]]:
        p = self.params
        if p.dtls_offered:
            dtls = f"offered ({p.dtls_cipher or '-'}, port {p.dtls_port or '-'})"
            if self.dtls_up is True:
                dtls += f", up ({self.dtls_detail})" if self.dtls_detail else ", up"
            elif self.dtls_up is False:
                dtls += f", NOT up ({self.dtls_detail or 'no answer'})"
            else:
                dtls += ", not tried"
        else:
            dtls = "not offered"
        size = self.pool_size
        address = p.address or p.address_ip6 or "-"
        if p.netmask:
            address += f" / {p.netmask}"
        if size is not None:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{p.netmask}").prefixlen
            address += f" (pool /{prefix}: at most {size} clients)"
        rekey = "none" if p.rekey_method == "none" else f"{p.rekey_method} every {p.rekey_time} s"
        spu = sessions_per_user(self.planned_sessions, self.planned_users)
        return [
            ("server", (self.server or "-") + (" (ocserv)" if self.ocserv else "")),
            ("TLS", f"{self.tls_version or '-'} {self.tls_cipher or ''}".strip()),
            (
                "MTU",
                f"X-CSTP-MTU {p.cstp_mtu or '-'}, X-DTLS-MTU {p.dtls_mtu or '-'}"
                + (f", base {p.base_mtu}" if p.base_mtu else ""),
            ),
            ("DTLS", dtls),
            (
                "DPD / keepalive",
                f"{p.dpd} s / {p.keepalive} s (DTLS {p.dtls_dpd} s / {p.dtls_keepalive} s)",
            ),
            ("rekey", rekey),
            (
                "timeouts",
                f"idle {_secs(p.idle_timeout)}, session {_secs(p.auth_expiry)},"
                f" disconnected {_secs(p.disconnected_timeout)}",
            ),
            ("address", address),
            ("split-include", ", ".join(p.split_include) or "none (all traffic)"),
            ("per-user cap", self.second.describe()),
            (
                "plan",
                f"{self.planned_sessions} sessions, {self.planned_users} users ({spu} per user)",
            ),
        ]

    def render(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"headend preflight: {self.url}"]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += [f"  ! {w}" for w in self.warnings]
        else:
            lines.append("warnings: none")
        return "\n".join(lines)


# ------------------------------------------------------------------ the probe
@dataclass
class _Held:
    """One session held open in its own task until ``stop`` is set."""

    session: ClientSession | None = None
    error: TunnelswarmError | OSError | None = None
    ready: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    stop: trio.Event = field(default_factory=trio.Event)


async def _hold(
    held: _Held,
    options: ClientOptions,
    opener: StreamOpener | None,
    datagram_opener: DatagramOpener | None,
    log: logging.Logger,
) -> None:
    try:
        async with open_client(
            options, opener=opener, datagram_opener=datagram_opener, log=log
        ) as session:
            held.session = session
            held.ready.set()
            await held.stop.wait()
    except (TunnelswarmError, OSError) as e:
        held.error = e
    finally:
        held.ready.set()
        held.ended.set()


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError):
        from tunnelswarm.fleet.engine import os_reason

        return os_reason(e)
    return " ".join(str(e).split()) or type(e).__name__


async def _wait_dtls(session: ClientSession, timeout: float) -> tuple[bool | None, str]:
    """(up?, detail) once DTLS is up, an attempt failed, or ``timeout`` passed."""
    with trio.move_on_after(timeout):
        while True:
            ch = session.dtls
            if ch is None:
                return None, ""
            if ch.up:
                detail = next((e.detail for e in session.events if e.kind == "dtls-up"), "")
                return True, detail
            if ch.last_failure is not None:
                return False, ch.last_failure
            await trio.sleep(0.05)
    return False, f"no handshake within {timeout:g} s"


def _lost(held: _Held) -> bool:
    s = held.session
    return held.ended.is_set() or (s is not None and (s.reconnects > 0 or s.failure is not None))


async def _second_login(
    first: _Held,
    options: ClientOptions,
    opener: StreamOpener | None,
    datagram_opener: DatagramOpener | None,
    log: logging.Logger,
    nursery: trio.Nursery,
) -> tuple[SecondLogin, _Held]:
    opts = replace(
        options,
        hostname=f"{options.hostname}-2",
        seed=None if options.seed is None else options.seed + 1,
        cookie=None,
        no_dtls=True,  # the cap is about sessions; a second DTLS channel adds nothing
    )
    second = _Held()
    nursery.start_soon(_hold, second, opts, opener, datagram_opener, log)
    await second.ready.wait()
    if second.session is None:
        why = _reason(second.error) if second.error is not None else "no session"
        return SecondLogin("refused", why), second
    with trio.move_on_after(PREEMPT_WAIT):
        while not _lost(first):
            await trio.sleep(0.05)
    if not _lost(first) and first.session is not None:
        # no sign yet: does the first tunnel still answer a DPD?
        alive = await first.session.check_round_trip(timeout=PREEMPT_WAIT)
        if alive and not _lost(first):
            return SecondLogin("both-up"), second
    why = ""
    s = first.session
    if first.error is not None:
        why = f"the first got: {_reason(first.error)}"
    elif s is not None and s.failure is not None:
        why = f"the first got: {_reason(s.failure)}"
    elif s is not None and s.reconnects:
        why = "the first lost its tunnel"
    else:
        why = "the first stopped answering DPD"
    return SecondLogin("preempted", why), second


async def _check_reachable(options: ClientOptions, opener: StreamOpener | None) -> None:
    """One TCP connection first: an unreachable headend says so, in the words of the
    load engine's own check (:class:`PreflightError`)."""
    target = parse_url(options.url)
    try:
        with trio.fail_after(options.connect_timeout):
            stream = await (opener or tcp_opener)(target.host, target.port)
    except trio.TooSlowError:
        raise PreflightError(
            f"headend {target.url} unreachable: no TCP connection within"
            f" {options.connect_timeout:g} s"
        ) from None
    except OSError as e:
        raise PreflightError(f"headend {target.url} unreachable: {_reason(e)}") from None
    await stream.aclose()


async def preflight(
    options: ClientOptions,
    *,
    planned_sessions: int,
    planned_users: int,
    opener: StreamOpener | None = None,
    datagram_opener: DatagramOpener | None = None,
    planned_duration: float | None = None,
    dtls_wait: float = DTLS_WAIT,
    second_login: bool = True,
    timeout: float = PREFLIGHT_TIMEOUT,
    log: logging.Logger | None = None,
) -> PreflightReport:
    """One login and CONNECT against ``options.url``, a second login of the same user,
    both closed; the answers and the warnings (module docstring). Raises
    :class:`PreflightError` with a one-line reason when the first login fails."""
    log = log or logging.getLogger("tunnelswarm.fleet.preflight")
    opts = replace(options, reconnect_timeout=min(options.reconnect_timeout, 5.0))
    first = _Held()
    second_held: _Held | None = None
    second = SecondLogin("not-tried")
    params: TunnelParams | None = None
    tls: tuple[str | None, str | None] = (None, None)
    dtls_up: bool | None = None
    dtls_detail = ""
    await _check_reachable(options, opener)
    try:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_hold, first, opts, opener, datagram_opener, log)
                await first.ready.wait()
                s = first.session
                if s is not None and s.params is not None:
                    params = s.params
                    tls = (s.tls_version, s.tls_cipher)
                    dtls_up, dtls_detail = await _wait_dtls(s, dtls_wait)
                    if second_login and not _lost(first):
                        second, second_held = await _second_login(
                            first, opts, opener, datagram_opener, log, nursery
                        )
                first.stop.set()
                if second_held is not None:
                    second_held.stop.set()
    except trio.TooSlowError:
        raise PreflightError(
            f"preflight against {options.url}: no answer within {timeout:g} s"
        ) from None
    if params is None:
        why = _reason(first.error) if first.error is not None else "no session"
        raise PreflightError(f"preflight login to {options.url} failed: {why}")
    warnings = preflight_warnings(
        params,
        planned_sessions=planned_sessions,
        planned_users=planned_users,
        second=second,
        dtls_up=dtls_up,
        dtls_detail=dtls_detail,
        planned_duration=planned_duration,
        user=options.user,
    )
    return PreflightReport(
        url=options.url,
        params=params,
        tls_version=tls[0],
        tls_cipher=tls[1],
        dtls_up=dtls_up,
        dtls_detail=dtls_detail,
        second=second,
        planned_sessions=planned_sessions,
        planned_users=planned_users,
        user=options.user,
        warnings=tuple(warnings),
    )


# ------------------------------------------------------------------ the CLI's part
def planned_counts(spec: object) -> tuple[int, int]:
    """(sessions live at once at most, distinct users among them) of a
    :class:`~tunnelswarm.fleet.engine.LoadSpec`."""
    from tunnelswarm.fleet.engine import LoadSpec
    from tunnelswarm.fleet.plan import ClosedModel

    assert isinstance(spec, LoadSpec)
    m = spec.model
    if isinstance(m, ClosedModel):
        sessions = m.concurrency
    else:
        sessions = m.max_concurrency or max(1, math.ceil(m.arrival_rate * m.duration))
    creds = spec.effective_credentials
    users = len({creds.get(i)[0] for i in range(min(sessions, 100_000))})
    return sessions, max(users, 1)


def cli_preflight(spec: object, err: TextIO, args: object = None, *, skip: bool = False) -> None:
    """The preflight of ``tunnelswarm run --headend``: the report on ``err`` (with
    ``args.quiet``: only its warnings; ``args.verbose``: also the clients' log lines).
    Nothing for the in-process mock (no ``headend``) or with ``skip``
    (``--no-preflight``). Raises :class:`PreflightError`, one line, when the run cannot
    be made."""
    from tunnelswarm.drive.datagram import bound_udp_opener
    from tunnelswarm.drive.stream import bound_tcp_opener
    from tunnelswarm.fleet.engine import CLIENT_LOGGER, LoadSpec

    assert isinstance(spec, LoadSpec)
    if spec.headend is None or skip:
        return
    quiet = bool(getattr(args, "quiet", False))
    log = logging.getLogger(CLIENT_LOGGER + ".preflight")
    log.setLevel(logging.NOTSET if getattr(args, "verbose", 0) else logging.CRITICAL + 1)
    sessions, users = planned_counts(spec)
    user, password = spec.effective_credentials.get(0)
    options = ClientOptions(
        url=spec.headend,
        user=user,
        password=password,
        servercert=spec.servercert,
        profile=spec.profile,
        hostname="tunnelswarm-preflight",
        seed=spec.seed * 1_000_003 - 1,
        connect_timeout=min(30.0, spec.setup_timeout),
        no_dtls=spec.no_dtls,
    )
    opener: StreamOpener | None = None
    dopener: DatagramOpener | None = None
    if spec.sources is not None:
        src = spec.sources.get(0)
        opener, dopener = bound_tcp_opener(src), bound_udp_opener(src)

    async def go() -> PreflightReport:
        return await preflight(
            options,
            planned_sessions=sessions,
            planned_users=users,
            opener=opener,
            datagram_opener=dopener,
            planned_duration=spec.model.duration,
            log=log,
        )

    try:
        report = trio.run(go)
    except PreflightError:
        raise
    except (TunnelswarmError, OSError) as e:
        raise PreflightError(f"preflight against {spec.headend} failed: {_reason(e)}") from None
    if quiet:
        text = "\n".join(f"preflight warning: {w}" for w in report.warnings)
    else:
        text = report.render()
    if text:
        err.write(text + "\n")
        err.flush()
