"""The in-memory network and the impairments, in virtual time."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from tunnelswarm.drive.datagram import udp_opener
from tunnelswarm.drive.impair import (
    LinkImpairments,
    impaired_datagram_opener,
    impaired_stream_opener,
)
from tunnelswarm.drive.memnet import MemNetwork
from tunnelswarm.drive.stream import tcp_opener

HEADEND = "172.16.11.1"
CLIENT = "192.0.2.10"


def _net(**imp: object) -> MemNetwork:
    li = LinkImpairments(rng=random.Random(1))
    for k, v in imp.items():
        li.set(k, v)
    net = MemNetwork(li)
    net.add_headend(HEADEND)
    return net


async def test_stream_round_trip_with_latency(autojump_clock: trio.testing.MockClock) -> None:
    net = _net(latency=0.05)
    lst = net.listen(HEADEND, 443)
    t0 = trio.current_time()
    client = await net.open_stream(CLIENT, HEADEND, 443)
    assert trio.current_time() - t0 == pytest.approx(0.1)  # SYN and SYN-ACK
    server = await lst.accept()
    assert server.getpeername() == client.local
    await client.send_all(b"hello ")
    await client.send_all(b"world")
    t1 = trio.current_time()
    assert await server.receive_some() == b"hello world"
    assert trio.current_time() - t1 == pytest.approx(0.05)
    await client.aclose()
    assert await server.receive_some() == b""


async def test_receive_limit_and_refused(autojump_clock: trio.testing.MockClock) -> None:
    net = _net()
    lst = net.listen(HEADEND, 443)
    c = await net.open_stream(CLIENT, HEADEND, 443)
    s = await lst.accept()
    await c.send_all(b"abcdef")
    assert await s.receive_some(4) == b"abcd"
    assert await s.receive_some(4) == b"ef"
    with pytest.raises(ConnectionRefusedError):
        await net.open_stream(CLIENT, HEADEND, 444)
    assert net.counters.streams_refused == 1
    with pytest.raises(OSError, match="already in use"):
        net.listen(HEADEND, 443)


async def test_cut_resets_both_ends(autojump_clock: trio.testing.MockClock) -> None:
    net = _net()
    lst = net.listen(HEADEND, 443)
    c = await net.open_stream(CLIENT, HEADEND, 443)
    s = await lst.accept()
    async with trio.open_nursery() as n:

        async def reader() -> None:
            with pytest.raises(trio.BrokenResourceError):
                await s.receive_some()

        n.start_soon(reader)
        await trio.sleep(1)
        net.impairments.cut_tcp()
    with pytest.raises(trio.BrokenResourceError):
        await c.send_all(b"x")
    assert net.impairments.counters.streams_reset == 1
    # a new connection works
    c2 = await net.open_stream(CLIENT, HEADEND, 443)
    s2 = await lst.accept()
    await c2.send_all(b"ok")
    assert await s2.receive_some() == b"ok"


async def test_pause_holds_stream_bytes(autojump_clock: trio.testing.MockClock) -> None:
    net = _net()
    lst = net.listen(HEADEND, 443)
    c = await net.open_stream(CLIENT, HEADEND, 443)
    s = await lst.accept()
    net.impairments.set("pause_headend", True)
    await c.send_all(b"late")
    t0 = trio.current_time()
    async with trio.open_nursery() as n:
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await s.receive_some())

        n.start_soon(reader)
        await trio.sleep(30)
        assert got == []
        net.impairments.set("pause_headend", False)
    assert got == [b"late"]
    assert trio.current_time() - t0 == pytest.approx(30)


async def test_datagrams_block_port_mtu_loss(autojump_clock: trio.testing.MockClock) -> None:
    net = _net()
    srv = net.bind_udp(HEADEND, 443)
    ch = await net.datagram_opener(CLIENT)(HEADEND, 443)
    await ch.send(b"a" * 100)
    data, src = await srv.recvfrom()
    assert data == b"a" * 100
    srv.sendto(b"reply", src)
    assert await ch.recv() == b"reply"
    imp = net.impairments
    imp.set("block_udp", 443)
    await ch.send(b"x")
    imp.set("block_udp", 444)  # another port: passes
    await ch.send(b"y")
    assert (await srv.recvfrom())[0] == b"y"
    imp.set("block_udp", False)
    imp.set("path_mtu", 1400)
    await ch.send(b"z" * 1373)  # 1401 bytes on the wire
    await ch.send(b"z" * 1372)
    assert len((await srv.recvfrom())[0]) == 1372
    imp.set("path_mtu", 0)
    imp.set("loss", 0.5)
    for _ in range(200):
        await ch.send(b"l")
    got = 0
    with trio.move_on_after(1):
        while True:
            await srv.recvfrom()
            got += 1
    assert 60 < got < 140
    c = imp.counters
    assert (c.udp_blocked, c.udp_too_big) == (1, 1)
    assert c.udp_lost == 200 - got


async def test_datagram_to_nowhere_is_counted(autojump_clock: trio.testing.MockClock) -> None:
    net = _net()
    ch = await net.datagram_opener(CLIENT)(HEADEND, 9)
    await ch.send(b"?")
    assert net.counters.udp_no_port == 1


async def test_same_seed_same_losses(autojump_clock: trio.testing.MockClock) -> None:
    def run() -> list[bool]:
        imp = LinkImpairments(loss=0.3, rng=random.Random(42))
        return [isinstance(imp.datagram(10, 443), str) for _ in range(100)]

    assert run() == run()


async def test_real_stream_wrapper_cut_resets() -> None:
    imp = LinkImpairments(rng=random.Random(3))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(10):
        s = await impaired_stream_opener(tcp_opener, imp)("127.0.0.1", port)
        peer = await listeners[0].accept()
        async with s, peer:
            await s.send_all(b"hi")
            assert await peer.receive_some(10) == b"hi"
            imp.cut_tcp()
            with pytest.raises(trio.BrokenResourceError):
                await s.send_all(b"more")
            # the peer sees a reset, not an orderly close
            with pytest.raises(trio.BrokenResourceError):
                await peer.receive_some(10)
    assert imp.counters.streams_reset == 1
    for lst in listeners:
        await lst.aclose()


async def test_real_datagram_wrapper_blocks() -> None:
    imp = LinkImpairments(rng=random.Random(3))
    udp = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    with udp, trio.fail_after(10):
        await udp.bind(("127.0.0.1", 0))
        ch = await impaired_datagram_opener(udp_opener, imp)("127.0.0.1", udp.getsockname()[1])
        try:
            imp.set("block_udp", True)
            await ch.send(b"dropped")
            imp.set("block_udp", False)
            await ch.send(b"passes")
            data, _ = await udp.recvfrom(100)
            assert data == b"passes"
        finally:
            ch.close()
    assert imp.counters.udp_blocked == 1
