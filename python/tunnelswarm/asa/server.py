"""The mock Cisco ASA: a real TLS/DTLS AnyConnect headend driven by an ASA configuration.

Theory of operation
-------------------
:func:`serve_mock_asa` builds a :class:`MockAsa` from a :class:`MockAsaConfig` and runs
it until cancelled. Everything the ASA *decides* comes from the sans-IO building blocks
of this package; this module only moves bytes and time:

* **Configuration** is one :class:`~tunnelswarm.asa.config.ConfigStore`. The admin
  console (``--admin``: a line protocol over TCP, one
  :class:`~tunnelswarm.asa.console.AdminConsole` per connection) commits new snapshots;
  after every line the server drains the change events and applies them (listeners,
  pools, logging). A session keeps using the policy that was current when it connected.
* **Listeners** follow :class:`~tunnelswarm.asa.asp.SocketTable`, i.e. the version rule
  of CSCuh61321: on 9.x ``dtls port N`` changes only the advertised ``X-DTLS-Port``
  while the UDP socket stays where it was until ``no enable outside`` / ``enable
  outside``; on 8.4 the UDP socket moves at once. After each config change the real
  sockets are reconciled with the table's ``LISTEN`` rows. Only one interface (``outside``
  by default, :attr:`MockAsaConfig.interface`) is served on the real listen address; the
  table shows the interface's configured address.

  *Port mapping*: ports in the configuration are ASA ports (443 by default). The mock
  listens on ``ASA port + offset`` where the offset makes the SSL port land on
  :attr:`MockAsaConfig.port` (``--port 8443`` → offset 8000, so ``dtls port 444`` is
  UDP 8444 and ``X-DTLS-Port: 8444``); with ``port=0`` the kernel picks a port whose UDP
  twin is free. Offset 0 (``--port 443``) reproduces the ASA's numbers exactly.
* **HTTP** is h11 in the server role over the core's TLS (``CstpConnection.server``):
  the XML aggregate-auth dialogue of protocol.md §2.3 (``init`` → ``auth-request`` with
  an ``<opaque>`` and the ``group_list`` of ``tunnel-group-list enable``; ``auth-reply``
  → ``complete`` + ``Set-Cookie: webvpn=``; a wrong password re-sends the form with
  ``<error>``). The tunnel group comes from ``group-url`` (matched against the client's
  ``group-access`` URL, also with the host replaced by the interface address), then
  ``group-alias``, else the first alias of the group list, else ``DefaultWEBVPNGroup``.
  Passwords are checked by :class:`~tunnelswarm.asa.aaa.LocalAaa` (``aaa local
  authentication attempts max-fail``: a locked-out user gets the wrong-password answer,
  syslog 113015/113006; ``show aaa local user``, ``clear aaa local user lockout``).
* **vpn-simultaneous-logins N**: a login of a user who holds ``N`` sessions ends the one
  idle longest (:meth:`~tunnelswarm.asa.sessiondb.SessionDb.make_room`, 113019 ``Port
  Preempted``; its TCP connection is closed, its cookie then gets ``401``); ``N = 0``
  refuses the login (``Login failed.``, 113029). :data:`DEFAULT_CONFIG_TEXT` and
  ``examples/asa-9.1.cfg`` set 100 for their one user ``test`` (the ASA default is 3).
* **Sessions** live in :class:`~tunnelswarm.asa.sessiondb.SessionDb` (Parent at login,
  SSL-Tunnel at CONNECT, DTLS-Tunnel at the DTLS handshake). A CONNECT with the cookie
  of a session whose SSL-Tunnel went away resumes it (same address) within the
  disconnected timeout; idle/session/disconnected timeouts end sessions (checked every
  :data:`EXPIRY_TICK` seconds) and close their tunnels.
* **CONNECT** is answered like §3.3.3 with MTUs from :func:`tunnelswarm.asa.mtu.negotiate`
  (``X-CSTP-MTU: 1347`` / ``X-DTLS-MTU: 1418`` with the defaults and AES-CBC-SHA1).
* **CSTP** runs in the core (``start_cstp``: DPD requests answered, the gateway's DPD
  timer, DISCONNECT/TERMINATE as events).
* **DTLS** is one :class:`~tunnelswarm._core.DtlsEndpoint` for all UDP sockets (peer ids
  map to ``(socket, address)``). The cipher is the first of the configured preference
  (``ssl cipher dtlsv1|dtlsv1.2``) that the client offers: ``X-DTLS-CipherSuite`` first,
  ``X-DTLS12-CipherSuite`` as the fallback. DTLS DPD payloads are echoed (openconnect's
  MTU probe needs it).
* **Inside network** (:class:`~tunnelswarm.asa.inside.InsideNetwork`, sans-IO): the
  ``inside`` interface's network plus :attr:`MockAsaConfig.inside_hosts`; its hosts answer
  ICMP echo, UDP echo and the TCP port 80 "web server" flow model (docs/mock-asa-mtu.md).
  A packet out of a tunnel larger than that channel's tunnel MTU logs ``%ASA-3-722035``
  (counted in :attr:`MockAsa.forwarding`, still forwarded: a model). Everything the inside
  hosts send, replies and retransmissions alike, goes through :meth:`MockAsa.send_to_client`,
  i.e. :meth:`~tunnelswarm.asa.mtu.AsaMtu.decide` on the channel it would use: too big with
  DF → dropped, ``mp-svc-no-fragment`` counted, ``%ASA-6-722036`` logged, and an ICMP 3/4
  carrying the channel's tunnel MTU is sent back to the inside sender with
  ``%ASA-6-602101`` — unless an ``icmp deny`` rule for ``unreachable`` on ``inside``
  matches the sender (a PMTUD black hole); too big without DF (or with ``anyconnect ssl
  df-bit-ignore enable``) → fragmented. One task runs the flows' timers, asleep until
  the model's next deadline.
* **Syslog** follows the ``logging`` configuration live, as on an ASA:
  ``logging enable`` gates every ASA destination (with ``no logging enable`` nothing is
  logged anywhere, not even to the buffer); ``logging buffered <level>`` feeds the ``show
  logging`` buffer (no level: the buffer gets nothing); ``logging trap <level>`` is what
  each ``logging host <nameif> <ip> [udp/<port>]`` receives as RFC 3164 datagrams
  (:class:`~tunnelswarm.asa.syslog.UdpSyslogSink`, ``logging facility``, HOST = the
  hostname; no trap level: the hosts get nothing); ``logging timestamp`` puts the ASA
  timestamp on buffer lines and into the datagrams' TIMESTAMP field (without it the
  buffer lines are bare and the datagrams carry RFC 3164's ``Mmm dd hh:mm:ss``). Host
  destinations must be loopback addresses (the sink refuses others; ``tcp/<port>`` is
  not modelled): such a host is skipped with a one-line note on the admin console and in
  :attr:`MockAsa.errors`. The operator's taps given on the command line (``--syslog``
  stdout / file / UDP) are *not* ASA destinations: they see every message at every level
  whatever the configuration says, so that a mock run is never silent by accident.
  (Two :class:`~tunnelswarm.asa.syslog.SyslogRouter` objects: :attr:`MockAsa.syslog` for
  the ASA's destinations, :attr:`MockAsa.taps` for the operator's.)
* **Version personality**: a live ``asa-version`` change switches ``show version``, the
  CSCuh61321 rule and the ``show asp table socket`` layout at once (see
  :meth:`~tunnelswarm.asa.asp.SocketTable.set_version` for pending DTLS port changes).
* **Junk datagrams** on the DTLS port are dropped and counted, never answered, and never
  end a session (anyone can send a datagram with a client's source address): junk from an
  address with no DTLS connection and records a connection cannot parse or authenticate
  count ``mp-svc-bad-framing``; a ClientHello for no registered session counts
  ``mp-svc-no-session`` (so does tunnel data arriving for a session that is gone). One
  ``%ASA-6-725006`` line per source address per :data:`JUNK_LOG_INTERVAL` seconds reports
  them -- a model: the message is the ASA's failed-handshake message, its use for DTLS
  junk is ours.

Bad input from a client (TLS garbage, broken HTTP, broken CSTP framing, hostile XML)
ends that client's connection with a syslog line, never the server: ``%ASA-6-725006`` for a
failed TLS handshake, ``%ASA-4-722001`` (error parsing SVC connect request) for HTTP or XML
it cannot parse before a session exists (and ``404``, then close, for a CONNECT to another
path than ``/CSCOSSLC/tunnel``), ``%ASA-4-722003`` and ``401`` (then close) for a
CONNECT whose cookie names no session, and for broken CSTP framing ``mp-svc-bad-framing``
plus the session's ``%ASA-5-722037 … SVC closing connection: <reason>.`` (the Parent
session stays resumable, as after any transport loss).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import math
import secrets
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from xml.sax.saxutils import escape

import h11
import trio
from defusedxml import ElementTree as DefusedET

from tunnelswarm._core import (
    CstpConnection,
    DtlsEndpoint,
    DtlsEvent,
    ipv4_inspect,
    udp_datagram,
)
from tunnelswarm._core import fragment_ipv4 as _core_fragment_ipv4
from tunnelswarm.asa.aaa import LocalAaa, render_show_aaa_local_user
from tunnelswarm.asa.asp import AspDropCounters, SocketTable
from tunnelswarm.asa.certs import Identity, load_or_create_identity
from tunnelswarm.asa.config import (
    AaaMaxFailChanged,
    Args,
    AsaConfig,
    AsaVersionChanged,
    CommandContext,
    ConfigEvent,
    ConfigStore,
    DtlsPortChanged,
    EffectivePolicy,
    HostnameChanged,
    InterfaceChanged,
    InterfaceDisabled,
    InterfaceEnabled,
    LoggingChanged,
    ModeKind,
    PoolAllocator,
    PoolChanged,
    PoolRemoved,
    TunnelGroup,
    UserRemoved,
    WebvpnPortChanged,
    Word,
    cmd,
    parse_config,
)
from tunnelswarm.asa.console import AdminConsole, ShowRegistry
from tunnelswarm.asa.inside import (
    Delivery,
    FlowParams,
    ForwardCounters,
    InsideNetwork,
    icmp_frag_needed,
)
from tunnelswarm.asa.mtu import (
    ASP_DROP_NO_FRAGMENT,
    AsaMtu,
    DropTooBig,
    Fragment,
    MtuConfig,
    negotiate,
)
from tunnelswarm.asa.sessiondb import (
    EndedSession,
    EndedTunnel,
    EndReason,
    NoAddressAvailable,
    Session,
    SessionDb,
    SessionLimitReached,
    SessionLimits,
    TunnelKind,
    asa_cipher_names,
    render_vpn_sessiondb,
    render_vpn_sessiondb_anyconnect,
    render_vpn_sessiondb_summary,
)
from tunnelswarm.asa.syslog import (
    SEVERITY_NAMES,
    BufferSink,
    FileSink,
    SessionRef,
    SyslogMessage,
    SyslogRouter,
    TextStreamSink,
    UdpSyslogSink,
    aaa_user_auth_rejected,
    aaa_user_auth_successful,
    address_assigned,
    anyconnect_parent_session_started,
    client_type,
    dtls_disabled_no_cipher,
    first_svc_connection,
    new_svc_connection_no_existing,
    new_svc_connection_replacing,
    pmtud_packet_too_big,
    received_large_packet,
    session_disconnected,
    session_limit_reached,
    ssl_handshake_failed,
    stale_svc_connection_closed,
    svc_closing_connection,
    svc_connect_auth_error,
    svc_connect_parse_error,
    svc_connection_established,
    svc_connection_terminated,
    transmitting_large_packet,
    user_locked_out,
    user_unlocked,
    webvpn_session_started,
    webvpn_session_terminated,
)
from tunnelswarm.drive.dtls_server import DtlsUdpServer
from tunnelswarm.drive.memnet import MemListener, MemNetwork, MemUdpSocket
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import ConfigError, CstpFramingError, TunnelswarmError

if TYPE_CHECKING:  # a Literal alias of the stub only
    from tunnelswarm._core import DatagramDrop

__all__ = [
    "DEFAULT_CONFIG_TEXT",
    "DTLS12_PREFERENCE",
    "DTLS_PREFERENCE",
    "MockAsa",
    "MockAsaConfig",
    "MockAsaInfo",
    "fragment_ipv4",
    "serve_mock_asa",
]

#: how often session timers are checked (seconds)
EXPIRY_TICK: Final = 0.5
#: at most one junk-datagram syslog line per source address per this many seconds
JUNK_LOG_INTERVAL: Final = 60.0
#: source addresses remembered for that rate limit (the oldest is forgotten first)
JUNK_LOG_SOURCES: Final = 4096
#: receive/send buffer asked for on the shared DTLS socket
UDP_BUFFER_BYTES: Final = 8 * 1024 * 1024
#: the Lease-Duration an ASA sends without ``vpn-session-timeout`` (UNCONFIRMED: 14 days)
DEFAULT_LEASE: Final = 1209600
MAX_HTTP_BODY: Final = 65536
MAX_ADMIN_LINE: Final = 4096
XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
LOGIN_FAILED: Final = "Login failed."
LOGIN_DENIED: Final = "Login denied, unauthorized connection mechanism, contact your administrator."
#: who ``clear aaa local user lockout`` names in syslog 113007: the admin console has no
#: user name, and an ASA calls an enable-password login ``enable_15`` (UNCONFIRMED here)
ADMIN_NAME: Final = "enable_15"

#: ``X-DTLS-CipherSuite`` names by ``ssl cipher dtlsv1 <level>``, best first (UNCONFIRMED)
DTLS_PREFERENCE: Final[dict[str, tuple[str, ...]]] = {
    "all": ("AES256-SHA", "AES128-SHA", "DHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA", "DES-CBC3-SHA"),
    "low": ("AES256-SHA", "AES128-SHA", "DHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA", "DES-CBC3-SHA"),
    "medium": ("AES256-SHA", "AES128-SHA", "DHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA"),
    "fips": ("AES256-SHA", "AES128-SHA", "DHE-RSA-AES256-SHA", "DHE-RSA-AES128-SHA"),
    "high": ("AES256-SHA", "DHE-RSA-AES256-SHA"),
}
#: ``X-DTLS12-CipherSuite`` names by ``ssl cipher dtlsv1.2 <level>``, best first (UNCONFIRMED)
DTLS12_PREFERENCE: Final[dict[str, tuple[str, ...]]] = {
    "all": ("AES256-GCM-SHA384", "AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"),
    "low": ("AES256-GCM-SHA384", "AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"),
    "medium": ("AES256-GCM-SHA384", "AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"),
    "fips": ("AES256-GCM-SHA384", "AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"),
    "high": ("AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
}

#: the configuration used when none is given (like examples/asa-9.1.cfg, user test/test)
DEFAULT_CONFIG_TEXT: Final = """\
ASA Version 9.1(4)
hostname ciscoasa
interface GigabitEthernet0/0
 nameif outside
 security-level 0
 ip address 172.16.11.1 255.255.255.0
