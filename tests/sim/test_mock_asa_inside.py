"""The mock ASA's inside network and MTU enforcement, end to end over loopback.

Our client (openconnect 9.01 profile) logs in to the mock running ``examples/asa-9.1.cfg``
and sends raw IPv4 packets through its tunnel (``session.adapter.send``); every packet the
tunnel delivers to the client is captured by wrapping ``VirtualAdapter.deliver``. The test
plays the client side of the web-server flow model (``tunnelswarm.asa.inside``): SYN with
an MSS option and ``GET /<n>``, then cumulative ACKs, keeping no out-of-order data.

The ICMP 3/4 the ASA sends goes to the inside sender, not to the client, so the tests look
at the inside model's counters, the ASA's counters and syslog, and at the segments the
client receives. Every test is bounded by ``trio.fail_after`` in real seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from tunnelswarm._core import Prober
from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.inside import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    FlowParams,
    TcpSegment,
    http_request,
    parse_tcp,
    response_bytes,
    tcp_segment,
)
from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.client.adapter import VirtualAdapter
from tunnelswarm.client.session import ClientOptions, ClientSession, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"
WEB = "10.1.1.80"  # an emulated host of the inside network 10.1.1.0/24
GUARD = 30.0
ISN = 777


async def start_asa(nursery: trio.Nursery, tmp_path: Path, **kw: Any) -> MockAsaInfo:
    cfg = MockAsaConfig(
        asa=parse_config(EXAMPLE.read_text()),
        port=0,
        state_dir=tmp_path / "state",
        admin=("127.0.0.1", 0),
        **kw,
    )
    info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
    return info


def options(info: MockAsaInfo, **kw: Any) -> ClientOptions:
    base: dict[str, Any] = {
        "url": info.url,
        "user": "test",
        "password": "test",
        "servercert": (info.pin,),
        "profile": replace(OPENCONNECT_9_01, dtls_ciphers="AES256-SHA", dtls12_ciphers=""),
        "reconnect_timeout": 5.0,
        "dtls_handshake_timeout": 2.0,
        "hostname": "laptop",
    }
    base.update(kw)
    return ClientOptions(**base)


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every packet any client adapter is handed by its tunnel (CSTP or DTLS)."""
    got: list[bytes] = []
    original = VirtualAdapter.deliver

    def deliver(self: VirtualAdapter, packet: bytes) -> None:
        got.append(bytes(packet))
        original(self, packet)

    monkeypatch.setattr(VirtualAdapter, "deliver", deliver)
    return got


@dataclass
class Fetch:
    data: bytearray = field(default_factory=bytearray)
    segments: list[TcpSegment] = field(default_factory=list)
    done: bool = False
    reset: bool = False


async def fetch(
    session: ClientSession,
    delivered: list[bytes],
    size: int,
    *,
    mss: int,
    cport: int = 40000,
    timeout: float = 10.0,
) -> Fetch:
    """The client side of one flow: SYN + GET, cumulative ACKs, until FIN, RST or timeout."""
    assert session.params is not None
    me = session.params.address
    req = http_request(size)
    out = Fetch()
    seen = len(delivered)
    syn = tcp_segment(me, WEB, cport, 80, ISN, 0, TCP_SYN, req, mss=mss)
    assert await session.adapter.send(syn)
    rcv_nxt: int | None = None
    with trio.move_on_after(timeout):
        while True:
            while seen < len(delivered):
                s = parse_tcp(delivered[seen])
                seen += 1
                if s is None or (s.sport, s.dport) != (80, cport):
                    continue
                out.segments.append(s)
                if s.flags & TCP_RST:
                    out.reset = True
                    return out
                if s.flags & TCP_SYN:
                    rcv_nxt = (s.seq + 1) % 2**32 if rcv_nxt is None else rcv_nxt
                elif rcv_nxt is not None and s.seq == rcv_nxt:
                    out.data += s.payload
                    fin = 1 if s.flags & TCP_FIN else 0
                    rcv_nxt = (rcv_nxt + len(s.payload) + fin) % 2**32
                    out.done = bool(fin)
                if rcv_nxt is not None:
                    a = tcp_segment(me, WEB, cport, 80, ISN + 1 + len(req), rcv_nxt, TCP_ACK)
                    await session.adapter.send(a)
                if out.done:
                    return out
            await trio.sleep(0.002)
    return out


