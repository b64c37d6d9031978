"""One emulated AnyConnect client: login, CONNECT, CSTP, timers, reconnect, disconnect.

Theory of operation
-------------------
``open_client(options)`` is an async context manager. On entry it logs in (XML
aggregate auth, protocol.md §2.3–§2.4, or the legacy form of §2.5), keeps the
``webvpn`` cookie, sends ``CONNECT /CSCOSSLC/tunnel`` with the profile's headers
(§3.2), parses the answer once into :class:`TunnelParams` (§3.3) and switches the
connection's Rust core to CSTP mode. A background task then runs the tunnel, one task
per CSTP connection (``_tunnel_loop``) that waits for input until the next deadline:

* input: socket bytes go into the core and its events are dispatched — DATA to the
  virtual adapter, DISCONNECT/TERMINATE end the session (openconnect does not reconnect
  after them, §4.3);
* timers: when the core's ``next_deadline()`` is due it calls ``handle_timeout`` (§7.1
  keepalive and DPD); ``peer-dead`` or a lost TLS connection start a reconnect (the
  same wait also serves the MTU policy's deadline, below);
* reconnect (§7.4): new TCP + TLS + the same CONNECT with the same cookie and
  ``X-DTLS-Master-Secret`` plus ``X-CSTP-Address`` of the first session; retries after
  10, 20, … 100 s until ``--reconnect-timeout`` is spent; ``401`` ends the session
  (:class:`CookieRejected`), so does a different address (:class:`AddressChanged`);
* rekey (§7.3): ``new-tunnel`` reconnects; ``ssl`` is a TLS 1.3 KeyUpdate when the
  connection is TLS 1.3, otherwise (rustls does not renegotiate TLS 1.2) the
  ``new-tunnel`` fallback openconnect also uses when an ssl rekey fails.

* DTLS (§5, :mod:`tunnelswarm.client.dtls`): when CONNECT's answer offers it, a second
  task runs the DTLS channel of this CSTP connection; while DTLS is up, data goes over
  it and CSTP carries control only; DTLS trouble never ends the CSTP session by itself.
* Behaviour comes from the profile (:mod:`tunnelswarm.config.profile`): the DTLS
  timers (``ClientOptions.dtls_handshake_timeout``/``dtls_attempt_period`` override
  them) and the MTU policy (:mod:`tunnelswarm.client.policy`). Every CONNECT answer and
  every DTLS up/down goes to the policy, whose :class:`ApplyMtu` sets the virtual
  adapter's MTU; the tunnel loop also waits until the policy's next deadline (or until
  the policy is woken by a CONNECT or DTLS change) and asks it what that means. A
  :class:`Reconnect` (AnyConnect: DTLS not up by ``dtls_give_up`` and
  X-CSTP-MTU below the adapter MTU) logs the agent's lines at INFO ("Reconfigure reason
  code 16: New MTU configuration." …) and leaves the tunnel with cause ``mtu``: the
  ordinary reconnect path follows (same cookie, the headend resumes the session).
* Reconnects are counted by cause (:attr:`ClientSession.reconnects_by_cause`: ``mtu``,
  ``dpd``, ``rekey``, ``transport``), and a small timeline of :class:`SessionEvent` s
  (connect, reconnect with its cause, DTLS up / failed / down, MTU applied) is kept in
  :attr:`ClientSession.events` and handed to the ``on_event`` callback as it happens.
* Phase boundaries go to the ``on_phase(name, t)`` callback (``t`` = Trio's clock): ``tcp``
  (TCP connected), ``tls`` (TLS handshake done), ``auth`` (session cookie obtained),
  ``connect`` (CONNECT answered 200, tunnel up), ``dtls`` (a DTLS channel came up). A
  reconnect reports ``tcp``, ``tls``, ``connect`` (and ``dtls``) again; the load engine
  takes the first of each as the setup's phases (:mod:`tunnelswarm.fleet.engine`).
* Observables for the load engine: :meth:`ClientSession.channel_counters` (data packets
  and bytes per channel over the session's life, :class:`ChannelCounters`) and the
  ``on_sample(name, seconds)`` callback (DPD round trips per channel, :data:`SAMPLES`;
  :func:`open_client`).

On exit the client sends DISCONNECT ``b0`` (user requested, which also logs the cookie
out on ocserv, §4.3) and closes TLS. A terminal failure of the background task (server
terminate, cookie rejected, reconnect timeout) is raised from the context manager as
the typed error.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import ssl
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import trio

from tunnelswarm._core import CstpConnection, CstpEvent, DtlsConnection
from tunnelswarm.client.adapter import VirtualAdapter
from tunnelswarm.client.dtls import DtlsChannel, Impairments, plan_dtls
from tunnelswarm.client.mtu import choose_base_mtu, read_tcp_info, request_mtu
from tunnelswarm.client.policy import (
    ApplyMtu,
    DtlsRetryPolicy,
    MtuPolicy,
    Reconnect,
    make_mtu_policy,
)
from tunnelswarm.client.reconnect import ReconnectPolicy
from tunnelswarm.config.params import TunnelParams, parse_tunnel_headers
from tunnelswarm.config.profile import OPENCONNECT_9_01, ClientProfile
from tunnelswarm.drive.datagram import DatagramOpener, udp_opener
from tunnelswarm.drive.stream import Opener, TlsStream, now_us, tcp_opener, wall_time
from tunnelswarm.errors import (
    AddressChanged,
    AuthError,
    ConfigError,
    ConnectionLost,
    CookieRejected,
    HttpProtocolError,
    LocalProtocolError,
    ReconnectTimeout,
    RemoteProtocolError,
    ServiceUnavailable,
    SessionTerminated,
    TlsError,
    TunnelswarmError,
)
from tunnelswarm.http import auth
from tunnelswarm.http.client import CookieJar, HttpConnection, HttpResponse

__all__ = [
    "PHASES",
    "ChannelCounters",
    "ClientOptions",
    "ClientSession",
    "EventKind",
    "PhaseCallback",
    "SampleCallback",
    "SessionEvent",
    "Target",
    "open_client",
    "parse_url",
]

BYE_USER = 0xB0
MAX_AUTH_ROUNDS = 10
MAX_REDIRECTS = 3

#: opens a Trio stream to (host, port); tests inject in-memory networks here
StreamOpener = Opener


@dataclass(frozen=True, slots=True)
class Target:
    """Where the headend is: parsed from the user's URL."""

    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return h if self.port == 443 else f"{h}:{self.port}"

    @property
    def url(self) -> str:
        base = f"https://{self.host_header}"
        return base if self.path == "/" else base + self.path


