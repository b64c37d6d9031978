"""Property tests of the mock ASA's inside network (``tunnelswarm.asa.inside``).

* Any bytes, and any damage to valid packets, are dropped and counted or answered with
  well-formed packets; nothing raises.
* A flow over a path with any MTU from 68 to 1500 and working ICMP 3/4 always completes
  with the right bytes, and after the one PMTU reduction no packet exceeds the path MTU.
* With random loss in both directions a flow ends exactly once (completed or aborted),
  with the right bytes whenever the client saw the whole response, and leaves no state.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunnelswarm._core import Prober
from tunnelswarm.asa.inside import (
    DEFAULT_MSS,
    MIN_CLIENT_MSS,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    FlowParams,
    InsideNetwork,
    http_request,
    icmp_frag_needed,
    internet_checksum,
    parse_tcp,
    response_bytes,
    tcp_segment,
)

CLIENT, SERVER, ASA = "10.10.10.10", "10.1.1.80", "10.1.1.1"
CPORT, ISN = 40000, 123456

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def network(retries: int = 6) -> InsideNetwork:
    params = FlowParams(rto=0.05, max_rto=0.4, retries=retries)
    return InsideNetwork(["10.1.1.0/24"], params, seed=1)


def assert_well_formed(packet: bytes) -> None:
    assert len(packet) >= 20
    assert packet[0] == 0x45
    assert int.from_bytes(packet[2:4], "big") == len(packet)
    assert internet_checksum(packet[:20]) == 0
    if packet[9] == 6:
        assert parse_tcp(packet) is not None
    else:
        assert internet_checksum(packet[20:]) == 0 or packet[9] == 17


def valid_packets() -> list[bytes]:
    syn = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN, 0, TCP_SYN, http_request(3000), mss=1378)
    n = network()
    out = n.handle_packet(0.0, syn)
    big = out[1][1]
    icmp = icmp_frag_needed(big, 1000, ASA)
    assert icmp is not None
    ack = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN + 1, 5, TCP_ACK)
    _, ping = Prober(CLIENT, SERVER).build(0)
    _, udp = Prober(CLIENT, SERVER, kind="udp").build(0)
    return [syn, icmp, ack, bytes(ping), bytes(udp)]


VALID = valid_packets()


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_never_raise(data: bytes) -> None:
    n = network()
    for _, p in n.handle_packet(0.0, data):
        assert_well_formed(p)
    assert n.counters.received == 1


@SETTINGS
@given(
    st.sampled_from(range(len(VALID))),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
    st.integers(0, 2000),
)
def test_damaged_packets_never_raise(which: int, flips: list[tuple[int, int]], cut: int) -> None:
    n = network()
    n.handle_packet(0.0, VALID[0])  # a live flow for the ACK / ICMP to hit
    p = bytearray(VALID[which])
    for at, value in flips:
        if p:
            p[at % len(p)] = value
    for _, out in n.handle_packet(0.1, bytes(p[: cut or None])):
        assert_well_formed(out)
    for _, out in n.handle_timeout(10.0):
        assert_well_formed(out)


@SETTINGS
@given(
    st.integers(0, 40),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 0x3F),
    st.binary(max_size=64),
    st.one_of(st.none(), st.integers(0, 65535)),
    st.booleans(),
)
def test_tcp_segment_round_trips(
    port: int, seq: int, ack: int, flags: int, payload: bytes, mss: int | None, df: bool
) -> None:
    p = tcp_segment(CLIENT, SERVER, port, 80, seq, ack, flags, payload, mss=mss, df=df)
    s = parse_tcp(p)
    assert s is not None
    assert (s.src_ip, s.dst_ip, s.sport, s.dport) == (CLIENT, SERVER, port, 80)
    assert (s.seq, s.ack, s.flags, s.payload, s.mss, s.df) == (seq, ack, flags, payload, mss, df)


@dataclass
class Outcome:
    data: bytearray = field(default_factory=bytearray)
    fin: bool = False
    #: payload sizes of the delivered data segments without FIN
    sizes: set[int] = field(default_factory=set)
    #: DF packets the bottleneck dropped
    drops: int = 0


def drive(
    n: InsideNetwork,
    size: int,
    mss: int | None,
    path_mtu: int,
    *,
    loss: float = 0.0,
    seed: int = 0,
    limit: float = 120.0,
) -> Outcome:
    """Client ↔ DF-dropping bottleneck (ICMP 3/4 back to the server) ↔ inside server."""
    rng = random.Random(seed)
    heap: list[tuple[float, int, str, bytes]] = []
    order = itertools.count()
    req = http_request(size)
    out = Outcome()
    rcv_nxt: int | None = None
    delay = 0.001

    def lost() -> bool:
        return loss > 0 and rng.random() < loss

    def toward_client(t: float, sent: list[tuple[int, bytes]]) -> None:
        for _, p in sent:
            assert_well_formed(p)
            if len(p) > path_mtu and p[6] & 0x40:
                out.drops += 1
                msg = icmp_frag_needed(p, path_mtu, ASA)
                assert msg is not None
                heapq.heappush(heap, (t + delay, next(order), "server", msg))
            elif not lost():
                heapq.heappush(heap, (t + delay, next(order), "client", p))

    syn = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN, 0, TCP_SYN, req, mss=mss)
    toward_client(0.0, n.handle_packet(0.0, syn))
    t = 0.0
    while t < limit:
        deadline = n.next_deadline()
        if heap and (deadline is None or heap[0][0] <= deadline):
            t, _, where, p = heapq.heappop(heap)
            if where == "server":
                toward_client(t, n.handle_packet(t, p))
                continue
            s = parse_tcp(p)
            assert s is not None
            if s.payload and not s.flags & TCP_FIN:
                out.sizes.add(len(s.payload))
            if s.flags & TCP_RST:
                continue
            if s.flags & TCP_SYN:
                rcv_nxt = (s.seq + 1) % 2**32 if rcv_nxt is None else rcv_nxt
            elif rcv_nxt is not None and s.seq == rcv_nxt:
                out.data += s.payload
                rcv_nxt = (rcv_nxt + len(s.payload) + (1 if s.flags & TCP_FIN else 0)) % 2**32
                out.fin = out.fin or bool(s.flags & TCP_FIN)
            if rcv_nxt is not None and not lost():
                a = tcp_segment(CLIENT, SERVER, CPORT, 80, ISN + 1 + len(req), rcv_nxt, TCP_ACK)
                heapq.heappush(heap, (t + delay, next(order), "server", a))
        elif deadline is not None:
            t = deadline
            toward_client(t, n.handle_timeout(t))
        else:
            break
    return out


@SETTINGS
@given(
    st.integers(0, 20_000),
    st.one_of(st.none(), st.integers(1, 9000)),
    st.integers(68, 1500),
)
def test_flows_complete_over_any_path_mtu_with_icmp(
    size: int, mss: int | None, path_mtu: int
) -> None:
    n = network()
    got = drive(n, size, mss, path_mtu)
    assert got.fin
    assert bytes(got.data) == response_bytes(0, size)
    c = n.counters
    assert (c.flows_completed, c.flows_aborted) == (1, 0)
    client_mss = max(MIN_CLIENT_MSS, DEFAULT_MSS if mss is None else mss)
    first = min(client_mss, 1500 - 40)
    too_big = min(first, size) + 40 > path_mtu
    # one reduction, learnt from the first window alone; then every segment is cut to fit
    assert c.pmtu_reductions == (1 if too_big else 0)
    assert got.drops <= (n.params.window if too_big else 0)
    assert c.icmp_too_big_ignored == max(0, got.drops - 1)
    assert c.timeouts == 0
    assert got.sizes <= {min(client_mss, path_mtu - 40) if too_big else first}
    assert n.active_flows == 0
    assert n.next_deadline() is None


@SETTINGS
@given(
    st.integers(0, 20_000),
    st.integers(200, 1500),
    st.floats(0.0, 0.4),
    st.integers(0, 2**32 - 1),
)
def test_lossy_flows_end_exactly_once(size: int, path_mtu: int, loss: float, seed: int) -> None:
    n = network(retries=4)
    got = drive(n, size, 1378, path_mtu, loss=loss, seed=seed)
    c = n.counters
    assert c.flows_completed + c.flows_aborted == 1
    if c.flows_completed:
        assert got.fin
    if got.fin:
        assert bytes(got.data) == response_bytes(0, size)
    else:
        assert bytes(got.data) == response_bytes(0, len(got.data))
    assert n.active_flows == 0
    assert n.next_deadline() is None
