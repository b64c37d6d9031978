"""The mock ASA's inside network: emulated hosts behind the ``inside`` interface.

Theory of operation
-------------------
:class:`InsideNetwork` is sans-IO: no sockets, no clock. Every method takes ``now``
(seconds on the caller's monotonic timeline, ``trio.current_time()`` in the server), and
returns the packets the inside hosts send back as ``(route, packet)`` pairs, where
``route`` is the opaque integer the caller handed in with the packet that caused them
(the mock passes the session index: the session owning the destination address, which is
what routing by destination would find). Retransmissions come from
:meth:`InsideNetwork.handle_timeout`; :meth:`InsideNetwork.next_deadline` says when to
call it (an early call does nothing).

The network is a set of IPv4 prefixes (the mock's default: the ``inside`` interface's
network, plus :attr:`~tunnelswarm.asa.server.MockAsaConfig.inside_hosts`). Every address
in them is a host that answers:

* **ICMP echo** (``tunnelswarm._core.icmp_echo_reply``) and **UDP echo** on any port
  (``tunnelswarm._core.udp_echo_reply``; same DF bit as the request).
* **TCP port 80, the "web server" flow model** (wire format below): DF-set data
  segments sized to the MSS the client advertised, a fixed window, retransmission on RTO
  and RFC 1191 path-MTU discovery driven by ICMP type 3 code 4 messages, which the ASA
  side of the same process generates when it must drop a DF packet that does not fit the
  tunnel (``server.py`` ``send_to_client``) and feeds back in here.

Anything else is dropped and counted in :class:`InsideCounters`: packets to an address
outside the prefixes, malformed IPv4 (truncated, bad version/IHL/length, bad header or
TCP/ICMP checksum), fragments (no reassembly), other protocols. Bad input never raises.

Flow wire format (client = the tunnel side, server = an inside host)
---------------------------------------------------------------------
1. Client → server, one IPv4/TCP segment: ``SYN`` (no ``ACK``), destination port
   :data:`HTTP_PORT`, an MSS option (kind 2; absent → :data:`DEFAULT_MSS` = 536,
   RFC 1122 §4.2.2.6), and the request as SYN payload (TCP Fast Open-shaped, RFC 7413,
   without the cookie): ASCII ``GET /<n>`` with ``n`` a decimal byte count
   (0 ≤ n ≤ :attr:`FlowParams.max_bytes`), optionally followed by a space, CR or LF and
   anything (:func:`http_request` writes ``GET /<n> HTTP/1.0\\r\\n\\r\\n``).
2. Server → client: ``SYN|ACK`` (seq = ISS, ack = client ISN + 1 + request length, MSS
   option = inside MTU − 40) immediately followed by the response: exactly ``n`` bytes,
   byte ``i`` = ``i mod 256`` (:func:`response_bytes`; no HTTP status line), in
   ``ACK|PSH`` segments from seq ISS + 1, the last one with ``FIN`` too (``n`` = 0: a bare
   ``ACK|FIN``). Every server packet has DF set, TTL 64, window 65535, no options except
   the SYN-ACK's MSS. Payload per segment = min(max(client MSS, 48), PMTU estimate − 40).
3. Client → server: cumulative ``ACK`` segments (ack = next expected server seq). The
   flow is complete when the ``FIN`` is acknowledged (ack = ISS + n + 2). A client
   ``FIN`` is acknowledged with a bare ``ACK``; a client ``RST`` ends the flow
   (``flows_reset``). A repeated SYN with the same ISN restarts sending from the
   oldest unacknowledged byte; with a different ISN it replaces the flow.
4. A SYN the server will not serve is answered ``RST|ACK``: another port
   (``closed_port``), a request not of the form above (``bad_requests``), or a full flow
   table (``flows_refused``).

Sending (a model of a TCP sender, not of any one stack)
------------------------------------------------------
* At most :attr:`FlowParams.window` segments of the current size are in flight
  (``snd_nxt − snd_una ≤ window × segment``); the client's advertised window is ignored;
  no congestion control, no SACK, no fast retransmit.
* **RTO** (RFC 6298 shape): :attr:`FlowParams.rto` (1 s), armed at the SYN and restarted
  by every ACK of new data and every resend; on expiry it doubles (at most
  :attr:`FlowParams.max_rto`) and sending restarts from ``snd_una`` (go-back-N: a client
  that keeps no out-of-order data still completes). After :attr:`FlowParams.retries` such
  rounds without progress the next expiry resets the flow with ``RST|ACK`` and counts it in
  ``flows_aborted`` (a PMTUD black hole ends here: 63 s with the defaults).
* **PMTUD** (RFC 1191): the PMTU estimate starts at :attr:`FlowParams.mtu` (the inside
  link, 1500). An ICMP 3/4 whose quoted IPv4 + TCP header names a live flow, whose quoted
  sequence number lies in [snd_una, snd_nxt) (RFC 5927 §4.1's check against blind
  attacks) and whose next-hop MTU is ≥ 68 (:data:`MIN_PMTU`) and below the estimate
  lowers the estimate to it and resends from ``snd_una`` at once with smaller segments
  (not counted as a timeout). Anything else is ``icmp_too_big_ignored``. The estimate is
  per flow (a real stack caches it per destination for ~10 minutes; not modelled), so
  every new flow starts at the inside MTU again.

State per flow is a handful of integers (the payload is a function of the offset, so no
buffers are kept); the number of flows is bounded by :attr:`FlowParams.max_flows`. Timers
are one heap with lazy deletion: at most one live entry per flow.

Bytes and policy (house rule 5)
-------------------------------
No Python here reads or writes header bytes: parsing (``ipv4_inspect``, ``parse_tcp``,
``parse_icmp``), building (``tcp_segment``, ``udp_datagram``, the ICMP
"fragmentation needed" message of :func:`icmp_frag_needed` the ASA side sends) and
checksums are the Rust core's (``rust/proto/src/ip/``), re-exported here. What stays in
Python is the mock's *policy*: which hosts exist, the sender's window, RTO and PMTU
estimate, the request grammar and the response pattern. The client end of the flow is
the core's ``FlowReceiver`` (``rust/proto/src/traffic/flow.rs``), driven by
:func:`tunnelswarm.client.flow.fetch`.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Final

from tunnelswarm._core import (
    IcmpMessage,
    TcpSegment,
    icmp_echo_reply,
    internet_checksum,
    ipv4_inspect,
    parse_icmp,
    parse_tcp,
    tcp_segment,
    udp_datagram,
    udp_echo_reply,
)
from tunnelswarm._core import icmp_frag_needed as _core_icmp_frag_needed
from tunnelswarm.errors import ConfigError

__all__ = [
    "DEFAULT_MSS",
    "HTTP_PORT",
    "MIN_CLIENT_MSS",
    "MIN_PMTU",
    "TCP_ACK",
    "TCP_FIN",
    "TCP_PSH",
    "TCP_RST",
    "TCP_SYN",
    "Delivery",
    "FlowParams",
    "ForwardCounters",
    "InsideCounters",
    "InsideNetwork",
    "TcpSegment",
    "http_request",
    "icmp_frag_needed",
    "internet_checksum",
    "parse_tcp",
    "response_bytes",
    "tcp_segment",
    "udp_datagram",
]

#: the flow model's server port
HTTP_PORT: Final = 80
#: MSS assumed when a SYN has no MSS option (RFC 1122 §4.2.2.6, RFC 879)
DEFAULT_MSS: Final = 536
#: the smallest client MSS honoured (Linux ``tcp_min_snd_mss``); smaller values are raised
MIN_CLIENT_MSS: Final = 48
#: the smallest IPv4 MTU (RFC 791); ICMP 3/4 below it is ignored (RFC 1191 §3)
MIN_PMTU: Final = 68
#: IPv4 + TCP headers without options
TCP_IP_OVERHEAD: Final = 40

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10

_PROTO_ICMP: Final = 1
_PROTO_TCP: Final = 6
_PROTO_UDP: Final = 17
_ICMP_ECHO_REQUEST: Final = 8
_ICMP_UNREACHABLE: Final = 3
_ICMP_FRAG_NEEDED: Final = 4
#: TTL of the ICMP errors the ASA originates (model: Cisco devices use 255)
_ASA_TTL: Final = 255
_SEQ_MOD: Final = 1 << 32
_REQUEST: Final = re.compile(rb"GET /([0-9]{1,12})(?:[ \r\n].*)?", re.DOTALL)
_PATTERN: Final = bytes(range(256)) * 260  # ≥ 256 + the largest segment (65535)


# ================================================================== parameters and counters
@dataclass(frozen=True, slots=True)
class FlowParams:
    """Knobs of the web-server flow model (tests shorten :attr:`rto`)."""

    #: segments in flight
    window: int = 10
    #: initial retransmission timeout, seconds (RFC 6298's 1 s)
    rto: float = 1.0
    #: the RTO never grows beyond this
    max_rto: float = 60.0
    #: go-back-N rounds without progress (at 1, 3, 7, 15, 31 s); the next expiry (63 s)
    #: resets the flow
    retries: int = 5
    #: concurrent flows; a SYN beyond it is refused with RST
    max_flows: int = 4096
    #: largest ``GET /<n>`` served
    max_bytes: int = 64 * 1024 * 1024
    #: the inside link MTU: the first PMTU estimate of every flow
    mtu: int = 1500
    #: the server port
    port: int = HTTP_PORT

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ConfigError(f"flow window must be at least 1 segment, not {self.window}")
        if not 0 < self.rto <= self.max_rto:
            raise ConfigError(f"flow rto {self.rto} must be > 0 and ≤ max_rto {self.max_rto}")
        if self.retries < 0:
            raise ConfigError(f"flow retries must be ≥ 0, not {self.retries}")
        if self.max_flows < 1:
            raise ConfigError(f"max_flows must be at least 1, not {self.max_flows}")
        if self.max_bytes < 0:
            raise ConfigError(f"max_bytes must be ≥ 0, not {self.max_bytes}")
        if not MIN_PMTU <= self.mtu <= 65535:
            raise ConfigError(f"inside MTU {self.mtu} outside {MIN_PMTU}..65535")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"flow port {self.port} outside 1..65535")


@dataclass(slots=True)
class InsideCounters:
    """What the inside network did with the packets it was given (all start at 0)."""

    received: int = 0
    not_inside: int = 0
    malformed: int = 0
    fragments: int = 0
    unsupported: int = 0
    icmp_echo: int = 0
    udp_echo: int = 0
    tcp_no_flow: int = 0
    closed_port: int = 0
    bad_requests: int = 0
    flows_started: int = 0
    flows_completed: int = 0
    #: the server gave up after :attr:`FlowParams.retries` timeouts (stalled)
    flows_aborted: int = 0
    #: a client RST, or a new SYN with another ISN, ended the flow
    flows_reset: int = 0
    #: SYNs refused because :attr:`FlowParams.max_flows` flows were running
    flows_refused: int = 0
    segments_sent: int = 0
    #: segments sent again (go-back-N after a timeout or an ICMP 3/4)
    retransmits: int = 0
    timeouts: int = 0
    pmtu_reductions: int = 0
    icmp_too_big_ignored: int = 0

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class ForwardCounters:
    """The ASA forwarding path between the tunnel and the inside network (kept by the
    server; protocol.md §6.4)."""

    #: client → ASA packets over the channel's tunnel MTU (722035 logged, still forwarded)
    rx_large: int = 0
    #: ICMP 3/4 sent toward an inside sender (602101 logged)
    icmp_unreachable_sent: int = 0
    #: ICMP 3/4 not sent because an ``icmp deny`` rule matched (black hole)
    icmp_unreachable_blocked: int = 0
    #: inside packets for a session that no longer has a tunnel
    no_session: int = 0


# ================================================================== packet helpers
# The byte work is the core's (house rule 5): ``internet_checksum``, ``tcp_segment``,
# ``parse_tcp`` / ``TcpSegment``, ``udp_datagram`` and ``ipv4_inspect`` / ``parse_icmp``
# come from ``tunnelswarm._core`` (rust/proto/src/ip/); this module keeps the policy.


def _addr(a: str | bytes | ipaddress.IPv4Address) -> bytes:
    if isinstance(a, bytes):
        if len(a) != 4:
            raise ValueError(f"IPv4 address must be 4 bytes, not {len(a)}")
        return a
    return ipaddress.IPv4Address(a).packed


def http_request(nbytes: int) -> bytes:
    """The flow model's request payload: ``GET /<nbytes> HTTP/1.0\\r\\n\\r\\n``."""
    if nbytes < 0:
        raise ValueError(f"negative request size {nbytes}")
    return b"GET /%d HTTP/1.0\r\n\r\n" % nbytes