def parse_url(url: str) -> Target:
    """``https://host[:port][/path]`` (the scheme may be omitted). ConfigError if bad."""
    raw = url.strip()
    if "://" not in raw:
        raw = "https://" + raw
    try:
        u = urllib.parse.urlsplit(raw)
        port = u.port or 443
    except ValueError as e:
        raise ConfigError(f"bad headend URL {url!r}: {e}") from None
    if u.scheme != "https":
        raise ConfigError(f"bad headend URL {url!r}: scheme must be https")
    if not u.hostname:
        raise ConfigError(f"bad headend URL {url!r}: no host")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return Target(u.hostname, port, path)


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything one emulated client needs to know. CLI flags map 1:1 onto it."""

    url: str
    user: str | None = None
    password: str | None = None
    authgroup: str | None = None
    servercert: tuple[str, ...] = ()
    cafile: str | None = None
    insecure: bool = False
    profile: ClientProfile = OPENCONNECT_9_01
    base_mtu: int | None = None
    mtu: int | None = None
    no_dtls: bool = False
    reconnect_timeout: float = 300.0
    hostname: str = field(default_factory=socket.gethostname)
    connect_timeout: float = 30.0
    keylog_file: str | None = None
    tls12_only: bool = False
    seed: int | None = None
    #: a session cookie from an earlier login (openconnect ``--cookie``): skip the login
    cookie: str | None = None
    #: override the profile's DTLS handshake give-up per attempt (``dtls_handshake_timeout``)
    dtls_handshake_timeout: float | None = None
    #: override the profile's DTLS retry period (``dtls_retry_period``)
    dtls_attempt_period: float | None = None


EventKind = Literal["connect", "reconnect", "dtls-up", "dtls-fail", "dtls-down", "mtu"]

#: how many timeline events a session keeps (the oldest go first)
MAX_EVENTS = 1024

#: the phase boundaries ``on_phase`` reports, in the order of a first setup
PHASES = ("tcp", "tls", "auth", "connect", "dtls")
#: ``on_phase(name, t)``: phase ``name`` (one of :data:`PHASES`) ended at Trio time ``t``
PhaseCallback = Callable[[str, float], None]
#: ``on_sample(name, seconds)``: one measurement, ``name`` one of :data:`SAMPLES`
SampleCallback = Callable[[str, float], None]
#: the samples ``on_sample`` reports: the round trip of a DPD request this client sent on
#: the CSTP channel, or on the DTLS channel, until its answer (Trio seconds)
SAMPLES = ("dpd_rtt_cstp", "dpd_rtt_dtls")


@dataclass(frozen=True, slots=True)
class ChannelCounters:
    """Data packets carried by each channel over a session's whole life, every
    reconnected tunnel and every DTLS channel included (:meth:`ClientSession.channel_counters`).

    A *packet* is one inner IP packet (the virtual adapter's unit): on CSTP one DATA frame
    (protocol.md §4.2), on DTLS one data record (payload type 00, §5.5). The *bytes* are
    the inner packets' lengths: no CSTP header, DTLS record header, MAC or padding, and no
    TLS or UDP/IP overhead. ``tx`` counts packets the core accepted for sending on that
    channel; ``rx`` counts packets received on it, before the adapter's MTU check (an
    oversize packet the adapter then drops is counted here and in its
    ``rx_dropped_oversize``). Control frames — DPD requests and responses, keepalives,
    DISCONNECT, TERMINATE — are not counted.
    """

    cstp_tx_packets: int = 0
    cstp_rx_packets: int = 0
    cstp_tx_bytes: int = 0
    cstp_rx_bytes: int = 0
    dtls_tx_packets: int = 0
    dtls_rx_packets: int = 0
    dtls_tx_bytes: int = 0
    dtls_rx_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One step of a client's timeline (scenario reports read these).

    ``connect``: a CONNECT was answered (``cause`` = the reconnect's cause, None the first
    time); ``reconnect``: the tunnel is being replaced for ``cause``; ``dtls-up``;
    ``dtls-fail``: an attempt that never came up; ``dtls-down``: an established channel
    lost; ``mtu``: the adapter MTU was set to ``mtu`` (possibly kept).
    """

    time: float
    kind: EventKind
    detail: str = ""
    cause: str | None = None
    mtu: int | None = None


def _ca_bundle(options: ClientOptions) -> bytes | None:
    """PEM bytes of --cafile, or of the system bundle (read here: the core does no IO)."""
    if options.cafile:
        try:
            return Path(options.cafile).read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read --cafile {options.cafile}: {e.strerror}") from None
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            try:
                return Path(candidate).read_bytes()
            except OSError:
                continue
    return None