interface GigabitEthernet0/1
 nameif inside
 security-level 100
 ip address 10.1.1.1 255.255.255.0
logging enable
logging timestamp
logging buffered informational
ip local pool ac_pool 10.10.10.10-10.10.10.250 mask 255.255.255.0
webvpn
 enable outside
 anyconnect enable
 tunnel-group-list enable
group-policy ac_users_group internal
! vpn-simultaneous-logins: an ASA allows 3 sessions per user by default and ends the
! oldest idle one at the 4th login; demos and tests run many clients as user `test`
group-policy ac_users_group attributes
 vpn-simultaneous-logins 100
 vpn-idle-timeout 60
 vpn-tunnel-protocol ssl-client
username test password test privilege 15
tunnel-group ac_users type remote-access
tunnel-group ac_users general-attributes
 address-pool ac_pool
 default-group-policy ac_users_group
tunnel-group ac_users webvpn-attributes
 group-alias ac_users enable
"""

_IO_ERRORS = (TunnelswarmError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def _leaf(e: BaseException) -> BaseException:
    """The one exception inside (nested) single-exception groups, e.g. from a nursery."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


# ============================================================== configuration
@dataclass(frozen=True)
class MockAsaConfig:
    """How to run one mock ASA (the CLI flags of ``tunnelswarm mock-asa``)."""

    #: the ASA configuration (``--config FILE``); default :data:`DEFAULT_CONFIG_TEXT`
    asa: AsaConfig = field(default_factory=lambda: parse_config(DEFAULT_CONFIG_TEXT))
    #: address the served interface's listeners bind to (loopback by default)
    listen: str = "127.0.0.1"
    #: real TCP port of the SSL listener (the ASA's ``port``, 443, maps onto it); 0 = any
    port: int = 8443
    #: the interface (nameif) served on :attr:`listen`
    interface: str = "outside"
    #: where the certificate is kept (None: a new one in memory at every start)
    state_dir: Path | None = None
    #: the certificate and key to serve (before :attr:`state_dir`): a restarted mock
    #: keeps the one it had
    identity: Identity | None = None
    #: admin console listener ``(host, port)`` (port 0 = any free port)
    admin: tuple[str, int] | None = None
    syslog_stdout: bool = False
    syslog_file: Path | None = None
    syslog_udp: tuple[str, int] | None = None
    #: more inside addresses or prefixes (``"192.0.2.0/24"``) besides the ``inside``
    #: interface's network; their hosts answer echo and the web-server flow model
    inside_hosts: tuple[str, ...] = ()
    #: the inside web-server flow model's knobs (window, RTO, retries, flow limit)
    inside_flows: FlowParams = field(default_factory=FlowParams)
    #: ``X-CSTP-Split-Include`` networks (``a.b.c.d/m.m.m.m``); None = the inside network
    split_include: tuple[str, ...] | None = None
    #: ``show logging`` buffer size in bytes
    log_buffer_size: int = 65536
    #: multiplies the idle/session/disconnected timeouts the server enforces (not the
    #: advertised values); tests use 1/60 so that a configured minute lasts a second
    time_scale: float = 1.0
    #: serve on an in-memory network instead of real sockets (virtual-time scenarios):
    #: listeners bind :attr:`listen` on it at the configuration's own ports (no offset)
    network: MemNetwork | None = None
    #: the wall clock of syslog timestamps and ``show`` output (default ``datetime.now``;
    #: virtual-time runs pass one that follows Trio's clock)
    wall_clock: Callable[[], datetime] | None = None


@dataclass(frozen=True)
class MockAsaInfo:
    """What :func:`serve_mock_asa` reports through ``task_status.started``."""

    url: str
    pin: str
    host: str
    #: real TCP port of the SSL listener (None: the interface is not enabled)
    tcp_port: int | None
    #: real UDP port of the DTLS listener
    udp_port: int | None
    admin_port: int | None
    #: real port = ASA port + offset
    port_offset: int
    asa: MockAsa


# ============================================================== small helpers
class _GroupAllocator:
    """SessionDb's allocator protocol over a PoolAllocator, limited to the pools of the
    tunnel group being logged in (set just before ``SessionDb.create``)."""

    def __init__(self, pools: PoolAllocator) -> None:
        self.pools = pools
        self.names: tuple[str, ...] = ()

    def allocate(self, user: str) -> str | None:
        return self.pools.allocate(user, self.names)

    def release(self, ip: str) -> None:
        self.pools.release(ip)


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """Split an IPv4 packet into fragments of at most ``mtu`` bytes (RFC 791, done by the
    core: 8-byte boundaries, MF/offset, copied options, header checksums; DF is copied).
    A packet that fits comes back whole; [] when it cannot be fragmented (not sound IPv4,
    or ``mtu`` below header + 8 bytes)."""
    return _core_fragment_ipv4(packet, mtu)


def _xml_fields(body: bytes) -> dict[str, str]:
    """type, group-access, group-select, auth/* and aggauth-handle of a config-auth doc."""
    root: Any = DefusedET.fromstring(body)
    if root.tag != "config-auth":
        raise ValueError(f"not a config-auth document: <{root.tag}>")
    found = {"type": root.get("type", "")}
    for child in root:
        tag = child.tag
        if tag in ("group-select", "group-access"):
            found[tag] = (child.text or "").strip()
        elif tag == "auth":
            for item in child:
                found["auth:" + item.tag] = item.text or ""
        elif tag == "opaque":
            handle = child.find("aggauth-handle")
            found["aggauth-handle"] = (handle.text or "").strip() if handle is not None else ""
    return found


