"""An in-memory IPv4 network for virtual-time runs: streams and datagrams between hosts.

Theory of operation
-------------------
A :class:`MemNetwork` joins named hosts (IPv4 address strings) with reliable byte
streams (TCP-like) and datagrams (UDP-like), all inside one Trio run, so that with
``trio.testing.MockClock(autojump_threshold=0)`` a ten-minute scenario runs in seconds
and, with the same seed, replays identically. Nothing here reads a clock but Trio's.

* **Streams**: :meth:`MemNetwork.listen` gives a :class:`MemListener` on (host, port);
  :meth:`MemNetwork.open_stream` connects to it (``ConnectionRefusedError`` when nothing
  listens) and returns a :class:`MemStream` pair end. Bytes written are delivered in
  order at ``now + latency``; the sender never blocks (the buffers are unbounded — the
  emulated peers read promptly). ``send_eof``/``aclose`` give the reader EOF; a reset
  (``cut_tcp``) makes both ends raise ``BrokenResourceError``.
* **Datagrams**: :meth:`MemNetwork.bind_udp` gives a :class:`MemUdpSocket` on (host, port;
  0 = an ephemeral port); ``sendto`` is synchronous (it schedules the delivery, like a
  kernel queueing a datagram) and ``recvfrom`` waits. A datagram to a port nobody bound
  is dropped and counted (``udp_no_port``). :meth:`MemNetwork.datagram_opener` adapts it
  to the client's ``DatagramOpener`` (a connected channel with a fresh source port).
* **Impairments**: traffic with a *headend host* at one end (:meth:`add_headend`) passes
  the network's :class:`~tunnelswarm.drive.impair.LinkImpairments` (block, path MTU,
  latency, seeded loss, pause, cut). Traffic between other hosts is perfect.

Addresses of stream ends are ``(host, port)`` tuples (``MemStream.peer`` / ``.local``),
which the mock ASA logs like a socket's ``getpeername()``.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import trio

from tunnelswarm.drive.datagram import DatagramChannel, DatagramOpener
from tunnelswarm.drive.impair import LinkImpairments
from tunnelswarm.drive.stream import Opener

__all__ = ["MemListener", "MemNetwork", "MemStream", "MemUdpSocket", "NetCounters"]

Addr = tuple[str, int]
EPHEMERAL_FIRST = 49152


@dataclass
class NetCounters:
    streams_opened: int = 0
    streams_refused: int = 0
    datagrams_sent: int = 0
    datagrams_delivered: int = 0
    udp_no_port: int = 0


class _Waiter:
    """A re-armable wake-up: ``wake()`` releases everyone waiting in ``wait_until``."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def wake(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait_until(self, deadline: float) -> None:
        ev = self._event
        with trio.move_on_at(deadline):
            await ev.wait()


class _Pipe:
    """One direction of a stream: chunks with delivery times."""

    def __init__(self) -> None:
        self.chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self.eof = False
        self.reset = False
        self.waiter = _Waiter()
        self.last_at = -math.inf