class ClientSession:
    """State and behaviour of one emulated client. Use :func:`open_client`.

    Memory: a load run holds thousands of these, so the class has ``__slots__`` and
    keeps no ``random.Random`` (~2.5 KiB): its draws (the DTLS master secret, then one
    32-byte DTLS seed per attempt) are replayed from the seed when needed
    (:meth:`_draw_dtls_seed`), the same bytes a kept generator would give.
    """

    __slots__ = (
        "_ca_pem",
        "_cstp_dpd_sent",
        "_datagram_opener",
        "_dpd_waiters",
        "_dtls_done",
        "_dtls_seeds",
        "_http",
        "_on_event",
        "_on_phase",
        "_on_sample",
        "_opener",
        "_reconnect_cause",
        "_seed",
        "_stream",
        "_tunnel_up",
        "_wait_scope",
        "adapter",
        "auth_log",
        "base_mtu",
        "closing",
        "connected",
        "cookie",
        "cookies",
        "dtls",
        "dtls_retry",
        "events",
        "failure",
        "first_params",
        "impairments",
        "log",
        "master_secret",
        "mtu_policy",
        "options",
        "params",
        "reconnects",
        "reconnects_by_cause",
        "requested_mtu",
        "rx_cstp_bytes",
        "rx_cstp_packets",
        "server_pin",
        "target",
        "tls_cipher",
        "tls_version",
        "tx_cstp_bytes",
        "tx_cstp_packets",
    )

    def __init__(
        self,
        options: ClientOptions,
        *,
        opener: StreamOpener | None = None,
        log: logging.Logger | None = None,
        impairments: Impairments | None = None,
        datagram_opener: DatagramOpener | None = None,
        on_event: Callable[[SessionEvent], None] | None = None,
        on_phase: PhaseCallback | None = None,
        on_sample: SampleCallback | None = None,
    ) -> None:
        for pin in options.servercert:
            if not pin.startswith("pin-sha256:"):
                raise ConfigError(f"--servercert {pin!r}: expected pin-sha256:<base64>")
        self.options = options
        self.target = parse_url(options.url)
        self.log = log or logging.getLogger("tunnelswarm.client")
        self._opener = opener or tcp_opener
        self._datagram_opener = datagram_opener or udp_opener
        #: the seed of this client's draws (an unseeded client draws one from the OS)
        self._seed = (
            options.seed if options.seed is not None else int.from_bytes(os.urandom(32), "big")
        )
        self._dtls_seeds = 0  # DTLS seeds drawn so far (after the master secret)
        self._ca_pem = None if (options.servercert or options.insecure) else _ca_bundle(options)
        self.cookies = CookieJar()
        self.cookie: str | None = options.cookie
        #: (method, path, status) of every login request, for reports and tests
        self.auth_log: list[tuple[str, str, int]] = []
        self.master_secret = random.Random(self._seed).randbytes(48).hex().upper()
        self.params: TunnelParams | None = None
        self.first_params: TunnelParams | None = None
        self.base_mtu = 0
        self.requested_mtu = 0
        self.server_pin: str | None = None
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.adapter = VirtualAdapter(self._send_packet)
        self.reconnects = 0
        self.connected = trio.Event()
        self.failure: TunnelswarmError | None = None
        self.closing = False
        self._stream: TlsStream | None = None
        self._http: HttpConnection | None = None
        self._tunnel_up = False
        self._dpd_waiters: list[trio.Event] = []
        #: client-side network impairments (tests, scenarios), switchable at run time
        self.impairments = impairments or Impairments()
        #: the DTLS channel of the current CSTP connection, if DTLS was offered
        self.dtls: DtlsChannel | None = None
        #: data packets and their bytes over CSTP, all tunnels (see :class:`ChannelCounters`)
        self.tx_cstp_packets = 0
        self.rx_cstp_packets = 0
        self.tx_cstp_bytes = 0
        self.rx_cstp_bytes = 0
        #: DTLS data counters of the channels already replaced: (tx, rx, tx bytes, rx bytes)
        self._dtls_done = (0, 0, 0, 0)
        #: Trio time the pending CSTP DPD request was sent (None: none pending)
        self._cstp_dpd_sent: float | None = None
        prof = options.profile
        #: DTLS attempt timing: the profile's, unless the options override it
        self.dtls_retry = DtlsRetryPolicy(
            handshake_timeout=(
                prof.dtls_handshake_timeout
                if options.dtls_handshake_timeout is None
                else options.dtls_handshake_timeout
            ),
            retry_period=(
                prof.dtls_retry_period
                if options.dtls_attempt_period is None
                else options.dtls_attempt_period
            ),
            dead_peer=prof.dtls_dead_peer,
        )
        self.mtu_policy: MtuPolicy = make_mtu_policy(
            prof.mtu_policy, give_up=prof.dtls_give_up, headend=self.target.host
        )
        self.reconnects_by_cause: dict[str, int] = {}
        #: the latest :data:`MAX_EVENTS` timeline events, oldest first
        self.events: deque[SessionEvent] = deque(maxlen=MAX_EVENTS)
        self._on_event = on_event
        self._on_phase = on_phase
        self._on_sample = on_sample
        #: the tunnel loop's current wait (input, or the next deadline), cut short when the
        #: policy's deadline may have moved
        self._wait_scope: trio.CancelScope | None = None
        self._reconnect_cause: str | None = None

    # ------------------------------------------------------------------ timeline, policy
    def _event(
        self, kind: EventKind, detail: str = "", *, cause: str | None = None, mtu: int | None = None
    ) -> None:
        ev = SessionEvent(trio.current_time(), kind, detail, cause, mtu)
        self.events.append(ev)
        if self._on_event is not None:
            self._on_event(ev)

    def _phase(self, name: str) -> None:
        if self._on_phase is not None:
            self._on_phase(name, trio.current_time())

    def _apply_mtu(self, action: ApplyMtu, *, quiet: bool = False) -> None:
        """Give the adapter the policy's MTU (and say so)."""
        self.adapter.mtu = action.mtu
        self._event("mtu", action.reason, mtu=action.mtu)
        if quiet:
            self.log.debug("adapter MTU %d (%s)", action.mtu, action.reason)
        else:
            self.log.info("adapter MTU %d (%s)", action.mtu, action.reason)

    def _draw_dtls_seed(self) -> bytes:
        """The next 32-byte DTLS seed: ``Random(seed)``'s draws after the master secret."""
        rng = random.Random(self._seed)
        rng.getrandbits(48 * 8)  # the master secret (randbytes(n) is getrandbits(8n))
        for _ in range(self._dtls_seeds):
            rng.getrandbits(32 * 8)
        self._dtls_seeds += 1
        return rng.randbytes(32)

    # ------------------------------------------------------------------ observables
    def channel_counters(self) -> ChannelCounters:
        """Data packets and bytes per channel so far, over the whole session (all its
        tunnels and DTLS channels); what exactly is counted: :class:`ChannelCounters`."""
        tx, rx, txb, rxb = self._dtls_done
        ch = self.dtls
        if ch is not None:
            c = ch.counters
            tx, rx, txb, rxb = (
                tx + c.tx_packets,
                rx + c.rx_packets,
                txb + c.tx_bytes,
                rxb + c.rx_bytes,
            )
        return ChannelCounters(
            cstp_tx_packets=self.tx_cstp_packets,
            cstp_rx_packets=self.rx_cstp_packets,
            cstp_tx_bytes=self.tx_cstp_bytes,
            cstp_rx_bytes=self.rx_cstp_bytes,
            dtls_tx_packets=tx,
            dtls_rx_packets=rx,
            dtls_tx_bytes=txb,
            dtls_rx_bytes=rxb,
        )

    def _retire_dtls(self) -> None:
        """The DTLS channel is replaced (or gone): keep its counters in the session's."""
        ch, self.dtls = self.dtls, None
        if ch is not None:
            c = ch.counters
            tx, rx, txb, rxb = self._dtls_done
            self._dtls_done = (
                tx + c.tx_packets,
                rx + c.rx_packets,
                txb + c.tx_bytes,
                rxb + c.rx_bytes,
            )

    def _sample(self, name: str, value: float) -> None:
        if self._on_sample is not None:
            self._on_sample(name, value)

    def _cstp_dpd_answered(self) -> None:
        """A CSTP DPD response arrived: a sample if this client has a request pending."""
        sent, self._cstp_dpd_sent = self._cstp_dpd_sent, None
        if sent is not None:
            self._sample("dpd_rtt_cstp", trio.current_time() - sent)

    def _wake_policy(self) -> None:
        """The policy's deadline may have moved: cut the tunnel loop's wait short (it reads
        the deadlines afresh before every wait, so a wake outside a wait needs nothing)."""
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    # ------------------------------------------------------------------ connections
    async def _open_stream(self) -> TlsStream:
        t = self.target
        conn = CstpConnection.client(
            t.host,
            wall_time=wall_time(),
            ca_pem=self._ca_pem,
            pins=list(self.options.servercert),
            insecure=self.options.insecure,
            keylog=self.options.keylog_file is not None,
            tls12_only=self.options.tls12_only,
        )

        async def opener(host: str, port: int) -> trio.abc.Stream:
            raw = await self._opener(host, port)
            self._phase("tcp")
            return raw

        try:
            stream = await TlsStream.connect(
                opener, t.host, t.port, conn, timeout=self.options.connect_timeout
            )
        finally:
            self.server_pin = conn.peer_pin or self.server_pin
        self._phase("tls")
        self.server_pin = conn.peer_pin
        self.tls_version = conn.protocol_version
        self.tls_cipher = conn.cipher_suite
        self._write_keylog(conn)
        self.log.debug(
            "TLS to %s: %s %s, server %s",
            t.host_header,
            self.tls_version,
            self.tls_cipher,
            self.server_pin,
        )
        return stream

    def _write_keylog(self, conn: CstpConnection | DtlsConnection) -> None:
        lines = conn.take_keylog()
        if lines and self.options.keylog_file:
            with open(self.options.keylog_file, "a", encoding="ascii") as f:
                f.writelines(line + "\n" for line in lines)

    async def _http_conn(self) -> HttpConnection:
        if self._http is None or not self._http.usable:
            if self._http is not None:
                await self._http.stream.aclose()
            self._http = HttpConnection(await self._open_stream())
        return self._http

    # ------------------------------------------------------------------ login
    def _auth_headers(
        self, body: bytes, content_type: str | None, xml: bool
    ) -> list[tuple[str, str]]:
        p = self.options.profile
        h = [("Host", self.target.host_header), ("User-Agent", p.user_agent)]
        if (c := self.cookies.header()) is not None:
            h.append(("Cookie", c))
        h += [("Accept", "*/*"), ("Accept-Encoding", "identity"), ("X-Transcend-Version", "1")]
        if xml:
            h.append(("X-Aggregate-Auth", "1"))
            if p.platform_header:
                h.append(("X-AnyConnect-Platform", p.device_id))
            if p.support_http_auth:
                h.append(("X-Support-HTTP-Auth", "true"))
        if content_type is not None:
            h.append(("X-Pad", auth.x_pad(len(body))))
            h.append(("Content-Type", content_type))
        return h

    async def _auth_request(
        self, method: str, path: str, body: bytes = b"", *, xml: bool, form: bool = False
    ) -> HttpResponse:
        ctype = None
        if method == "POST":
            ctype = (
                "application/xml; charset=utf-8"
                if not form
                else "application/x-www-form-urlencoded"
            )
        http = await self._http_conn()
        resp = await http.request(method, path, self._auth_headers(body, ctype, xml), body)
        self.cookies.update(resp.header_all("Set-Cookie"))
        self.auth_log.append((method, path, resp.status))
        self.log.debug("%s %s -> %d %s", method, path, resp.status, resp.reason)
        return resp

    def _init_body(self, group: str | None) -> bytes:
        p = self.options.profile
        return auth.build_init(
            version=p.xml_version,
            device_id=p.device_id,
            group_access=self.target.url,
            group_select=group,
            aggregate_auth_version=p.aggregate_auth_version,
            capabilities=p.capabilities,
        )

    def _fill(self, form: auth.AuthForm) -> dict[str, str]:
        values: dict[str, str] = {}
        passwords = 0
        for item in form.inputs:
            if item.type in ("hidden", "submit", "sso", "reset", "button"):
                continue
            name = item.name
            if item.type == "password" or name in ("password", "answer", "new_password"):
                if name.startswith("verify_"):
                    continue
                passwords += 1
                if passwords > 1 or name not in ("password", "answer"):
                    raise AuthError(
                        f"headend asks for {name!r} ({item.label or 'second factor'}); "
                        "tunnelswarm answers one password only"
                    )
                if self.options.password is None:
                    raise ConfigError(
                        "headend asks for a password; give --passwd-on-stdin or --password-env"
                    )
                values[name] = self.options.password
            elif name == "username":
                if self.options.user is None:
                    raise ConfigError("headend asks for a username; give -u/--user")
                values[name] = self.options.user
            else:
                raise AuthError(
                    f"headend asks for {name!r} ({item.label or item.type}); "
                    "tunnelswarm answers username and password only"
                )
        return values

    def _choose_group(self, form: auth.AuthForm) -> str | None:
        select = form.group_select()
        if select is None:
            return self.options.authgroup
        offered = [o.value for o in select.options] + [o.label for o in select.options]
        if self.options.authgroup is not None:
            if self.options.authgroup not in offered:
                names = ", ".join(o.value for o in select.options) or "none"
                raise AuthError(
                    f"group {self.options.authgroup!r} is not offered by the headend"
                    f" (offered: {names})"
                )
            for o in select.options:
                if self.options.authgroup in (o.value, o.label):
                    return o.value
        return select.default()

    async def authenticate(self) -> None:
        """Log in and keep the session cookie (protocol.md §2)."""
        await self._xml_login()
        self._phase("auth")

    async def _xml_login(self) -> None:
        resp = await self._auth_request("POST", self.target.path, self._init_body(None), xml=True)
        if resp.status == 401:
            raise AuthError(f"login refused by headend: {resp.status} {resp.reason}")
        if resp.status != 200:
            self.log.info(
                "XML login answered %d %s; trying the legacy form login", resp.status, resp.reason
            )
            await self._legacy_login()
            return
        group_sent = False
        submitted = 0
        group: str | None = None
        for _ in range(MAX_AUTH_ROUNDS):
            if resp.status == 401:
                raise AuthError(f"login failed: {resp.status} {resp.reason}")
            if resp.status != 200:
                raise HttpProtocolError(f"login answered {resp.status} {resp.reason}")
            doc = auth.parse_auth_response(resp.body, content_type=resp.header("Content-Type"))
            if isinstance(doc, auth.AuthComplete):
                self._take_cookie(doc)
                return
            if doc.legacy:
                await self._legacy_login(first=resp)
                return
            failure = auth.classify_failure(doc)
            if failure is not None and submitted:
                raise AuthError(f"login failed: {failure}")
            if doc.group_select() is not None and not group_sent:
                # openconnect 9.01: a group_list select triggers a second init naming the group
                group = self._choose_group(doc)
                group_sent = True
                resp = await self._auth_request(
                    "POST", self.target.path, self._init_body(group), xml=True
                )
                continue
            if group is None:
                group = self._choose_group(doc)
            p = self.options.profile
            body = auth.build_auth_reply(
                doc,
                self._fill(doc),
                version=p.xml_version,
                device_id=p.device_id,
                group_select=group,
                capabilities=p.capabilities,
                aggregate_auth_version=p.aggregate_auth_version,
            )
            submitted += 1
            resp = await self._auth_request("POST", doc.action or "/", body, xml=True)
        raise AuthError(f"login did not complete within {MAX_AUTH_ROUNDS} rounds")

    async def _legacy_login(self, first: HttpResponse | None = None) -> None:
        """The non-XML form login (protocol.md §2.5)."""
        if first is None:
            if self._http is not None:
                await self._http.stream.aclose()
                self._http = None
            resp = await self._auth_request("GET", self.target.path, xml=False)
        else:
            resp = first
        for _ in range(MAX_AUTH_ROUNDS):
            redirects = 0
            while resp.status in (301, 302, 303, 307, 308) and redirects < MAX_REDIRECTS:
                loc = resp.header("Location") or "/"
                u = urllib.parse.urlsplit(loc)
                if u.hostname and u.hostname != self.target.host:
                    raise AuthError(f"headend redirects the login to another host: {loc}")
                resp = await self._auth_request("GET", u.path or "/", xml=False)
                redirects += 1
            if resp.status == 401:
                raise AuthError(f"login failed: {resp.status} {resp.reason}")
            if resp.status != 200:
                raise HttpProtocolError(f"legacy login answered {resp.status} {resp.reason}")
            if self.cookies.get("webvpn"):
                self.cookie = self.cookies.get("webvpn")
                return
            doc = auth.parse_auth_response(resp.body, content_type=resp.header("Content-Type"))
            if isinstance(doc, auth.AuthComplete):
                self._take_cookie(doc)
                return
            failure = auth.classify_failure(doc)
            if failure is not None:
                raise AuthError(f"login failed: {failure}")
            body = auth.build_legacy_reply(doc, self._fill(doc), self._choose_group(doc))
            resp = await self._auth_request("POST", doc.action or "/", body, xml=False, form=True)
        raise AuthError(f"legacy login did not complete within {MAX_AUTH_ROUNDS} rounds")

    def _take_cookie(self, doc: auth.AuthComplete) -> None:
        cookie = self.cookies.get("webvpn") or doc.session_token
        if not cookie:
            raise AuthError("login completed but the headend gave no session cookie")
        self.cookie = cookie

    # ------------------------------------------------------------------ CONNECT
    def _connect_headers(self, reconnect: bool) -> list[tuple[str, str]]:
        o, p = self.options, self.options.profile
        h = [
            ("Host", self.target.host_header),
            ("User-Agent", p.user_agent),
            ("Cookie", f"webvpn={self.cookie}"),
            ("X-CSTP-Version", "1"),
            ("X-CSTP-Hostname", o.hostname),
        ]
        if p.cstp_protocol_blurb:
            h.append(("X-CSTP-Protocol", "Copyright (c) 2004 Cisco Systems, Inc."))
        h += [
            ("X-CSTP-Base-MTU", str(self.base_mtu)),
            ("X-CSTP-MTU", str(self.requested_mtu)),
            ("X-CSTP-Address-Type", p.address_type),
        ]
        prev = self.first_params
        if reconnect and prev is not None and prev.address:
            h.append(("X-CSTP-Address", prev.address))
        if p.full_ipv6_capability:
            h.append(("X-CSTP-Full-IPv6-Capability", "true"))
        if reconnect and prev is not None and prev.address_ip6:
            h.append(("X-CSTP-Address", prev.address_ip6.split("/")[0]))
        if not o.no_dtls:
            h.append(("X-DTLS-Master-Secret", self.master_secret))
            if p.dtls_ciphers:
                h.append(("X-DTLS-CipherSuite", p.dtls_ciphers))
            if p.dtls12_ciphers:
                h.append(("X-DTLS12-CipherSuite", p.dtls12_ciphers))
        return h

    async def _open_tunnel(self, *, reconnect: bool) -> None:
        """CONNECT on the auth connection (first time) or a new one; switch to CSTP."""
        if reconnect or self._http is None or not self._http.usable:
            if self._http is not None:
                await self._http.stream.aclose()
            self._http = HttpConnection(await self._open_stream())
        http = self._http
        stream = http.stream
        sock = stream.socket()
        info = read_tcp_info(sock) if hasattr(sock, "getsockopt") else None
        if not reconnect:
            self.base_mtu = choose_base_mtu(self.options.base_mtu, info)
            ipv6 = ":" in self.target.host
            self.requested_mtu = request_mtu(self.base_mtu, ipv6=ipv6, user_mtu=self.options.mtu)
        resp = await http.request("CONNECT", "/CSCOSSLC/tunnel", self._connect_headers(reconnect))
        self._http = None  # the connection now belongs to the tunnel (or is dead)
        if resp.status != 200:
            await stream.aclose()
            if resp.status == 401:
                raise CookieRejected(
                    f"headend refused the session cookie: {resp.status} {resp.reason}"
                )
            if resp.status == 503:
                why = resp.header("X-Reason") or resp.reason
                raise ServiceUnavailable(f"VPN service unavailable; reason: {why}")
            raise ServiceUnavailable(f"CONNECT answered {resp.status} {resp.reason}")
        try:
            params = parse_tunnel_headers(resp.headers)
        except BaseException:
            await stream.aclose()  # do not leak the connection of a refused CONNECT answer
            raise
        first = self.first_params
        if (
            reconnect
            and first is not None
            and (params.address != first.address or params.netmask != first.netmask)
        ):
            await stream.aclose()
            raise AddressChanged(
                f"reconnect gave a different address ({params.address} != {first.address})"
            )
        self.params = params
        if first is None:
            self.first_params = params
        rekey = params.rekey_time if params.rekey_method != "none" else 0
        try:
            stream.conn.start_cstp(
                now_us(),
                dpd=params.dpd,
                keepalive=params.keepalive,
                rekey=rekey,
                leftover=resp.trailing,
            )
        except BaseException:
            await stream.aclose()  # e.g. CstpFramingError in the bytes read past the 200
            raise
        self._stream = stream
        self._tunnel_up = True
        self._cstp_dpd_sent = None  # a new connection: nothing of this client pending on it
        self._retire_dtls()
        self.dtls = self._dtls_channel(stream)
        decision = self.mtu_policy.on_connect(
            params, trio.current_time(), dtls_expected=self.dtls is not None
        )
        self.adapter.configure(mtu=decision.mtu, address=params.address)
        self._event(
            "connect",
            f"address {params.address}, X-CSTP-MTU {params.cstp_mtu}, X-DTLS-MTU {params.dtls_mtu}",
            cause=self._reconnect_cause if reconnect else None,
        )
        self._phase("connect")
        self._apply_mtu(decision, quiet=True)
        self._wake_policy()
        self.log.info(
            "CSTP connected: address %s, MTU %d, DPD %d s, keepalive %d s",
            params.address,
            decision.mtu,
            params.dpd,
            params.keepalive,
        )
        self.connected.set()

    # ------------------------------------------------------------------ tunnel loop
    async def _send_packet(self, packet: bytes) -> bool:
        """Data goes over DTLS while it is up, else over CSTP (§5.5)."""
        if self.dtls is not None and await self.dtls.send(packet):
            return True
        stream = self._stream
        if stream is None or not self._tunnel_up:
            return False
        try:
            stream.conn.send_data(now_us(), packet)
            await stream.flush()
        except LocalProtocolError:
            return False
        except (ConnectionLost, TlsError):
            return False
        self.tx_cstp_packets += 1
        self.tx_cstp_bytes += len(packet)
        return True

    def _deliver_cstp(self, packet: bytes) -> None:
        self.rx_cstp_packets += 1
        self.rx_cstp_bytes += len(packet)
        self.adapter.deliver(packet)

    def _dtls_channel(self, stream: TlsStream) -> DtlsChannel | None:
        """The DTLS channel this CONNECT answer asks for (None: no DTLS)."""
        p = self.params
        if self.options.no_dtls or p is None:
            return None
        plan = plan_dtls(
            p,
            host=self.target.host,
            default_port=self.target.port,
            master_secret_hex=self.master_secret,
            cstp=stream.conn,
        )
        if plan is None:
            return None

        def up(conn: DtlsConnection) -> None:
            self._write_keylog(conn)
            data_mtu = None
            if plan.mode == "psk":
                # PSK: the client computes the DTLS MTU from the negotiated suite (§5.4, §6.1)
                link = p.base_mtu or self.base_mtu
                data_mtu = conn.data_mtu(link, ipv6=":" in self.target.host) - 1
            self._event("dtls-up", f"{plan.mode} {plan.cipher}")
            self._phase("dtls")
            decision = self.mtu_policy.on_dtls_up(trio.current_time(), data_mtu=data_mtu)
            if decision is not None:
                self._apply_mtu(decision)
            self._wake_policy()

        def down(reason: str) -> None:
            self._event("dtls-down", reason)
            self.mtu_policy.on_dtls_down(trio.current_time())
            self._wake_policy()

        def fail(reason: str) -> None:
            self._event("dtls-fail", reason)

        return DtlsChannel(
            plan=plan,
            deliver=self.adapter.deliver,
            impairments=self.impairments,
            log=self.log,
            seed=self._draw_dtls_seed,
            retry=self.dtls_retry,
            on_up=up,
            on_down=down,
            on_fail=fail,
            opener=self._datagram_opener,
            on_dpd_rtt=None if self._on_sample is None else self._dtls_dpd_rtt,
        )

    def _dtls_dpd_rtt(self, seconds: float) -> None:
        self._sample("dpd_rtt_dtls", seconds)

    def _dispatch(self, events: list[CstpEvent]) -> tuple[str, str] | None:
        """Act on core events. Returns (cause, reason) to leave this tunnel, or None."""
        for ev in events:
            k = ev.kind
            if k == "data":
                self._deliver_cstp(ev.payload)
            elif k in ("dpd-request", "dpd-response", "keepalive"):
                self.log.debug("CSTP %s received", k)
                if k == "dpd-response":
                    self._cstp_dpd_answered()
                    waiters, self._dpd_waiters = self._dpd_waiters, []
                    for w in waiters:
                        w.set()
            elif k == "disconnect":
                code = f"{ev.reason:02x} " if ev.reason is not None else ""
                raise SessionTerminated(
                    f"headend disconnected the session: {code}{ev.text!r}".rstrip()
                )
            elif k == "terminate":
                raise SessionTerminated("headend terminated the session (TERMINATE)")
            elif k == "peer-dead":
                return "dpd", "DPD: no answer from the headend for more than 2 x DPD"
            elif k == "rekey-due":
                p = self.params
                assert p is not None
                if p.rekey_method == "ssl" and self.tls_version == "TLSv1_3" and self._stream:
                    self._stream.conn.refresh_traffic_keys()
                    self.log.info("rekey: TLS 1.3 key update")
                else:
                    return "rekey", f"rekey ({p.rekey_method})"
        return None

    async def _tunnel_loop(self, stream: TlsStream) -> tuple[str, str]:
        """One CSTP connection's single task, until a reason to leave it: wait for input
        until the earlier of the core's deadline and the MTU policy's (or until the policy
        is woken); act on what the input brought; when the core's deadline is due run its
        timers (keepalive, DPD, rekey) and act on what they say; then ask the policy what
        the time means and act on its decision (module docstring).

        A wait cut short loses nothing: the streams give up no bytes to a cancelled
        receive, events decoded before the cut stay queued in the core, and anything the
        cut kept from being sent goes with the flush after every wait."""
        conn = stream.conn
        while True:
            core = conn.next_deadline()
            policy = self.mtu_policy.next_deadline()
            at = min(
                math.inf if core is None else core / 1_000_000,
                math.inf if policy is None else policy,
            )
            with trio.move_on_at(at) as wait:
                self._wait_scope = wait
                await stream.receive()
            self._wait_scope = None
            await stream.flush()
            if (r := self._dispatch(conn.poll_events())) is not None:
                return r
            if stream.eof:
                return "transport", "TLS connection closed by the headend"
            if core is not None and now_us() >= core:
                if self._on_sample is None:
                    conn.handle_timeout(now_us())
                else:
                    sent = conn.stats()["dpd_sent"]
                    conn.handle_timeout(now_us())
                    if conn.stats()["dpd_sent"] != sent:  # the core sent a DPD request
                        self._cstp_dpd_sent = trio.current_time()
                await stream.flush()
                if (r := self._dispatch(conn.poll_events())) is not None:
                    return r
            decision = self.mtu_policy.on_timeout(trio.current_time())
            if isinstance(decision, Reconnect):
                for line in decision.lines:
                    self.log.info("%s", line)
                return decision.cause, (
                    f"reason code {decision.reason_code}: new MTU {decision.new_mtu}"
                    f" (adapter MTU {self.adapter.mtu}, DTLS not up)"
                )
            if decision is not None:
                self._apply_mtu(decision)

    async def _serve_tunnel(self) -> tuple[str, str]:
        """Run one CSTP connection until it must be replaced. Returns (cause, why).

        A lost connection returns its reason (the caller reconnects); anything else the
        headend did wrong (terminate, broken framing) is raised: it ends the session.
        """
        stream = self._stream
        assert stream is not None
        why: list[tuple[str, str]] = []
        terminal: list[TunnelswarmError] = []

        async def guarded() -> None:
            try:
                reason = await self._tunnel_loop(stream)
            except (ConnectionLost, TlsError) as e:
                reason = "transport", str(e)
                # frames decoded before the loss still count (DISCONNECT, then close)
                try:
                    self._dispatch(stream.conn.poll_events())
                except TunnelswarmError as t:
                    terminal.append(t)
            except TunnelswarmError as e:
                reason = "error", str(e)
                terminal.append(e)
            if not why:
                why.append(reason)
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guarded)
            if self.dtls is not None:
                nursery.start_soon(self.dtls.run)
        self._retire_dtls()
        self._tunnel_up = False
        if self._stream is stream:
            self._stream = None
        await stream.aclose()
        if terminal:
            raise terminal[0]
        return why[0] if why else ("transport", "tunnel stopped")

    async def _reconnect(self, cause: str, why: str) -> None:
        self.reconnects += 1
        self.reconnects_by_cause[cause] = self.reconnects_by_cause.get(cause, 0) + 1
        self._reconnect_cause = cause
        self.connected = trio.Event()
        self._event("reconnect", why, cause=cause)
        self.log.warning("reconnecting (%s): %s", cause, why)
        prof = self.options.profile
        schedule = ReconnectPolicy(
            timeout=self.options.reconnect_timeout,
            interval=prof.reconnect_interval,
            max_interval=prof.reconnect_max_interval,
        ).schedule()
        while True:
            try:
                await self._open_tunnel(reconnect=True)
                self.log.info("reconnected (attempt %d)", schedule.attempts + 1)
                return
            except (CookieRejected, AddressChanged):
                raise
            except (ConnectionLost, RemoteProtocolError, ServiceUnavailable) as e:
                delay = schedule.after_failure()
                if delay is None:
                    raise ReconnectTimeout(
                        "no reconnect within --reconnect-timeout"
                        f" {self.options.reconnect_timeout:g} s after {schedule.attempts}"
                        f" attempts; last error: {e}"
                    ) from None
                self.log.warning("reconnect failed (%s); retrying in %g s", e, delay)
                await trio.sleep(delay)

    async def run(self) -> None:
        """Serve the tunnel, reconnecting as needed, until closed or a terminal error."""
        while not self.closing and self._stream is not None:
            cause, why = await self._serve_tunnel()
            if self.closing:
                return
            await self._reconnect(cause, why)

    async def check_round_trip(self, timeout: float = 5.0) -> bool:
        """Send a CSTP DPD request and wait for the answer: proof the tunnel carries frames."""
        stream = self._stream
        if stream is None or not self._tunnel_up:
            return False
        done = trio.Event()
        self._dpd_waiters.append(done)
        stream.conn.send_frame(now_us(), 0x03, b"")
        self._cstp_dpd_sent = trio.current_time()
        await stream.flush()
        with trio.move_on_after(timeout):
            await done.wait()
        return done.is_set()

    async def disconnect(self, text: str = "Client disconnected") -> None:
        """Send DISCONNECT b0 and close (idempotent)."""
        self.closing = True
        stream, self._stream = self._stream, None
        self._tunnel_up = False
        if stream is None:
            if self._http is not None:
                await self._http.stream.aclose()
                self._http = None
            return
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            try:
                stream.conn.send_disconnect(now_us(), BYE_USER, text)
                await stream.flush()
            except TunnelswarmError:
                pass
        await stream.aclose()