def response_bytes(offset: int, length: int) -> bytes:
    """``length`` bytes of the response body from ``offset`` (byte ``i`` = ``i mod 256``)."""
    start = offset & 0xFF
    if length <= len(_PATTERN) - 256:
        return _PATTERN[start : start + length]
    return bytes((offset + i) & 0xFF for i in range(length))


def icmp_frag_needed(
    original: bytes, mtu: int, source: str | bytes, *, ttl: int = _ASA_TTL
) -> bytes | None:
    """ICMP type 3 code 4 "fragmentation needed and DF set" about ``original`` (RFC 792,
    RFC 1191): next-hop MTU in bytes 6–7, data = the original IP header + its first 8
    data bytes, sent from ``source`` to the original sender, DF clear (built by the core).

    None when no error may be sent (RFC 1122 §3.2.2): ``original`` is not a sound IPv4
    packet, is a non-initial fragment, is itself an ICMP error, or does not come from a
    single host; or ``mtu`` is outside 0..65535.
    """
    if not 0 <= mtu <= 0xFFFF:
        return None
    return _core_icmp_frag_needed(original, mtu, source, ttl=ttl)


# ================================================================== flows
_FlowKey = tuple[bytes, int, bytes, int]  # client ip, client port, server ip, server port


class _Flow:
    """One web-server flow. Sequence positions are relative to the server's ISS:
    0 = SYN, 1..size = data, size + 1 = FIN, size + 2 = everything acknowledged."""

    __slots__ = (
        "client",
        "client_isn",
        "cport",
        "deadline",
        "end",
        "high",
        "iss",
        "key",
        "mss",
        "nxt",
        "pmtu",
        "rcv_nxt",
        "retries",
        "route",
        "rto",
        "server",
        "size",
        "sport",
        "timer_at",
        "timer_id",
        "una",
    )

    def __init__(
        self, key: _FlowKey, route: int, seg: TcpSegment, size: int, iss: int, p: FlowParams
    ) -> None:
        self.key = key
        self.route = route
        self.client, self.cport, self.server, self.sport = key
        self.client_isn = seg.seq
        self.rcv_nxt = (seg.seq + 1 + len(seg.payload)) % _SEQ_MOD
        self.mss = max(MIN_CLIENT_MSS, DEFAULT_MSS if seg.mss is None else seg.mss)
        self.size = size
        self.end = size + 2
        self.iss = iss
        self.una = 0
        self.nxt = 0
        self.high = 0
        self.pmtu = p.mtu
        self.rto = p.rto
        self.retries = 0
        self.deadline: float | None = None
        self.timer_at: float | None = None
        self.timer_id = 0

    @property
    def segment(self) -> int:
        return min(self.mss, self.pmtu - TCP_IP_OVERHEAD)