class MemStream(trio.abc.Stream):
    """One end of an in-memory stream (see the module docstring)."""

    def __init__(
        self, net: MemNetwork, local: Addr, peer: Addr, rx: _Pipe, tx: _Pipe, impaired: bool
    ) -> None:
        self.net = net
        self.local = local
        self.peer = peer
        self._rx = rx
        self._tx = tx
        self._impaired = impaired
        self._closed = False
        if impaired:
            net.impairments.register(self)

    def getpeername(self) -> Addr:
        return self.peer

    def reset(self) -> bool:
        if self._rx.reset or self._closed:
            return False
        for p in (self._rx, self._tx):
            p.reset = True
            p.waiter.wake()
        return True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        if self._tx.reset:
            raise trio.BrokenResourceError("connection reset by peer")
        if self._tx.eof:
            raise trio.ClosedResourceError("send side already shut down")
        if not data:
            return
        delay = self.net.impairments.latency if self._impaired else 0.0
        # in order: never deliver before an earlier chunk
        at = max(trio.current_time() + delay, self._tx.last_at)
        self._tx.last_at = at
        self._tx.chunks.append((at, bytes(data)))
        self._tx.waiter.wake()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self._tx.eof = True
        self._tx.waiter.wake()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = 65536 if max_bytes is None else max_bytes
        rx = self._rx
        imp = self.net.impairments
        while True:
            if self._closed:
                raise trio.ClosedResourceError("stream closed")
            if rx.reset:
                raise trio.BrokenResourceError("connection reset by peer")
            now = trio.current_time()
            held = self._impaired and imp.paused
            if rx.chunks and not held and rx.chunks[0][0] <= now:
                return self._take(now, limit)
            if not rx.chunks and rx.eof:
                await trio.lowlevel.checkpoint()
                return b""
            if held:
                await imp.wait_resumed()
                continue
            deadline = rx.chunks[0][0] if rx.chunks else math.inf
            await rx.waiter.wait_until(deadline)

    def _take(self, now: float, limit: int) -> bytes:
        out = bytearray()
        chunks = self._rx.chunks
        while chunks and chunks[0][0] <= now and len(out) < limit:
            at, data = chunks.popleft()
            room = limit - len(out)
            if len(data) > room:
                chunks.appendleft((at, data[room:]))
                data = data[:room]
            out += data
        return bytes(out)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._tx.eof = True
            self._tx.waiter.wake()
            self._rx.waiter.wake()
        await trio.lowlevel.checkpoint()


class MemListener(trio.abc.Listener[MemStream]):
    def __init__(self, net: MemNetwork, addr: Addr) -> None:
        self.net = net
        self.addr = addr
        self._send, self._recv = trio.open_memory_channel[MemStream](math.inf)

    async def accept(self) -> MemStream:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("listener closed") from None

    def close(self) -> None:
        """Stop listening now (new connections are refused)."""
        if self.net._listeners.get(self.addr) is self:
            del self.net._listeners[self.addr]
        self._recv.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


@dataclass
class _Datagram:
    at: float
    data: bytes
    src: Addr


@dataclass
class MemUdpSocket:
    """A bound datagram socket of the in-memory network."""

    net: MemNetwork
    addr: Addr
    queue: collections.deque[_Datagram] = field(default_factory=collections.deque)
    waiter: _Waiter = field(default_factory=_Waiter)
    closed: bool = False

    def sendto(self, data: bytes, dst: Addr) -> None:
        """Queue ``data`` to ``dst`` (never blocks; the network may lose it). A closed
        socket raises ``OSError`` (EBADF), as a closed socket's ``sendto`` does."""
        if self.closed:
            raise OSError(9, "socket closed")
        self.net._deliver_datagram(self.addr, dst, bytes(data))

    async def recvfrom(self) -> tuple[bytes, Addr]:
        while True:
            if self.closed:
                raise trio.ClosedResourceError("socket closed")
            now = trio.current_time()
            for i, d in enumerate(self.queue):  # the first one due (latency may change)
                if d.at <= now:
                    del self.queue[i]
                    # shielded: a receive cancelled here must not lose what it took
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return d.data, d.src
            deadline = min((d.at for d in self.queue), default=math.inf)
            await self.waiter.wait_until(deadline)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.net._udp.pop(self.addr, None)
            self.waiter.wake()