def _offer(value: str | None) -> list[str]:
    return [c.strip().upper() for c in (value or "").split(":") if c.strip()]


def _netmask_prefix(network: ipaddress.IPv4Network) -> str:
    return f"{network.network_address}/{network.netmask}"


@dataclass
class _Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False
    switch: bool = False


def _peer_of(stream: trio.abc.Stream) -> Any:
    """The remote ``(address, port)`` of a socket stream or an in-memory stream."""
    sock = getattr(stream, "socket", None)
    if sock is not None:
        return sock.getpeername()
    return stream.getpeername()  # type: ignore[attr-defined]


@dataclass
class _Listener:
    protocol: Literal["SSL", "DTLS"]
    asa_port: int
    real_port: int
    scope: trio.CancelScope
    udp: socket.socket | None = None
    tcp: trio.socket.SocketType | None = None
    mem_tcp: MemListener | None = None
    mem_udp: MemUdpSocket | None = None


class _Conn:
    """One TCP connection from a client."""

    def __init__(
        self, asa: MockAsa, stream: trio.abc.Stream, conn: CstpConnection, nameif: str
    ) -> None:
        self.asa = asa
        self.stream = stream
        self.conn = conn
        self.nameif = nameif
        peer: Any = _peer_of(stream)
        self.peer_ip: str = str(peer[0])
        self.peer_port: int = int(peer[1])
        self.lock = trio.Lock()
        self.scope = trio.CancelScope()
        self.wake = trio.Event()
        self.session: Session | None = None
        self.policy: EffectivePolicy | None = None
        self.mtu: AsaMtu | None = None
        self.dtls_key: bytes | None = None
        self.dtls_cipher: str | None = None
        self.dtls_mode: str | None = None
        self.user_agent = ""
        self.closing_reason: str | None = None

    def kick(self) -> None:
        self.wake.set()

    async def flush(self) -> None:
        async with self.lock:
            while (data := self.conn.poll_transmit()) is not None:
                await self.stream.send_all(data)

    def who(self) -> SessionRef:
        s = self.session
        if s is None:
            return SessionRef("", "", self.peer_ip)
        return SessionRef(s.group_policy, s.username, self.peer_ip)

    def end(self, reason: str) -> None:
        if self.closing_reason is None:
            self.closing_reason = reason
        self.scope.cancel()