#: ``(route, packet)``: an IPv4 packet an inside host sends, and the caller's route for it
Delivery = tuple[int, bytes]


class InsideNetwork:
    """The emulated inside hosts (see the module docstring).

    ``hosts``: IPv4 addresses or prefixes (``"10.1.1.0/24"``, ``"192.0.2.7"``);
    ``seed`` seeds the servers' initial sequence numbers (house rule 6).
    """

    def __init__(
        self,
        hosts: Iterable[str | ipaddress.IPv4Network],
        params: FlowParams | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.params = params if params is not None else FlowParams()
        self.counters = InsideCounters()
        self._rng = random.Random(seed)
        self._nets: tuple[tuple[int, int], ...] = ()
        self.networks: tuple[ipaddress.IPv4Network, ...] = ()
        self.set_hosts(hosts)
        self._flows: dict[_FlowKey, _Flow] = {}
        self._heap: list[tuple[float, int, _FlowKey]] = []
        self._timer_seq = 0
        self._ident = 0

    # ------------------------------------------------------------ hosts
    def set_hosts(self, hosts: Iterable[str | ipaddress.IPv4Network]) -> None:
        """Replace the inside prefixes (ConfigError for a bad one). Running flows stay."""
        nets: list[ipaddress.IPv4Network] = []
        for h in hosts:
            try:
                net = (
                    h
                    if isinstance(h, ipaddress.IPv4Network)
                    else ipaddress.IPv4Network(h, strict=False)
                )
            except ValueError as e:
                raise ConfigError(f"inside host {h!r}: {e}") from None
            if net not in nets:
                nets.append(net)
        self.networks = tuple(nets)
        self._nets = tuple((int(n.network_address), int(n.netmask)) for n in nets)

    def is_inside(self, address: bytes | str) -> bool:
        """Whether ``address`` (4 packed bytes or text) is an emulated inside host."""
        try:
            a = int.from_bytes(_addr(address), "big")
        except ValueError:
            return False
        return any(a & mask == net for net, mask in self._nets)

    @property
    def active_flows(self) -> int:
        return len(self._flows)

    # ------------------------------------------------------------ input
    def handle_packet(self, now: float, packet: bytes, route: int = 0) -> list[Delivery]:
        """A packet arriving on the inside network (from a client through the tunnel, or
        an ICMP error the ASA sent); the packets the hosts send in return."""
        c = self.counters
        c.received += 1
        hdr = ipv4_inspect(packet)
        if hdr is None:
            c.malformed += 1
            return []
        if not self.is_inside(hdr.dst):
            c.not_inside += 1
            return []
        if hdr.is_fragment:
            c.fragments += 1
            return []
        if hdr.protocol == _PROTO_TCP:
            seg = parse_tcp(packet)
            if seg is None:
                c.malformed += 1
                return []
            return self._tcp(now, seg, route)
        if hdr.protocol == _PROTO_ICMP:
            return self._icmp(now, packet, hdr.dst, route)
        if hdr.protocol == _PROTO_UDP:
            reply = udp_echo_reply(packet)
            if reply is None:
                c.malformed += 1
                return []
            c.udp_echo += 1
            return [(route, bytes(reply))]
        c.unsupported += 1
        return []

    def _icmp(self, now: float, packet: bytes, host: bytes, route: int) -> list[Delivery]:
        c = self.counters
        msg = parse_icmp(packet)
        if msg is None:
            c.malformed += 1
            return []
        if msg.icmp_type == _ICMP_ECHO_REQUEST:
            reply = icmp_echo_reply(packet)
            if reply is None:
                c.malformed += 1
                return []
            c.icmp_echo += 1
            return [(route, bytes(reply))]
        if msg.icmp_type == _ICMP_UNREACHABLE and msg.code == _ICMP_FRAG_NEEDED:
            return self._too_big(now, host, msg)
        c.unsupported += 1
        return []

    def _too_big(self, now: float, host: bytes, msg: IcmpMessage) -> list[Delivery]:
        """RFC 1191 at the inside host ``host``: lower the flow's PMTU estimate."""
        c = self.counters
        mtu = msg.mtu if msg.mtu is not None else 0
        if (
            msg.quoted_protocol != _PROTO_TCP
            or msg.quoted_src != host
            or msg.quoted_dst is None
            or msg.quoted_sport is None
            or msg.quoted_dport is None
            or msg.quoted_seq is None
        ):
            c.icmp_too_big_ignored += 1
            return []
        key = (msg.quoted_dst, msg.quoted_dport, host, msg.quoted_sport)
        f = self._flows.get(key)
        if f is None or mtu < MIN_PMTU or mtu >= f.pmtu:
            c.icmp_too_big_ignored += 1
            return []
        rel = (msg.quoted_seq - f.iss) % _SEQ_MOD
        if not f.una <= rel < f.nxt:
            c.icmp_too_big_ignored += 1
            return []
        old = f.segment
        f.pmtu = mtu
        c.pmtu_reductions += 1
        out: list[Delivery] = []
        if f.segment != old:
            f.nxt = f.una
            self._send(now, f, out)
            self._arm(f, now + f.rto)
        return out

    # ------------------------------------------------------------ TCP
    def _tcp(self, now: float, seg: TcpSegment, route: int) -> list[Delivery]:
        c = self.counters
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        f = self._flows.get(key)
        syn = seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
        if syn:
            if f is not None and f.client_isn == seg.seq:
                f.route = route
                f.nxt = f.una
                out: list[Delivery] = []
                self._send(now, f, out)
                self._arm(f, now + f.rto)
                return out
            if f is not None:
                self._remove(f)
                c.flows_reset += 1
            return self._syn(now, seg, key, route)
        if f is None:
            c.tcp_no_flow += 1
            return []
        if seg.flags & TCP_RST:
            self._remove(f)
            c.flows_reset += 1
            return []
        if seg.flags & TCP_SYN:
            c.malformed += 1
            return []
        f.route = route
        out = []
        if seg.flags & TCP_FIN:
            f.rcv_nxt = (seg.seq + len(seg.payload) + 1) % _SEQ_MOD
            out.append(self._packet(f, f.nxt, TCP_ACK))
        if seg.flags & TCP_ACK:
            self._ack(now, f, seg.ack, out)
        return out

    def _syn(self, now: float, seg: TcpSegment, key: _FlowKey, route: int) -> list[Delivery]:
        c, p = self.counters, self.params
        if seg.dport != p.port:
            c.closed_port += 1
            return [(route, self._reset_for(seg))]
        m = _REQUEST.fullmatch(seg.payload)
        size = int(m[1]) if m is not None else -1
        if not 0 <= size <= p.max_bytes:
            c.bad_requests += 1
            return [(route, self._reset_for(seg))]
        if len(self._flows) >= p.max_flows:
            c.flows_refused += 1
            return [(route, self._reset_for(seg))]
        f = _Flow(key, route, seg, size, self._rng.getrandbits(32), p)
        self._flows[key] = f
        c.flows_started += 1
        out: list[Delivery] = []
        self._send(now, f, out)
        self._arm(f, now + f.rto)
        return out

    def _ack(self, now: float, f: _Flow, ack: int, out: list[Delivery]) -> None:
        rel = (ack - f.iss) % _SEQ_MOD
        if rel <= f.una or rel > f.high:
            return  # duplicate, old, or acknowledges what was never sent
        f.una = rel
        f.nxt = max(f.nxt, rel)
        f.retries = 0
        f.rto = self.params.rto
        if f.una >= f.end:
            self._remove(f)
            self.counters.flows_completed += 1
            return
        self._send(now, f, out)
        self._arm(f, now + f.rto)

    def _send(self, now: float, f: _Flow, out: list[Delivery]) -> None:
        """Send from ``f.nxt`` while the window allows."""
        seg = f.segment
        limit = self.params.window * seg
        c = self.counters
        while f.nxt < f.end and f.nxt - f.una < limit:
            pos = f.nxt
            if pos == 0:
                pkt = self._packet(f, 0, TCP_SYN | TCP_ACK, mss=self.params.mtu - 40)
                f.nxt = 1
            else:
                start = pos - 1
                n = min(seg, f.size - start)
                fin = start + n == f.size
                flags = TCP_ACK | (TCP_PSH if n else 0) | (TCP_FIN if fin else 0)
                pkt = self._packet(f, pos, flags, response_bytes(start, n))
                f.nxt = pos + n + (1 if fin else 0)
            if pos < f.high:
                c.retransmits += 1
            f.high = max(f.high, f.nxt)
            c.segments_sent += 1
            out.append(pkt)

    def _packet(
        self, f: _Flow, pos: int, flags: int, payload: bytes = b"", *, mss: int | None = None
    ) -> Delivery:
        self._ident = (self._ident + 1) & 0xFFFF
        pkt = tcp_segment(
            f.server,
            f.client,
            f.sport,
            f.cport,
            f.iss + pos,
            f.rcv_nxt,
            flags,
            payload,
            mss=mss,
            ident=self._ident,
        )
        return (f.route, pkt)

    def _reset_for(self, seg: TcpSegment) -> bytes:
        """RST|ACK answering a SYN (RFC 793 §3.4: seq 0, ack = SYN seq + data + 1)."""
        ack = seg.seq + 1 + len(seg.payload)
        return tcp_segment(seg.dst, seg.src, seg.dport, seg.sport, 0, ack, TCP_RST | TCP_ACK)

    def _remove(self, f: _Flow) -> None:
        f.deadline = None
        self._flows.pop(f.key, None)

    # ------------------------------------------------------------ time
    def _arm(self, f: _Flow, at: float) -> None:
        f.deadline = at
        if f.timer_at is None or at < f.timer_at:
            self._timer_seq += 1
            f.timer_id, f.timer_at = self._timer_seq, at
            heapq.heappush(self._heap, (at, self._timer_seq, f.key))

    def _live(self, tid: int, key: _FlowKey) -> _Flow | None:
        f = self._flows.get(key)
        return f if f is not None and f.timer_id == tid else None

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` has work (None: no flow is waiting)."""
        heap = self._heap
        while heap:
            at, tid, key = heap[0]
            f = self._live(tid, key)
            if f is None or f.deadline is None:
                heapq.heappop(heap)
                if f is not None:
                    f.timer_at = None
                continue
            if f.deadline > at:  # moved later since this entry was pushed: re-file it
                heapq.heappop(heap)
                f.timer_at = None
                self._arm(f, f.deadline)
                continue
            return at
        return None

    def handle_timeout(self, now: float) -> list[Delivery]:
        """Fire the RTOs that are due: go-back-N retransmissions, or RST after the last."""
        out: list[Delivery] = []
        heap, p, c = self._heap, self.params, self.counters
        while heap and heap[0][0] <= now:
            _, tid, key = heapq.heappop(heap)
            f = self._live(tid, key)
            if f is None:
                continue
            f.timer_at = None
            if f.deadline is None:
                continue
            if f.deadline > now:
                self._arm(f, f.deadline)
                continue
            c.timeouts += 1
            f.retries += 1
            if f.retries > p.retries:
                out.append(self._packet(f, f.nxt, TCP_RST | TCP_ACK))
                self._remove(f)
                c.flows_aborted += 1
                continue
            f.rto = min(f.rto * 2, p.max_rto)
            f.nxt = f.una
            self._send(now, f, out)
            self._arm(f, now + f.rto)
        return out
