"""drive_stream: the one place where a TCP socket meets a Rust ``CstpConnection``.

Theory of operation: :class:`TlsStream` owns a Trio stream and the core object of that
connection. Reads go socket → ``handle_input(now, bytes)``; after every input and every
command the pending ciphertext is flushed. Flushing polls *and* sends under one lock,
so concurrent senders can never reorder TLS records. ``now`` is
``trio.current_time()`` in integer microseconds, so the same code runs in virtual time
under ``MockClock``. Socket errors become :class:`ConnectionLost` with a one-line
reason; core errors arrive already typed (``tunnelswarm.errors``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable

import trio

from tunnelswarm._core import CstpConnection
from tunnelswarm.errors import ConnectionLost

__all__ = [
    "DirectSocketStream",
    "Opener",
    "TlsStream",
    "TryFirst",
    "bound_tcp_opener",
    "ip_family",
    "now_us",
    "tcp_opener",
    "wall_time",
]

#: opens a Trio stream to (host, port); tests inject in-memory networks here
Opener = Callable[[str, int], Awaitable[trio.abc.Stream]]


async def tcp_opener(host: str, port: int) -> trio.abc.Stream:
    """The real network: a TCP connection.

    An IP address (the load engine's usual target) is connected directly: one socket and
    one SYN, as ``trio.open_tcp_stream`` makes for a single address, without its resolver
    and happy-eyeballs nursery, and the stream is a :class:`DirectSocketStream`; a
    failure reads as Trio's does. A name goes through ``trio.open_tcp_stream``."""
    return await _open_tcp(host, port, None)


def bound_tcp_opener(local_address: str) -> Opener:
    """The real network from a chosen local source address (the load engine's
    ``--source`` pool): ``bind`` to ``local_address`` before ``connect``, any port.

    The address must be this machine's (any ``127.x.y.z`` is, on Linux); a bind that fails
    is an ``OSError`` like a refused connection, so the caller reports it the same way."""

    async def open_(host: str, port: int) -> trio.abc.Stream:
        return await _open_tcp(host, port, local_address)

    return open_


async def _open_tcp(host: str, port: int, local_address: str | None) -> trio.abc.Stream:
    family = ip_family(host)
    if family is None:
        return await trio.open_tcp_stream(host, port, local_address=local_address)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        if local_address is not None:
            sock.bind((local_address, 0))
        await _connect(sock, (host, port))
    except OSError as e:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        msg = f"all attempts to connect to {where} failed"
        raise OSError(msg) from ExceptionGroup(msg, [e])
    except BaseException:
        sock.close()
        raise
    return DirectSocketStream(sock)


async def _connect(sock: socket.socket, address: tuple[str, int]) -> None:
    """A non-blocking connect: start it, wait until the socket is writable, read the
    outcome (``SO_ERROR``) -- what Trio's ``socket.connect`` does."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        sock.connect(address)
        return
    except BlockingIOError:
        pass
    await trio.lowlevel.wait_writable(sock)
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, f"Error connecting to {address}: {os.strerror(err)}")


def ip_family(host: str) -> int | None:
    """``AF_INET``/``AF_INET6`` for an IP address literal, else None (a name)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


#: immediate socket operations a stream may do in a row before it yields to the scheduler
#: once (fairness: a peer that always has data ready must not starve the other tasks)
YIELD_EVERY = 16


class TryFirst:
    """Try-first IO on a non-blocking socket: the operation is tried at once, and Trio is
    asked to wait for readiness only when the kernel says it would block. Cancellation is
    honoured at every call (``checkpoint_if_cancelled``: nothing is consumed when it
    raises), and after :data:`YIELD_EVERY` immediate operations in a row it yields once,
    shielded (never losing what it just read)."""

    __slots__ = ("_run", "socket")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._run = 0

    async def fair(self) -> None:
        """One immediate operation done: yield once every :data:`YIELD_EVERY`."""
        self._run += 1
        if self._run >= YIELD_EVERY:
            self._run = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data`` (a stream's bytes, or one datagram, which the kernel takes
        whole or not at all), waiting for room only when there is none (OSError as the
        socket raises it)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        with memoryview(data) as view:
            sent = 0
            while True:
                with contextlib.suppress(BlockingIOError):
                    sent += self.socket.send(view[sent:])
                if sent >= len(view):
                    break
                self._run = 0
                await trio.lowlevel.wait_writable(self.socket)
        await self.fair()

    async def recv(self, size: int) -> bytes:
        """One ``recv`` (OSError as the socket raises it)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                data = self.socket.recv(size)
            except BlockingIOError:
                self._run = 0
                await trio.lowlevel.wait_readable(self.socket)
                continue
            await self.fair()
            return data


class DirectSocketStream(trio.abc.HalfCloseableStream):
    """A connected TCP socket driven without Trio's per-call scheduling.

    ``trio.SocketStream`` passes through the scheduler at every call (a send that the
    kernel takes at once still costs a full scheduler trip and a cancel scope); at a load
    run's rate of set-ups those trips are most of the client's CPU. This stream does its
    IO :class:`TryFirst`. ``TCP_NODELAY`` is set, as ``trio.SocketStream`` does.
    :meth:`try_send` lets :class:`TlsStream` hand bytes to the kernel without awaiting.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._io = TryFirst(sock)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = sock
        self._closed = False

    def try_send(self, data: bytes | memoryview) -> int:
        """Send what the kernel takes now; the byte count (0 if it would block)."""
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        try:
            return self.socket.send(data)
        except BlockingIOError:
            return 0
        except OSError as e:
            raise trio.BrokenResourceError(f"socket send failed: {e}") from e

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        try:
            await self._io.send_all(data)
        except OSError as e:
            raise trio.BrokenResourceError(f"socket send failed: {e}") from e

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        try:
            return await self._io.recv(max_bytes or RECEIVE_SIZE)
        except OSError as e:
            raise trio.BrokenResourceError(f"socket receive failed: {e}") from e

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self.socket.fileno() >= 0:  # (a reset may have closed it already)
                trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()


RECEIVE_SIZE = 65536
#: a shielded send that makes no progress for this long fails the connection
SEND_STALL = 10.0


def now_us() -> int:
    """The caller's monotonic timeline, in integer microseconds (Trio's clock).

    Rounded, not truncated: a task that sleeps until ``deadline / 1e6`` must read back
    at least ``deadline`` (``int(32.26e6 / 1e6 * 1e6)`` is 32259999), or the core
    finds its timer not yet due and the timer loop spins at one instant.
    """
    return round(trio.current_time() * 1_000_000)


class TlsStream:
    """A Trio stream carrying one TLS connection whose state lives in Rust."""

    def __init__(self, stream: trio.abc.Stream, conn: CstpConnection) -> None:
        self.stream = stream
        self.conn = conn
        self._send_lock = trio.Lock()
        self.eof = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._direct = stream if isinstance(stream, DirectSocketStream) else None

    @classmethod
    async def connect(
        cls,
        opener: Opener,
        host: str,
        port: int,
        conn: CstpConnection,
        *,
        timeout: float = 30.0,
    ) -> TlsStream:
        """Open a stream with ``opener`` and complete the TLS handshake of ``conn``."""
        h = f"[{host}]" if ":" in host else host
        label = h if port == 443 else f"{h}:{port}"  # as in the Host header
        try:
            with trio.fail_after(timeout):
                raw = await opener(host, port)
        except trio.TooSlowError:
            raise ConnectionLost(f"TCP connect to {label} timed out") from None
        except OSError as e:
            raise ConnectionLost(f"TCP connect to {label} failed: {e.strerror or e}") from None
        self = cls(raw, conn)
        try:
            with trio.fail_after(timeout):
                await self.handshake()
        except trio.TooSlowError:
            await self.aclose()
            raise ConnectionLost(f"TLS handshake with {label} timed out") from None
        except BaseException:
            await self.aclose()
            raise
        return self

    async def handshake(self) -> None:
        await self.flush()
        while self.conn.is_handshaking:
            if not await self.receive():
                raise ConnectionLost("connection closed during the TLS handshake")

    async def flush(self) -> None:
        """Send everything the core has queued (records stay in order).

        Bytes taken from the core are sent shielded from cancellation: a TLS record cut
        in half (a traffic task cancelled mid-send, then the BYE written after it) would
        make the peer fail the whole connection with a bad record MAC. The shield is
        bounded: a send that makes no progress for :data:`SEND_STALL` seconds fails.

        On a :class:`DirectSocketStream` with no other sender, the bytes go to the
        kernel at once and nothing is awaited unless the socket is full (then the rest
        goes the shielded way)."""
        direct = self._direct
        if direct is None or self._send_lock.locked():
            await self._flush_locked()
            return
        self._send_lock.acquire_nowait()
        try:
            while (data := self.conn.poll_transmit()) is not None:
                try:
                    sent = direct.try_send(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
                    raise ConnectionLost(f"sending on the TLS connection failed: {e}") from None
                if sent < len(data):
                    await self._send_shielded(memoryview(data)[sent:])
                self.bytes_out += len(data)
        finally:
            self._send_lock.release()
        await trio.lowlevel.checkpoint_if_cancelled()

    async def _flush_locked(self) -> None:
        async with self._send_lock:
            while (data := self.conn.poll_transmit()) is not None:
                await self._send_shielded(data)
                self.bytes_out += len(data)
                await trio.lowlevel.checkpoint_if_cancelled()

    async def _send_shielded(self, data: bytes | memoryview) -> None:
        with trio.CancelScope(shield=True):
            try:
                with trio.move_on_after(SEND_STALL) as stalled:
                    await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                raise ConnectionLost(f"sending on the TLS connection failed: {e}") from None
        if stalled.cancelled_caught:
            raise ConnectionLost(f"sending on the TLS connection stalled for {SEND_STALL:g} s")

    async def receive(self) -> bool:
        """Read once from the socket into the core. False at EOF (after the core saw it)."""
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            raise ConnectionLost(f"receiving on the TLS connection failed: {e}") from None
        if not data:
            self.eof = True
            try:
                self.conn.handle_eof(now_us())
            finally:
                await self._flush_quietly()
            return False
        self.bytes_in += len(data)
        try:
            self.conn.handle_input(now_us(), bytes(data))
        finally:
            # alerts (e.g. bad_certificate) must still reach the peer
            await self._flush_quietly()
        return True

    async def _flush_quietly(self) -> None:
        with contextlib.suppress(ConnectionLost):
            await self.flush()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()

    def socket(self) -> object | None:
        """The underlying socket (for TCP_INFO), if this is a socket stream."""
        return getattr(self.stream, "socket", None)


def wall_time() -> int:
    """Wall-clock seconds for certificate validity (the core reads no clock)."""
    return int(time.time())
