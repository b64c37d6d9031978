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
import socket
import time
from collections.abc import Awaitable, Callable

import trio

from tunnelswarm._core import CstpConnection
from tunnelswarm.errors import ConnectionLost

__all__ = ["Opener", "TlsStream", "bound_tcp_opener", "now_us", "tcp_opener", "wall_time"]

#: opens a Trio stream to (host, port); tests inject in-memory networks here
Opener = Callable[[str, int], Awaitable[trio.abc.Stream]]


async def tcp_opener(host: str, port: int) -> trio.abc.Stream:
    """The real network: a TCP connection.

    An IP address (the load engine's usual target) is connected directly: the same one
    socket and SYN that ``trio.open_tcp_stream`` makes for a single address, without its
    resolver and happy-eyeballs nursery; a failure reads as Trio's does. A name goes
    through ``trio.open_tcp_stream``."""
    family = _ip_family(host)
    if family is None:
        return await trio.open_tcp_stream(host, port)
    sock = trio.socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        await sock.connect((host, port))
    except OSError as e:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        msg = f"all attempts to connect to {where} failed"
        raise OSError(msg) from ExceptionGroup(msg, [e])
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def _ip_family(host: str) -> int | None:
    """``AF_INET``/``AF_INET6`` for an IP address literal, else None (a name)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def bound_tcp_opener(local_address: str) -> Opener:
    """The real network from a chosen local source address (the load engine's
    ``--source`` pool): ``bind`` to ``local_address`` before ``connect``, any port.

    The address must be this machine's (any ``127.x.y.z`` is, on Linux); a bind that fails
    is an ``OSError`` like a refused connection, so the caller reports it the same way."""

    async def open_(host: str, port: int) -> trio.abc.Stream:
        return await trio.open_tcp_stream(host, port, local_address=local_address)

    return open_


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
        bounded: a send that makes no progress for :data:`SEND_STALL` seconds fails."""
        async with self._send_lock:
            while (data := self.conn.poll_transmit()) is not None:
                with trio.CancelScope(shield=True):
                    try:
                        with trio.move_on_after(SEND_STALL) as stalled:
                            await self.stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                        raise ConnectionLost(f"sending on the TLS connection failed: {e}") from None
                if stalled.cancelled_caught:
                    raise ConnectionLost(
                        f"sending on the TLS connection stalled for {SEND_STALL:g} s"
                    )
                self.bytes_out += len(data)
                await trio.lowlevel.checkpoint_if_cancelled()

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
