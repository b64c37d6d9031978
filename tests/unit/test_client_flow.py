"""The client-side flow model (``tunnelswarm.client.flow``) against the mock ASA's inside
network (``tunnelswarm.asa.inside.InsideNetwork``), in process and in virtual time.

:class:`Tunnel` stands in for the ASA: packets the client's :class:`VirtualAdapter` sends
reach the inside network after a one-way delay; what the inside hosts send back crosses
a tunnel of adjustable MTU that drops DF packets too big for it and answers the inside
sender with ICMP 3/4 (``icmp_frag_needed``) — or not, a black hole — and fragments the
rest (``fragment_ipv4``): packets without DF always, DF packets too with
``df_bit_ignore`` (``anyconnect ssl df-bit-ignore enable``). Every test runs on
pytest-trio's ``autojump_clock`` and is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from tunnelswarm._core import FlowReceiver, fragment_ipv4, ipv4_inspect, parse_tcp
from tunnelswarm.asa.inside import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    FlowParams,
    InsideNetwork,
    http_request,
    icmp_frag_needed,
    response_bytes,
)
from tunnelswarm.client.adapter import VirtualAdapter
from tunnelswarm.client.flow import SLOW_FACTOR, FlowResult, classify, fetch
from tunnelswarm.errors import ConfigError, LocalProtocolError

CLIENT = "10.10.10.10"
SERVER = "10.1.1.80"
ASA = "10.1.1.1"
DELAY = 0.005
GUARD = 600.0  # virtual seconds


class Tunnel:
    """Client adapter ↔ (delay, tunnel MTU: ICMP 3/4, black hole or fragments) ↔ inside
    network."""

    def __init__(
        self,
        nursery: trio.Nursery,
        net: InsideNetwork,
        *,
        tunnel_mtu: int = 1500,
        icmp: bool = True,
        adapter_mtu: int = 1418,
        df_bit_ignore: bool = False,
        reverse_fragments: bool = False,
    ) -> None:
        self.nursery = nursery
        self.net = net
        self.tunnel_mtu = tunnel_mtu
        self.icmp = icmp
        #: fragment DF packets too big for the tunnel instead of dropping them
        self.df_bit_ignore = df_bit_ignore
        #: send the fragments of a datagram last first
        self.reverse_fragments = reverse_fragments
        #: datagrams fragmented toward the client, and the fragments sent
        self.fragmented = 0
        self.fragments = 0
        self.adapter = VirtualAdapter(self.client_send, seed=1)
        self.adapter.configure(mtu=adapter_mtu, address=CLIENT)
        self.dropped = 0
        #: called with each client → inside packet; returning False loses it
        self.upstream_filter: Callable[[bytes], bool] = lambda p: True
        #: called with each inside → client packet (or fragment) that fits; returning
        #: False loses it
        self.downstream_filter: Callable[[bytes], bool] = lambda p: True
        self._wake = trio.Event()
        # one FIFO link per direction: a constant delay and no reordering (Trio may run
        # tasks that wake at the same instant in any order)
        self._up_tx, up_rx = trio.open_memory_channel[tuple[float, bytes]](math.inf)
        self._down_tx, down_rx = trio.open_memory_channel[tuple[float, bytes]](math.inf)
        nursery.start_soon(self._timers)
        nursery.start_soon(self._link, up_rx, self._to_inside)
        nursery.start_soon(self._link, down_rx, self.adapter.deliver)

    @staticmethod
    async def _link(
        rx: trio.MemoryReceiveChannel[tuple[float, bytes]], out: Callable[[bytes], None]
    ) -> None:
        async for due, packet in rx:
            await trio.sleep_until(due)
            out(packet)

    async def client_send(self, packet: bytes) -> bool:
        if self.upstream_filter(packet):
            self._up_tx.send_nowait((trio.current_time() + DELAY, packet))
        return True

    def _to_inside(self, packet: bytes) -> None:
        self._from_inside(self.net.handle_packet(trio.current_time(), packet))

    def _from_inside(self, deliveries: list[tuple[int, bytes]]) -> None:
        self._wake.set()
        for _, p in deliveries:
            hdr = ipv4_inspect(p)
            assert hdr is not None, "the inside network sent a broken packet"
            if len(p) > self.tunnel_mtu and hdr.df and not self.df_bit_ignore:
                self.dropped += 1
                if self.icmp:
                    msg = icmp_frag_needed(p, self.tunnel_mtu, ASA)
                    assert msg is not None
                    self._from_inside(self.net.handle_packet(trio.current_time(), msg))
                continue
            pieces = [p]
            if len(p) > self.tunnel_mtu:
                pieces = fragment_ipv4(p, self.tunnel_mtu)
                assert len(pieces) > 1
                self.fragmented += 1
                self.fragments += len(pieces)
                if self.reverse_fragments:
                    pieces.reverse()
            for piece in pieces:
                if self.downstream_filter(piece):
                    self._down_tx.send_nowait((trio.current_time() + DELAY, piece))

    async def _timers(self) -> None:
        while True:
            deadline = self.net.next_deadline()
            self._wake = trio.Event()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            self._from_inside(self.net.handle_timeout(trio.current_time()))


def inside(**kw: Any) -> InsideNetwork:
    return InsideNetwork(["10.1.1.0/24"], FlowParams(**kw), seed=3)


async def run(tunnel: Tunnel, nbytes: int, **kw: Any) -> FlowResult:
    with trio.fail_after(GUARD):
        return await fetch(tunnel.adapter, SERVER, nbytes, **kw)


# --------------------------------------------------------------------------- completed
async def test_clean_path_completes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = inside()
    t = Tunnel(nursery, net)
    r = await run(t, 100_000)
    assert r.outcome == "completed", r.reasons
    assert r.completed
    assert r.reasons == ()
    assert r.intact
    assert (r.received, r.nbytes, r.mss, r.state) == (100_000, 100_000, 1378, "complete")
    s = r.stats
    assert s["largest_payload"] == 1378
    assert s["full_segment"] == 1378
    assert s["data_segments"] == math.ceil(100_000 / 1378)
    assert (s["duplicates"], s["out_of_order"], s["short_segments"], s["syn_retransmits"]) == (
        0,
        0,
        0,
        0,
    )
    # a 10-segment window that every ACK slides: a handful of round trips (2 x DELAY)
    assert 4 * DELAY < r.elapsed < 20 * DELAY
    assert r.first_byte == pytest.approx(2 * DELAY, abs=1e-3)
    await trio.sleep(2 * DELAY)  # our ACK of the FIN reaches the server
    c = net.counters
    assert (c.flows_started, c.flows_completed, c.retransmits, c.timeouts) == (1, 1, 0, 0)
    assert net.active_flows == 0  # the server saw the ACK of its FIN
    assert r.adapter_drops == 0
    assert t.adapter.counters.tx_packets == 1 + (s["acks_sent"] or 0)


async def test_empty_response(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    r = await run(Tunnel(nursery, inside()), 0)
    assert (r.outcome, r.received, r.first_byte, r.intact) == ("completed", 0, None, True)


async def test_request_and_mss_on_the_wire(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    t = Tunnel(nursery, inside(), adapter_mtu=1300)
    sent: list[bytes] = []

    def keep(p: bytes) -> bool:
        sent.append(p)
        return True

    t.upstream_filter = keep
    r = await run(t, 5000, sport=40000, isn=123)
    syn = parse_tcp(sent[0])
    assert syn is not None
    assert (syn.flags, syn.mss, syn.seq, syn.sport, syn.dport) == (TCP_SYN, 1260, 123, 40000, 80)
    assert syn.payload == http_request(5000)
    assert (syn.src_ip, syn.dst_ip, syn.df) == (CLIENT, SERVER, True)
    acks = [parse_tcp(p) for p in sent[1:]]
    assert all(a is not None and a.flags == TCP_ACK for a in acks)
    last = acks[-1]
    assert last is not None
    assert last.seq == 123 + 1 + len(http_request(5000))
    assert r.outcome == "completed"
    assert r.sport == 40000
    assert r.stats["largest_payload"] == 1260


# --------------------------------------------------------------------------- slowed
async def test_icmp_too_big_completes_slowed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The tech-note case in miniature: adapter 1418 (MSS 1378), tunnel 1347 with ICMP."""
    net = inside()
    t = Tunnel(nursery, net, tunnel_mtu=1347)
    r = await run(t, 60_000)
    assert r.outcome == "slowed"
    assert r.intact
    # go-back-N from the unacknowledged SYN|ACK: it arrives twice, then smaller segments
    assert [x.split(":")[0] for x in r.reasons] == ["retransmissions", "smaller-segments"]
    assert r.stats["duplicates"] == 1
    assert r.stats["largest_payload"] == 1347 - 40
    assert r.stats["short_segments"] == math.ceil(60_000 / 1307) - 1
    assert t.dropped == 10  # the first window of 1418-byte segments
    await trio.sleep(2 * DELAY)
    c = net.counters
    assert (c.pmtu_reductions, c.timeouts, c.flows_completed) == (1, 0, 1)