# ============================================================== the server
class MockAsa:
    """One mock ASA: configuration, sessions, listeners and logs. See the module docstring.

    Tests reach the parts directly: :attr:`store` (configuration), :meth:`console` (an
    admin console on it), :attr:`sessiondb`, :attr:`syslog_buffer` (``show logging``),
    :attr:`drops` (``show asp drop``), :attr:`sockets` (``show asp table socket``).
    """

    def __init__(self, config: MockAsaConfig) -> None:
        self.config = config
        asa = config.asa
        self.store = ConfigStore(asa)
        self.identity: Identity = config.identity or load_or_create_identity(
            config.state_dir, hostname=asa.hostname, addresses=(config.listen,)
        )
        self.pin = self.identity.pin
        self._cert_sha1 = hashlib.sha1(self.identity.der).hexdigest().upper()
        self.pools = PoolAllocator(asa.pools)
        self._alloc = _GroupAllocator(self.pools)
        self.sessiondb = SessionDb(
            headend_ip=self._iface_ip(config.interface), allocator=self._alloc
        )
        self.drops = AspDropCounters()
        self.sockets = SocketTable(asa.asa_version)
        #: failed-login counters and locks of the local users (``show aaa local user``)
        self.aaa = LocalAaa()
        self.shows = ShowRegistry()
        self._register_shows()
        # syslog: the ASA's destinations (``logging …``) and the operator's taps
        #: one-line reasons of client connections that ended in an error (and notes)
        self.errors: list[str] = []
        self._notices: list[str] = []  # for the admin console, drained by admin_line
        self.syslog_buffer = BufferSink(
            asa.logging.buffered_level or 0, buffer_size=config.log_buffer_size
        )
        #: the ASA destinations: buffer and ``logging host``s, gated by ``logging enable``
        self.syslog = SyslogRouter()
        self._hosts: dict[tuple[str, int], tuple[UdpSyslogSink, tuple[int, int, str, bool]]] = {}
        #: the command line's taps (stdout, file, UDP): every message, whatever the config
        self.taps = SyslogRouter()
        self._closers: list[FileSink | UdpSyslogSink] = []
        if config.syslog_stdout:
            self.taps.add(TextStreamSink(sys.stdout))
        if config.syslog_file is not None:
            fs = FileSink(config.syslog_file)
            self._closers.append(fs)
            self.taps.add(fs)
        if config.syslog_udp is not None:
            us = UdpSyslogSink(*config.syslog_udp, "debugging", hostname=asa.hostname)
            self._closers.append(us)
            self.taps.add(us)
        self._trap_logged = 0  # messages at the trap level ("message lines logged")
        self._apply_logging()
        self._junk_logged: dict[str, float] = {}  # source IP -> when it was last logged
        # DTLS
        self.endpoint = DtlsEndpoint(secrets.token_bytes(32))
        self._dtls_conns: dict[bytes, _Conn] = {}
        self._dtls_server = DtlsUdpServer(
            self.endpoint, self._on_dtls_event, on_datagram=self._udp_datagram
        )
        # runtime
        self.conns: list[_Conn] = []
        self._by_session: dict[int, _Conn] = {}
        self._listeners: dict[str, _Listener] = {}
        self._opaques: dict[str, str] = {}  # aggauth-handle -> tunnel group
        # the inside network and the forwarding path (see _to_inside)
        self.forwarding = ForwardCounters()
        self._inside_cfg = self.store.config
        self.inside = InsideNetwork(
            self._inside_networks(), config.inside_flows, seed=secrets.randbits(64)
        )
        self._inside_sleep = math.inf
        self._inside_wake = trio.Event()
        self._ever_connected: set[int] = set()
        self._dtls_ever: set[int] = set()  # sessions that have had a DTLS tunnel
        self._nursery: trio.Nursery | None = None
        self.offset: int | None = None
        self.admin_port: int | None = None

    # ---------------------------------------------------------------- views
    @property
    def asa_config(self) -> AsaConfig:
        return self.store.config

    def console(self, *, privileged: bool = False) -> AdminConsole:
        """A new admin console on the live configuration (apply its changes with
        :meth:`apply_config_events`, as the TCP admin listener does after every line)."""
        return AdminConsole(self.store, privileged=privileged, shows=self.shows)

    def show(self, what: str) -> str:
        """``show <what>`` output (privileged), e.g. ``show("asp table socket")``."""
        c = self.console(privileged=True)
        return "\n".join(c.feed("show " + what)) + "\n"

    def real_port(self, asa_port: int) -> int | None:
        return None if self.offset is None else asa_port + self.offset

    def listening(self, protocol: Literal["SSL", "DTLS"]) -> int | None:
        """The real port of the served interface's listener, if bound."""
        lst = self._listeners.get(protocol)
        return None if lst is None else lst.real_port

    def _iface_ip(self, nameif: str) -> str:
        iface = self.store.config.interface_by_nameif(nameif)
        if iface is not None and iface.ip_address is not None:
            return str(iface.ip_address)
        return self.config.listen

    def _inside_networks(self) -> list[str]:
        """The inside network's prefixes: the ``inside`` interface's network (its address
        alone without a mask), then :attr:`MockAsaConfig.inside_hosts`."""
        nets = list(self.config.inside_hosts)
        inside = self.asa_config.interface_by_nameif("inside")
        if inside is not None and inside.ip_address is not None:
            nets.insert(0, f"{inside.ip_address}/{inside.netmask or '255.255.255.255'}")
        return nets

    def _split_include(self) -> list[str]:
        if self.config.split_include is not None:
            return list(self.config.split_include)
        inside = self.asa_config.interface_by_nameif("inside")
        if inside is None or inside.ip_address is None or inside.netmask is None:
            return []
        net = ipaddress.IPv4Network(f"{inside.ip_address}/{inside.netmask}", strict=False)
        return [_netmask_prefix(net)]

    def _wall(self) -> datetime:
        clock = self.config.wall_clock
        return datetime.now() if clock is None else clock()

    def log(self, message: SyslogMessage) -> None:
        at = self._wall()
        record = self.syslog.emit(message, at)
        trap = self.asa_config.logging.trap_level
        if record is not None and trap is not None and record.severity <= trap:
            self._trap_logged += 1
        self.taps.emit(message, at)

    def _notice(self, text: str) -> None:
        """A one-line note for the admin console (and :attr:`errors`)."""
        self.errors.append(text)
        self._notices.append(text)

    def _apply_logging(self) -> None:
        """Make the ASA destinations follow the ``logging`` configuration (module
        docstring): the gate, the buffer's level and timestamps, the host sinks."""
        cfg = self.asa_config
        lg = cfg.logging
        self.syslog.enabled = lg.enabled
        buf = self.syslog_buffer
        buf.timestamp = lg.timestamp
        self.syslog.remove(buf)
        if lg.buffered_level is not None:
            buf.level = lg.buffered_level
            self.syslog.sinks.insert(0, buf)
        want: dict[tuple[str, int], tuple[int, int, str, bool]] = {}
        if lg.trap_level is not None:
            for h in lg.hosts:
                if h.protocol != "udp":
                    self._notice(
                        f"logging host {h.interface} {h.address} {h.protocol}/{h.port} not "
                        "used: the mock sends syslog over UDP only"
                    )
                    continue
                want[(str(h.address), h.port)] = (
                    lg.trap_level,
                    lg.facility,
                    cfg.hostname,
                    lg.timestamp,
                )
        for key, (sink, params) in list(self._hosts.items()):
            if want.get(key) != params:
                del self._hosts[key]
                self.syslog.remove(sink)
                self._closers.remove(sink)
                sink.close()
        for key, params in want.items():
            if key in self._hosts:
                continue
            level, facility, hostname, stamp = params
            try:
                sink = UdpSyslogSink(
                    key[0],
                    key[1],
                    level,
                    facility=facility,
                    hostname=hostname,
                    asa_timestamp=stamp,
                )
            except (ConfigError, OSError) as e:
                self._notice(f"logging host {key[0]} not used: {_one_line(e)}")
                continue
            self._hosts[key] = (sink, params)
            self._closers.append(sink)
            self.syslog.add(sink)

    def _register_shows(self) -> None:
        def lines(text: str) -> list[str]:
            return text.rstrip("\n").split("\n")

        self.shows.register("asp table socket", lambda cfg, w: lines(self.sockets.render()))
        self.shows.register("asp drop", lambda cfg, w: lines(self.drops.render_show_asp_drop()))
        self.shows.register(
            "vpn-sessiondb anyconnect",
            lambda cfg, w: lines(
                render_vpn_sessiondb_anyconnect(
                    list(self.sessiondb), trio.current_time(), self._wall()
                )
            ),
        )
        self.shows.register(
            "vpn-sessiondb summary",
            lambda cfg, w: lines(render_vpn_sessiondb_summary(self.sessiondb.summary())),
        )
        self.shows.register("logging", lambda cfg, w: self._show_logging(cfg))
        # after the longer forms: the console takes the first match
        self.shows.register(
            "vpn-sessiondb",
            lambda cfg, w: lines(render_vpn_sessiondb(self.sessiondb.summary())),
        )
        self._register_aaa_commands()

    def _register_aaa_commands(self) -> None:
        """``show aaa local user [locked]``, ``clear aaa local user lockout|fail-attempts
        {all | username <name>}`` (privileged; see :mod:`tunnelswarm.asa.aaa`)."""

        def show(locked_only: bool) -> Callable[[CommandContext, Args], None]:
            def h(ctx: CommandContext, a: Args) -> None:
                ctx.out += render_show_aaa_local_user(self.aaa.rows(), locked_only=locked_only)

            return h

        def unlock(ctx: CommandContext, a: Args) -> None:
            for name in self.aaa.clear_lockout(a.text(0) if a.values else None):
                self.log(user_unlocked(name, ADMIN_NAME))

        def zero(ctx: CommandContext, a: Args) -> None:
            self.aaa.clear_fail_attempts(a.text(0) if a.values else None)

        reg = self.shows.register_command
        reg(cmd(show(False), "show aaa local user"))
        reg(cmd(show(True), "show aaa local user locked"))
        for what, handler in (("lockout", unlock), ("fail-attempts", zero)):
            reg(cmd(handler, "clear aaa local user", what, "all"))
            reg(cmd(handler, "clear aaa local user", what, "username", Word()))

    def _show_logging(self, cfg: AsaConfig) -> list[str]:
        """``show logging``: the ASA's header (the lines the mock models; spacing as in
        common ASA output, UNCONFIRMED) and the buffered lines."""
        lg = cfg.logging

        def onoff(flag: bool) -> str:
            return "enabled" if flag else "disabled"

        buffer = "disabled"
        if lg.buffered_level is not None:
            buffer = (
                f"level {SEVERITY_NAMES[lg.buffered_level]}, "
                f"{self.syslog_buffer.logged} messages logged"
            )
        trap = "disabled"
        if lg.trap_level is not None:
            trap = (
                f"level {SEVERITY_NAMES[lg.trap_level]}, facility {lg.facility}, "
                f"{self._trap_logged} message lines logged"
            )
        head = [
            f"Syslog logging: {onoff(lg.enabled)}",
            f"    Facility: {lg.facility}",
            f"    Timestamp logging: {onoff(lg.timestamp)}",
            f"    Buffer logging: {buffer}",
            f"    Trap logging: {trap}",
        ]
        for h in lg.hosts:
            port = "" if (h.protocol, h.port) == ("udp", 514) else f" {h.protocol}/{h.port}"
            used = (str(h.address), h.port) in self._hosts
            note = "" if used or lg.trap_level is None else "  (not used by the mock)"
            head.append(f"        Logging to {h.interface} {h.address}{port}{note}")
        return head + self.syslog_buffer.lines()

    # ---------------------------------------------------------------- run
    async def run(
        self, *, task_status: trio.TaskStatus[MockAsaInfo] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                cfg = self.asa_config
                self.sockets.set_ssl_port(cfg.webvpn.port)
                self.sockets.set_dtls_port(cfg.webvpn.dtls_port)
                for name in cfg.webvpn.enabled_interfaces:
                    self._enable_interface(name)
                self._reconcile()
                if self.config.admin is not None:
                    host, port = self.config.admin
                    self.admin_port = await self._listen_admin(nursery, host, port)
                nursery.start_soon(self._expiry_loop)
                nursery.start_soon(self._dtls_server.run_timers)
                nursery.start_soon(self._inside_timers)
                task_status.started(self.info())
        finally:
            for c in self._closers:
                c.close()

    def info(self) -> MockAsaInfo:
        tcp = self.listening("SSL")
        host = self.config.listen
        hh = f"[{host}]" if ":" in host else host
        url = f"https://{hh}" + (f":{tcp}" if tcp not in (None, 443) else "") + "/"
        return MockAsaInfo(
            url=url,
            pin=self.pin,
            host=host,
            tcp_port=tcp,
            udp_port=self.listening("DTLS"),
            admin_port=self.admin_port,
            port_offset=self.offset or 0,
            asa=self,
        )

    # ---------------------------------------------------------------- listeners
    def _enable_interface(self, name: str) -> None:
        self.sockets.set_interface_address(name, self._iface_ip(name))
        try:
            self.sockets.enable(name)
        except TunnelswarmError as e:
            self.errors.append(f"enable {name}: {e}")

    def apply_config_events(self, events: Sequence[ConfigEvent] | None = None) -> None:
        """Act on configuration changes (default: drain the store's queue)."""
        evs = list(self.store.drain_events() if events is None else events)
        for ev in evs:
            if isinstance(ev, DtlsPortChanged):
                self.sockets.set_dtls_port(ev.new)
            elif isinstance(ev, WebvpnPortChanged):
                self.sockets.set_ssl_port(ev.new)
            elif isinstance(ev, InterfaceEnabled):
                self._enable_interface(ev.name)
            elif isinstance(ev, InterfaceDisabled):
                self.sockets.disable(ev.name)
                self._drop_interface_sessions(ev.name)
            elif isinstance(ev, InterfaceChanged):
                for iface in self.asa_config.interfaces:
                    if iface.hardware_id == ev.hardware_id and iface.nameif:
                        self.sockets.set_interface_address(
                            iface.nameif, self._iface_ip(iface.nameif)
                        )
            elif isinstance(ev, (PoolChanged, PoolRemoved)):
                self.pools.update_pools(self.asa_config.pools)
            elif isinstance(ev, (LoggingChanged, HostnameChanged)):
                self._apply_logging()  # the hostname is the datagrams' HOST field
            elif isinstance(ev, AsaVersionChanged):
                self.sockets.set_version(ev.new)
            elif isinstance(ev, AaaMaxFailChanged) and ev.new is None:
                self.aaa.reset()  # no lockout without the command (model, asa/aaa.py)
            elif isinstance(ev, UserRemoved):
                self.aaa.forget(ev.name)
        if evs:
            self._reconcile()

    def _drop_interface_sessions(self, nameif: str) -> None:
        now = trio.current_time()
        for c in list(self.conns):
            if c.nameif != nameif:
                continue
            s = c.session
            if s is not None and self.sessiondb.get(s.index) is s:
                self._report_ended(self.sessiondb.logout(s, now, EndReason.ADMIN_RESET))
            c.end("interface disabled")

    def _reconcile(self) -> None:
        """Make the real sockets match the socket table's LISTEN rows of the interface."""
        nameif = self.config.interface
        want = {
            "SSL": self.sockets.listening_ssl_port(nameif),
            "DTLS": self.sockets.listening_dtls_port(nameif),
        }
        for proto in ("SSL", "DTLS"):
            cur = self._listeners.get(proto)
            if cur is not None and cur.asa_port != want[proto]:
                self._close_listener(proto)
        if self.offset is None and want["SSL"] is not None:
            self._bind_first(want["SSL"], want["DTLS"])
            return
        for proto, asa_port in want.items():
            if asa_port is None or proto in self._listeners:
                continue
            try:
                if proto == "SSL":
                    self._bind_tcp(asa_port)
                else:
                    self._bind_udp(asa_port)
            except (OSError, ConfigError) as e:
                self.errors.append(f"cannot listen on {proto} port {asa_port}: {_one_line(e)}")

    def _close_listener(self, proto: str) -> None:
        lst = self._listeners.pop(proto, None)
        if lst is None:
            return
        lst.scope.cancel()
        if lst.mem_tcp is not None:
            lst.mem_tcp.close()
        if lst.mem_udp is not None:
            self._dtls_server.forget_socket(lst.mem_udp)
            lst.mem_udp.close()
        if lst.tcp is not None:
            lst.tcp.close()  # now, so that the port can be bound again at once
        if lst.udp is not None:
            trio.lowlevel.notify_closing(lst.udp)
            self._dtls_server.forget_socket(lst.udp)
            lst.udp.close()

    def _family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.config.listen else socket.AF_INET

    def _bind_first(self, ssl_port: int, dtls_port: int | None) -> None:
        """Bind the first SSL listener at :attr:`MockAsaConfig.port` (0: a free port whose
        UDP twin is free too) and fix the port offset."""
        if self.config.network is not None:
            self.offset = 0  # an in-memory network has the ports to itself
            self._bind_tcp(ssl_port)
            if dtls_port is not None:
                self._bind_udp(dtls_port)
            return
        want = self.config.port
        for _ in range(50):
            tcp = self._tcp_socket(want)
            real: int = tcp.getsockname()[1]
            offset = real - ssl_port
            udp = None
            if dtls_port is not None:
                try:
                    udp = self._udp_socket(dtls_port + offset)
                except OSError as e:
                    tcp.close()
                    if want == 0 and e.errno == errno.EADDRINUSE:
                        continue
                    raise
            break
        else:  # pragma: no cover - 50 collisions in a row
            raise OSError(errno.EADDRINUSE, "no TCP port whose UDP twin is free")
        self.offset = offset
        self._start_tcp(tcp, ssl_port, real)
        if udp is not None and dtls_port is not None:
            self._start_udp(udp, dtls_port, dtls_port + offset)

    def _real(self, asa_port: int) -> int:
        real = asa_port + (self.offset or 0)
        if not 1 <= real <= 65535:
            raise ConfigError(f"ASA port {asa_port} maps to {real}, out of range")
        return real

    def _tcp_socket(self, port: int) -> socket.socket:
        sock = socket.socket(self._family(), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.listen, port))
            sock.listen(128)
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"{self.config.listen}:{port}/tcp: {e.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _udp_socket(self, port: int) -> socket.socket:
        sock = socket.socket(self._family(), socket.SOCK_DGRAM)
        try:
            # every client's DTLS shares this socket: a default-sized buffer overflows when
            # thousands of DPDs and keepalives arrive while the loop is busy (the kernel
            # caps the value at net.core.rmem_max / wmem_max)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDP_BUFFER_BYTES)
            sock.bind((self.config.listen, port))
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"{self.config.listen}:{port}/udp: {e.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _bind_tcp(self, asa_port: int) -> None:
        real = self._real(asa_port)
        net = self.config.network
        if net is None:
            self._start_tcp(self._tcp_socket(real), asa_port, real)
            return
        assert self._nursery is not None
        mem = net.listen(self.config.listen, real)
        scope = trio.CancelScope()
        self._listeners["SSL"] = _Listener("SSL", asa_port, real, scope, mem_tcp=mem)
        self._nursery.start_soon(self._accept_loop, mem, scope, self.config.interface)

    def _bind_udp(self, asa_port: int) -> None:
        real = self._real(asa_port)
        net = self.config.network
        if net is None:
            self._start_udp(self._udp_socket(real), asa_port, real)
            return
        assert self._nursery is not None
        sock = net.bind_udp(self.config.listen, real)
        scope = trio.CancelScope()
        self._listeners["DTLS"] = _Listener("DTLS", asa_port, real, scope, mem_udp=sock)
        self._nursery.start_soon(self._mem_udp_loop, sock, scope)

    def _start_tcp(self, sock: socket.socket, asa_port: int, real: int) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        tsock = trio.socket.from_stdlib_socket(sock)
        self._listeners["SSL"] = _Listener("SSL", asa_port, real, scope, tcp=tsock)
        listener = trio.SocketListener(tsock)
        self._nursery.start_soon(self._accept_loop, listener, scope, self.config.interface)

    def _start_udp(self, sock: socket.socket, asa_port: int, real: int) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._listeners["DTLS"] = _Listener("DTLS", asa_port, real, scope, sock)
        self._nursery.start_soon(self._udp_loop, sock, scope)

    async def _accept_loop(
        self, listener: trio.abc.Listener[Any], scope: trio.CancelScope, nameif: str
    ) -> None:
        with scope:
            try:
                async with trio.open_nursery() as nursery:
                    while True:
                        try:
                            stream = await listener.accept()
                        except trio.ClosedResourceError:
                            return
                        except OSError as e:
                            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
                                await trio.sleep(0.1)
                                continue
                            raise
                        nursery.start_soon(self._serve_client, stream, nameif)
            finally:
                with trio.CancelScope(shield=True):
                    await listener.aclose()

    # ---------------------------------------------------------------- UDP / DTLS
    async def _udp_loop(self, sock: socket.socket, scope: trio.CancelScope) -> None:
        with scope:
            await self._dtls_server.serve_socket(sock)  # closes sock

    async def _mem_udp_loop(self, sock: MemUdpSocket, scope: trio.CancelScope) -> None:
        with scope:
            await self._dtls_server.serve_mem_socket(sock)  # closes sock

    def _udp_datagram(self, peer: int, data: bytes) -> None:
        """Every datagram read from a DTLS socket (the DtlsUdpServer hook)."""
        verdict = self._dtls_server.datagram_in(peer, data)
        if verdict is not None:
            self._dtls_junk(peer, verdict)

    def _dtls_junk(self, peer: int, verdict: DatagramDrop) -> None:
        """Count a junk datagram and log it, at most once per source address per
        :data:`JUNK_LOG_INTERVAL` (module docstring)."""
        addr: Any = self._dtls_server.address_of(peer)
        if verdict == "unknown-peer":
            self._dtls_server.remove_peer(peer)  # the endpoint keeps nothing for it
        self.drops.drop(
            "mp-svc-no-session" if verdict == "unknown-session" else "mp-svc-bad-framing"
        )
        if addr is None:
            return
        ip, port = str(addr[0]), int(addr[1])
        now = trio.current_time()
        last = self._junk_logged.pop(ip, None)
        if last is not None and now - last < JUNK_LOG_INTERVAL:
            self._junk_logged[ip] = last  # re-inserted: the most recent source stays
            return
        if len(self._junk_logged) >= JUNK_LOG_SOURCES:
            self._junk_logged.pop(next(iter(self._junk_logged)))
        self._junk_logged[ip] = now
        nameif = self.config.interface
        local = self.sockets.listening_dtls_port(nameif) or self.sockets.dtls_port
        self.log(ssl_handshake_failed(nameif, ip, port, self._iface_ip(nameif), local))

    def _on_dtls_event(self, key: bytes, ev: DtlsEvent) -> None:
        c = self._dtls_conns.get(key)
        if c is None or c.session is None:
            if ev.kind == "data":
                self.drops.drop("mp-svc-no-session")
            return
        now = trio.current_time()
        s = c.session
        k = ev.kind
        if k == "connected":
            enc, hashing = asa_cipher_names(c.dtls_cipher or ev.suite or "")
            encap = "DTLSv1.2" if ev.version == "DTLS1.2" else "DTLSv1.0"
            dst = self.sockets.listening_dtls_port(c.nameif) or self.sockets.dtls_port
            had_tunnel = s.dtls is not None
            try:
                self.sessiondb.attach_dtls(s, now, enc, hashing, dst_port=dst, encapsulation=encap)
            except TunnelswarmError:
                return
            who = c.who()
            self.log(svc_connection_established(who, "UDP"))
            # §8.3: 722033 for the session's first UDP tunnel, 722032 when it replaces one
            # still attached, 722034 when the old one is already gone (after a DPD
            # failure or a TCP reconnect) — the split is UNCONFIRMED (model)
            if s.index not in self._dtls_ever:
                self._dtls_ever.add(s.index)
                self.log(first_svc_connection(who, "UDP"))
            elif had_tunnel:
                self.log(new_svc_connection_replacing(who, "UDP"))
            else:
                self.log(new_svc_connection_no_existing(who, "UDP"))
        elif k == "data":
            if self.sessiondb.get(s.index) is not s:
                self.drops.drop("mp-svc-no-session")  # the session ended before its tunnel
            else:
                self._from_client(c, bytes(ev.payload), TunnelKind.DTLS)
        elif k in ("peer-dead", "closed"):
            ended = self.sessiondb.detach_dtls(
                s, now, "DPD failure" if k == "peer-dead" else "closed"
            )
            if ended:
                self.log(svc_connection_terminated(c.who(), "UDP"))

    # ---------------------------------------------------------------- data path
    def _from_client(self, c: _Conn, packet: bytes, tunnel: TunnelKind) -> None:
        """A packet out of ``c``'s tunnel (``tunnel``: the channel it came on).

        Larger than that channel's tunnel MTU (``X-CSTP-MTU`` / ``X-DTLS-MTU``) →
        ``%ASA-3-722035 … Received large packet L (threshold T).``, counted in
        ``forwarding.rx_large``, and still forwarded (model, UNCONFIRMED: the packet
        arrived whole and the inside link's MTU is larger). Then onto the inside network.
        """
        s = c.session
        if s is None:
            return
        now = trio.current_time()
        if self.sessiondb.get(s.index) is s:
            self.sessiondb.touch(s, now, bytes_in=len(packet), tunnel=tunnel)
        mtu = c.mtu
        if mtu is not None:
            limit = mtu.cstp_mtu
            if tunnel is TunnelKind.DTLS and mtu.dtls_mtu is not None:
                limit = mtu.dtls_mtu
            if len(packet) > limit:
                self.forwarding.rx_large += 1
                self.log(received_large_packet(c.who(), len(packet), limit))
        self._to_inside(packet, s.index)

    def _to_inside(self, packet: bytes, route: int) -> None:
        """Hand ``packet`` to the inside network and tunnel what its hosts send back;
        ``route`` is the session index the answers go to (the owner of the address)."""
        cfg = self.asa_config
        if cfg is not self._inside_cfg:  # a new snapshot: the inside address may have moved
            self._inside_cfg = cfg
            self.inside.set_hosts(self._inside_networks())
        self._from_inside(self.inside.handle_packet(trio.current_time(), packet, route))
        deadline = self.inside.next_deadline()
        if deadline is not None and deadline < self._inside_sleep:
            self._inside_wake.set()

    def _from_inside(self, deliveries: list[Delivery]) -> None:
        for route, packet in deliveries:
            c = self._by_session.get(route)
            if c is None:  # the session's tunnel is gone
                self.forwarding.no_session += 1
                self.drops.drop("mp-svc-no-session")
                continue
            self.send_to_client(c, packet)

    def push_inside_udp(
        self, size: int, *, df: bool = True, sport: int = 5004, dport: int = 5004
    ) -> int:
        """An inside host (the ``inside`` interface's address) sends one UDP datagram of IP
        length ``size`` to every session's assigned address — media or a large answer the
        client did not ask to size for — through :meth:`send_to_client`, i.e. the ASA's MTU
        rule per channel. Returns how many left the ASA (the rest were dropped there)."""
        payload = bytes(max(0, size - 28))
        src = self._icmp_source()
        sent = 0
        for c in list(self._by_session.values()):
            s = c.session
            if s is None:
                continue
            packet = udp_datagram(src, s.assigned_ip, sport, dport, payload, df=df)
            sent += self.send_to_client(c, packet)
        return sent

    async def _inside_timers(self) -> None:
        """The inside flows' retransmission timers: one task for all of them, asleep until
        the model's next deadline or until :meth:`_to_inside` brings an earlier one."""
        while True:
            deadline = self.inside.next_deadline()
            self._inside_sleep = math.inf if deadline is None else deadline
            self._inside_wake = trio.Event()
            with trio.move_on_at(self._inside_sleep):
                await self._inside_wake.wait()
            self._inside_sleep = -math.inf  # awake: no need to be woken
            self._from_inside(self.inside.handle_timeout(trio.current_time()))

    def _icmp_source(self) -> bytes:
        """The ASA's address on the inside network: the ``inside`` interface's, else the
        served interface's (0.0.0.0 if that is not IPv4)."""
        iface = self.asa_config.interface_by_nameif("inside")
        if iface is not None and iface.ip_address is not None:
            return iface.ip_address.packed
        try:
            return ipaddress.IPv4Address(self._iface_ip(self.config.interface)).packed
        except ValueError:
            return bytes(4)

    def _frag_needed(self, s: Session, packet: bytes, mtu: int) -> None:
        """After a DF drop: ICMP 3/4 "fragmentation needed" with next-hop MTU ``mtu`` (the
        channel's tunnel MTU) to the inside sender, fed to the inside network, and
        ``%ASA-6-602101`` (Cisco: "the ASA sent an ICMP destination unreachable message
        and fragmentation is needed", so only when one is sent). Nothing — a PMTUD black
        hole — when ``icmp deny … unreachable inside`` matches the sender (model, see
        :class:`~tunnelswarm.asa.config.IcmpRule`) or the sender is not an inside host."""
        src = packet[12:16]
        if not self.inside.is_inside(src):
            return
        if not self.asa_config.icmp_permits(ipaddress.IPv4Address(src), "unreachable", "inside"):
            self.forwarding.icmp_unreachable_blocked += 1
            return
        icmp = icmp_frag_needed(packet, mtu, self._icmp_source())
        if icmp is None:  # about an ICMP error or a later fragment: RFC 1122 says no
            return
        self.forwarding.icmp_unreachable_sent += 1
        self.log(
            pmtud_packet_too_big(
                len(packet),
                mtu,
                ipaddress.IPv4Address(packet[16:20]),
                ipaddress.IPv4Address(src),
                packet[9],
            )
        )
        self._to_inside(icmp, s.index)

    def send_to_client(self, c: _Conn, packet: bytes) -> bool:
        """Tunnel ``packet`` to ``c``'s client over DTLS while it is up, else CSTP, with
        the ASA's MTU rule (§6.4). False if it was dropped; a DF drop also answers the
        inside sender with ICMP 3/4 (:meth:`_frag_needed`)."""
        s, mtu = c.session, c.mtu
        info = ipv4_inspect(packet)
        if s is None or mtu is None or info is None:
            return False
        key = c.dtls_key
        dtls = key is not None and self.endpoint.is_established(key)
        channel: Literal["tls", "dtls"] = "dtls" if dtls else "tls"
        df = info.df
        df_ignore = c.policy.df_bit_ignore if c.policy is not None else False
        decision = mtu.decide(len(packet), df, channel, df_ignore)
        if isinstance(decision, DropTooBig):
            self.drops.drop(ASP_DROP_NO_FRAGMENT)
            self.log(transmitting_large_packet(c.who(), len(packet), decision.threshold))
            self._frag_needed(s, packet, decision.icmp_mtu)
            return False
        pieces = [packet]
        if isinstance(decision, Fragment):
            pieces = fragment_ipv4(packet, decision.mtu)
            if not pieces:  # cannot be fragmented (e.g. an MTU below header + 8 bytes)
                self.drops.drop(ASP_DROP_NO_FRAGMENT)
                return False
        now = now_us()
        try:
            for p in pieces:
                if dtls and key is not None:
                    self.endpoint.send_data(now, key, p)
                else:
                    c.conn.send_data(now, p)
        except TunnelswarmError:
            return False
        if self.sessiondb.get(s.index) is s:
            kind = TunnelKind.DTLS if dtls else TunnelKind.SSL
            self.sessiondb.touch(s, trio.current_time(), bytes_out=len(packet), tunnel=kind)
        if dtls:
            self._dtls_server.pump()
        else:
            c.kick()
        return True

    # ---------------------------------------------------------------- sessions
    async def _expiry_loop(self) -> None:
        while True:
            await trio.sleep(EXPIRY_TICK)
            for ended in self.sessiondb.expire(trio.current_time()):
                self._report_ended(ended)
                c = self._by_session.get(ended.session.index)
                if c is not None:
                    c.end(ended.reason.value)

    def _report_ended(self, ended: EndedSession) -> None:
        s = ended.session
        who = SessionRef(s.group_policy, s.username, s.public_ip)
        self._log_tunnels(ended.tunnels)
        self.log(
            session_disconnected(
                s.group_policy,
                s.username,
                s.public_ip,
                session_type="AnyConnect-Parent",
                duration=int(ended.duration),
                bytes_xmt=s.bytes_tx,
                bytes_rcv=s.bytes_rx,
                reason=ended.reason.value,
            )
        )
        self.log(webvpn_session_terminated(who, ended.reason.value))

    def _log_tunnels(self, tunnels: Sequence[EndedTunnel]) -> None:
        for t in tunnels:
            s = t.session
            who = SessionRef(s.group_policy, s.username, s.public_ip)
            if t.tunnel.kind is TunnelKind.DTLS:
                self.log(svc_connection_terminated(who, "UDP"))
            elif t.tunnel.kind is TunnelKind.SSL:
                self.log(svc_connection_terminated(who, "TCP"))
                self.log(svc_closing_connection(who, t.reason))

    # ---------------------------------------------------------------- one client
    async def _serve_client(self, stream: trio.abc.Stream, nameif: str) -> None:
        try:
            conn = CstpConnection.server(
                self.identity.chain_pem, self.identity.key_pem, wall_time=int(time.time())
            )
            c = _Conn(self, stream, conn, nameif)
        except (TunnelswarmError, OSError) as e:
            self.errors.append(_one_line(e))
            await stream.aclose()
            return
        self.conns.append(c)
        try:
            with c.scope:
                await self._serve_http(c)
        # whatever a client did, only its connection ends; ``except*`` also when the
        # error comes in a group beside a Cancelled (the server shutting down meanwhile)
        except* Exception as group:
            self._client_error(c, group)
        finally:
            self.conns.remove(c)
            self._conn_closed(c)
            with trio.CancelScope(shield=True):
                with contextlib.suppress(*_IO_ERRORS), trio.move_on_after(1):
                    await c.flush()
                await stream.aclose()

    def _client_error(self, c: _Conn, e: BaseException) -> None:
        e = _leaf(e)
        text = _one_line(e)
        self.errors.append(text)
        if isinstance(e, CstpFramingError):
            self.drops.drop("mp-svc-bad-framing")
        if c.conn.is_handshaking or c.conn.protocol_version is None:
            local = self._iface_ip(c.nameif)
            port = self.sockets.listening_ssl_port(c.nameif) or self.sockets.ssl_port
            self.log(ssl_handshake_failed(c.nameif, c.peer_ip, c.peer_port, local, port))
        elif c.session is not None:
            c.closing_reason = c.closing_reason or text
        elif isinstance(e, (h11.RemoteProtocolError, ValueError, SyntaxError)):
            # broken HTTP, hostile or broken XML (defusedxml's refusals are ValueErrors,
            # ElementTree's ParseError a SyntaxError) before there is a session
            self.log(svc_connect_parse_error(c.peer_ip))
        else:
            self.log(SyslogMessage(6, 722037, f"IP <{c.peer_ip}> SVC closing connection: {text}."))

    def _conn_closed(self, c: _Conn) -> None:
        key = c.dtls_key
        if key is not None:
            self.endpoint.unregister(key)
            self._dtls_conns.pop(key, None)
            c.dtls_key = None
        s = c.session
        if s is None or self._by_session.get(s.index) is not c:
            return
        del self._by_session[s.index]
        if self.sessiondb.get(s.index) is s:
            reason = c.closing_reason or "Transport closing"
            self._log_tunnels(self.sessiondb.detach_ssl(s, trio.current_time(), reason))

    async def _receive(self, c: _Conn) -> bool:
        """Read once into the core; False at EOF."""
        data = await c.stream.receive_some(65536)
        if not data:
            with contextlib.suppress(TunnelswarmError):
                c.conn.handle_eof(now_us())
            return False
        try:
            c.conn.handle_input(now_us(), bytes(data))
        finally:
            with contextlib.suppress(*_IO_ERRORS):
                await c.flush()
        return True

    async def _serve_http(self, c: _Conn) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HTTP_BODY)

        async def next_event() -> Any:
            while (event := h.next_event()) is h11.NEED_DATA:
                if not await self._receive(c):
                    h.receive_data(b"")  # EOF
                elif data := c.conn.read_http():
                    h.receive_data(bytes(data))
            return event

        while True:
            event = await next_event()
            if not isinstance(event, h11.Request):
                return
            body = b""
            while not isinstance(part := await next_event(), h11.EndOfMessage):
                if isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > MAX_HTTP_BODY:
                        raise h11.RemoteProtocolError("request body too large")
            headers = [(n.decode(), v.decode(errors="replace")) for n, v in event.headers]
            reply = self._route(c, event.method.decode(), event.target.decode(), headers, body)
            resp = h11.Response(
                status_code=reply.status, headers=reply.headers, reason=reply.reason
            )
            pieces = [h.send(resp) or b""]
            if not reply.switch:
                if reply.body:
                    pieces.append(h.send(h11.Data(data=reply.body)) or b"")
                pieces.append(h.send(h11.EndOfMessage()) or b"")
            c.conn.write_http(b"".join(pieces))
            await c.flush()
            if reply.switch:
                await self._serve_cstp(c, bytes(h.trailing_data[0]))
                return
            if reply.close or h.our_state is h11.MUST_CLOSE:
                c.conn.close()
                await c.flush()
                return
            h.start_next_cycle()

    # ---------------------------------------------------------------- routing
    def _route(
        self, c: _Conn, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> _Reply:
        def header(name: str) -> str | None:
            return next((v for n, v in headers if n.lower() == name.lower()), None)

        c.user_agent = header("User-Agent") or c.user_agent
        if method == "CONNECT":
            return self._connect(c, target, header, headers)
        if method != "POST":
            return _Reply(404, "Not Found", [("Content-Length", "0")])
        try:
            fields = _xml_fields(body)
        except Exception as e:  # hostile or broken XML: refuse this client only
            self._client_error(c, e)
            return _Reply(400, "Bad Request", [("Content-Length", "0")], close=True)
        path = target.split("?", 1)[0]
        if fields["type"] == "init":
            tg = self._select_group(c, fields, path, header("Host"))
            return self._form(tg)
        if fields["type"] == "auth-reply":
            return self._auth_reply(c, fields)
        return _Reply(400, "Bad Request", [("Content-Length", "0")])

    def _asa_headers(self, body: bytes, *cookies: str) -> list[tuple[str, str]]:
        h = [
            ("Content-Type", "text/xml"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            ("Connection", "Keep-Alive"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("X-Aggregate-Auth", "1"),
        ]
        return h + [("Set-Cookie", ck) for ck in cookies]

    def _select_group(
        self, c: _Conn, fields: dict[str, str], path: str, host: str | None
    ) -> TunnelGroup:
        cfg = self.asa_config
        urls = [u for u in (fields.get("group-access"),) if u]
        if host:
            urls.append(f"https://{host}{path}")
        urls.append(f"https://{self._iface_ip(c.nameif)}{path}")
        for u in urls:
            found = cfg.tunnel_group_for_url(u)
            if found is not None:
                return found
        alias = fields.get("group-select")
        if alias:
            found = cfg.tunnel_group_for_alias(alias)
            if found is not None:
                return found
        aliases = cfg.group_list()
        if aliases:
            found = cfg.tunnel_group_for_alias(aliases[0])
            if found is not None:
                return found
        return cfg.select_tunnel_group()

    def _form(self, tg: TunnelGroup, error: str | None = None) -> _Reply:
        cfg = self.asa_config
        handle = str(secrets.randbelow(9 * 10**8) + 10**8)
        if len(self._opaques) > 10000:
            self._opaques.pop(next(iter(self._opaques)))
        self._opaques[handle] = tg.name
        alias = next((a.alias for a in tg.group_aliases if a.enabled), tg.name)
        opaque = (
            '<opaque is-for="sg">\n'
            f"<tunnel-group>{escape(tg.name)}</tunnel-group>\n"
            f"<aggauth-handle>{handle}</aggauth-handle>\n"
            "<auth-method>single-sign-on-v2</auth-method>\n"
            f"<group-alias>{escape(alias)}</group-alias>\n"
            "<config-hash>1517719014268</config-hash>\n"
            "</opaque>"
        )
        groups = cfg.group_list()
        select = ""
        if groups:
            options = "".join(
                "<option{}>{}</option>".format(' selected="true"' if g == alias else "", escape(g))
                for g in groups
            )
            select = f'<select name="group_list" label="GROUP:">{options}</select>\n'
        err = f'<error id="88" param1="" param2="">{escape(error)}</error>\n' if error else ""
        doc = (
            XML_DECL
            + '<config-auth client="vpn" type="auth-request" aggregate-auth-version="2">\n'
            + opaque
            + '\n<auth id="main">\n<title>Login</title>\n'
            + "<message>Please enter your username and password.</message>\n<banner></banner>\n"
            + err
            + "<form>\n"
            + '<input type="text" name="username" label="Username:"></input>\n'
            + '<input type="password" name="password" label="Password:"></input>\n'
            + select
            + "</form>\n</auth>\n</config-auth>\n"
        ).encode()
        return _Reply(200, "OK", self._asa_headers(doc, "webvpnlogin=1; secure"), doc)

    def _auth_reply(self, c: _Conn, f: dict[str, str]) -> _Reply:
        cfg = self.asa_config
        tg_name = self._opaques.pop(f.get("aggauth-handle", ""), None)
        tg = cfg.tunnel_group(tg_name) if tg_name is not None else None
        if tg is None:
            return self._form(cfg.select_tunnel_group(), "Invalid handle.")
        alias = f.get("group-select")
        if alias:
            tg = cfg.tunnel_group_for_alias(alias) or tg
        user = f.get("auth:username", "")
        password = f.get("auth:password", "")
        outcome = self.aaa.authenticate(cfg, user, password)
        if not outcome.ok:
            # a locked-out user gets the wrong-password answer: the ASA gives no hint
            self.log(aaa_user_auth_rejected(user, c.peer_ip, outcome.reason or ""))
            if outcome.locked_now is not None:
                self.log(user_locked_out(user, outcome.locked_now))
            return self._form(tg, LOGIN_FAILED)
        self.log(aaa_user_auth_successful(user))
        try:
            policy = cfg.effective_policy(tg.name)
        except KeyError:
            return self._form(tg, LOGIN_DENIED)
        if not policy.ssl_client_allowed or not cfg.webvpn.anyconnect_enabled:
            return self._form(tg, LOGIN_DENIED)
        if policy.vpn_simultaneous_logins == 0:  # "0 disables login" (configuration guide)
            self.log(session_limit_reached(SessionRef(policy.name, user, c.peer_ip), 0))
            return self._form(tg, LOGIN_FAILED)
        now = trio.current_time()
        # vpn-simultaneous-logins: the user's longest-idle session makes room (sessiondb)
        for ended in self.sessiondb.make_room(user, policy.vpn_simultaneous_logins, now):
            self._report_ended(ended)
            old = self._by_session.get(ended.session.index)
            if old is not None:
                old.end(ended.reason.value)
        scale = self.config.time_scale
        idle, max_time = policy.idle_timeout_seconds, policy.session_timeout_seconds
        limits = SessionLimits(
            idle_timeout=None if idle is None else idle * scale,
            session_timeout=None if max_time is None else max_time * scale,
        )
        self._alloc.names = tg.address_pools
        try:
            s = self.sessiondb.create(
                user, policy.name, tg.name, None, c.peer_ip, now, limits, wall=self._wall()
            )
        except (NoAddressAvailable, SessionLimitReached) as e:
            return self._form(tg, f"Login failed: {e}.")
        who = SessionRef(s.group_policy, user, c.peer_ip)
        self.log(anyconnect_parent_session_started(who))
        self.log(webvpn_session_started(who))
        token = s.cookie
        doc = (
            XML_DECL
            + '<config-auth client="vpn" type="complete" aggregate-auth-version="2">\n'
            + f"<session-id>{s.index}</session-id>\n"
            + f"<session-token>{token}</session-token>\n"
            + '<auth id="success">\n<message id="0" param1="" param2=""></message>\n</auth>\n'
            + "<capabilities><crypto-supported>ssl-dhe</crypto-supported></capabilities>\n"
            + '<config client="vpn" type="private"><vpn-base-config>'
            + f"<server-cert-hash>{self._cert_sha1}</server-cert-hash>"
            + "</vpn-base-config></config>\n</config-auth>\n"
        ).encode()
        hdrs = self._asa_headers(doc, f"webvpn={token}; path=/; secure", "webvpnlogin=1; secure")
        return _Reply(200, "OK", hdrs, doc)

    # ---------------------------------------------------------------- CONNECT
    def _choose_dtls(self, offer: str | None, offer12: str | None) -> list[tuple[str, str]]:
        cfg = self.asa_config

        def prefs(version: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
            sc = cfg.ssl_cipher(version)
            if sc.custom is not None:
                return tuple(n.strip() for n in sc.custom.split(":") if n.strip())
            return table.get(sc.level, table["medium"])

        legacy, d12 = _offer(offer), _offer(offer12)
        out = [("legacy", n) for n in prefs("dtlsv1", DTLS_PREFERENCE) if n.upper() in legacy]
        out += [("dtls12", n) for n in prefs("dtlsv1.2", DTLS12_PREFERENCE) if n.upper() in d12]
        return out

    def _connect(
        self,
        c: _Conn,
        target: str,
        header: Any,
        headers: list[tuple[str, str]],
    ) -> _Reply:
        def unauthorized() -> _Reply:
            # a cookie that names no (resumable) session: 401, and the connection ends
            self.log(svc_connect_auth_error(c.peer_ip))
            return _Reply(401, "Unauthorized", [("Content-Length", "0")], close=True)

        if target.split("?", 1)[0] != "/CSCOSSLC/tunnel":
            self.log(svc_connect_parse_error(c.peer_ip))
            return _Reply(404, "Not Found", [("Content-Length", "0")], close=True)
        cookie = ""
        for n, v in headers:
            if n.lower() == "cookie":
                for part in v.split(";"):
                    name, eq, val = part.strip().partition("=")
                    if eq and name == "webvpn":
                        cookie = val
        now = trio.current_time()
        s = self.sessiondb.reconnect(cookie, now) if cookie else None
        if s is None:
            return unauthorized()
        cfg = self.asa_config
        try:
            policy = cfg.effective_policy(s.tunnel_group)
        except KeyError:
            return unauthorized()
        old = self._by_session.get(s.index)
        if old is not None and old is not c:
            # the client came back while its old TCP connection still looked alive to us
            old.closing_reason = "Replaced"
            del self._by_session[s.index]
            old.end("Replaced")
            self.log(stale_svc_connection_closed(old.who()))
        c.session, c.policy = s, policy
        self._by_session[s.index] = c
        dtls_headers = self._register_dtls(c, policy, header)
        c.mtu = mtu = self._negotiate_mtu(cfg, policy, header, c.dtls_cipher)
        self._attach_ssl(c, s, now)
        h = self._tunnel_headers(c, s, policy, header)
        h += dtls_headers
        h.append(("X-CSTP-MTU", str(mtu.cstp_mtu)))
        if c.dtls_cipher is not None and mtu.dtls_mtu is not None:
            h.append(("X-DTLS-MTU", str(mtu.dtls_mtu)))
            name = "X-DTLS12-CipherSuite" if c.dtls_mode == "dtls12" else "X-DTLS-CipherSuite"
            h.append((name, c.dtls_cipher))
        h += [
            ("X-CSTP-Routing-Filtering-Ignore", "false"),
            ("X-CSTP-Quarantine", "false"),
            ("X-CSTP-Disable-Always-On-VPN", "false"),
            ("X-CSTP-Client-Bypass-Protocol", "false"),
            ("X-CSTP-TCP-Keepalive", "true"),
        ]
        return _Reply(200, "OK", h, switch=True)

    def _register_dtls(
        self, c: _Conn, policy: EffectivePolicy, header: Any
    ) -> list[tuple[str, str]]:
        """Register the CONNECT's DTLS session if a cipher matches; its X-DTLS-* headers."""
        master_hex = header("X-DTLS-Master-Secret")
        if not policy.dtls or not master_hex:
            return []
        try:
            master = bytes.fromhex(master_hex)
        except ValueError:
            return []
        if len(master) != 48:
            return []
        key = secrets.token_bytes(32)
        offers = (header("X-DTLS-CipherSuite"), header("X-DTLS12-CipherSuite"))
        for mode, cipher in self._choose_dtls(*offers):
            try:
                self.endpoint.register(
                    key,
                    mode=mode,
                    cipher=cipher,
                    master_secret=master,
                    dpd=policy.dpd_gateway or 0,
                    echo_dpd_payload=True,
                )
            except ConfigError:
                continue  # a name the core cannot do: next candidate
            c.dtls_key, c.dtls_cipher, c.dtls_mode = key, cipher, mode
            self._dtls_conns[key] = c
            return [
                ("X-DTLS-Session-ID", key.hex().upper()),
                ("X-DTLS-Port", str(self._real(self.sockets.advertised_dtls_port))),
                ("X-DTLS-Keepalive", str(policy.keepalive or 0)),
                ("X-DTLS-DPD", str(policy.dpd_client or 0)),
            ]
        self.log(dtls_disabled_no_cipher(c.who()))
        return []

    def _negotiate_mtu(
        self, cfg: AsaConfig, policy: EffectivePolicy, header: Any, dtls_cipher: str | None
    ) -> AsaMtu:
        base = header("X-CSTP-Base-MTU")
        client_mtu = header("X-CSTP-MTU")
        try:
            mtu = negotiate(
                MtuConfig(tcpmss=cfg.tcpmss, anyconnect_mtu=policy.anyconnect_mtu),
                dtls_cipher,
                client_base_mtu=int(base) if base and base.isdigit() else None,
                client_mtu=int(client_mtu) if client_mtu and client_mtu.isdigit() else None,
            )
        except ConfigError:
            mtu = negotiate(MtuConfig(), dtls_cipher)
        if not cfg.separate_tls_dtls_mtu and mtu.dtls_mtu is not None:
            # before 9.0 one MTU for both channels (§6.3; the value is UNCONFIRMED)
            mtu = replace(mtu, dtls_mtu=mtu.cstp_mtu)
        return mtu

    def _attach_ssl(self, c: _Conn, s: Session, now: float) -> None:
        enc, hashing = asa_cipher_names(c.conn.cipher_suite or "")
        encap = "TLSv1.3" if c.conn.protocol_version == "TLSv1_3" else "TLSv1.2"
        was_connected = s.index in self._ever_connected
        self._ever_connected.add(s.index)
        replaced = self.sessiondb.attach_ssl(
            s,
            now,
            enc,
            hashing,
            src_port=c.peer_port,
            dst_port=self.sockets.listening_ssl_port(c.nameif) or self.sockets.ssl_port,
            encapsulation=encap,
            public_ip=c.peer_ip,
        )
        self._log_tunnels(replaced)
        who = c.who()
        self.log(svc_connection_established(who, "TCP"))
        if replaced or was_connected:
            self.log(new_svc_connection_replacing(who, "TCP"))
        else:
            self.log(first_svc_connection(who, "TCP"))
        self.log(address_assigned(who, s.assigned_ip))
        if c.user_agent:
            self.log(client_type(who, c.user_agent))

    def _tunnel_headers(
        self, c: _Conn, s: Session, policy: EffectivePolicy, header: Any
    ) -> list[tuple[str, str]]:
        """The X-CSTP-* part of the CONNECT answer before the DTLS headers (§3.3.3 order)."""
        cfg = self.asa_config
        idle = policy.idle_timeout_seconds
        session_to = policy.session_timeout_seconds
        addr = ipaddress.IPv4Address(s.assigned_ip)
        pool = next((p for p in cfg.tunnel_group_pools(s.tunnel_group) if addr in p), None)
        netmask = str(pool.mask) if pool is not None else "255.255.255.255"
        h: list[tuple[str, str]] = [
            ("X-CSTP-Version", "1"),
            ("X-CSTP-Address", s.assigned_ip),
            ("X-CSTP-Netmask", netmask),
            ("X-CSTP-Hostname", header("X-CSTP-Hostname") or "client"),
            ("X-CSTP-Lease-Duration", str(session_to or DEFAULT_LEASE)),
            ("X-CSTP-Session-Timeout", str(session_to) if session_to else "none"),
            ("X-CSTP-Idle-Timeout", str(idle) if idle else "none"),
            ("X-CSTP-Disconnected-Timeout", str(idle) if idle else "none"),
        ]
        h += [("X-CSTP-Split-Include", net) for net in self._split_include()]
        h += [
            ("X-CSTP-Keep", "true"),
            ("X-CSTP-Tunnel-All-DNS", "false"),
            ("X-CSTP-DPD", str(policy.dpd_client or 0)),
            ("X-CSTP-Keepalive", str(policy.keepalive or 0)),
        ]
        rekey_method = policy.rekey_method
        if rekey_method and rekey_method != "none" and policy.rekey_time_seconds:
            h += [
                ("X-CSTP-Rekey-Time", str(policy.rekey_time_seconds)),
                ("X-CSTP-Rekey-Method", rekey_method),
            ]
        return h

    # ---------------------------------------------------------------- CSTP
    async def _serve_cstp(self, c: _Conn, leftover: bytes) -> None:
        gateway_dpd = (c.policy.dpd_gateway or 0) if c.policy is not None else 0
        c.conn.start_cstp(
            now_us(), dpd=gateway_dpd, keepalive=0, rekey=0, leftover=leftover or None
        )
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                try:
                    while await self._receive(c):
                        c.kick()
                except Exception as e:  # e.g. broken framing: the reason 722037 gives
                    c.closing_reason = c.closing_reason or _one_line(_leaf(e))
                    raise
                finally:
                    c.kick()
                    c.closing_reason = c.closing_reason or "Transport closing"
                    nursery.cancel_scope.cancel()

            async def pump() -> None:
                while True:
                    deadline = c.conn.next_deadline()
                    wake = c.wake
                    with trio.move_on_at(math.inf if deadline is None else deadline / 1_000_000):
                        await wake.wait()
                    if wake.is_set():
                        c.wake = trio.Event()
                    c.conn.handle_timeout(now_us())
                    done = self._dispatch_cstp(c)
                    await c.flush()
                    if done:
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(reader)
            nursery.start_soon(pump)
        # frames decoded before the end (e.g. DISCONNECT then close) still count
        with contextlib.suppress(TunnelswarmError):
            self._dispatch_cstp(c)

    def _dispatch_cstp(self, c: _Conn) -> bool:
        """Act on CSTP events; True when the connection must end."""
        s = c.session
        now = trio.current_time()
        for ev in c.conn.poll_events():
            k = ev.kind
            if k == "data":
                if s is None or self.sessiondb.get(s.index) is not s:
                    self.drops.drop("mp-svc-no-session")  # the session ended before its tunnel
                else:
                    self._from_client(c, bytes(ev.payload), TunnelKind.SSL)
            elif k in ("disconnect", "terminate"):
                reason = ev.reason
                if (
                    s is not None
                    and self.sessiondb.get(s.index) is s
                    and (k == "terminate" or reason == 0xB0)
                ):
                    c.closing_reason = "User Requested"
                    self._by_session.pop(s.index, None)
                    self._report_ended(self.sessiondb.logout(s, now))
                else:
                    c.closing_reason = "Reconnecting"
                return True
            elif k == "peer-dead":
                c.closing_reason = "DPD failure"
                return True
        return False

    # ---------------------------------------------------------------- admin
    async def _listen_admin(self, nursery: trio.Nursery, host: str, port: int) -> int:
        listeners = await trio.open_tcp_listeners(port, host=host)
        await nursery.start(trio.serve_listeners, self._serve_admin, listeners)
        sock: Any = listeners[0].socket
        return int(sock.getsockname()[1])

    def admin_line(self, console: AdminConsole, line: str) -> list[str]:
        """One admin line: ``clear asp drop`` here, everything else by the console; the
        configuration changes are applied before returning."""
        words = line.split()
        if (
            len(words) == 3
            and console.mode.kind not in (ModeKind.USER,)
            and len(words[0]) >= 2
            and "clear".startswith(words[0].lower())
            and "asp".startswith(words[1].lower())
            and "drop".startswith(words[2].lower())
        ):
            self.drops.clear(self._wall())
            return []
        try:
            out = console.feed(line)
        except Exception as e:  # an admin line never takes the server down
            out = [f"ERROR: {_one_line(e)}"]
        try:
            self.apply_config_events()
        except Exception as e:
            out.append(f"ERROR: {_one_line(e)}")
        out += [f"WARNING: {note}" for note in self._notices]
        self._notices.clear()
        return out

    async def _serve_admin(self, stream: trio.SocketStream) -> None:
        console = self.console()
        buf = b""
        try:
            async with stream:
                await stream.send_all((console.prompt + " ").encode())
                while not console.closed:
                    data = await stream.receive_some(4096)
                    if not data:
                        return
                    buf += data
                    while b"\n" in buf and not console.closed:
                        raw, buf = buf.split(b"\n", 1)
                        out = self.admin_line(console, raw.decode(errors="replace").rstrip("\r"))
                        text = "".join(line + "\n" for line in out)
                        if not console.closed:
                            text += console.prompt + " "
                        await stream.send_all(text.encode())
                    if len(buf) > MAX_ADMIN_LINE:
                        await stream.send_all(b"ERROR: line too long\n")
                        return
        except Exception as e:  # a broken admin connection ends only itself
            self.errors.append(f"admin: {_one_line(e)}")


async def serve_mock_asa(
    config: MockAsaConfig, *, task_status: trio.TaskStatus[MockAsaInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a mock ASA until cancelled; ``task_status.started`` gets its :class:`MockAsaInfo`
    (ports, pin, URL and the :class:`MockAsa` itself)."""
    await MockAsa(config).run(task_status=task_status)
