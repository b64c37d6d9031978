"""The mock ASA's inside network (``tunnelswarm.asa.inside``) and its ``icmp`` config knob.

The flows run against a small discrete-event path in virtual time: a one-way delay, an
MTU that drops DF packets (answering ICMP 3/4 with :func:`icmp_frag_needed` unless it is a
black hole), and a client that keeps no out-of-order data and ACKs cumulatively.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from tunnelswarm._core import Prober
from tunnelswarm.asa.config import (
    ConfigStore,
    IcmpRule,
    IcmpRulesChanged,
    parse_config,
    render_running_config,
)
from tunnelswarm.asa.console import AdminConsole
from tunnelswarm.asa.inside import (
    DEFAULT_MSS,
    MIN_CLIENT_MSS,
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    FlowParams,
    InsideNetwork,
    TcpSegment,
    http_request,
    icmp_frag_needed,
    internet_checksum,
    parse_tcp,
    response_bytes,
    tcp_segment,
)
from tunnelswarm.errors import ConfigError

CLIENT = "10.10.10.10"
SERVER = "10.1.1.80"
ASA = "10.1.1.1"
CPORT = 40000
ISN = 1000
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"


def net(**kw: Any) -> InsideNetwork:
    return InsideNetwork(["10.1.1.0/24"], FlowParams(**kw), seed=7)


def syn(size: int = 10_000, mss: int | None = 1378, *, port: int = 80, isn: int = ISN) -> bytes:
    return tcp_segment(CLIENT, SERVER, CPORT, port, isn, 0, TCP_SYN, http_request(size), mss=mss)


def ack(value: int, flags: int = TCP_ACK, *, size: int = 10_000) -> bytes:
    seq = ISN + 1 + len(http_request(size))
    return tcp_segment(CLIENT, SERVER, CPORT, 80, seq, value, flags)


@dataclass
class Run:
    data: bytearray = field(default_factory=bytearray)
    received: list[TcpSegment] = field(default_factory=list)
    dropped: int = 0
    fin_at: float | None = None
    rst_at: float | None = None


def run_flow(
    n: InsideNetwork,
    size: int,
    *,
    mss: int | None = 1378,
    path_mtu: int = 1500,
    icmp: bool = True,
    delay: float = 0.005,
    limit: float = 600.0,
) -> Run:
    """One flow from SYN to the end, in virtual time."""
    run = Run()
    heap: list[tuple[float, int, str, bytes]] = []
    order = itertools.count()
    req = http_request(size)
    rcv_nxt: int | None = None

    def path(t: float, outs: list[tuple[int, bytes]]) -> None:
        for _, p in outs:
            if len(p) > path_mtu and p[6] & 0x40:
                run.dropped += 1
                if icmp:  # back to the server, one delay away
                    msg = icmp_frag_needed(p, path_mtu, ASA)
                    assert msg is not None
                    heapq.heappush(heap, (t + delay, next(order), "server", msg))
                continue
            heapq.heappush(heap, (t + delay, next(order), "client", p))

    path(
        0.0,
        n.handle_packet(0.0, tcp_segment(CLIENT, SERVER, CPORT, 80, ISN, 0, TCP_SYN, req, mss=mss)),
    )
    t = 0.0
    while t < limit:
        deadline = n.next_deadline()
        if heap and (deadline is None or heap[0][0] <= deadline):
            t, _, where, p = heapq.heappop(heap)
            if where == "server":
                path(t, n.handle_packet(t, p))
                continue
            s = parse_tcp(p)
            assert s is not None, "the server sent a broken packet"
            run.received.append(s)
            if s.flags & TCP_RST:
                run.rst_at = t
                continue
            if s.flags & TCP_SYN:
                rcv_nxt = rcv_nxt if rcv_nxt is not None else (s.seq + 1) % 2**32
            elif rcv_nxt is not None and s.seq == rcv_nxt:
                run.data += s.payload
                rcv_nxt = (rcv_nxt + len(s.payload) + (1 if s.flags & TCP_FIN else 0)) % 2**32
                if s.flags & TCP_FIN:
                    run.fin_at = t
            if rcv_nxt is not None:
                a = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN + 1 + len(req), rcv_nxt, TCP_ACK)
                heapq.heappush(heap, (t + delay, next(order), "server", a))
        elif deadline is not None:
            t = deadline
            path(t, n.handle_timeout(t))
        else:
            break
    return run


def data_segments(run: Run) -> list[TcpSegment]:
    return [s for s in run.received if s.payload]


# --------------------------------------------------------------------------- flows
def test_flow_completes_with_the_right_bytes() -> None:
    n = net()
    run = run_flow(n, 100_000)
    assert bytes(run.data) == response_bytes(0, 100_000)
    assert run.fin_at is not None
    assert run.rst_at is None
    c = n.counters
    assert (c.flows_started, c.flows_completed, c.flows_aborted) == (1, 1, 0)
    assert c.retransmits == 0
    assert c.timeouts == 0
    assert n.active_flows == 0
    assert n.next_deadline() is None
    synack = run.received[0]
    assert synack.flags == TCP_SYN | TCP_ACK
    assert synack.mss == 1460
    assert synack.ack == ISN + 1 + len(http_request(100_000))
    segs = data_segments(run)
    assert all(s.df for s in run.received)
    assert all(s.flags & (TCP_ACK | TCP_PSH) == TCP_ACK | TCP_PSH for s in segs)
    assert [bool(s.flags & TCP_FIN) for s in segs].count(True) == 1
    assert segs[-1].flags & TCP_FIN
    assert segs[0].seq == synack.seq + 1


@pytest.mark.parametrize(
    ("mss", "payload"),
    [(1378, 1378), (536, 536), (1000, 1000), (1460, 1460), (9000, 1460), (None, DEFAULT_MSS)],
    ids=["1378", "536", "1000", "1460", "9000-capped-by-pmtu", "no-option"],
)
def test_segment_sizes_follow_the_client_mss(mss: int | None, payload: int) -> None:
    run = run_flow(net(), 20_000, mss=mss)
    segs = data_segments(run)
    assert {len(s.payload) for s in segs[:-1]} == {payload}
    assert len(segs[0].payload) + 40 == segs[0].length
    assert bytes(run.data) == response_bytes(0, 20_000)


def test_tiny_mss_is_raised_to_the_minimum() -> None:
    run = run_flow(net(), 1_000, mss=1)
    assert {len(s.payload) for s in data_segments(run)[:-1]} == {MIN_CLIENT_MSS}


def test_empty_response_is_a_bare_fin() -> None:
    run = run_flow(net(), 0)
    assert run.data == b""
    assert [s.flags for s in run.received] == [TCP_SYN | TCP_ACK, TCP_ACK | TCP_FIN]


def test_icmp_too_big_lowers_the_segment_size_and_the_flow_completes_slower() -> None:
    fast = run_flow(net(), 60_000, mss=1378)
    n = net()
    slow = run_flow(n, 60_000, mss=1378, path_mtu=1347)
    assert bytes(slow.data) == response_bytes(0, 60_000)
    assert n.counters.pmtu_reductions == 1
    assert n.counters.flows_completed == 1
    assert n.counters.timeouts == 0  # the ICMP did it, not the RTO
    assert n.counters.icmp_too_big_ignored == 9  # the rest of the first window
    assert slow.dropped == 10
    assert {len(s.payload) for s in data_segments(slow)[:-1]} == {1347 - 40}
    assert max(s.length for s in slow.received) == 1347
    assert fast.fin_at is not None
    assert slow.fin_at is not None
    assert slow.fin_at > fast.fin_at


def test_black_hole_stalls_and_the_flow_is_reset_after_bounded_retries() -> None:
    n = net(rto=0.1, retries=3)
    run = run_flow(n, 60_000, mss=1378, path_mtu=1347, icmp=False)
    assert run.data == b""
    assert run.fin_at is None
    assert run.rst_at is not None
    c = n.counters
    assert (c.flows_completed, c.flows_aborted) == (0, 1)
    assert c.timeouts == 4
    assert c.pmtu_reductions == 0
    assert c.retransmits > 0
    # 0.1 + 0.2 + 0.4 + 0.8 after the SYN, plus the one-way delay of the RST
    assert run.rst_at == pytest.approx(1.5 + 0.005 * 2, abs=0.02)
    rst = run.received[-1]
    assert rst.flags == TCP_RST | TCP_ACK
    assert n.active_flows == 0
    assert n.next_deadline() is None


def test_rto_doubles_up_to_max_rto() -> None:
    n = net(rto=1.0, max_rto=2.0, retries=4)
    n.handle_packet(0.0, syn())
    fired = []
    while (d := n.next_deadline()) is not None:
        fired.append(d)
        n.handle_timeout(d)
    assert fired == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert n.counters.flows_aborted == 1


def test_early_handle_timeout_does_nothing() -> None:
    n = net(rto=1.0)
    n.handle_packet(0.0, syn())
    assert n.next_deadline() == 1.0
    assert n.handle_timeout(0.5) == []
    assert n.counters.timeouts == 0
    assert n.next_deadline() == 1.0


def test_ack_restarts_the_timer() -> None:
    n = net(rto=1.0)
    out = n.handle_packet(0.0, syn())
    synack = parse_tcp(out[0][1])
    assert synack is not None
    n.handle_packet(0.6, ack(synack.seq + 1 + 1378))
    assert n.next_deadline() == pytest.approx(1.6)
    assert n.handle_timeout(1.0) == []


def test_duplicate_syn_resends_and_a_new_isn_replaces_the_flow() -> None:
    n = net()
    first = n.handle_packet(0.0, syn())
    again = n.handle_packet(0.1, syn())
    assert again[0][1][20:] == first[0][1][20:]  # the same SYN-ACK
    assert n.counters.retransmits == len(again)
    replaced = n.handle_packet(0.2, syn(isn=5000))
    assert n.counters.flows_reset == 1
    assert n.counters.flows_started == 2
    s = parse_tcp(replaced[0][1])
    assert s is not None
    assert s.ack == 5000 + 1 + len(http_request(10_000))


def test_client_rst_ends_the_flow_and_client_fin_is_acked() -> None:
    n = net()
    out = n.handle_packet(0.0, syn())
    synack = parse_tcp(out[0][1])
    assert synack is not None
    fin = n.handle_packet(0.1, ack(synack.seq + 1, TCP_ACK | TCP_FIN))
    s = parse_tcp(fin[0][1])
    assert s is not None
    assert s.flags == TCP_ACK
    assert s.ack == ISN + 1 + len(http_request(10_000)) + 1
    assert n.handle_packet(0.2, ack(0, TCP_RST)) == []
    assert n.counters.flows_reset == 1
    assert n.active_flows == 0
    assert n.handle_packet(0.3, ack(synack.seq + 1)) == []
    assert n.counters.tcp_no_flow == 1


def test_routes_follow_the_flow() -> None:
    n = net(rto=0.5)
    out = n.handle_packet(0.0, syn(), route=42)
    assert {r for r, _ in out} == {42}
    assert {r for r, _ in n.handle_timeout(0.5)} == {42}


# --------------------------------------------------------------------------- refusals
def test_syn_to_another_port_is_reset() -> None:
    n = net()
    out = n.handle_packet(0.0, syn(port=8080))
    s = parse_tcp(out[0][1])
    assert s is not None
    assert s.flags == TCP_RST | TCP_ACK
    assert (s.sport, s.dport) == (8080, CPORT)
    assert s.ack == ISN + 1 + len(http_request(10_000))
    assert n.counters.closed_port == 1
    assert n.active_flows == 0


@pytest.mark.parametrize(
    "payload",
    [b"", b"GET /", b"GET /x", b"POST /10", b"GET /10x", b"GET /99999999999", b"get /1"],
)
def test_bad_request_is_reset(payload: bytes) -> None:
    n = net(max_bytes=1_000_000)
    pkt = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN, 0, TCP_SYN, payload, mss=1378)
    out = n.handle_packet(0.0, pkt)
    assert len(out) == 1
    assert n.counters.bad_requests == 1
    assert n.counters.flows_started == 0


@pytest.mark.parametrize("tail", [b"", b" HTTP/1.0\r\n\r\n", b"\r\n", b"\nrest"])
def test_request_forms_accepted(tail: bytes) -> None:
    n = net()
    pkt = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN, 0, TCP_SYN, b"GET /5" + tail)
    n.handle_packet(0.0, pkt)
    assert n.counters.flows_started == 1


def test_flow_table_is_bounded() -> None:
    n = net(max_flows=2)
    for port in (1, 2, 3):
        pkt = tcp_segment(CLIENT, SERVER, port, 80, ISN, 0, TCP_SYN, http_request(10))
        n.handle_packet(0.0, pkt)
    assert n.active_flows == 2
    assert n.counters.flows_refused == 1
    assert n.counters.flows_started == 2


# --------------------------------------------------------------------------- ICMP 3/4 at the server
def _too_big_for(n: InsideNetwork, mtu: int) -> tuple[bytes, bytes]:
    out = n.handle_packet(0.0, syn())
    big = out[1][1]
    msg = icmp_frag_needed(big, mtu, ASA)
    assert msg is not None
    return big, msg


def test_icmp_too_big_below_68_or_not_lower_is_ignored() -> None:
    for mtu in (0, 67, 1500, 1600):
        n = net()
        _, msg = _too_big_for(n, mtu)
        assert n.handle_packet(0.1, msg) == []
        assert n.counters.icmp_too_big_ignored == 1
        assert n.counters.pmtu_reductions == 0


def test_icmp_too_big_at_68_works() -> None:
    n = net()
    _, msg = _too_big_for(n, 68)
    out = n.handle_packet(0.1, msg)
    assert n.counters.pmtu_reductions == 1
    assert max(len(p) for _, p in out) == 68


def test_icmp_too_big_with_a_quoted_seq_outside_the_window_is_ignored() -> None:
    n = net()
    out = n.handle_packet(0.0, syn())
    big = bytearray(out[1][1])
    ihl = 20
    seq = int.from_bytes(big[ihl + 4 : ihl + 8], "big")
    big[ihl + 4 : ihl + 8] = ((seq + 10_000_000) % 2**32).to_bytes(4, "big")
    msg = icmp_frag_needed(bytes(big), 1300, ASA)
    assert msg is not None
    assert n.handle_packet(0.1, msg) == []
    assert n.counters.icmp_too_big_ignored == 1


def test_icmp_too_big_for_no_flow_or_not_tcp_is_ignored() -> None:
    n = net()
    big = tcp_segment(SERVER, CLIENT, 80, CPORT, 1, 1, TCP_ACK, b"x" * 1400)
    msg = icmp_frag_needed(big, 1300, ASA)
    assert msg is not None
    assert n.handle_packet(0.0, msg) == []
    _, echo = Prober(SERVER, CLIENT, payload_len=1400).build(0)
    msg = icmp_frag_needed(bytes(echo), 1300, ASA)
    assert msg is not None
    assert n.handle_packet(0.0, msg) == []
    assert n.counters.icmp_too_big_ignored == 2


# --------------------------------------------------------------------------- echo and bad input
def test_icmp_and_udp_echo_are_answered() -> None:
    n = net()
    _, ping = Prober(CLIENT, SERVER).build(0)
    out = n.handle_packet(0.0, bytes(ping), route=3)
    assert out[0][0] == 3
    assert out[0][1][12:16] == IPv4Address(SERVER).packed
    _, udp = Prober(CLIENT, SERVER, kind="udp").build(0)
    assert len(n.handle_packet(0.0, bytes(udp))) == 1
    assert (n.counters.icmp_echo, n.counters.udp_echo) == (1, 1)


def _with(packet: bytes, offset: int, value: bytes) -> bytes:
    return packet[:offset] + value + packet[offset + len(value) :]


def _bad_packets() -> dict[str, tuple[bytes, str]]:
    good = syn()
    _, ping = Prober(CLIENT, SERVER).build(0)
    ping = bytes(ping)
    _, udp = Prober(CLIENT, SERVER, kind="udp").build(0)
    udp = bytes(udp)
    return {
        "empty": (b"", "malformed"),
        "short": (good[:19], "malformed"),
        "ipv6": (b"\x60" + bytes(39), "malformed"),
        "ihl-too-small": (_with(good, 0, b"\x44"), "malformed"),
        "total-length-beyond-data": (_with(good, 2, b"\x07\xd0"), "malformed"),
        "ip-checksum": (_with(good, 10, b"\x00\x00"), "malformed"),
        "tcp-checksum": (good[:-1] + bytes([good[-1] ^ 0xFF]), "malformed"),
        "tcp-truncated": (_fix_ip(good[:30]), "malformed"),
        "tcp-bad-offset": (_fix_tcp(_with(good, 32, b"\xf0")), "malformed"),
        "bad-mss-option": (_fix_tcp(_with(good, 41, b"\x09")), "malformed"),
        "icmp-checksum": (_with(ping, 22, b"\x00\x00"), "malformed"),
        "udp-checksum": (_with(udp, 26, bytes([udp[26] ^ 0xFF])), "malformed"),
        "not-inside": (_fix_ip(_with(good, 16, IPv4Address("192.0.2.1").packed)), "not_inside"),
        "fragment": (_fix_ip(_with(good, 6, b"\x20\x00")), "fragments"),
        "gre": (_fix_ip(_with(good, 9, b"\x2f")), "unsupported"),
        "icmp-other-type": (_icmp(13), "unsupported"),
    }


def _fix_ip(p: bytes) -> bytes:
    p = _with(p, 2, len(p).to_bytes(2, "big"))
    p = _with(p, 10, b"\0\0")
    return _with(p, 10, internet_checksum(p[:20]).to_bytes(2, "big"))


def _fix_tcp(p: bytes) -> bytes:
    seg = _with(p[20:], 16, b"\0\0")
    pseudo = p[12:20] + b"\0\x06" + len(seg).to_bytes(2, "big")
    return p[:20] + _with(seg, 16, internet_checksum(pseudo + seg).to_bytes(2, "big"))


def _icmp(icmp_type: int) -> bytes:
    body = bytes([icmp_type]) + bytes(11)
    body = body[:2] + internet_checksum(body).to_bytes(2, "big") + body[4:]
    return _fix_ip(
        b"\x45\0\0\0\0\0\0\0\x40\x01\0\0"
        + IPv4Address(CLIENT).packed
        + IPv4Address(SERVER).packed
        + body
    )


@pytest.mark.parametrize("name", sorted(_bad_packets()))
def test_bad_packets_are_dropped_and_counted(name: str) -> None:
    packet, counter = _bad_packets()[name]
    n = net()
    assert n.handle_packet(0.0, packet) == []
    counts = n.counters.as_dict()
    assert counts[counter] == 1, counts
    assert counts["received"] == 1
    assert sum(counts.values()) == 2, counts
    assert n.active_flows == 0


def test_inside_hosts_and_prefixes() -> None:
    n = InsideNetwork(["10.1.1.1/255.255.255.0", "192.0.2.7"])
    assert n.is_inside("10.1.1.200")
    assert n.is_inside(IPv4Address("192.0.2.7").packed)
    assert not n.is_inside("192.0.2.8")
    assert not n.is_inside(b"\x01")
    assert not n.is_inside("not an address")
    with pytest.raises(ConfigError, match="inside host 'nonsense'"):
        InsideNetwork(["nonsense"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"window": 0}, "window"),
        ({"rto": 0}, "rto"),
        ({"rto": 5, "max_rto": 1}, "rto"),
        ({"retries": -1}, "retries"),
        ({"max_flows": 0}, "max_flows"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"mtu": 67}, "MTU"),
        ({"port": 0}, "port"),
    ],
)
def test_flow_params_are_checked(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FlowParams(**kw)


# --------------------------------------------------------------------------- ICMP builder
def test_icmp_frag_needed_layout() -> None:
    original = tcp_segment(SERVER, CLIENT, 80, CPORT, 7, 9, TCP_ACK, b"y" * 1378, ident=77)
    msg = icmp_frag_needed(original, 1347, ASA)
    assert msg is not None
    assert internet_checksum(msg[:20]) == 0
    assert msg[9] == 1
    assert not msg[6] & 0x40
    assert msg[8] == 255
    assert msg[12:16] == IPv4Address(ASA).packed
    assert msg[16:20] == IPv4Address(SERVER).packed
    icmp = msg[20:]
    assert (icmp[0], icmp[1]) == (3, 4)
    assert int.from_bytes(icmp[6:8], "big") == 1347
    assert icmp[8:] == original[:28]
    assert internet_checksum(icmp) == 0


def test_icmp_frag_needed_refuses_what_rfc_1122_forbids() -> None:
    original = tcp_segment(SERVER, CLIENT, 80, CPORT, 7, 9, TCP_ACK, b"y" * 100)
    later_fragment = _fix_ip(_with(original, 6, b"\x00\x10"))
    assert icmp_frag_needed(later_fragment, 1000, ASA) is None
    error = icmp_frag_needed(original, 1000, ASA)
    assert error is not None
    assert icmp_frag_needed(error, 1000, ASA) is None
    assert icmp_frag_needed(b"junk", 1000, ASA) is None
    assert icmp_frag_needed(original, -1, ASA) is None


# --------------------------------------------------------------------------- the icmp command
def _cfg(extra: str) -> str:
    return EXAMPLE.read_text() + extra


def test_icmp_rules_parse_render_and_round_trip() -> None:
    cfg = parse_config(
        _cfg(
            "icmp permit any echo inside\n"
            "icmp deny host 10.1.1.80 unr inside\n"
            "icmp deny 10.1.1.0 255.255.255.0 3 inside\n"
            "icmp permit 10.0.0.0 255.0.0.0 inside\n"
            "icmp deny any 99 outside\n"
        )
    )
    assert [r.render() for r in cfg.icmp_rules] == [
        "icmp permit any echo inside",
        "icmp deny host 10.1.1.80 unreachable inside",
        "icmp deny 10.1.1.0 255.255.255.0 unreachable inside",
        "icmp permit 10.0.0.0 255.0.0.0 inside",
        "icmp deny any 99 outside",
    ]
    assert cfg.icmp_rules[1] == IcmpRule(
        "deny", IPv4Address("10.1.1.80"), IPv4Address("255.255.255.255"), "unreachable", "inside"
    )
    text = "\n".join(render_running_config(cfg))
    assert "icmp deny host 10.1.1.80 unreachable inside" in text
    assert parse_config(text) == cfg
    assert render_running_config(cfg, "icmp")[0] == "icmp permit any echo inside"


def test_icmp_first_match_decides_and_no_match_permits() -> None:
    cfg = parse_config(
        _cfg(
            "icmp permit host 10.1.1.5 unreachable inside\n"
            "icmp deny 10.1.1.0 255.255.255.0 unreachable inside\n"
            "icmp deny any echo inside\n"
        )
    )
    assert cfg.icmp_permits("10.1.1.5", "unreachable", "inside")
    assert not cfg.icmp_permits("10.1.1.80", "unreachable", "inside")
    assert cfg.icmp_permits("10.2.0.1", "unreachable", "inside")
    assert cfg.icmp_permits("10.1.1.80", "unreachable", "outside")
    assert cfg.icmp_permits("10.1.1.80", "time-exceeded", "inside")
    assert not parse_config(_cfg("icmp deny any inside\n")).icmp_permits(
        "192.0.2.1", "unreachable", "inside"
    )
    assert parse_config(EXAMPLE.read_text()).icmp_permits("10.1.1.80", "unreachable", "inside")


def test_icmp_command_live_on_the_console() -> None:
    store = ConfigStore(parse_config(EXAMPLE.read_text()))
    console = AdminConsole(store, privileged=True)
    assert console.feed("configure terminal") == []
    assert console.feed("icmp deny any unreachable inside") == []
    assert store.drain_events() == [IcmpRulesChanged()]
    assert not store.config.icmp_permits("10.1.1.80", "unreachable", "inside")
    assert console.feed("icmp deny any unreachable inside") == []  # no duplicate
    assert len(store.config.icmp_rules) == 1
    for bad in (
        "icmp allow any inside",
        "icmp deny any unreachable nosuchif",
        "icmp deny host inside",
        "icmp deny 10.0.0.0 255.0.255.0 inside",
        "icmp deny any 256 inside",
    ):
        out = console.feed(bad)
        assert out[-1] == "ERROR: % Invalid input detected at '^' marker.", bad
    assert console.feed("no icmp deny any unreachable inside") == []
    assert store.config.icmp_rules == ()
    assert store.drain_events() == [IcmpRulesChanged()]