async def test_lost_syn_is_retransmitted_and_slowed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    t = Tunnel(nursery, inside())
    lost: list[bytes] = []

    def lose_first(p: bytes) -> bool:
        if not lost:
            lost.append(p)
            return False
        return True

    t.upstream_filter = lose_first
    start = trio.current_time()
    r = await run(t, 10_000, syn_rto=0.5)
    assert r.outcome == "slowed"
    assert r.reasons == ("syn-retransmitted: 1 SYN retransmission(s)",)
    assert r.stats["syns_sent"] == 2
    assert r.elapsed == pytest.approx(0.5 + 2 * DELAY, abs=1e-3)  # one window: 8 segments
    assert trio.current_time() - start == pytest.approx(r.elapsed, abs=1e-3)


async def test_lost_segment_leaves_a_gap_and_is_slowed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = inside(rto=0.2)
    t = Tunnel(nursery, net)
    seen = 0

    def lose_third_data(p: bytes) -> bool:
        nonlocal seen
        seg = parse_tcp(p)
        if seg is not None and seg.payload:
            seen += 1
            return seen != 3
        return True

    t.downstream_filter = lose_third_data
    r = await run(t, 30_000)
    assert r.outcome == "slowed"
    assert r.intact
    assert any(x.startswith("gaps: ") for x in r.reasons)
    # the rest of the first window (7) and the 2 segments the ACKs of #1, #2 let out
    assert r.stats["out_of_order"] == 9
    assert net.counters.timeouts == 1
    assert net.counters.retransmits >= 8


