"""drive_datagram: the UDP side. The only place where a UDP socket is touched.

A :class:`DatagramChannel` is a connected datagram pipe (send one datagram, receive
one datagram). :func:`udp_opener` gives the real network; tests and scenarios inject
other openers (in-memory networks, black holes) through the same signature, so the
DTLS channel runs unchanged in virtual time.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from tunnelswarm.drive.stream import TryFirst, ip_family

__all__ = [
    "DatagramChannel",
    "DatagramOpener",
    "UdpChannel",
    "blackhole_opener",
    "bound_udp_opener",
    "udp_opener",
]

DATAGRAM_MAX = 65535


class DatagramChannel(Protocol):
    async def send(self, datagram: bytes) -> None: ...
    async def recv(self) -> bytes: ...
    def close(self) -> None: ...


#: opens a datagram channel to (host, port)
DatagramOpener = Callable[[str, int], Awaitable[DatagramChannel]]


class UdpChannel:
    """A connected UDP socket (a fresh source port per channel), driven
    :class:`~tunnelswarm.drive.stream.TryFirst` like the TCP streams."""

    def __init__(self, sock: socket.socket) -> None:
        self._io = TryFirst(sock)

    async def send(self, datagram: bytes) -> None:
        await self._io.send_all(datagram)

    async def recv(self) -> bytes:
        return await self._io.recv(DATAGRAM_MAX)

    def close(self) -> None:
        sock = self._io.socket
        if sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)
        sock.close()


async def udp_opener(host: str, port: int) -> DatagramChannel:
    """The real network: a UDP socket connected to host:port."""
    return await _open_udp(host, port, None)


def bound_udp_opener(local_address: str) -> DatagramOpener:
    """The real network from a chosen local source address: the socket is bound to
    ``(local_address, 0)`` before it is connected (see ``bound_tcp_opener``)."""

    async def open_(host: str, port: int) -> DatagramChannel:
        return await _open_udp(host, port, local_address)

    return open_


async def _open_udp(host: str, port: int, local_address: str | None) -> DatagramChannel:
    """A UDP socket connected to an IP address (a name is resolved by Trio first)."""
    await trio.lowlevel.checkpoint_if_cancelled()
    family = ip_family(host)
    if family is None:  # a name
        family = socket.AF_INET
        infos = await trio.socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"cannot resolve {host}")
        host = str(infos[0][4][0])
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if local_address is not None:
            sock.bind((local_address, 0))
        sock.connect((host, port))  # UDP: no packet, never blocks
    except BaseException:
        sock.close()
        raise
    return UdpChannel(sock)


class _BlackHole:
    """Swallows every datagram; never delivers one (UDP filtered on the path)."""

    async def send(self, datagram: bytes) -> None:
        await trio.lowlevel.checkpoint()

    async def recv(self) -> bytes:
        await trio.sleep(math.inf)
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass


async def blackhole_opener(host: str, port: int) -> DatagramChannel:
    """A datagram opener whose channels lead nowhere."""
    await trio.lowlevel.checkpoint()
    return _BlackHole()
