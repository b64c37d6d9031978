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
* **Inside hosts** (the ``inside`` interface address and :attr:`MockAsaConfig.inside_hosts`)
  answer ICMP echo and UDP echo. Every packet toward a client goes through
  :meth:`~tunnelswarm.asa.mtu.AsaMtu.decide` on the channel it would use: too big with DF
  → dropped, ``mp-svc-no-fragment`` counted, ``%ASA-6-722036`` logged; too big without DF
  → fragmented.
* **Syslog** goes through a :class:`~tunnelswarm.asa.syslog.SyslogRouter` to the
  ``show logging`` buffer and the optional stdout / file / UDP sinks.

Bad input from a client (TLS garbage, broken HTTP, broken CSTP framing, hostile XML)
ends that client's connection with a syslog line, never the server.
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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal
from xml.sax.saxutils import escape

import h11
import trio
from defusedxml import ElementTree as DefusedET

from tunnelswarm._core import (
    CstpConnection,
    DtlsEndpoint,
    DtlsEvent,
    icmp_echo_reply,
    udp_echo_reply,
)
from tunnelswarm.asa.asp import AspDropCounters, SocketTable
from tunnelswarm.asa.certs import Identity, load_or_create_identity
from tunnelswarm.asa.config import (
    AsaConfig,
    ConfigEvent,
    ConfigStore,
    DtlsPortChanged,
    EffectivePolicy,
    InterfaceChanged,
    InterfaceDisabled,
    InterfaceEnabled,
    LoggingChanged,
    ModeKind,
    PoolAllocator,
    PoolChanged,
    PoolRemoved,
    TunnelGroup,
    WebvpnPortChanged,
    parse_config,
)
from tunnelswarm.asa.console import AdminConsole, ShowRegistry
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
    render_vpn_sessiondb_anyconnect,
    render_vpn_sessiondb_summary,
)
from tunnelswarm.asa.syslog import (
    BufferSink,
    FileSink,
    SessionRef,
    SyslogMessage,
    SyslogRouter,
    TextStreamSink,
    UdpSyslogSink,
    address_assigned,
    anyconnect_parent_session_started,
    client_type,
    dtls_disabled_no_cipher,
    first_svc_connection,
    new_svc_connection_replacing,
    session_disconnected,
    svc_closing_connection,
    svc_connection_established,
    svc_connection_terminated,
    transmitting_large_packet,
    webvpn_session_started,
    webvpn_session_terminated,
)
from tunnelswarm.drive.dtls_server import DtlsUdpServer
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import ConfigError, TunnelswarmError

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
#: the Lease-Duration an ASA sends without ``vpn-session-timeout`` (UNCONFIRMED: 14 days)
DEFAULT_LEASE: Final = 1209600
MAX_HTTP_BODY: Final = 65536
MAX_ADMIN_LINE: Final = 4096
XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
LOGIN_FAILED: Final = "Login failed."
LOGIN_DENIED: Final = "Login denied, unauthorized connection mechanism, contact your administrator."

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
group-policy ac_users_group attributes
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
    #: admin console listener ``(host, port)`` (port 0 = any free port)
    admin: tuple[str, int] | None = None
    syslog_stdout: bool = False
    syslog_file: Path | None = None
    syslog_udp: tuple[str, int] | None = None
    #: emulated inside hosts answering ICMP/UDP echo, besides the ``inside`` interface
    inside_hosts: tuple[str, ...] = ()
    #: ``X-CSTP-Split-Include`` networks (``a.b.c.d/m.m.m.m``); None = the inside network
    split_include: tuple[str, ...] | None = None
    #: ``show logging`` buffer size in bytes
    log_buffer_size: int = 65536
    #: multiplies the idle/session/disconnected timeouts the server enforces (not the
    #: advertised values); tests use 1/60 so that a configured minute lasts a second
    time_scale: float = 1.0


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
    """Split an IPv4 packet into fragments of at most ``mtu`` bytes (RFC 791)."""
    ihl = (packet[0] & 0x0F) * 4
    header, payload = bytearray(packet[:ihl]), packet[ihl:]
    step = max(8, (mtu - ihl) // 8 * 8)
    flags_off = int.from_bytes(header[6:8], "big")
    base_off, more = flags_off & 0x1FFF, flags_off & 0x2000
    out = []
    for start in range(0, len(payload), step):
        chunk = payload[start : start + step]
        last = start + step >= len(payload)
        h = bytearray(header)
        h[2:4] = (ihl + len(chunk)).to_bytes(2, "big")
        value = (base_off + start // 8) | (more if last else 0x2000)
        h[6:8] = value.to_bytes(2, "big")
        h[10:12] = b"\0\0"
        total = sum(int.from_bytes(h[i : i + 2], "big") for i in range(0, ihl, 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        h[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
        out.append(bytes(h) + chunk)
    return out


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


@dataclass
class _Listener:
    protocol: Literal["SSL", "DTLS"]
    asa_port: int
    real_port: int
    scope: trio.CancelScope
    udp: socket.socket | None = None
    tcp: trio.socket.SocketType | None = None


class _Conn:
    """One TCP connection from a client."""

    def __init__(
        self, asa: MockAsa, stream: trio.SocketStream, conn: CstpConnection, nameif: str
    ) -> None:
        self.asa = asa
        self.stream = stream
        self.conn = conn
        self.nameif = nameif
        peer: Any = stream.socket.getpeername()
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
        self.dtls_first = True
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
        self.identity: Identity = load_or_create_identity(
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
        self.shows = ShowRegistry()
        self._register_shows()
        # syslog
        level = asa.logging.buffered_level
        self.syslog_buffer = BufferSink(
            "debugging" if level is None else level, buffer_size=config.log_buffer_size
        )
        self.syslog = SyslogRouter([self.syslog_buffer])
        self._closers: list[FileSink | UdpSyslogSink] = []
        if config.syslog_stdout:
            self.syslog.add(TextStreamSink(sys.stdout))
        if config.syslog_file is not None:
            fs = FileSink(config.syslog_file)
            self._closers.append(fs)
            self.syslog.add(fs)
        if config.syslog_udp is not None:
            us = UdpSyslogSink(*config.syslog_udp, hostname=asa.hostname)
            self._closers.append(us)
            self.syslog.add(us)
        # DTLS
        self.endpoint = DtlsEndpoint(secrets.token_bytes(32))
        self._dtls_conns: dict[bytes, _Conn] = {}
        self._dtls_server = DtlsUdpServer(self.endpoint, self._on_dtls_event)
        # runtime
        self.conns: list[_Conn] = []
        self._by_session: dict[int, _Conn] = {}
        self._listeners: dict[str, _Listener] = {}
        self._opaques: dict[str, str] = {}  # aggauth-handle -> tunnel group
        self._ever_connected: set[int] = set()
        self._nursery: trio.Nursery | None = None
        self.offset: int | None = None
        self.admin_port: int | None = None
        #: one-line reasons of client connections that ended in an error
        self.errors: list[str] = []

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

    def _inside_hosts(self) -> set[bytes]:
        hosts = set(self.config.inside_hosts)
        inside = self.asa_config.interface_by_nameif("inside")
        if inside is not None and inside.ip_address is not None:
            hosts.add(str(inside.ip_address))
        return {ipaddress.IPv4Address(h).packed for h in hosts}

    def _split_include(self) -> list[str]:
        if self.config.split_include is not None:
            return list(self.config.split_include)
        inside = self.asa_config.interface_by_nameif("inside")
        if inside is None or inside.ip_address is None or inside.netmask is None:
            return []
        net = ipaddress.IPv4Network(f"{inside.ip_address}/{inside.netmask}", strict=False)
        return [_netmask_prefix(net)]

    def log(self, message: SyslogMessage) -> None:
        self.syslog.emit(message, datetime.now())

    def _register_shows(self) -> None:
        def lines(text: str) -> list[str]:
            return text.rstrip("\n").split("\n")

        self.shows.register("asp table socket", lambda cfg, w: lines(self.sockets.render()))
        self.shows.register("asp drop", lambda cfg, w: lines(self.drops.render_show_asp_drop()))
        self.shows.register(
            "vpn-sessiondb anyconnect",
            lambda cfg, w: lines(
                render_vpn_sessiondb_anyconnect(
                    list(self.sessiondb), trio.current_time(), datetime.now()
                )
            ),
        )
        self.shows.register(
            "vpn-sessiondb summary",
            lambda cfg, w: lines(render_vpn_sessiondb_summary(self.sessiondb.summary())),
        )
        self.shows.register("logging", lambda cfg, w: self._show_logging(cfg))

    def _show_logging(self, cfg: AsaConfig) -> list[str]:
        lg = cfg.logging
        head = [
            f"Syslog logging: {'enabled' if lg.enabled else 'disabled'}",
            f"    Timestamp logging: {'enabled' if lg.timestamp else 'disabled'}",
            f"    Buffer logging: level {self.syslog_buffer.level}, "
            f"{self.syslog_buffer.logged} messages logged",
        ]
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
            elif isinstance(ev, LoggingChanged):
                level = self.asa_config.logging.buffered_level
                self.syslog_buffer.level = "debugging" if level is None else level
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
        self._start_tcp(self._tcp_socket(real), asa_port, real)

    def _bind_udp(self, asa_port: int) -> None:
        real = self._real(asa_port)
        self._start_udp(self._udp_socket(real), asa_port, real)

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
        self, listener: trio.SocketListener, scope: trio.CancelScope, nameif: str
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

    def _on_dtls_event(self, key: bytes, ev: DtlsEvent) -> None:
        c = self._dtls_conns.get(key)
        if c is None or c.session is None:
            return
        now = trio.current_time()
        s = c.session
        k = ev.kind
        if k == "connected":
            enc, hashing = asa_cipher_names(c.dtls_cipher or ev.suite or "")
            encap = "DTLSv1.2" if ev.version == "DTLS1.2" else "DTLSv1.0"
            dst = self.sockets.listening_dtls_port(c.nameif) or self.sockets.dtls_port
            try:
                self.sessiondb.attach_dtls(s, now, enc, hashing, dst_port=dst, encapsulation=encap)
            except TunnelswarmError:
                return
            who = c.who()
            self.log(svc_connection_established(who, "UDP"))
            if c.dtls_first:
                self.log(first_svc_connection(who, "UDP"))
                c.dtls_first = False
            else:
                self.log(new_svc_connection_replacing(who, "UDP"))
        elif k == "data":
            self._from_client(c, bytes(ev.payload), TunnelKind.DTLS)
        elif k in ("peer-dead", "closed"):
            ended = self.sessiondb.detach_dtls(
                s, now, "DPD failure" if k == "peer-dead" else "closed"
            )
            if ended:
                self.log(svc_connection_terminated(c.who(), "UDP"))

    # ---------------------------------------------------------------- data path
    def _from_client(self, c: _Conn, packet: bytes, tunnel: TunnelKind) -> None:
        s = c.session
        if s is None:
            return
        now = trio.current_time()
        if self.sessiondb.get(s.index) is s:
            self.sessiondb.touch(s, now, bytes_in=len(packet), tunnel=tunnel)
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return
        if packet[16:20] not in self._inside_hosts():
            return
        reply = icmp_echo_reply(packet)
        if reply is None:
            reply = udp_echo_reply(packet)
        if reply is not None:
            self.send_to_client(c, bytes(reply))

    def send_to_client(self, c: _Conn, packet: bytes) -> bool:
        """Tunnel ``packet`` to ``c``'s client over DTLS while it is up, else CSTP, with
        the ASA's MTU rule (§6.4). False if it was dropped."""
        s, mtu = c.session, c.mtu
        if s is None or mtu is None or len(packet) < 20:
            return False
        key = c.dtls_key
        dtls = key is not None and self.endpoint.is_established(key)
        channel: Literal["tls", "dtls"] = "dtls" if dtls else "tls"
        df = bool(packet[6] & 0x40)
        df_ignore = c.policy.df_bit_ignore if c.policy is not None else False
        decision = mtu.decide(len(packet), df, channel, df_ignore)
        if isinstance(decision, DropTooBig):
            self.drops.drop(ASP_DROP_NO_FRAGMENT)
            self.log(transmitting_large_packet(c.who(), len(packet), decision.threshold))
            return False
        pieces = [packet]
        if isinstance(decision, Fragment):
            pieces = fragment_ipv4(packet, decision.mtu)
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
    async def _serve_client(self, stream: trio.SocketStream, nameif: str) -> None:
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
        except Exception as e:  # whatever a client did, only its connection ends
            self._client_error(c, e)
        finally:
            self.conns.remove(c)
            self._conn_closed(c)
            with trio.CancelScope(shield=True):
                with contextlib.suppress(*_IO_ERRORS), trio.move_on_after(1):
                    await c.flush()
                await stream.aclose()

    def _client_error(self, c: _Conn, e: BaseException) -> None:
        text = _one_line(e)
        self.errors.append(text)
        if c.conn.is_handshaking or c.conn.protocol_version is None:
            local = self._iface_ip(c.nameif)
            port = self.sockets.listening_ssl_port(c.nameif) or self.sockets.ssl_port
            self.log(
                SyslogMessage(
                    6,
                    725006,
                    f"Device failed SSL handshake with client {c.nameif}:{c.peer_ip}/"
                    f"{c.peer_port} to {local}/{port}",
                )
            )
        elif c.session is not None:
            c.closing_reason = c.closing_reason or text
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
        if cfg.authenticate(user, password) is None:
            self.log(
                SyslogMessage(
                    6,
                    113015,
                    "AAA user authentication Rejected : reason = Invalid password : "
                    f"local database : user = {user} : user IP = {c.peer_ip}",
                )
            )
            return self._form(tg, LOGIN_FAILED)
        self.log(
            SyslogMessage(
                6,
                113012,
                f"AAA user authentication Successful : local database : user = {user}",
            )
        )
        try:
            policy = cfg.effective_policy(tg.name)
        except KeyError:
            return self._form(tg, LOGIN_DENIED)
        if not policy.ssl_client_allowed or not cfg.webvpn.anyconnect_enabled:
            return self._form(tg, LOGIN_DENIED)
        now = trio.current_time()
        scale = self.config.time_scale
        idle, max_time = policy.idle_timeout_seconds, policy.session_timeout_seconds
        limits = SessionLimits(
            idle_timeout=None if idle is None else idle * scale,
            session_timeout=None if max_time is None else max_time * scale,
        )
        self._alloc.names = tg.address_pools
        try:
            s = self.sessiondb.create(
                user, policy.name, tg.name, None, c.peer_ip, now, limits, wall=datetime.now()
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
        unauthorized = _Reply(401, "Unauthorized", [("Content-Length", "0")])
        if target.split("?", 1)[0] != "/CSCOSSLC/tunnel":
            return _Reply(404, "Not Found", [("Content-Length", "0")])
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
            return unauthorized
        cfg = self.asa_config
        try:
            policy = cfg.effective_policy(s.tunnel_group)
        except KeyError:
            return unauthorized
        old = self._by_session.get(s.index)
        if old is not None and old is not c:
            old.closing_reason = "Replaced"
            del self._by_session[s.index]
            old.end("Replaced")
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
            self.drops.clear(datetime.now())
            return []
        try:
            out = console.feed(line)
        except Exception as e:  # an admin line never takes the server down
            out = [f"ERROR: {_one_line(e)}"]
        try:
            self.apply_config_events()
        except Exception as e:
            out.append(f"ERROR: {_one_line(e)}")
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