async def test_expected_time_factor(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    t = Tunnel(nursery, inside())
    clean = await run(t, 20_000, expected=1.0)
    assert clean.outcome == "completed"
    slow = await run(t, 20_000, expected=clean.elapsed / (SLOW_FACTOR + 1))
    assert slow.outcome == "slowed"
    assert slow.reasons[0].startswith("took-longer: ")
    assert slow.sport != clean.sport  # a fresh ephemeral port per flow


# --------------------------------------------------------------------------- fragmented
@pytest.mark.parametrize(
    ("tunnel_mtu", "reverse", "fragmented", "fragments"),
    [
        # 43 full segments of 1418 bytes, and the last of 786 bytes (746 of data), which
        # only the 576-byte tunnel fragments
        (1347, False, 43, 2 * 43),
        (1347, True, 43, 2 * 43),
        (576, False, 44, 3 * 43 + 2),
        (576, True, 44, 3 * 43 + 2),
    ],
)
async def test_df_bit_ignore_fragments_and_the_client_reassembles(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    tunnel_mtu: int,
    reverse: bool,
    fragmented: int,
    fragments: int,
) -> None:
    """The tech note's fix 2: the ASA fragments the 1418-byte DF segments for the smaller
    tunnel; the adapter reassembles them (each fragment fits its MTU) and the flow
    completes at the full MSS, with no ICMP, no drop and no PMTUD."""
    net = inside()
    t = Tunnel(nursery, net, tunnel_mtu=tunnel_mtu, df_bit_ignore=True, reverse_fragments=reverse)
    r = await run(t, 60_000)
    assert r.outcome == "completed", r.reasons
    assert r.intact
    assert (t.dropped, t.fragmented, t.fragments) == (0, fragmented, fragments)
    assert r.stats["largest_payload"] == 1378
    assert r.stats["short_segments"] == 0
    c = t.adapter.counters
    assert (c.rx_fragments, c.rx_reassembled) == (fragments, fragmented)
    assert (c.rx_dropped_oversize, c.rx_not_ours, c.rx_malformed) == (0, 0, 0)
    assert t.adapter.reassembler.pending == 0
    await trio.sleep(2 * DELAY)
    assert (net.counters.pmtu_reductions, net.counters.retransmits) == (0, 0)


async def test_a_lost_fragment_is_a_gap_and_its_datagram_times_out(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """One fragment lost: its datagram never completes (held, then timed out by the
    reassembler 30 s later), the receiver sees a gap and the server's go-back-N fills it."""
    net = inside(rto=0.2)
    t = Tunnel(nursery, net, tunnel_mtu=1347, df_bit_ignore=True)
    later = 0

    def lose_the_third_tail(p: bytes) -> bool:
        nonlocal later
        h = ipv4_inspect(p)
        if h is not None and h.frag_offset > 0:
            later += 1
            return later != 3
        return True

    t.downstream_filter = lose_the_third_tail
    r = await run(t, 30_000)
    assert r.outcome == "slowed"
    assert r.intact
    assert any(x.startswith("gaps: ") for x in r.reasons)
    a = t.adapter
    assert a.counters.rx_reassembled == a.counters.rx_fragments // 2
    assert a.counters.rx_fragments == t.fragments - 1
    assert a.reassembler.pending == 1
    assert a.reassembler.stats()["timeouts"] == 0
    await trio.sleep(30.0)
    # expiry runs on the next delivery: no timer task
    assert a.reassembler.pending == 1
    report = await a.ping(SERVER, count=1, timeout=1.0)
    assert report.received == 1
    assert a.reassembler.pending == 0
    assert a.reassembler.stats()["timeouts"] == 1


async def test_big_pings_cross_in_fragments_with_df_bit_ignore(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The ping tap sees reassembled echo replies too; without df-bit-ignore the same
    DF replies are dropped by the tunnel."""
    t = Tunnel(nursery, inside(), tunnel_mtu=576, df_bit_ignore=True)
    report = await t.adapter.ping(SERVER, count=2, interval=0.01, timeout=1.0, payload_len=1200)
    assert report.received == 2
    c = t.adapter.counters
    assert (t.dropped, t.fragmented, t.fragments) == (0, 2, 6)
    assert (c.rx_fragments, c.rx_reassembled) == (6, 2)
    t.df_bit_ignore = False
    report = await t.adapter.ping(SERVER, count=1, timeout=1.0, payload_len=1200)
    assert (report.received, t.dropped) == (0, 1)


# --------------------------------------------------------------------------- stalled
async def test_black_hole_stalls_when_the_server_resets(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = inside(rto=0.1, retries=3)
    t = Tunnel(nursery, net, tunnel_mtu=1347, icmp=False)
    r = await run(t, 60_000)
    assert r.outcome == "stalled"
    assert not r.completed
    assert r.reasons == ("reset by the server",)
    assert (r.state, r.received) == ("reset", 0)
    assert net.counters.flows_aborted == 1
    # 0.1 + 0.2 + 0.4 + 0.8 of server RTOs after the SYN, plus the RST's one-way delay
    assert r.elapsed == pytest.approx(1.5 + 2 * DELAY, abs=0.02)


async def test_black_hole_stalls_at_the_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    t = Tunnel(nursery, inside(), tunnel_mtu=1347, icmp=False)
    r = await run(t, 60_000, timeout=5.0)
    assert r.outcome == "stalled"
    assert r.reasons == ("not completed within 5 s (established, 0 bytes in order)",)
    assert r.elapsed == pytest.approx(5.0)
    assert r.state == "established"


async def test_adapter_shrinking_mid_flow_drops_and_stalls(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The server keeps the MSS the SYN promised; once the adapter MTU is below the
    segments, the adapter drops them (counted) and the receiver never sees them."""
    t = Tunnel(nursery, inside(rto=0.1, retries=2))
    shrunk = False

    def shrink_after_first(p: bytes) -> bool:
        nonlocal shrunk
        seg = parse_tcp(p)
        if seg is not None and seg.payload and not shrunk:
            shrunk = True
            t.adapter.mtu = 1347
        return True

    t.downstream_filter = shrink_after_first
    r = await run(t, 30_000)
    assert r.outcome == "stalled"
    assert r.reasons == ("reset by the server",)
    assert r.received == 0
    assert r.adapter_drops > 10
    assert t.adapter.counters.rx_dropped_oversize == r.adapter_drops


async def test_no_answer_gives_up_after_the_syn_retries(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    t = Tunnel(nursery, inside())
    t.upstream_filter = lambda p: False
    r = await run(t, 1000, syn_rto=1.0, syn_retries=2)
    assert r.outcome == "stalled"
    assert r.reasons == ("no SYN|ACK after 3 SYNs",)
    assert r.state == "gave-up"
    assert r.elapsed == pytest.approx(1 + 2 + 4)


async def test_refused_request_stalls(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = inside()
    t = Tunnel(nursery, net)
    r = await run(t, 1000, port=8080)
    assert (r.outcome, r.state, r.reasons) == ("stalled", "reset", ("reset by the server",))
    assert net.counters.closed_port == 1
    big = await run(t, 10**9)  # more than FlowParams.max_bytes
    assert big.state == "reset"
    assert net.counters.bad_requests == 1


# --------------------------------------------------------------------------- adapter taps
async def test_ping_and_fetch_share_the_adapter(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = inside()
    t = Tunnel(nursery, net)
    results: list[FlowResult] = []

    async def one() -> None:
        results.append(await run(t, 50_000))

    async with trio.open_nursery() as n:
        n.start_soon(one)
        n.start_soon(one)
        report = await t.adapter.ping(SERVER, count=3, interval=0.01, timeout=1.0)
    assert report.received == 3
    assert [r.outcome for r in results] == ["completed", "completed"]
    assert results[0].sport != results[1].sport
    assert net.counters.flows_completed == 2
    c = t.adapter.counters
    assert (c.rx_not_ours, c.rx_malformed) == (0, 0)
    assert t.adapter._taps == []  # everything detached


async def test_deliver_dispatches_to_the_first_claiming_tap() -> None:
    sent: list[bytes] = []

    async def send(p: bytes) -> bool:
        sent.append(p)
        return True

    a = VirtualAdapter(send)
    a.configure(mtu=1400, address=CLIENT)
    one = FlowReceiver(CLIENT, SERVER, 40001, 80, 1360, 10, 1)
    two = FlowReceiver(CLIENT, SERVER, 40002, 80, 1360, 10, 1)
    ch1, ch2 = a.attach(one), a.attach(two)
    one.syn(0)
    two.syn(0)
    iss = 5000
    synack = _server_packet(40002, iss, 1 + 1 + len(http_request(10)), TCP_SYN | TCP_ACK)
    a.deliver(synack)
    assert two.state == "established"
    assert one.state == "syn-sent"
    assert ch2.receive_nowait().kind == "progress"
    with pytest.raises(trio.WouldBlock):
        ch1.receive_nowait()
    a.deliver(b"\x45junk")
    assert ch1.receive_nowait().kind == "malformed"  # the first tap judged it
    a.deliver(_server_packet(40003, iss, 0, TCP_ACK))
    a.deliver(b"\x00" * 1401)
    c = a.counters
    assert (c.rx_malformed, c.rx_not_ours, c.rx_dropped_oversize, c.rx_packets) == (1, 1, 1, 3)
    a.detach(one)
    a.detach(one)  # twice is harmless
    with pytest.raises(trio.EndOfChannel):
        ch1.receive_nowait()
    a.deliver(_server_packet(40002, iss + 1, 0, TCP_RST))
    assert ch2.receive_nowait().kind == "reset"
    ch2.close()
    a.deliver(_server_packet(40002, iss + 1, 0, TCP_FIN | TCP_ACK))  # no reader: no error


async def test_deliver_reassembles_before_the_taps() -> None:
    """Each fragment is one link packet checked against the MTU; the whole datagram may be
    larger than the MTU and is what the taps see."""

    async def send(p: bytes) -> bool:
        return True

    a = VirtualAdapter(send)
    a.configure(mtu=600, address=CLIENT)
    rx = FlowReceiver(CLIENT, SERVER, 40002, 80, 1360, 3000, 1)
    ch = a.attach(rx)
    rx.syn(0)
    iss = 5000
    a.deliver(_server_packet(40002, iss, 1 + 1 + len(http_request(3000)), TCP_SYN | TCP_ACK))
    assert ch.receive_nowait().kind == "progress"
    from tunnelswarm._core import tcp_segment

    big = tcp_segment(
        SERVER, CLIENT, 80, 40002, iss + 1, 0, TCP_ACK, response_bytes(0, 1360), ident=7
    )
    frags = fragment_ipv4(big, 600)
    assert len(big) == 1400
    assert len(frags) == 3
    for f in frags[:2]:
        a.deliver(f)
    with pytest.raises(trio.WouldBlock):
        ch.receive_nowait()  # held: the taps saw nothing yet
    a.deliver(frags[2])
    v = ch.receive_nowait()
    assert (v.kind, v.new_bytes) == ("progress", 1360)
    c = a.counters
    assert (c.rx_packets, c.rx_fragments, c.rx_reassembled, c.rx_dropped_oversize) == (4, 3, 1, 0)
    # a fragment over the MTU is dropped on the link: its datagram never completes
    again = tcp_segment(
        SERVER, CLIENT, 80, 40002, iss + 1361, 0, TCP_ACK, response_bytes(1360, 1360), ident=8
    )
    frags = fragment_ipv4(again, 900)
    assert [len(f) for f in frags] == [900, 520]
    for f in frags:
        a.deliver(f)
    assert (c.rx_dropped_oversize, c.rx_reassembled) == (1, 1)
    assert a.reassembler.pending == 1
    with pytest.raises(trio.WouldBlock):
        ch.receive_nowait()


def _server_packet(dport: int, seq: int, ack: int, flags: int) -> bytes:
    from tunnelswarm._core import tcp_segment

    return tcp_segment(SERVER, CLIENT, 80, dport, seq, ack, flags, mss=1460)


def test_ephemeral_ports_are_seeded_and_unique() -> None:
    async def send(p: bytes) -> bool:
        return True

    a, b = VirtualAdapter(send, seed=5), VirtualAdapter(send, seed=5)
    ports = [a.allocate_port() for _ in range(100)]
    assert ports == [b.allocate_port() for _ in range(100)]
    assert len(set(ports)) == 100
    assert all(49152 <= p <= 65535 for p in ports)
    a.release_port(ports[0])
    for _ in range(65536 - 49152 - 100):
        a.allocate_port()
    assert a.allocate_port() == ports[0]  # the only free one
    with pytest.raises(LocalProtocolError, match="no free ephemeral port"):
        a.allocate_port()


async def test_fetch_needs_an_address_and_a_sane_mtu() -> None:
    async def send(p: bytes) -> bool:
        return True

    a = VirtualAdapter(send)
    with pytest.raises(LocalProtocolError, match="no tunnel address"):
        await fetch(a, SERVER, 10)
    a.configure(mtu=40, address=CLIENT)
    with pytest.raises(LocalProtocolError, match="MTU 40"):
        await fetch(a, SERVER, 10)
    a.configure(mtu=1400, address=CLIENT)
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        await fetch(a, "nowhere", 10)
    assert a._ports == set()  # the port went back


def test_classify_wording() -> None:
    base: dict[str, int | None] = {"syns_sent": 1, "bytes": 0}
    assert classify("syn-sent", base, timeout=2.5) == (
        "stalled",
        ("not completed within 2.5 s (syn-sent, 0 bytes in order)",),
    )
    assert classify("established", base)[1] == ("not completed (established, 0 bytes in order)",)
    done = {**base, "completed_at_us": 3_000_000, "syn_at_us": 1_000_000}
    assert classify("complete", done) == ("completed", ())
    assert classify("complete", done, expected=1.0) == ("completed", ())
    outcome, reasons = classify("complete", done, expected=0.5)
    assert outcome == "slowed"
    assert reasons == ("took-longer: 2.000 s > 3 x the expected 0.5 s",)
    both = {**done, "duplicates": 2, "short_segments": 1, "full_segment": 1378}
    _, reasons = classify("complete", both)
    assert [r.split(":")[0] for r in reasons] == ["retransmissions", "smaller-segments"]


async def test_response_bytes_match_the_receivers_pattern(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The server's payload generator and the receiver's check agree (a wrong byte would be
    a payload error); spot-check the generator itself."""
    r = await run(Tunnel(nursery, inside()), 70_000)
    assert r.stats["payload_errors"] == 0
    assert response_bytes(250, 10) == bytes([250, 251, 252, 253, 254, 255, 0, 1, 2, 3])
