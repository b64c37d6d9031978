"""The try-first sockets: DirectSocketStream (TCP) and UdpChannel (UDP) on real loopback
sockets — data in order, nothing lost to a cancelled receive, closing wakes a waiting
reader, a reader with data always ready still lets other tasks run, and the impairments'
TCP cut wakes a reader blocked on the socket it resets."""

from __future__ import annotations

import socket

import pytest
import trio

from tunnelswarm.drive.datagram import udp_opener
from tunnelswarm.drive.impair import LinkImpairments, impaired_stream_opener
from tunnelswarm.drive.stream import YIELD_EVERY, DirectSocketStream, tcp_opener


async def _pair() -> tuple[DirectSocketStream, socket.socket, socket.socket]:
    """A DirectSocketStream from tcp_opener and the accepted peer socket (blocking)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    stream = await tcp_opener("127.0.0.1", port)
    assert isinstance(stream, DirectSocketStream)
    peer, _ = lst.accept()
    return stream, peer, lst


async def test_data_both_ways_in_order_and_nodelay() -> None:
    stream, peer, lst = await _pair()
    with lst, peer:
        assert stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        for i in range(50):
            await stream.send_all(b"%d;" % i)
        got = b""
        while len(got) < len(b"".join(b"%d;" % i for i in range(50))):
            got += peer.recv(4096)
        assert got == b"".join(b"%d;" % i for i in range(50))
        peer.sendall(b"hello")
        assert await stream.receive_some(100) == b"hello"
        peer.shutdown(socket.SHUT_WR)
        assert await stream.receive_some(100) == b""  # EOF
        await stream.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await stream.receive_some(10)


async def test_a_cancelled_receive_loses_nothing() -> None:
    stream, peer, lst = await _pair()
    with lst, peer:
        with trio.move_on_after(0.05) as scope:
            await stream.receive_some(100)
        assert scope.cancelled_caught
        peer.sendall(b"after")
        # already cancelled before it starts: raises without reading anything
        with trio.CancelScope() as cs:
            cs.cancel()
            await stream.receive_some(100)
        assert await stream.receive_some(100) == b"after"
        await stream.aclose()


async def test_closing_wakes_a_waiting_reader() -> None:
    stream, peer, lst = await _pair()
    with lst, peer:
        seen: list[BaseException] = []

        async def reader() -> None:
            try:
                await stream.receive_some(100)
            except trio.ClosedResourceError as e:
                seen.append(e)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.sleep(0.05)
            await stream.aclose()
        assert len(seen) == 1


async def test_a_reader_with_data_always_ready_lets_others_run() -> None:
    stream, peer, lst = await _pair()
    with lst, peer:
        peer.sendall(b"x" * 200_000)  # more reads ready than YIELD_EVERY
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()
            before = ticks
            for _ in range(4 * YIELD_EVERY):
                await stream.receive_some(1000)
            assert ticks - before >= 3  # the reader yielded every YIELD_EVERY reads
            nursery.cancel_scope.cancel()
        await stream.aclose()


async def test_a_tcp_cut_wakes_the_blocked_reader() -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    imp = LinkImpairments()
    opener = impaired_stream_opener(tcp_opener, imp)
    stream = await opener("127.0.0.1", lst.getsockname()[1])
    peer, _ = lst.accept()
    with lst, peer:
        errors: list[BaseException] = []

        async def reader() -> None:
            try:
                await stream.receive_some(100)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
                errors.append(e)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.sleep(0.05)
                imp.cut_tcp()
        assert len(errors) == 1
        peer.settimeout(5)
        with pytest.raises(ConnectionResetError):  # linger 0: the peer sees a reset
            peer.recv(10)
        await stream.aclose()


async def test_udp_channel_round_trip_and_cancel_safety() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with server:
        server.bind(("127.0.0.1", 0))
        chan = await udp_opener("127.0.0.1", server.getsockname()[1])
        try:
            await chan.send(b"ping")
            data, addr = server.recvfrom(100)
            assert data == b"ping"
            with trio.move_on_after(0.05) as scope:
                await chan.recv()
            assert scope.cancelled_caught
            server.sendto(b"pong", addr)
            assert await chan.recv() == b"pong"
        finally:
            chan.close()
