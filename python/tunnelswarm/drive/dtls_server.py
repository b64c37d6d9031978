"""drive_dtls_server: the server side of DTLS over UDP around one ``DtlsEndpoint``.

One :class:`~tunnelswarm._core.DtlsEndpoint` serves every client; it knows peers only
as u64 ids. :class:`DtlsUdpServer` owns the rest: the peer table (id ↔ a way to send
to that peer), the timer loop and the pump that moves the endpoint's datagrams out and
hands its events to the owner. Peers come from real UDP sockets
(:meth:`DtlsUdpServer.serve_socket`, one peer per (socket, source address)) or from
anything else that can take a datagram (:meth:`DtlsUdpServer.add_peer`, e.g. an
in-memory datagram network).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from tunnelswarm._core import DtlsEndpoint, DtlsEvent
from tunnelswarm.drive.stream import now_us

if TYPE_CHECKING:  # a Literal alias of the stub only
    from tunnelswarm._core import DatagramDrop
    from tunnelswarm.drive.memnet import MemUdpSocket

__all__ = ["DtlsUdpServer", "PeerSender"]

#: sends one datagram to one peer; must not block (UDP may lose it)
PeerSender = Callable[[bytes], None]


class _SendTo(Protocol):
    """A datagram socket: a real one, or an in-memory network's."""

    def sendto(self, data: bytes, address: Any, /) -> int | None: ...


def _sendto(sock: _SendTo, addr: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):  # full buffer, unreachable peer: UDP may lose it
        sock.sendto(data, addr)


class DtlsUdpServer:
    """Peer table, timer loop and transmit pump of a server ``DtlsEndpoint``.

    ``on_event(key, event)`` gets every endpoint event. ``on_datagram(peer, data)``
    (default :meth:`datagram_in`) gets every datagram read from a served socket, and
    ``on_transmit(peer, data)`` (default :meth:`send_to`) every datagram the endpoint
    sends; owners that filter or record datagrams hook in there. ``after_pump()`` runs
    after every pump (e.g. to wake whoever watches the owner's records).
    """

    def __init__(
        self,
        endpoint: DtlsEndpoint,
        on_event: Callable[[bytes, DtlsEvent], None],
        *,
        on_datagram: Callable[[int, bytes], None] | None = None,
        on_transmit: Callable[[int, bytes], None] | None = None,
        after_pump: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._on_event = on_event
        self._on_datagram = self.datagram_in if on_datagram is None else on_datagram
        self._on_transmit = self.send_to if on_transmit is None else on_transmit
        self._after_pump = after_pump
        self._senders: dict[int, PeerSender] = {}
        self._addrs: dict[tuple[int, Any], int] = {}  # (id(socket), address) -> peer
        self._peer_addrs: dict[int, tuple[int, Any]] = {}  # the reverse
        self._sockets: dict[int, _SendTo] = {}  # peer -> its socket
        self._next_peer = 1
        self._pumping = False
        self._wake = trio.Event()

    # ------------------------------------------------------------ peers
    def add_peer(self, send: PeerSender) -> int:
        """Register a peer reached through ``send``; its new id."""
        peer = self._next_peer
        self._next_peer += 1
        self._senders[peer] = send
        return peer

    def remove_peer(self, peer: int) -> None:
        self._senders.pop(peer, None)
        self._sockets.pop(peer, None)
        key = self._peer_addrs.pop(peer, None)
        if key is not None and self._addrs.get(key) == peer:
            del self._addrs[key]

    def addresses(self) -> list[Any]:
        """The source addresses of the peers read from served sockets."""
        return [key[1] for key in self._peer_addrs.values()]

    def address_of(self, peer: int) -> Any | None:
        """The source address of a peer read from a served socket (None for others)."""
        key = self._peer_addrs.get(peer)
        return None if key is None else key[1]

    def sender(self, peer: int) -> PeerSender | None:
        return self._senders.get(peer)

    def send_to(self, peer: int, data: bytes) -> None:
        """Send ``data`` to ``peer``; dropped if the peer is gone."""
        send = self._senders.get(peer)
        if send is not None:
            send(data)

    def peer_at(self, sock: _SendTo, addr: Any) -> int:
        """The peer id of source address ``addr`` on ``sock`` (registered on first use)."""
        key = (id(sock), addr)
        peer = self._addrs.get(key)
        if peer is None:
            peer = self._addrs[key] = self.add_peer(functools.partial(_sendto, sock, addr))
            self._sockets[peer] = sock
            self._peer_addrs[peer] = key
        return peer

    def forget_socket(self, sock: _SendTo) -> None:
        """Drop every peer reached through ``sock``."""
        for peer in [p for p, s in self._sockets.items() if s is sock]:
            self.remove_peer(peer)
        fd = id(sock)
        for key in [k for k in self._addrs if k[0] == fd]:
            self._peer_addrs.pop(self._addrs.pop(key), None)

    # ------------------------------------------------------------ datagrams
    async def serve_socket(self, sock: socket.socket) -> None:
        """Read ``sock`` until it is closed (or this is cancelled), then close it."""
        try:
            sock.setblocking(False)
            while True:
                try:
                    await trio.lowlevel.wait_readable(sock)
                except (OSError, trio.ClosedResourceError):
                    return
                for _ in range(64):
                    try:
                        data, addr = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno == errno.EBADF:
                            return
                        continue  # an ICMP error queued on the socket
                    self._on_datagram(self.peer_at(sock, addr), data)
                await trio.lowlevel.checkpoint()
        finally:
            sock.close()

    async def serve_mem_socket(self, sock: MemUdpSocket) -> None:
        """Read an in-memory network socket until it is closed (or this is cancelled),
        then close it (:mod:`tunnelswarm.drive.memnet`)."""
        try:
            while True:
                try:
                    data, addr = await sock.recvfrom()
                except trio.ClosedResourceError:
                    return
                self._on_datagram(self.peer_at(sock, addr), data)
        finally:
            sock.close()

    def datagram_in(self, peer: int, data: bytes) -> DatagramDrop | None:
        """Feed one datagram from ``peer`` to the endpoint and pump; the endpoint's drop
        reason if (some of) it was junk. After ``unknown-peer`` the endpoint holds nothing
        for ``peer``: an owner may :meth:`remove_peer` it, so that junk from many source
        ports does not grow the peer table."""
        verdict = self.endpoint.handle_datagram(now_us(), peer, data)
        self.pump()
        return verdict

    # ------------------------------------------------------------ timers and pump
    async def run_timers(self) -> None:
        """Drive the endpoint's timers (forever)."""
        while True:
            deadline = self.endpoint.next_deadline()
            wake = self._wake
            with trio.move_on_at(math.inf if deadline is None else deadline / 1_000_000):
                await wake.wait()
            if wake.is_set():
                self._wake = trio.Event()
            self.endpoint.handle_timeout(now_us())
            self.pump(kick=False)

    def pump(self, *, kick: bool = True) -> None:
        """Send what the endpoint wants to send, act on its events, until quiet; with
        ``kick`` wake the timer loop (the next deadline may have changed)."""
        if self._pumping:
            return
        self._pumping = True
        try:
            busy = True
            while busy:
                busy = False
                while (out := self.endpoint.poll_transmit(now_us())) is not None:
                    busy = True
                    self._on_transmit(out[0], bytes(out[1]))
                for key, ev in self.endpoint.poll_events():
                    busy = True
                    self._on_event(bytes(key), ev)
        finally:
            self._pumping = False
        if kick:
            self._wake.set()
        if self._after_pump is not None:
            self._after_pump()
