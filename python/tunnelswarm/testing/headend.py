"""A small, scriptable AnyConnect headend for tests of the client (not the mock ASA).

Theory of operation
-------------------
:class:`FakeHeadend` serves any number of byte streams (:meth:`FakeHeadend.serve_stream`),
each one TCP connection of a client. Nothing is faked above the byte stream:

1. **TLS** is the Rust core's server role (``CstpConnection.server``) with a certificate
   issued by a throwaway ``trustme`` CA; clients pin it with :attr:`FakeHeadend.pin`
   (``pin-sha256:…``) or trust :attr:`FakeHeadend.ca_pem`.
2. **HTTP/1.1** is parsed with h11 in the SERVER role; the decrypted bytes pass through
   the core's HTTP mode (``read_http`` / ``write_http``). Requests are routed to one of
   three login dialects (:attr:`HeadendScript.flow`, protocol.md §2.3-§2.5):

   * ``asa``: one XML form (username, password, ``group_list`` select, an ``<opaque>``
     whose ``aggauth-handle`` must come back verbatim) answered in chunked
     ``text/html``; a failed login re-sends the form with ``<error>``; success is
     ``complete`` with ``<session-token>`` and ``Set-Cookie: webvpn=``.
   * ``ocserv`` (1.1.6): username form, then password form bound to a
     ``webvpncontext`` cookie, ``Content-Length`` bodies, ``401`` + hang-up on a bad
     password.
   * ``legacy``: the XML probe gets ``404``; ``GET`` gives an HTML page around a bare
     ``<auth id="main">`` form; the urlencoded POST gets ``302`` + ``Set-Cookie:
     webvpn=`` to a success page.

   ``CONNECT /CSCOSSLC/tunnel`` checks the ``webvpn`` cookie (``401`` when unknown or
   invalidated), answers :attr:`HeadendScript.connect_status` (``503`` carries
   ``X-Reason``) or ``200`` with the §3.3 headers, and switches the connection to CSTP.
3. **CSTP** frames are deframed and encoded by the core (``Deframer``,
   ``encode_frame``) and written one frame per TLS record. The headend does not call
   ``start_cstp`` on its side so that it keeps full control of what it sends: DPD-REQ
   is echoed like ocserv (unless :attr:`HeadendScript.answer_dpd` is off), ICMP echo
   requests to :attr:`HeadendScript.inside_host` are answered with
   ``_core.icmp_echo_reply`` (after :attr:`HeadendScript.echo_delay`), and test scripts
   can inject garbage instead of a frame. A DISCONNECT ``b0`` logs the cookie out, as
   ocserv does (§4.3).
4. **DTLS** is the core's server role, ``DtlsEndpoint`` (protocol.md §5): one endpoint
   for all sessions, like the one UDP socket of a real headend. A CONNECT with
   ``X-DTLS-Master-Secret`` gets DTLS when a cipher matches (:func:`choose_dtls`:
   ``PSK-NEGOTIATE`` if :attr:`HeadendScript.psk`, else the headend's preference lists
   per header, ``X-DTLS-CipherSuite`` first unless :attr:`HeadendScript.prefer_dtls12`):
   a 32-byte session id (or PSK app id, with the PSK exported from this connection's
   TLS session) is registered with the client's master secret and answered as
   ``X-DTLS-Session-ID`` (upper-case hex) / ``X-DTLS-App-ID``, ``X-DTLS-Port``,
   ``X-DTLS-Keepalive``, ``X-DTLS-DPD``, the cipher header and ``X-DTLS-MTU``; it is
   unregistered when the TCP connection ends. DTLS DATA is treated like CSTP DATA (ICMP
   echo requests to the inside host are answered, over DTLS); DPD-REQs are answered by
   the core (payload echoed, which openconnect 9.01's MTU probe needs, §5.5).
   :class:`HeadendDtls` records handshakes, data, DPD, keepalives per session;
   :attr:`FakeHeadend.datagrams` every UDP datagram (with its first record's clear
   header, and why it was dropped). Script knobs break the path: ``answer_dtls`` (drop
   everything unread), ``dtls_mute`` (read, never answer), ``dtls_port`` (advertise a
   port nobody listens on, CSCuh61321), ``udp_loss`` (in memory).

Everything the headend sees is recorded (requests with their headers in wire order,
CONNECTs, sessions and cookies, frames by type with the time they arrived, BYE
reasons, close_notify) with ``trio.current_time()`` timestamps, so tests can run on
``trio.testing.MockClock`` and assert virtual times. Controls act on the live
connections: :meth:`~FakeHeadend.cut_all` (TCP close without close_notify),
:meth:`~FakeHeadend.close_all` (close_notify, then TCP close),
:meth:`~FakeHeadend.go_silent` (keep TCP open, transmit nothing more),
:meth:`~FakeHeadend.send_frame_all` (any frame, e.g. a server DPD-REQ or type 0x06),
:meth:`~FakeHeadend.terminate_all`, :meth:`~FakeHeadend.disconnect_all` and
:meth:`~FakeHeadend.invalidate_cookies`. :class:`HeadendScript` is read at every
request, so a test may change it while clients are connected.

Networks: :meth:`FakeHeadend.memory_opener` gives a client ``opener`` that creates an
in-memory stream pair per dial and serves the far end in a nursery (virtual time, no
sockets), :meth:`FakeHeadend.memory_datagram_opener` the matching ``datagram_opener``
(each client UDP socket an in-memory channel to the endpoint); :meth:`FakeHeadend.listen_tcp`
serves real TCP on 127.0.0.1 and real UDP on the same port. :meth:`FakeHeadend.ping_client`
sends ICMP echo requests from the inside host to a client (over DTLS while it is up).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import hashlib
import ipaddress
import random
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from xml.sax.saxutils import escape

import h11
import trio
import trio.testing
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from defusedxml import ElementTree as DefusedET

from tunnelswarm._core import (
    CstpConnection,
    Deframer,
    DtlsEndpoint,
    DtlsEvent,
    Prober,
    encode_frame,
    icmp_echo_reply,
    pin_sha256,
)
from tunnelswarm.drive.datagram import DatagramChannel, DatagramOpener
from tunnelswarm.drive.dtls_server import DtlsUdpServer
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import ConfigError, TunnelswarmError

__all__ = [
    "DATA",
    "DISCONNECT",
    "DPD_REQ",
    "DPD_RESP",
    "KEEPALIVE",
    "TERMINATE",
    "FakeHeadend",
    "HeadendConnection",
    "HeadendDtls",
    "HeadendPing",
    "HeadendScript",
    "HeadendSession",
    "SeenDatagram",
    "SeenFrame",
    "SeenRequest",
    "choose_dtls",
]

DATA, DPD_REQ, DPD_RESP, DISCONNECT, KEEPALIVE, TERMINATE = 0x00, 0x03, 0x04, 0x05, 0x07, 0x09
BYE_USER = 0xB0
LEGACY_ACTION = "/+webvpn+/index.html"
LEGACY_PORTAL = "/+CSCOE+/portal.html"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
BILLION_LAUGHS = (
    '<!DOCTYPE config-auth [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>\n"
)
_IO_ERRORS = (TunnelswarmError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@dataclass
class HeadendScript:
    """What the headend does. Read at every request: tests may change it on the fly."""

    flow: Literal["asa", "ocserv", "legacy"] = "asa"
    users: dict[str, str] = field(default_factory=lambda: {"test": "test"})
    groups: tuple[str, ...] = ("VPN",)
    address: str = "10.10.10.21"
    netmask: str = "255.255.255.0"
    cstp_mtu: int = 1347
    #: sent as X-DTLS-MTU (with the DTLS headers) when the client offers DTLS
    dtls_mtu: int | None = None
    dpd: int = 30
    keepalive: int = 20
    rekey_time: int = 0
    rekey_method: str = "none"
    #: status of CONNECT for a valid cookie; 503 carries ``X-Reason: <x_reason>``
    connect_status: int = 200
    x_reason: str = "No address available for SVC connection"
    #: header names left out of the 200 to CONNECT (e.g. X-CSTP-MTU, to test refusal)
    connect_omit: tuple[str, ...] = ()
    #: answer reconnect CONNECTs (the session's 2nd and later) with this address
    address_on_reconnect: str | None = None
    #: answers ICMP echo requests sent to it through the tunnel
    inside_host: str = "10.10.10.1"
    echo_delay: float = 0.0
    answer_dpd: bool = True
    #: auth-requests carry a billion-laughs DTD (and use its entity)
    hostile_xml: bool = False
    #: every HTTP response is replaced by a response head with a broken header line
    malformed_http: bool = False
    #: plaintext written instead of a CSTP frame, ``garbage_delay`` s after CONNECT
    cstp_garbage: bytes | None = None
    garbage_delay: float = 0.0
    #: the opener refuses TCP connections (ECONNREFUSED)
    refuse_tcp: bool = False
    seed: int = 0
    # -- DTLS server role (protocol.md §5, §10.10) ----------------------------------
    #: offer DTLS when CONNECT carries ``X-DTLS-Master-Secret`` and a cipher matches
    dtls: bool = True
    #: ``X-DTLS-CipherSuite`` names in the headend's order of preference
    dtls_ciphers: Sequence[str] = (
        "AES256-SHA",
        "AES128-SHA",
        "DES-CBC3-SHA",
        "OC-DTLS1_2-AES256-GCM",
        "OC-DTLS1_2-AES128-GCM",
    )
    #: ``X-DTLS12-CipherSuite`` names in the headend's order of preference
    dtls12_ciphers: Sequence[str] = (
        "AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
    )
    #: try the client's ``X-DTLS12-CipherSuite`` offer before its ``X-DTLS-CipherSuite``
    prefer_dtls12: bool = False
    #: answer ``PSK-NEGOTIATE`` (with ``X-DTLS-App-ID``) when offered, like ocserv (§5.4)
    psk: bool = False
    #: advertised ``X-DTLS-Port``; None = the TLS port. Another number is advertised but
    #: never listened on (CSCuh61321, §8.1)
    dtls_port: int | None = None
    #: answer the first ClientHello with a HelloVerifyRequest (§5.2.3)
    hello_verify: bool = False
    #: server flight grouping: ``one-datagram``, ``separate`` or ``first-alone`` (SH alone)
    flight_layout: Literal["one-datagram", "separate", "first-alone"] = "one-datagram"
    #: ``X-DTLS-DPD`` / ``X-DTLS-Keepalive``; None = same as ``dpd`` / ``keepalive``
    dtls_dpd: int | None = None
    dtls_keepalive: int | None = None
    #: run the server's own DTLS DPD/keepalive timers with those values (default: passive,
    #: the headend only answers)
    dtls_server_timers: bool = False
    #: DTLS DPD-RESP echoes the request payload (ocserv; openconnect 9.01's MTU probe
    #: needs it, §5.5); False = bare ``04``
    echo_dtls_dpd: bool = True
    #: False: every UDP datagram is dropped unread (filtered path, dead DTLS)
    answer_dtls: bool = True
    #: True: datagrams are read and processed but nothing is sent back
    dtls_mute: bool = False
    #: in-memory UDP only: probability of losing a datagram (each direction, seeded)
    udp_loss: float = 0.0


@dataclass
class SeenRequest:
    """One HTTP request as received; ``headers`` in wire order, original spelling."""

    conn: int
    at: float
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: how the headend classified it: init, auth-reply, xml-probe, get, form, connect…
    kind: str = ""
    #: ``<group-select>`` of an XML body, if any
    group_select: str | None = None

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def header_names(self) -> list[str]:
        return [n for n, _ in self.headers]

    @property
    def cookies(self) -> dict[str, str]:
        jar: dict[str, str] = {}
        for value in self.header_all("Cookie"):
            for part in value.split(";"):
                name, eq, val = part.strip().partition("=")
                if eq:
                    jar[name] = val
        return jar


@dataclass(frozen=True, slots=True)
class SeenFrame:
    conn: int
    at: float
    type: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SeenDatagram:
    """One UDP datagram at the headend, with the clear header of its first DTLS record."""

    at: float
    #: ``in`` (client → headend) or ``out``
    direction: Literal["in", "out"]
    peer: int
    size: int
    #: first record: content type (22 handshake, 20 CCS, 21 alert, 23 data), epoch, seq
    content_type: int | None
    epoch: int | None
    seq: int | None
    #: the first record is a ClientHello
    client_hello: bool
    #: why it was not delivered (``answer_dtls off``, ``muted``, ``no listener``, ``lost``)
    dropped: str | None = None


@dataclass
class HeadendDtls:
    """The DTLS session one CONNECT registered, and what happened on it."""

    conn: int
    key: bytes
    mode: str
    cipher: str
    registered_at: float
    unregistered_at: float | None = None
    #: times of completed handshakes (a re-handshake from a new port adds one)
    connected: list[float] = field(default_factory=list)
    version: str | None = None
    suite: str | None = None
    #: openconnect-style description, e.g. ``(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)``
    text: str | None = None
    data_in: int = 0
    data_out: int = 0
    #: ICMP echo replies the inside host sent over DTLS
    echo_replies: int = 0
    #: (time, payload length) of DPD-REQs from the client, all answered by the core
    dpd_requests: list[tuple[float, int]] = field(default_factory=list)
    dpd_responses: list[float] = field(default_factory=list)
    keepalives: list[float] = field(default_factory=list)
    handshake_failures: list[tuple[float, str]] = field(default_factory=list)
    peer_dead: list[float] = field(default_factory=list)
    closed: list[tuple[float, str]] = field(default_factory=list)
    #: the core's counters of the last connection, kept when the session is unregistered
    final_stats: dict[str, int] | None = None


@dataclass
class HeadendPing:
    """ICMP echo requests the inside host sent to a client (:meth:`FakeHeadend.ping_client`)."""

    sent_dtls: int = 0
    sent_cstp: int = 0
    #: requests that could not be sent (``via="dtls"`` while DTLS was down)
    not_sent: int = 0
    received_dtls: int = 0
    received_cstp: int = 0
    rtts: list[float] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.sent_dtls + self.sent_cstp

    @property
    def received(self) -> int:
        return self.received_dtls + self.received_cstp


@dataclass
class HeadendSession:
    """One logged-in user: the ``webvpn`` cookie and what it was used for."""

    cookie: str
    user: str
    group: str | None
    address: str | None = None
    valid: bool = True
    #: times of accepted CONNECTs
    connects: list[float] = field(default_factory=list)


@dataclass
class HeadendConnection:
    """One TCP connection and what happened on it."""

    id: int
    opened_at: float
    closed_at: float | None = None
    tls_version: str | None = None
    requests: list[SeenRequest] = field(default_factory=list)
    cstp_at: float | None = None
    session: HeadendSession | None = None
    frames: list[SeenFrame] = field(default_factory=list)
    #: (reason byte or None, text) of a DISCONNECT from the client
    bye: tuple[int | None, str] | None = None
    close_notify: bool = False
    cut: bool = False
    silent: bool = False
    error: str | None = None
    #: ``X-CSTP-Address`` the 200 to CONNECT gave
    address: str | None = None
    #: the DTLS session CONNECT registered, if DTLS was offered
    dtls: HeadendDtls | None = None
    #: headers of the 200 to CONNECT, in wire order
    connect_reply: tuple[tuple[str, str], ...] = ()

    def reply_header(self, name: str) -> str | None:
        """A header of the 200 to CONNECT (case-insensitive name)."""
        return next((v for n, v in self.connect_reply if n.lower() == name.lower()), None)

    @property
    def live(self) -> bool:
        return self.closed_at is None

    def frames_of(self, ptype: int) -> list[SeenFrame]:
        return [f for f in self.frames if f.type == ptype]


@dataclass
class _Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    close: bool = False
    switch: bool = False


class _Link:
    """Transport of one connection: the stream, its core object, a send lock."""

    def __init__(self, stream: trio.abc.Stream, conn: CstpConnection, rec: HeadendConnection):
        self.stream = stream
        self.conn = conn
        self.rec = rec
        self.lock = trio.Lock()
        self.scope = trio.CancelScope()
        self.nursery: trio.Nursery | None = None

    async def flush(self) -> None:
        async with self.lock:
            while (data := self.conn.poll_transmit()) is not None:
                if not self.rec.silent:
                    await self.stream.send_all(data)

    async def send_frame(self, ptype: int, payload: bytes = b"") -> None:
        self.conn.write_http(encode_frame(ptype, payload))  # one frame, one TLS record
        await self.flush()

    async def receive(self) -> bytes | None:
        """Decrypted bytes of the next read; None at EOF."""
        data = bytes(await self.stream.receive_some(65536))
        now = now_us()
        if not data:
            self.rec.close_notify = self.conn.peer_closed
            with contextlib.suppress(TunnelswarmError):  # EOF without close_notify: recorded
                self.conn.handle_eof(now)
            return None
        try:
            self.conn.handle_input(now, data)
        finally:
            self.rec.close_notify = self.conn.peer_closed
            await self.flush()
        if self.rec.tls_version is None:
            self.rec.tls_version = self.conn.protocol_version
        return self.conn.read_http()


class _MemoryDatagram:
    """A client's in-memory UDP socket to the headend (see ``memory_datagram_opener``)."""

    def __init__(self, hub: FakeHeadend, listening: bool) -> None:
        self.hub = hub
        self.peer = hub._dtls_server.add_peer(self.deliver)
        self.listening = listening
        self._tx, self._rx = trio.open_memory_channel[bytes](256)
        self._closed = False

    async def send(self, datagram: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise OSError(errno.EBADF, "socket closed")
        self.hub._udp_in(self.peer, bytes(datagram), listening=self.listening)

    async def recv(self) -> bytes:
        return await self._rx.receive()

    def deliver(self, datagram: bytes) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
            self._tx.send_nowait(datagram)  # a full queue drops, like a socket buffer

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.hub._dtls_server.remove_peer(self.peer)
            self._tx.close()
            self._rx.close()


def _offer(value: str | None) -> list[str]:
    return [c.strip().upper() for c in (value or "").split(":") if c.strip()]


def choose_dtls(
    script: HeadendScript, dtls_offer: str | None, dtls12_offer: str | None
) -> list[tuple[str, str]]:
    """The (mode, cipher) candidates for a CONNECT, best first (protocol.md §5.1).

    ``PSK-NEGOTIATE`` wins when :attr:`HeadendScript.psk` is on and the client offers it
    (ocserv). Otherwise the headend's own preference order decides within each header:
    the client's ``X-DTLS-CipherSuite`` offer is matched against
    :attr:`HeadendScript.dtls_ciphers` (mode ``legacy``: DTLS 0.9, or DTLS 1.2 for
    ``OC-DTLS1_2-*``) and its ``X-DTLS12-CipherSuite`` offer against
    :attr:`HeadendScript.dtls12_ciphers` (mode ``dtls12``); the ``legacy`` matches come
    first unless :attr:`HeadendScript.prefer_dtls12`, the other header is the fallback.
    Names compare case-insensitively. An empty list means: offer no DTLS.
    """
    legacy, d12 = _offer(dtls_offer), _offer(dtls12_offer)
    out: list[tuple[str, str]] = []
    if script.psk and "PSK-NEGOTIATE" in legacy:
        out.append(("psk", "PSK-NEGOTIATE"))
    by_legacy = [("legacy", c) for c in script.dtls_ciphers if c.upper() in legacy]
    by_d12 = [("dtls12", c) for c in script.dtls12_ciphers if c.upper() in d12]
    out += by_d12 + by_legacy if script.prefer_dtls12 else by_legacy + by_d12
    return out


def _record_head(data: bytes) -> tuple[int | None, int | None, int | None, bool]:
    """(content type, epoch, seq, is ClientHello) of a datagram's first DTLS record."""
    if len(data) < 13:
        return None, None, None, False
    epoch = int.from_bytes(data[3:5], "big")
    hello = data[0] == 22 and epoch == 0 and len(data) > 13 and data[13] == 1
    return data[0], epoch, int.from_bytes(data[5:11], "big"), hello


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


@functools.cache
def _credentials(hostnames: tuple[str, ...]) -> tuple[bytes, bytes, bytes, bytes]:
    """(CA PEM, chain PEM, key PEM, leaf DER) of a throwaway CA and server certificate."""
    ca = trustme.CA()
    leaf = ca.issue_cert(*hostnames)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    return ca.cert_pem.bytes(), chain, leaf.private_key_pem.bytes(), der


def _xml_fields(body: bytes) -> dict[str, str]:
    """type, group-select, auth/* and aggauth-handle of a client config-auth document."""
    root: Any = DefusedET.fromstring(body)
    found = {"type": root.get("type", "")}
    for child in root:
        tag = child.tag
        if tag == "group-select":
            found["group-select"] = (child.text or "").strip()
        elif tag == "auth":
            for item in child:
                found[item.tag] = item.text or ""
        elif tag == "opaque":
            handle = child.find("aggauth-handle")
            found["aggauth-handle"] = (handle.text or "").strip() if handle is not None else ""
    return found


class FakeHeadend:
    """The headend. See the module docstring."""

    def __init__(
        self,
        script: HeadendScript | None = None,
        *,
        hostnames: tuple[str, ...] = ("vpn.example.com", "127.0.0.1"),
    ) -> None:
        self.script = script or HeadendScript()
        self.ca_pem, self._chain_pem, self._key_pem, der = _credentials(hostnames)
        pin = pin_sha256(der)
        assert pin is not None
        self.pin: str = pin
        self._cert_sha1 = hashlib.sha1(der).hexdigest().upper()
        self._rng = random.Random(self.script.seed)
        self.connections: list[HeadendConnection] = []
        self.requests: list[SeenRequest] = []
        self.connects: list[SeenRequest] = []
        self.frames: list[SeenFrame] = []
        self.byes: list[tuple[int | None, str]] = []
        self.sessions: dict[str, HeadendSession] = {}
        self.cookies_issued: list[str] = []
        self.dials: list[tuple[str, int, float]] = []
        #: every ASA ``<opaque>`` element sent, in order (clients must echo it verbatim)
        self.opaques_issued: list[str] = []
        self._links: list[_Link] = []
        self._opaques: dict[str, tuple[str, str]] = {}  # aggauth-handle -> (opaque, group)
        self._contexts: dict[str, tuple[str, str | None]] = {}  # ocserv sid -> (user, group)
        self._change = trio.Event()
        # DTLS server role: one endpoint for every session, like one UDP socket
        seeds = random.Random(f"dtls-{self.script.seed}")
        self.endpoint = DtlsEndpoint(seeds.randbytes(32))
        self._loss_rng = random.Random(f"loss-{self.script.seed}")
        #: every registered DTLS session, in CONNECT order
        self.dtls_sessions: list[HeadendDtls] = []
        #: every UDP datagram seen or sent (also dropped ones)
        self.datagrams: list[SeenDatagram] = []
        #: (host, port, time) of every in-memory UDP socket a client opened
        self.udp_dials: list[tuple[str, int, float]] = []
        #: the port the TLS listener serves (real) or the clients dialled (in memory)
        self.tls_port: int | None = None
        self._dtls_by_key: dict[bytes, HeadendDtls] = {}
        self._dtls_server = DtlsUdpServer(
            self.endpoint,
            self._on_dtls_event,
            on_datagram=self._udp_in,
            on_transmit=self._udp_out,
            after_pump=self._changed,
        )
        self._dtls_nursery: trio.Nursery | None = None
        self._pings: dict[int, tuple[Prober, HeadendPing]] = {}

    # ------------------------------------------------------------------ records
    def _changed(self) -> None:
        self._change.set()
        self._change = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Sleep until ``predicate()`` holds (re-checked whenever something is recorded)."""
        while not predicate():
            await self._change.wait()

    def frames_of(self, ptype: int) -> list[SeenFrame]:
        return [f for f in self.frames if f.type == ptype]

    def datagrams_in(self, *, delivered: bool | None = None) -> list[SeenDatagram]:
        """Datagrams from clients; ``delivered`` filters on whether they were dropped."""
        return [
            d
            for d in self.datagrams
            if d.direction == "in" and (delivered is None or (d.dropped is None) == delivered)
        ]

    def client_hellos(self) -> list[SeenDatagram]:
        """Datagrams from clients that start with a ClientHello (dropped ones too)."""
        return [d for d in self.datagrams_in() if d.client_hello]

    @property
    def dtls(self) -> HeadendDtls | None:
        """The DTLS session of the most recent CONNECT that got one."""
        return self.dtls_sessions[-1] if self.dtls_sessions else None

    @property
    def valid_cookies(self) -> list[str]:
        return [c for c, s in self.sessions.items() if s.valid]

    # ------------------------------------------------------------------ controls
    def _live(self) -> list[_Link]:
        return [link for link in self._links if link.rec.live]

    def cut_all(self) -> None:
        """Drop every TCP connection at once, without close_notify."""
        for link in self._live():
            link.rec.cut = True
            link.scope.cancel()

    def go_silent(self) -> None:
        """Live connections stay open but transmit nothing more (new ones are normal)."""
        for link in self._live():
            link.rec.silent = True

    async def close_all(self) -> None:
        """Close every connection gracefully: close_notify, then TCP close (no DISCONNECT)."""
        for link in self._live():
            try:
                link.conn.close()
                await link.flush()
            except _IO_ERRORS as e:
                link.rec.error = _one_line(e)
            link.scope.cancel()

    async def send_frame_all(self, ptype: int, payload: bytes = b"") -> None:
        """Send one CSTP frame of any type (even an unknown one) on every CSTP connection."""
        for link in self._live():
            if link.rec.cstp_at is None:
                continue
            try:
                await link.send_frame(ptype, payload)
            except _IO_ERRORS as e:
                link.rec.error = _one_line(e)

    async def terminate_all(self) -> None:
        """Send TERMINATE (0x09) and close_notify on every CSTP connection."""
        await self._bye_all(TERMINATE, b"")

    async def disconnect_all(self, reason: int | None = BYE_USER, text: str = "") -> None:
        """Send DISCONNECT (reason byte + text, or empty) and close_notify on CSTP connections."""
        payload = b"" if reason is None else bytes([reason]) + text.encode()
        await self._bye_all(DISCONNECT, payload)

    async def _bye_all(self, ptype: int, payload: bytes) -> None:
        for link in self._live():
            if link.rec.cstp_at is None:
                continue
            try:
                link.conn.write_http(encode_frame(ptype, payload))
                link.conn.close()
                await link.flush()
            except _IO_ERRORS as e:
                link.rec.error = _one_line(e)

    def invalidate_cookies(self) -> None:
        """Every session cookie is refused from now on (CONNECT answers 401)."""
        for s in self.sessions.values():
            s.valid = False

    # ------------------------------------------------------------------ networks
    def memory_opener(
        self, nursery: trio.Nursery
    ) -> Callable[[str, int], Awaitable[trio.abc.Stream]]:
        """A client ``opener``: each dial is an in-memory stream pair served in ``nursery``."""

        async def opener(host: str, port: int) -> trio.abc.Stream:
            self.dials.append((host, port, trio.current_time()))
            if self.tls_port is None:
                self.tls_port = port
            if self.script.refuse_tcp:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(self.serve_stream, server)
            return client

        return opener

    def memory_datagram_opener(self, nursery: trio.Nursery) -> DatagramOpener:
        """A client ``datagram_opener`` wired to this headend's DTLS endpoint, in memory.

        Each call is one client UDP socket (one peer id). Datagrams to the port the
        headend listens on (:attr:`tls_port`, i.e. the TLS port) reach the endpoint;
        any other port (an advertised :attr:`HeadendScript.dtls_port`) is a black hole.
        :attr:`HeadendScript.udp_loss` drops datagrams at random. The endpoint's timers
        run in ``nursery``.
        """
        self._start_dtls_timers(nursery)

        async def opener(host: str, port: int) -> DatagramChannel:
            await trio.lowlevel.checkpoint()
            self.udp_dials.append((host, port, trio.current_time()))
            listening = port == (self.tls_port or 443)
            return _MemoryDatagram(self, listening)

        return opener

    async def listen_tcp(
        self, nursery: trio.Nursery, host: str = "127.0.0.1", *, udp: bool = True
    ) -> int:
        """Serve real TCP on ``host`` (port chosen by the kernel) in ``nursery``; the port.

        With ``udp`` the DTLS endpoint also serves a UDP socket bound to the same address
        and port, as a real headend does.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(50):
            tcp = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                await tcp.bind((host, 0))
                tcp.listen(128)
                port: int = tcp.getsockname()[1]
                usock = socket.socket(family, socket.SOCK_DGRAM) if udp else None
            except BaseException:
                tcp.close()
                raise
            if usock is not None:
                try:
                    usock.bind((host, port))
                except OSError as e:
                    usock.close()
                    tcp.close()
                    if e.errno == errno.EADDRINUSE:
                        continue  # UDP port taken: try another TCP port
                    raise
            break
        else:  # pragma: no cover - 50 collisions in a row
            raise OSError(errno.EADDRINUSE, "no TCP port whose UDP twin is free")
        self.tls_port = port
        try:
            await nursery.start(trio.serve_listeners, self.serve_stream, [trio.SocketListener(tcp)])
        except BaseException:
            tcp.close()
            if usock is not None:
                usock.close()
            raise
        if usock is not None:
            self._start_dtls_timers(nursery)
            nursery.start_soon(self._dtls_server.serve_socket, usock)
        return port

    # ------------------------------------------------------------------ UDP / DTLS
    def _record_datagram(
        self, direction: Literal["in", "out"], peer: int, data: bytes, dropped: str | None
    ) -> None:
        ctype, epoch, seq, hello = _record_head(data)
        self.datagrams.append(
            SeenDatagram(
                trio.current_time(), direction, peer, len(data), ctype, epoch, seq, hello, dropped
            )
        )

    def _lost(self) -> bool:
        loss = self.script.udp_loss
        return loss > 0 and self._loss_rng.random() < loss

    def _udp_in(self, peer: int, data: bytes, *, listening: bool = True) -> None:
        s = self.script
        dropped = None
        if not listening:
            dropped = "no listener"
        elif not s.answer_dtls:
            dropped = "answer_dtls off"
        elif self._lost():
            dropped = "lost"
        self._record_datagram("in", peer, data, dropped)
        if dropped is None:
            self._dtls_server.datagram_in(peer, data)
        else:
            self._changed()

    def _udp_out(self, peer: int, data: bytes) -> None:
        s = self.script
        deliver = self._dtls_server.sender(peer)
        dropped = None
        if not s.answer_dtls:
            dropped = "answer_dtls off"
        elif s.dtls_mute:
            dropped = "muted"
        elif deliver is None:
            dropped = "peer gone"
        elif self._lost():
            dropped = "lost"
        self._record_datagram("out", peer, data, dropped)
        if dropped is None and deliver is not None:
            deliver(data)

    def _start_dtls_timers(self, nursery: trio.Nursery) -> None:
        if self._dtls_nursery is None:
            self._dtls_nursery = nursery
            nursery.start_soon(self._dtls_server.run_timers)

    def _on_dtls_event(self, key: bytes, ev: DtlsEvent) -> None:
        rec = self._dtls_by_key.get(key)
        if rec is None:
            return
        at, k = trio.current_time(), ev.kind
        if k == "connected":
            rec.connected.append(at)
            rec.version, rec.suite, rec.text = ev.version, ev.suite, ev.text
        elif k == "data":
            rec.data_in += 1
            self._on_dtls_data(rec, bytes(ev.payload))
        elif k == "dpd-request":
            rec.dpd_requests.append((at, len(ev.payload)))
        elif k == "dpd-response":
            rec.dpd_responses.append(at)
        elif k == "keepalive":
            rec.keepalives.append(at)
        elif k == "handshake-failed":
            rec.handshake_failures.append((at, ev.text))
        elif k == "peer-dead":
            rec.peer_dead.append(at)
        elif k == "closed":
            rec.closed.append((at, ev.text))

    def _on_dtls_data(self, rec: HeadendDtls, packet: bytes) -> None:
        if not self._to_inside(packet):
            return
        reply = icmp_echo_reply(packet)
        if reply is None:
            self._ping_reply(rec.conn, packet, "dtls")
        elif self.script.echo_delay > 0 and self._dtls_nursery is not None:
            self._dtls_nursery.start_soon(self._dtls_later, rec, bytes(reply))
        else:
            self._dtls_send(rec, bytes(reply), echo=True)

    async def _dtls_later(self, rec: HeadendDtls, packet: bytes) -> None:
        await trio.sleep(self.script.echo_delay)
        self._dtls_send(rec, packet, echo=True)

    def _dtls_send(self, rec: HeadendDtls, packet: bytes, *, echo: bool = False) -> bool:
        """Send an IP packet to the client over DTLS; False if DTLS is not up."""
        if rec.unregistered_at is not None or not self.endpoint.is_established(rec.key):
            return False
        try:
            self.endpoint.send_data(now_us(), rec.key, packet)
        except TunnelswarmError:
            return False
        rec.data_out += 1
        rec.echo_replies += echo
        self._dtls_server.pump()
        return True

    def _register_dtls(self, link: _Link, req: SeenRequest) -> list[tuple[str, str]]:
        """Register this CONNECT's DTLS session; the ``X-DTLS-*`` headers to answer."""
        s = self.script
        master_hex = req.header("X-DTLS-Master-Secret")
        if not s.dtls or not master_hex:
            return []
        try:
            master = bytes.fromhex(master_hex)
        except ValueError:
            return []
        dpd = s.dpd if s.dtls_dpd is None else s.dtls_dpd
        keepalive = s.keepalive if s.dtls_keepalive is None else s.dtls_keepalive
        candidates = choose_dtls(
            s, req.header("X-DTLS-CipherSuite"), req.header("X-DTLS12-CipherSuite")
        )
        key = self._rng.randbytes(32) if candidates else b""
        for mode, cipher in candidates:
            psk = None
            if mode == "psk":
                psk = link.conn.export_keying_material(b"EXPORTER-openconnect-psk", 32)
            try:
                self.endpoint.register(
                    key,
                    mode=mode,
                    cipher=cipher,
                    master_secret=None if mode == "psk" else master,
                    psk=psk,
                    dpd=dpd if s.dtls_server_timers else 0,
                    keepalive=keepalive if s.dtls_server_timers else 0,
                    hello_verify=s.hello_verify,
                    flight_layout=s.flight_layout,
                    echo_dpd_payload=s.echo_dtls_dpd,
                )
            except ConfigError:
                continue  # a name the core cannot do (or a bad secret): next candidate
            rec = HeadendDtls(link.rec.id, key, mode, cipher, trio.current_time())
            link.rec.dtls = rec
            self.dtls_sessions.append(rec)
            self._dtls_by_key[key] = rec
            port = s.dtls_port if s.dtls_port is not None else (self.tls_port or 443)
            if mode == "psk":
                h = [("X-DTLS-App-ID", key.hex())]
            else:
                h = [("X-DTLS-Session-ID", key.hex().upper())]
            h += [
                ("X-DTLS-Port", str(port)),
                ("X-DTLS-Keepalive", str(keepalive)),
                ("X-DTLS-DPD", str(dpd)),
            ]
            if mode == "dtls12":
                h.append(("X-DTLS12-CipherSuite", cipher))
            else:
                h.append(("X-DTLS-CipherSuite", cipher))
            if s.dtls_mtu is not None and mode != "psk":
                h.append(("X-DTLS-MTU", str(s.dtls_mtu)))
            return h
        return []

    def _unregister_dtls(self, rec: HeadendConnection) -> None:
        d = rec.dtls
        if d is not None and d.unregistered_at is None:
            d.final_stats = self.endpoint.connection_stats(d.key)
            self.endpoint.unregister(d.key)
            d.unregistered_at = trio.current_time()
            self._dtls_by_key.pop(d.key, None)

    # ------------------------------------------------------------------ pings
    async def ping_client(
        self,
        conn: HeadendConnection | None = None,
        *,
        count: int = 1,
        interval: float = 0.2,
        timeout: float = 2.0,
        via: Literal["auto", "dtls", "cstp"] = "auto",
        payload_len: int = 56,
    ) -> HeadendPing:
        """ICMP echo requests from the inside host to a client's tunnel address.

        ``auto`` sends over DTLS while it is established, else over CSTP; ``dtls``
        never falls back (counted as ``not_sent``). Replies are matched whichever
        tunnel brings them. Waits at most ``timeout`` after the last request.
        """
        if conn is None:
            live = [c for c in self.connections if c.live and c.cstp_at is not None]
            if not live:
                raise RuntimeError("ping_client: no live CSTP connection")
            conn = live[-1]
        link = next(lk for lk in self._links if lk.rec is conn)
        if conn.address is None:
            raise RuntimeError("ping_client: the connection has no tunnel address")
        prober = Prober(self.script.inside_host, conn.address, payload_len=payload_len)
        result = HeadendPing()
        self._pings[conn.id] = (prober, result)
        try:
            for i in range(count):
                if i:
                    await trio.sleep(interval)
                _, packet = prober.build(now_us())
                d = conn.dtls
                if via != "cstp" and d is not None and self._dtls_send(d, bytes(packet)):
                    result.sent_dtls += 1
                elif via == "dtls" or not conn.live:
                    result.not_sent += 1
                else:
                    try:
                        await link.send_frame(DATA, bytes(packet))
                        result.sent_cstp += 1
                    except _IO_ERRORS as e:
                        conn.error = _one_line(e)
                        result.not_sent += 1
            with trio.move_on_after(timeout):
                await self.wait_for(lambda: result.received >= result.sent)
        finally:
            self._pings.pop(conn.id, None)
        return result

    def _ping_reply(self, conn_id: int, packet: bytes, via: Literal["dtls", "cstp"]) -> None:
        entry = self._pings.get(conn_id)
        if entry is None:
            return
        prober, result = entry
        r = prober.handle_packet(now_us(), packet)
        if r.kind != "reply":
            return
        if via == "dtls":
            result.received_dtls += 1
        else:
            result.received_cstp += 1
        if r.rtt_us is not None:
            result.rtts.append(r.rtt_us / 1_000_000)
        self._changed()

    # ------------------------------------------------------------------ one connection
    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one TCP connection: TLS, HTTP requests, then CSTP until it closes."""
        rec = HeadendConnection(id=len(self.connections) + 1, opened_at=trio.current_time())
        conn = CstpConnection.server(self._chain_pem, self._key_pem, wall_time=int(time.time()))
        link = _Link(stream, conn, rec)
        self.connections.append(rec)
        self._links.append(link)
        self._changed()
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    link.nursery = nursery
                    try:
                        await self._serve_http(link)
                    except (*_IO_ERRORS, h11.ProtocolError) as e:
                        rec.error = _one_line(e)
                    nursery.cancel_scope.cancel()
        finally:
            rec.closed_at = trio.current_time()
            self._unregister_dtls(rec)
            with trio.CancelScope(shield=True):
                await stream.aclose()
            self._changed()

    async def _serve_http(self, link: _Link) -> None:
        h = h11.Connection(h11.SERVER)

        async def next_event() -> Any:
            while (event := h.next_event()) is h11.NEED_DATA:
                data = await link.receive()
                if data is None:
                    h.receive_data(b"")  # EOF
                elif data:
                    h.receive_data(data)
            return event

        while True:
            event = await next_event()
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed (or PAUSED after a refused switch)
            body = b""
            while not isinstance(part := await next_event(), h11.EndOfMessage):
                if isinstance(part, h11.Data):
                    body += part.data
            req = SeenRequest(
                conn=link.rec.id,
                at=trio.current_time(),
                method=event.method.decode(),
                target=event.target.decode(),
                headers=tuple((n.decode(), v.decode()) for n, v in event.headers.raw_items()),
                body=body,
            )
            link.rec.requests.append(req)
            self.requests.append(req)
            reply = self._route(link, req)
            self._changed()
            await self._send_reply(link, h, reply)
            if reply.switch:
                await self._serve_cstp(link, bytes(h.trailing_data[0]))
                return
            if reply.close or self.script.malformed_http or h.our_state is h11.MUST_CLOSE:
                return
            h.start_next_cycle()

    async def _send_reply(self, link: _Link, h: h11.Connection, reply: _Reply) -> None:
        if self.script.malformed_http:
            link.conn.write_http(b"HTTP/1.1 200 OK\r\nthis is not a header line\r\n\r\n")
            await link.flush()
            return
        head = h.send(
            h11.Response(status_code=reply.status, headers=reply.headers, reason=reply.reason)
        )
        pieces = [head or b""]
        if not reply.switch:
            pieces += [h.send(h11.Data(data=c)) or b"" for c in reply.chunks]
            pieces.append(h.send(h11.EndOfMessage()) or b"")
        garbage = self.script.cstp_garbage
        if reply.switch and garbage is not None and self.script.garbage_delay <= 0:
            pieces.append(garbage)  # in the same flight as the 200: read past the response
        for piece in pieces:  # each piece its own TLS record: clients must reassemble
            if piece:
                link.conn.write_http(piece)
        await link.flush()

    # ------------------------------------------------------------------ CSTP
    async def _serve_cstp(self, link: _Link, leftover: bytes) -> None:
        rec = link.rec
        rec.cstp_at = trio.current_time()
        self._changed()
        garbage = self.script.cstp_garbage
        if garbage is not None and self.script.garbage_delay > 0:
            assert link.nursery is not None
            link.nursery.start_soon(self._later, link, self.script.garbage_delay, None, garbage)
        deframer = Deframer()
        data: bytes | None = leftover
        while data is not None:
            if data:
                deframer.push(data)
                for ptype, payload in deframer.frames():
                    await self._on_frame(link, ptype, bytes(payload))
            data = await link.receive()
        if rec.close_notify:
            link.conn.close()
            await link.flush()

    async def _on_frame(self, link: _Link, ptype: int, payload: bytes) -> None:
        rec, s = link.rec, self.script
        frame = SeenFrame(rec.id, trio.current_time(), ptype, payload)
        rec.frames.append(frame)
        self.frames.append(frame)
        if ptype == DISCONNECT:
            bye = (payload[0], payload[1:].decode(errors="replace")) if payload else (None, "")
            rec.bye = bye
            self.byes.append(bye)
            if bye[0] == BYE_USER and rec.session is not None:
                rec.session.valid = False  # user logout invalidates the cookie (ocserv)
        self._changed()
        if ptype == DATA:
            reply = icmp_echo_reply(payload) if self._to_inside(payload) else None
            if reply is None and self._to_inside(payload):
                self._ping_reply(rec.id, payload, "cstp")
            if reply is not None and s.echo_delay > 0:
                assert link.nursery is not None
                link.nursery.start_soon(self._later, link, s.echo_delay, DATA, bytes(reply))
            elif reply is not None:
                await link.send_frame(DATA, bytes(reply))
        elif ptype == DPD_REQ and s.answer_dpd:
            await link.send_frame(DPD_RESP, payload)  # ocserv echoes the payload

    def _to_inside(self, packet: bytes) -> bool:
        """Is this an IPv4 packet for the inside host?"""
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return False
        return ipaddress.IPv4Address(packet[16:20]) == ipaddress.IPv4Address(
            self.script.inside_host
        )

    async def _later(self, link: _Link, delay: float, ptype: int | None, payload: bytes) -> None:
        await trio.sleep(delay)
        try:
            if ptype is None:
                link.conn.write_http(payload)
                await link.flush()
            else:
                await link.send_frame(ptype, payload)
        except _IO_ERRORS as e:
            link.rec.error = _one_line(e)

    # ------------------------------------------------------------------ routing
    def _route(self, link: _Link, req: SeenRequest) -> _Reply:
        if req.method == "CONNECT":
            req.kind = "connect"
            return self._connect(link, req)
        flow = self.script.flow
        if flow == "legacy":
            return self._legacy(req)
        if req.method != "POST":
            req.kind = "get"
            if flow == "ocserv":
                return self._ocserv(req, {"type": "init"})
            return _Reply(404, "Not Found", [("Content-Length", "0")])
        try:
            fields = _xml_fields(req.body)
        except Exception as e:  # the client's XML is what we test: record and refuse
            req.kind = "bad-xml"
            link.rec.error = _one_line(e)
            return _Reply(400, "Bad Request", [("Content-Length", "0")], close=True)
        req.kind = fields["type"]
        req.group_select = fields.get("group-select")
        return self._asa(req, fields) if flow == "asa" else self._ocserv(req, fields)

    def _issue(self, user: str, group: str | None, cookie: str) -> HeadendSession:
        session = HeadendSession(cookie=cookie, user=user, group=group)
        self.sessions[cookie] = session
        self.cookies_issued.append(cookie)
        return session

    def _login_ok(self, user: str | None, password: str | None) -> bool:
        return user is not None and self.script.users.get(user) == password

    # ASA ------------------------------------------------------------------
    def _asa_headers(self, *cookies: str) -> list[tuple[str, str]]:
        h = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Pragma", "no-cache"),
            ("Connection", "Keep-Alive"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("X-Aggregate-Auth", "1"),
        ]
        return h + [("Set-Cookie", c) for c in cookies]

    def _asa_form(self, group: str, error: str | None = None) -> bytes:
        s = self.script
        handle = str(self._rng.randrange(10**8, 10**9))
        opaque = (
            '<opaque is-for="sg">\n'
            f"<tunnel-group>{escape(group)}</tunnel-group>\n"
            f"<aggauth-handle>{handle}</aggauth-handle>\n"
            "<auth-method>single-sign-on-v2</auth-method>\n"
            f"<group-alias>{escape(group)}</group-alias>\n"
            "<config-hash>1517719014268</config-hash>\n"
            "</opaque>"
        )
        self._opaques[handle] = (opaque, group)
        self.opaques_issued.append(opaque)
        options = "".join(
            "<option{}>{}</option>".format(' selected="true"' if g == group else "", escape(g))
            for g in s.groups
        )
        select = (
            f'<select name="group_list" label="GROUP:">{options}</select>\n' if s.groups else ""
        )
        err = f'<error id="88" param1="" param2="">{escape(error)}</error>\n' if error else ""
        message = "&lol9;" if s.hostile_xml else "Please enter your username and password."
        doc = (
            XML_DECL
            + (BILLION_LAUGHS if s.hostile_xml else "")
            + '<config-auth client="vpn" type="auth-request" aggregate-auth-version="2">\n'
            + opaque
            + '\n<auth id="main">\n<title>Login</title>\n'
            + f"<message>{message}</message>\n<banner></banner>\n{err}<form>\n"
            + '<input type="text" name="username" label="Username:"></input>\n'
            + '<input type="password" name="password" label="Password:"></input>\n'
            + select
            + "</form>\n</auth>\n</config-auth>\n"
        )
        return doc.encode()

    def _asa(self, req: SeenRequest, f: dict[str, str]) -> _Reply:
        s = self.script
        default = s.groups[0] if s.groups else ""
        if f["type"] == "init":
            group = f.get("group-select") or default
            body = self._asa_form(group if group in s.groups else default)
            half = len(body) // 2  # two chunks, as a real ASA may send
            hdrs = self._asa_headers("webvpnlogin=1; secure")
            return _Reply(200, "OK", hdrs, [body[:half], body[half:]])
        if f["type"] != "auth-reply":
            return _Reply(400, "Bad Request", [("Content-Length", "0")])
        handle = f.get("aggauth-handle", "")
        known = self._opaques.get(handle)
        if known is None or known[0] not in req.body.decode(errors="replace"):
            return _Reply(
                200, "OK", self._asa_headers(), [self._asa_form(default, "Invalid handle.")]
            )
        group = f.get("group-select") or known[1]
        if not self._login_ok(f.get("username"), f.get("password")):
            return _Reply(
                200, "OK", self._asa_headers(), [self._asa_form(known[1], "Login failed.")]
            )
        r = self._rng
        token = "@".join(
            (
                r.randbytes(16).hex().upper(),
                str(r.randrange(4096, 65536)),
                r.randbytes(2).hex().upper(),
                r.randbytes(20).hex().upper(),
            )
        )
        self._issue(f["username"], group, token)
        doc = (
            XML_DECL
            + '<config-auth client="vpn" type="complete" aggregate-auth-version="2">\n'
            + f"<session-id>{r.randrange(10**5, 10**6)}</session-id>\n"
            + f"<session-token>{token}</session-token>\n"
            + '<auth id="success">\n<message id="0" param1="" param2=""></message>\n</auth>\n'
            + "<capabilities><crypto-supported>ssl-dhe</crypto-supported></capabilities>\n"
            + '<config client="vpn" type="private"><vpn-base-config>'
            + f"<server-cert-hash>{self._cert_sha1}</server-cert-hash>"
            + "</vpn-base-config></config>\n</config-auth>\n"
        )
        hdrs = self._asa_headers(f"webvpn={token}; path=/; secure", "webvpnlogin=1; secure")
        return _Reply(200, "OK", hdrs, [doc.encode()])

    # ocserv ---------------------------------------------------------------
    def _ocserv_reply(self, status: int, reason: str, body: bytes, *cookies: str) -> _Reply:
        h = [("Set-Cookie", c) for c in cookies] + [
            ("Content-Type", "text/xml"),
            ("Content-Length", str(len(body))),
            ("X-Transcend-Version", "1"),
        ]
        return _Reply(status, reason, h, [body] if body else [])

    def _ocserv_form(self, message: str, inputs: str) -> bytes:
        s = self.script
        select = ""
        if len(s.groups) > 1:
            opts = "".join(f"<option>{escape(g)}</option>" for g in s.groups)
            select = f'<select name="group_list" label="Group:">\n{opts}\n</select>\n'
        return (
            XML_DECL
            + (BILLION_LAUGHS if s.hostile_xml else "")
            + '<config-auth client="vpn" type="auth-request">\n<version who="sg">0.1(1)</version>\n'
            + f'<auth id="main">\n<message>{"&lol9;" if s.hostile_xml else message}</message>\n'
            + f'<form method="post" action="/auth">\n{inputs}{select}</form></auth>\n'
            + "</config-auth>\n"
        ).encode()

    def _ocserv(self, req: SeenRequest, f: dict[str, str]) -> _Reply:
        expired = "webvpncontext=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly"
        user_input = '<input type="text" name="username" label="Username:" />\n'
        pass_input = '<input type="password" name="password" label="Password:" />\n'
        if f["type"] == "init":
            body = self._ocserv_form("Please enter your username.", user_input)
            return self._ocserv_reply(200, "OK", body, expired)
        group = f.get("group-select")
        sid = req.cookies.get("webvpncontext", "")
        if "password" not in f:
            if "username" not in f:
                return self._ocserv_reply(401, "No username", b"")
            sid = base64.b64encode(self._rng.randbytes(32)).decode()
            self._contexts[sid] = (f["username"], group)
            body = self._ocserv_form("Please enter your password.", pass_input)
            return self._ocserv_reply(
                200, "OK", body, f"webvpncontext={sid}; Max-Age=300; Secure; HttpOnly"
            )
        user, group = self._contexts.pop(sid, (f.get("username"), group))
        if user is None or not self._login_ok(user, f["password"]):
            reply = self._ocserv_reply(401, "Authentication failed", b"")
            reply.close = True  # ocserv: 401, access_denied alert, worker exits
            return reply
        cookie = base64.b64encode(self._rng.randbytes(32)).decode()
        self._issue(user, group, cookie)
        body = (
            XML_DECL
            + '<config-auth client="vpn" type="complete">\n<version who="sg">0.1(1)</version>\n'
            + '<auth id="success">\n<title>SSL VPN Service</title></auth></config-auth>\n'
        ).encode()
        return self._ocserv_reply(
            200,
            "OK",
            body,
            f"webvpncontext={cookie}; Secure; HttpOnly",
            f"webvpn={cookie}; Secure; HttpOnly",
            "webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly",
            f"webvpnc=bu:/&p:t&iu:1/&sh:{self._cert_sha1}; path=/; Secure; HttpOnly",
        )

    # legacy ---------------------------------------------------------------
    def _legacy_page(self, inner: str) -> _Reply:
        body = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>SSL VPN Service</title>'
            f"</head>\n<body>\n{inner}\n</body></html>\n"
        ).encode()
        hdrs = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
        return _Reply(200, "OK", hdrs, [body])

    def _legacy_form(self, error: str | None = None) -> _Reply:
        opts = "".join(f"<option>{escape(g)}</option>" for g in self.script.groups)
        select = f'<select name="group_list" label="GROUP:">{opts}</select>' if opts else ""
        err = f"<error>{escape(error)}</error>" if error else ""
        return self._legacy_page(
            '<auth id="main"><title>SSL VPN Service</title>'
            f"<message>Please enter your username and password.</message>{err}"
            f'<form method="post" action="{LEGACY_ACTION}">'
            '<input type="text" name="username" label="Username:"/>'
            '<input type="password" name="password" label="Password:"/>'
            f"{select}</form></auth>"
        )

    def _legacy(self, req: SeenRequest) -> _Reply:
        if req.method == "POST" and req.header("X-Aggregate-Auth") is not None:
            req.kind = "xml-probe"  # a pre-XML headend does not know aggregate auth
            return _Reply(404, "Not Found", [("Content-Length", "0")])
        if req.method == "GET" and req.target == LEGACY_PORTAL:
            req.kind = "portal"
            session = self.sessions.get(req.cookies.get("webvpn", ""))
            if session is None:
                return _Reply(302, "Found", [("Location", "/"), ("Content-Length", "0")])
            return self._legacy_page('<auth id="success"><title>SSL VPN Service</title></auth>')
        if req.method == "GET":
            req.kind = "get"
            return self._legacy_form()
        req.kind = "form"
        form = urllib.parse.parse_qs(req.body.decode(), keep_blank_values=True)
        user = form.get("username", [None])[0]
        if not self._login_ok(user, form.get("password", [None])[0]):
            return self._legacy_form("Login failed.")
        assert user is not None
        cookie = self._rng.randbytes(20).hex().upper()
        self._issue(user, form.get("group_list", [None])[0], cookie)
        hdrs = [
            ("Location", LEGACY_PORTAL),
            ("Set-Cookie", f"webvpn={cookie}; path=/; secure"),
            ("Content-Length", "0"),
        ]
        return _Reply(302, "Found", hdrs)

    # CONNECT --------------------------------------------------------------
    def _connect(self, link: _Link, req: SeenRequest) -> _Reply:
        s = self.script
        self.connects.append(req)
        ocserv = s.flow == "ocserv"
        session = self.sessions.get(req.cookies.get("webvpn", ""))
        if session is None or not session.valid:
            reply = _Reply(401, "Cookie is not acceptable" if ocserv else "Unauthorized")
            reply.headers = [("Content-Length", "0")]
            reply.close = ocserv
            return reply
        if s.connect_status != 200:
            hdrs = [("Content-Length", "0")]
            if s.connect_status == 503:
                hdrs.insert(0, ("X-Reason", s.x_reason))
            try:
                reason = HTTPStatus(s.connect_status).phrase
            except ValueError:
                reason = "Error"
            return _Reply(s.connect_status, reason, hdrs)
        address = s.address
        if session.connects and s.address_on_reconnect is not None:
            address = s.address_on_reconnect
        session.address = session.address or address
        session.connects.append(trio.current_time())
        link.rec.session = session
        link.rec.address = address
        h: list[tuple[str, str]] = [("X-CSTP-Version", "1")]
        if ocserv:
            h.append(("X-CSTP-Server-Name", "ocserv 1.1.6"))
        h += [
            ("X-CSTP-Hostname", req.header("X-CSTP-Hostname") or "client"),
            ("X-CSTP-Address", address),
            ("X-CSTP-Netmask", s.netmask),
            ("X-CSTP-Lease-Duration", "43200"),
            ("X-CSTP-Idle-Timeout", "3600"),
            ("X-CSTP-Keep", "true"),
            ("X-CSTP-DPD", str(s.dpd)),
            ("X-CSTP-Keepalive", str(s.keepalive)),
        ]
        if s.rekey_method != "none":
            h += [("X-CSTP-Rekey-Time", str(s.rekey_time)), ("X-CSTP-Rekey-Method", s.rekey_method)]
        h += self._register_dtls(link, req)
        h.append(("X-CSTP-MTU", str(s.cstp_mtu)))
        omit = {name.lower() for name in s.connect_omit}
        h = [(name, value) for name, value in h if name.lower() not in omit]
        link.rec.connect_reply = tuple(h)
        return _Reply(200, "CONNECTED" if ocserv else "OK", h, switch=True)