@asynccontextmanager
async def open_client(
    options: ClientOptions,
    *,
    opener: StreamOpener | None = None,
    log: logging.Logger | None = None,
    bye_text: str = "Client disconnected",
    impairments: Impairments | None = None,
    datagram_opener: DatagramOpener | None = None,
    on_event: Callable[[SessionEvent], None] | None = None,
    on_phase: PhaseCallback | None = None,
    on_sample: SampleCallback | None = None,
) -> AsyncIterator[ClientSession]:
    """Log in, bring the tunnel up, and keep it up while the block runs.

    ``on_event`` receives every :class:`SessionEvent` of the client's timeline;
    ``on_phase`` every phase boundary (module docstring); ``on_sample(name, seconds)``
    every measurement of :data:`SAMPLES`: ``("dpd_rtt_cstp", rtt)`` /
    ``("dpd_rtt_dtls", rtt)`` each time a DPD request this client sent on that channel —
    by its DPD timer, :meth:`ClientSession.check_round_trip` or
    :meth:`~tunnelswarm.client.dtls.DtlsChannel.dpd_round_trip` — is answered, ``rtt``
    the Trio seconds from sending it to reading the answer. One request per channel is
    pending at a time: a newer one replaces it (a lost request or answer then costs one
    sample, never a wrong one); an answer with nothing pending, or on a newer
    connection than its request, is no sample.
    """
    session = ClientSession(
        options,
        opener=opener,
        log=log,
        impairments=impairments,
        datagram_opener=datagram_opener,
        on_event=on_event,
        on_phase=on_phase,
        on_sample=on_sample,
    )
    try:
        if session.cookie is None:
            await session.authenticate()
        await session._open_tunnel(reconnect=False)
    except BaseException:
        await session.disconnect()
        raise
    async with trio.open_nursery() as nursery:

        async def background() -> None:
            try:
                await session.run()
            except TunnelswarmError as e:
                session.failure = e
                nursery.cancel_scope.cancel()

        nursery.start_soon(background)
        try:
            yield session
        finally:
            await session.disconnect(bye_text)
            nursery.cancel_scope.cancel()
    if session.failure is not None:
        raise session.failure
