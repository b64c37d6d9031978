"""Network impairments between the emulated clients and the headend, switchable at run time.

Theory of operation
-------------------
One :class:`LinkImpairments` object describes the path between the clients and the
headend: UDP blocked (all of it, or one headend port), a path MTU for datagrams, added
one-way latency, random loss (seeded), the headend paused, and TCP cuts. Scenarios flip
its fields on their timeline; whoever carries packets asks it what to do with each one:

* the in-memory network (:mod:`tunnelswarm.drive.memnet`, virtual time) asks for every
  datagram and every stream write;
* on real sockets the client's own socket layer asks, through the wrappers here:
  :func:`impaired_stream_opener` and :func:`impaired_datagram_opener` wrap the openers
  the client session already takes, so impairments work against any headend and need
  no root (they act only on this process's packets).

Rules (the same on both carriers):

* ``block_udp`` — ``True`` drops every datagram both ways; a port number drops only those
  to or from that headend port (a firewall rule on the DTLS port).
* ``path_mtu`` — a datagram whose IP size (payload + 28 for IPv4/UDP) exceeds it is
  dropped, as a DF-set datagram is on a path with a smaller MTU (no ICMP reaches the
  sender: UDP sockets here do not do PMTUD). Streams are not affected (TCP adapts by MSS).
* ``latency`` — added one way to every datagram and every stream write. (On real
  sockets the wrapper sleeps before sending, so one channel's datagrams queue behind
  each other; in the in-memory network delivery is scheduled and the sender goes on.)
* ``loss`` — each datagram is lost with this probability, drawn from the seeded ``rng``
  (streams are reliable: TCP would retransmit; the model adds no delay for it).
* ``paused`` — the headend neither sends nor receives: datagrams are dropped (its buffers
  overflow), stream bytes wait until the pause ends (TCP retransmits them later).
* :meth:`LinkImpairments.cut_tcp` — every open stream between clients and headend is
  reset once (the peer sees a broken connection); new connections work.

Counters record what was done, for reports.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import weakref
from dataclasses import dataclass, field
from typing import Protocol

import trio

from tunnelswarm.drive.datagram import DatagramChannel, DatagramOpener
from tunnelswarm.drive.stream import Opener

__all__ = [
    "ImpairCounters",
    "LinkImpairments",
    "Verdict",
    "impaired_datagram_opener",
    "impaired_stream_opener",
]

IPV4_UDP_OVERHEAD = 28

#: what to do with one datagram: deliver after this many seconds, or drop (a reason)
Verdict = float | str


@dataclass
class ImpairCounters:
    udp_blocked: int = 0
    udp_too_big: int = 0
    udp_lost: int = 0
    udp_paused: int = 0
    tcp_cuts: int = 0
    streams_reset: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class LinkImpairments:
    """The path between clients and headend (see the module docstring)."""

    block_udp: bool | int = False
    path_mtu: int = 0
    latency: float = 0.0
    loss: float = 0.0
    paused: bool = False
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    counters: ImpairCounters = field(default_factory=ImpairCounters)
    _resume: trio.Event = field(default_factory=trio.Event)
    _cut_hooks: weakref.WeakSet[_Cuttable] = field(default_factory=weakref.WeakSet)

    def set(self, name: str, value: object) -> None:
        """Apply one scenario impairment by name (``pause_headend`` takes a bool here;
        the timeline un-pauses after the duration)."""
        if name == "block_udp":
            self.block_udp = value if isinstance(value, (bool, int)) else bool(value)
        elif name == "path_mtu":
            self.path_mtu = int(value)  # type: ignore[call-overload]
        elif name == "latency":
            self.latency = float(value)  # type: ignore[arg-type]
        elif name == "loss":
            self.loss = float(value)  # type: ignore[arg-type]
        elif name == "pause_headend":
            self.pause(bool(value))
        elif name == "cut_tcp":
            if value:
                self.cut_tcp()
        else:
            raise ValueError(f"unknown impairment {name!r}")

    # ------------------------------------------------------------ datagrams
    def datagram(self, size: int, headend_port: int) -> Verdict:
        """Fate of one datagram of ``size`` payload bytes to/from ``headend_port``."""
        b = self.block_udp
        if b is True or (not isinstance(b, bool) and b == headend_port):
            self.counters.udp_blocked += 1
            return "blocked"
        if self.paused:
            self.counters.udp_paused += 1
            return "paused"
        if self.path_mtu and size + IPV4_UDP_OVERHEAD > self.path_mtu:
            self.counters.udp_too_big += 1
            return "too big"
        if self.loss and self.rng.random() < self.loss:
            self.counters.udp_lost += 1
            return "lost"
        return self.latency

    # ------------------------------------------------------------ streams
    def pause(self, on: bool) -> None:
        if on and not self.paused:
            self.paused = True
            self._resume = trio.Event()
        elif not on and self.paused:
            self.paused = False
            self._resume.set()

    async def wait_resumed(self) -> None:
        """Return once the headend is not paused."""
        while self.paused:
            await self._resume.wait()

    async def stream_gate(self) -> None:
        """Wait while the headend is paused, then the one-way latency."""
        await self.wait_resumed()
        if self.latency:
            await trio.sleep(self.latency)

    def register(self, stream: _Cuttable) -> None:
        self._cut_hooks.add(stream)

    def cut_tcp(self) -> None:
        """Reset every registered open stream once."""
        self.counters.tcp_cuts += 1
        for s in list(self._cut_hooks):
            if s.reset():
                self.counters.streams_reset += 1


class _Cuttable(Protocol):
    """A stream that :meth:`LinkImpairments.cut_tcp` can reset."""

    def reset(self) -> bool: ...


# ------------------------------------------------------------------ real sockets
class _ImpairedStream(trio.abc.Stream):
    """A real stream whose writes and reads pass the impairments' gate; resettable."""

    def __init__(self, inner: trio.abc.Stream, imp: LinkImpairments) -> None:
        self.inner = inner
        self.imp = imp
        self._reset = False
        #: bytes read but not yet handed on (a receive cancelled at the gate)
        self._held = b""
        imp.register(self)

    def reset(self) -> bool:
        if self._reset:
            return False
        self._reset = True
        sock = getattr(self.inner, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # RST instead of FIN, like a middlebox reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError, TypeError, ValueError):
                trio.lowlevel.notify_closing(sock)  # wake our readers (Trio forgets the fd)
            with contextlib.suppress(OSError):
                sock.close()  # with linger 0: the kernel sends RST
        return True

    @property
    def socket(self) -> object | None:
        return getattr(self.inner, "socket", None)

    def _check(self) -> None:
        if self._reset:
            raise trio.BrokenResourceError("connection reset (cut_tcp impairment)")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        await self.imp.stream_gate()
        self._check()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """The next bytes once the gate lets them through. A receive cancelled at the gate
        keeps what it read for the next one (a TLS stream must not lose bytes)."""
        self._check()
        if not self._held:
            data = await self.inner.receive_some(max_bytes)
            self._check()
            if not data:
                await self.imp.stream_gate()
                return data
            self._held = bytes(data)
        await self.imp.stream_gate()
        self._check()
        held = self._held
        n = len(held) if max_bytes is None else max_bytes
        out, self._held = held[:n], held[n:]
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


def impaired_stream_opener(inner: Opener, imp: LinkImpairments) -> Opener:
    """``inner`` (e.g. ``tcp_opener``) with the impairments applied to its streams."""

    async def open_(host: str, port: int) -> trio.abc.Stream:
        await imp.stream_gate()
        return _ImpairedStream(await inner(host, port), imp)

    return open_


class _ImpairedDatagrams:
    def __init__(self, inner: DatagramChannel, imp: LinkImpairments, port: int) -> None:
        self.inner = inner
        self.imp = imp
        self.port = port
        #: a received datagram still in its delay, and when it is due
        self._held: tuple[bytes, float] | None = None

    async def send(self, datagram: bytes) -> None:
        fate = self.imp.datagram(len(datagram), self.port)
        if isinstance(fate, str):
            await trio.lowlevel.checkpoint()
            return
        if fate:
            await trio.sleep(fate)
        await self.inner.send(datagram)

    async def recv(self) -> bytes:
        """The next datagram the impairments let through, after its delay. A receive
        cancelled during the delay keeps the datagram for the next one (not lost)."""
        while True:
            if self._held is None:
                data = await self.inner.recv()
                fate = self.imp.datagram(len(data), self.port)
                if isinstance(fate, str):
                    continue
                if not fate:
                    return data
                self._held = (data, trio.current_time() + fate)
            data, due = self._held
            await trio.sleep_until(due)
            self._held = None
            return data

    def close(self) -> None:
        self.inner.close()


def impaired_datagram_opener(inner: DatagramOpener, imp: LinkImpairments) -> DatagramOpener:
    """``inner`` (e.g. ``udp_opener``) with the impairments applied to its datagrams."""

    async def open_(host: str, port: int) -> DatagramChannel:
        return _ImpairedDatagrams(await inner(host, port), imp, port)

    return open_