class _ConnectedDatagrams:
    """The client's view: a :class:`MemUdpSocket` connected to one address."""

    def __init__(self, sock: MemUdpSocket, dst: Addr) -> None:
        self.sock = sock
        self.dst = dst

    async def send(self, datagram: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.sock.sendto(datagram, self.dst)

    async def recv(self) -> bytes:
        while True:
            data, src = await self.sock.recvfrom()
            if src == self.dst:
                return data

    def close(self) -> None:
        self.sock.close()


class MemNetwork:
    """Hosts, listeners and sockets of one in-memory network."""

    def __init__(self, impairments: LinkImpairments | None = None) -> None:
        self.impairments = impairments or LinkImpairments()
        self.counters = NetCounters()
        self._headends: set[str] = set()
        self._listeners: dict[Addr, MemListener] = {}
        self._udp: dict[Addr, MemUdpSocket] = {}
        self._next_port: dict[str, int] = {}

    def add_headend(self, host: str) -> None:
        """Traffic to or from ``host`` passes the impairments."""
        self._headends.add(host)

    def _impaired(self, a: str, b: str) -> bool:
        return (a in self._headends) != (b in self._headends)

    def _ephemeral(self, host: str, taken: Iterator[Addr]) -> int:
        used = {p for h, p in taken if h == host}
        port = self._next_port.get(host, EPHEMERAL_FIRST)
        for _ in range(65536 - EPHEMERAL_FIRST):
            if port > 65535:
                port = EPHEMERAL_FIRST
            if port not in used:
                self._next_port[host] = port + 1
                return port
            port += 1
        raise OSError(98, f"no free port on {host}")

    # ------------------------------------------------------------ streams
    def listen(self, host: str, port: int) -> MemListener:
        addr = (host, port)
        if addr in self._listeners:
            raise OSError(98, f"{host}:{port}/tcp: address already in use")
        lst = self._listeners[addr] = MemListener(self, addr)
        return lst

    async def open_stream(self, src_host: str, host: str, port: int) -> MemStream:
        impaired = self._impaired(src_host, host)
        if impaired:
            await self.impairments.stream_gate()  # the SYN crosses the path
        lst = self._listeners.get((host, port))
        if lst is None:
            self.counters.streams_refused += 1
            raise ConnectionRefusedError(111, f"{host}:{port}: connection refused")
        local = (src_host, self._ephemeral(src_host, iter(())))
        a_to_b, b_to_a = _Pipe(), _Pipe()
        client = MemStream(self, local, (host, port), b_to_a, a_to_b, impaired)
        server = MemStream(self, (host, port), local, a_to_b, b_to_a, impaired)
        try:
            lst._send.send_nowait(server)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.counters.streams_refused += 1
            raise ConnectionRefusedError(111, f"{host}:{port}: connection refused") from None
        self.counters.streams_opened += 1
        if impaired:
            await self.impairments.stream_gate()  # the SYN-ACK comes back
        return client

    def stream_opener(self, src_host: str) -> Opener:
        """An ``Opener`` for the client session, connecting from ``src_host``."""

        async def open_(host: str, port: int) -> trio.abc.Stream:
            return await self.open_stream(src_host, host, port)

        return open_

    # ------------------------------------------------------------ datagrams
    def bind_udp(self, host: str, port: int = 0) -> MemUdpSocket:
        if port == 0:
            port = self._ephemeral(host, iter(self._udp))
        addr = (host, port)
        if addr in self._udp:
            raise OSError(98, f"{host}:{port}/udp: address already in use")
        sock = self._udp[addr] = MemUdpSocket(self, addr)
        return sock

    def datagram_opener(self, src_host: str) -> DatagramOpener:
        """A ``DatagramOpener`` for the client session: a fresh source port per channel."""

        async def open_(host: str, port: int) -> DatagramChannel:
            await trio.lowlevel.checkpoint()
            return _ConnectedDatagrams(self.bind_udp(src_host), (host, port))

        return open_

    def _deliver_datagram(self, src: Addr, dst: Addr, data: bytes) -> None:
        self.counters.datagrams_sent += 1
        delay = 0.0
        if self._impaired(src[0], dst[0]):
            headend_port = dst[1] if dst[0] in self._headends else src[1]
            fate = self.impairments.datagram(len(data), headend_port)
            if isinstance(fate, str):
                return
            delay = fate
        sock = self._udp.get(dst)
        if sock is None:
            self.counters.udp_no_port += 1
            return
        self.counters.datagrams_delivered += 1
        sock.queue.append(_Datagram(trio.current_time() + delay, data, src))
        sock.waiter.wake()