class Admin:
    """The mock's TCP admin console: one line in, the lines up to the next prompt out."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def until_prompt(self) -> str:
        while not re.search(rb"(?:[>#]|Password:) $", self.buf):
            data = await self.stream.receive_some(65536)
            assert data, "admin console closed"
            self.buf += data
        text, self.buf = self.buf.decode(), b""
        return text

    async def cmd(self, line: str) -> str:
        await self.stream.send_all(line.encode() + b"\n")
        return await self.until_prompt()


def log_text(info: MockAsaInfo) -> str:
    return "\n".join(info.asa.syslog_buffer.lines())


# --------------------------------------------------------------------------- PMTUD
async def test_tls_channel_drops_big_segments_and_icmp_makes_the_server_shrink(
    nursery: trio.Nursery, tmp_path: Path, delivered: list[bytes]
) -> None:
    """The tech-note case: the client advertises MSS 1378 (a DTLS-sized adapter) but the
    traffic goes over TLS (threshold 1347): the first window of 1418-byte DF segments is
    dropped with 722036, the ICMP 3/4 (MTU 1347) reaches the inside server, which resends
    with 1307-byte segments, and the flow completes."""
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info, no_dtls=True)) as session:
            assert session.params is not None
            assert session.params.cstp_mtu == 1347
            got = await fetch(session, delivered, 50_000, mss=1378)
        assert got.done
        assert bytes(got.data) == response_bytes(0, 50_000)
        data = [s for s in got.segments if s.payload]
        assert max(s.length for s in got.segments) == 1347
        assert {len(s.payload) for s in data[:-1]} == {1347 - 40}
        assert all(s.df for s in got.segments)
        c = asa.inside.counters
        assert (c.flows_started, c.flows_completed, c.flows_aborted) == (1, 1, 0)
        assert c.pmtu_reductions == 1
        assert c.icmp_too_big_ignored == 9  # the rest of the first window
        assert c.timeouts == 0
        assert asa.drops["mp-svc-no-fragment"] == 10
        assert asa.forwarding.icmp_unreachable_sent == 10
        assert asa.forwarding.icmp_unreachable_blocked == 0
        lines = log_text(info)
        assert lines.count("Transmitting large packet 1418 (threshold 1347).") == 10
        assert (
            "%ASA-6-602101: PMTU-D packet 1418 bytes greater than effective mtu 1347, "
            f"dest_addr=10.10.10.10, src_addr={WEB}, prot=tcp"
        ) in lines


async def test_dtls_channel_carries_the_mss_sized_segments(
    nursery: trio.Nursery, tmp_path: Path, delivered: list[bytes]
) -> None:
    """Same request with DTLS up (X-DTLS-MTU 1418): nothing is too big, no ICMP."""
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info)) as session:
            with trio.fail_after(5):
                while not (session.dtls is not None and session.dtls.up):
                    await trio.sleep(0.02)
            got = await fetch(session, delivered, 30_000, mss=1378)
        assert got.done
        assert bytes(got.data) == response_bytes(0, 30_000)
        assert max(s.length for s in got.segments) == 1418
        assert asa.inside.counters.pmtu_reductions == 0
        assert asa.drops["mp-svc-no-fragment"] == 0
        assert "722036" not in log_text(info)


async def test_icmp_deny_on_inside_black_holes_the_flow_until_it_is_removed(
    nursery: trio.Nursery, tmp_path: Path, delivered: list[bytes]
) -> None:
    """``icmp deny any unreachable inside`` typed on the admin console: the ASA still drops
    the big DF segments (722036) but sends no ICMP 3/4, so the server retransmits the same
    sizes until it gives up and resets the flow. ``no icmp …`` brings PMTUD back."""
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path, inside_flows=FlowParams(rto=0.1, retries=3))
        asa = info.asa
        assert info.admin_port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", info.admin_port)
        async with stream:
            admin = Admin(stream)
            await admin.until_prompt()
            for line in ("enable", "", "configure terminal", "icmp deny any unreachable inside"):
                out = await admin.cmd(line)
                assert "ERROR" not in out, (line, out)
            running = await admin.cmd("show running-config")
            assert "icmp deny any unreachable inside" in running
            async with open_client(options(info, no_dtls=True)) as session:
                stalled = await fetch(session, delivered, 50_000, mss=1378, cport=40001)
                assert stalled.reset
                assert not stalled.data
                assert "ERROR" not in await admin.cmd("no icmp deny any unreachable inside")
                healed = await fetch(session, delivered, 20_000, mss=1378, cport=40002)
        assert healed.done
        assert bytes(healed.data) == response_bytes(0, 20_000)
        c = asa.inside.counters
        assert (c.flows_started, c.flows_completed, c.flows_aborted) == (2, 1, 1)
        assert c.timeouts == 4
        assert c.pmtu_reductions == 1  # the second flow only
        f = asa.forwarding
        assert f.icmp_unreachable_blocked == 10 * 4  # first window + 3 go-back-N rounds
        assert f.icmp_unreachable_sent == 10
        assert asa.drops["mp-svc-no-fragment"] == 50


# --------------------------------------------------------------------------- 722035 and echo
async def test_large_packet_from_the_client_logs_722035_and_is_forwarded(
    nursery: trio.Nursery, tmp_path: Path, delivered: list[bytes]
) -> None:
    """A 1400-byte UDP echo over TLS (threshold 1347) is logged as received large and still
    reaches the inside host; its DF-clear echo is fragmented on the way back, and the
    DF-set one is dropped with an ICMP 3/4 the inside host ignores (no TCP flow)."""
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info, no_dtls=True)) as session:
            p = session.params
            assert p is not None
            session.adapter.mtu = 1500  # the client sends bigger packets than the ASA allows
            _, pkt = Prober(
                p.address, WEB, kind="udp", payload_len=1372, dont_fragment=False
            ).build(0)
            assert len(pkt) == 1400
            assert await session.adapter.send(bytes(pkt))
            _, pkt = Prober(p.address, WEB, kind="udp", payload_len=1372).build(0)
            assert await session.adapter.send(bytes(pkt))
            _, stray = Prober(p.address, "192.0.2.1").build(0)
            assert await session.adapter.send(bytes(stray))
            with trio.fail_after(5):
                while not any(q[12:16] == bytes([10, 1, 1, 80]) for q in delivered):
                    await trio.sleep(0.01)
                await trio.sleep(0.1)
        frags = [q for q in delivered if q[12:16] == bytes([10, 1, 1, 80])]
        assert len(frags) == 2
        assert [int.from_bytes(q[6:8], "big") & 0x2000 for q in frags] == [0x2000, 0]
        assert all(len(q) <= 1347 for q in frags)
        assert asa.forwarding.rx_large == 2
        lines = log_text(info)
        assert lines.count("Received large packet 1400 (threshold 1347).") == 2
        assert "%ASA-3-722035: Group <ac_users_group> User <test> IP <127.0.0.1>" in lines
        c = asa.inside.counters
        assert c.udp_echo == 2
        assert c.not_inside == 1
        assert c.icmp_too_big_ignored == 1
        assert asa.drops["mp-svc-no-fragment"] == 1
        assert asa.forwarding.icmp_unreachable_sent == 1
        assert f"dest_addr=10.10.10.10, src_addr={WEB}, prot=udp" in lines
