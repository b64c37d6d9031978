"""The in-process virtual adapter: what a tun device is to openconnect, without a tun.

Theory of operation: the adapter has the tunnel MTU the session's MTU policy chose.
Packets from the headend are delivered here (dropped and counted when larger than the
MTU, as a real interface would: ``rx_dropped_oversize``). IPv4 fragments — the mock ASA
fragments packets too big for the tunnel (DF clear, or ``anyconnect ssl df-bit-ignore
enable``) — then go through the host's reassembler (Rust ``Reassembler``, RFC 791; its
limits and counters are in :attr:`VirtualAdapter.reassembler`), as an OS's IP layer
would: each fragment is one link-level packet checked against the MTU and counted in
``rx_fragments``, the whole datagram (``rx_reassembled``) may well be larger than the
MTU, and only whole datagrams go on. Incomplete datagrams expire inside the
reassembler's ``handle`` on the next delivery (no timer task). Everything the
reassembler does not keep — packets that are not fragments, and bytes it cannot read as
IPv4 — goes on unchanged, so that the taps' strict parsers judge bad bytes as before.

Then every attached *tap* — a Rust classifier such as a ``Prober`` (ping) or a
``FlowReceiver`` (a TCP fetch, :mod:`tunnelswarm.client.flow`) — is offered the packet
(the whole datagram) in attach order, and the first whose ``handle_packet(now, packet)``
verdict is not ``not-ours`` gets the verdict on its channel (``malformed`` verdicts are
counted in ``rx_malformed``; a packet no tap claims is ``rx_not_ours``). The driver
that attached the tap reads verdicts from the channel and sends what its tap wants sent.
Nothing here parses IP: Python only moves bytes
(house rule 5).

Ephemeral TCP ports (:meth:`VirtualAdapter.allocate_port`) and initial sequence numbers
(:attr:`VirtualAdapter.rng`) come from a seeded ``random.Random`` (house rule 6), made on
first use (an adapter that runs no flow never pays for one).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from tunnelswarm._core import Prober, ProbeResult, Reassembler
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import LocalProtocolError

__all__ = ["PacketTap", "PingReply", "PingReport", "TapVerdict", "VirtualAdapter"]

#: the IANA dynamic port range (RFC 6335 §6) the adapter allocates source ports from
EPHEMERAL_PORTS = range(49152, 65536)


class TapVerdict(Protocol):
    """What a tap's ``handle_packet`` returns: ``kind`` is ``"not-ours"`` for packets
    that are not the tap's, ``"malformed"`` for bad bytes, anything else to claim it."""

    @property
    def kind(self) -> str: ...


V = TypeVar("V", bound=TapVerdict)
V_co = TypeVar("V_co", bound=TapVerdict, covariant=True)


class PacketTap(Protocol[V_co]):
    """A classifier of inbound tunnel packets (``Prober``, ``FlowReceiver``)."""

    def handle_packet(self, now: int, packet: bytes) -> V_co: ...


@dataclass(frozen=True, slots=True)
class PingReply:
    seq: int
    rtt_ms: float
    ttl: int
    size: int


@dataclass(slots=True)
class PingReport:
    target: str
    payload_len: int
    replies: list[PingReply] = field(default_factory=list)
    stats: dict[str, int | float | None] = field(default_factory=dict)
    icmp_errors: list[str] = field(default_factory=list)

    @property
    def transmitted(self) -> int:
        return int(self.stats.get("sent") or 0)

    @property
    def received(self) -> int:
        return int(self.stats.get("received") or 0)


@dataclass(slots=True)
class AdapterCounters:
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_dropped_oversize: int = 0
    tx_dropped_oversize: int = 0
    tx_dropped_no_tunnel: int = 0
    rx_not_ours: int = 0
    rx_malformed: int = 0
    #: IPv4 fragments received (each also one of ``rx_packets``)
    rx_fragments: int = 0
    #: whole datagrams the fragments made (each offered to the taps)
    rx_reassembled: int = 0


class VirtualAdapter:
    """Delivers tunnel packets to the attached taps; sends their packets into the tunnel.

    Memory: one adapter per emulated client, so it keeps ``__slots__`` and creates its
    reassembler and its ``random.Random`` (~2.5 KiB) on first use only; what they
    produce is the same as if they had been made in ``__init__``.
    """

    __slots__ = (
        "_next_port",
        "_ports",
        "_reassembler",
        "_rng",
        "_seed",
        "_send",
        "_taps",
        "address",
        "counters",
        "mtu",
    )

    def __init__(self, send: Callable[[bytes], Awaitable[bool]], *, seed: int = 0) -> None:
        self._send = send
        self.mtu = 0
        self.address: str | None = None
        self.counters = AdapterCounters()
        self._reassembler: Reassembler | None = None
        self._seed = seed
        self._rng: random.Random | None = None
        self._taps: list[tuple[PacketTap[TapVerdict], trio.MemorySendChannel[Any]]] = []
        self._ports: set[int] = set()
        self._next_port = 0  # set with the rng (its first draw)

    @property
    def reassembler(self) -> Reassembler:
        """IPv4 reassembly of the packets from the headend (default limits: 30 s, 64
        datagrams, 128 fragments each); ``reassembler.stats()`` has its drop counters."""
        r = self._reassembler
        if r is None:
            r = self._reassembler = Reassembler()
        return r

    @property
    def rng(self) -> random.Random:
        """Seeded randomness of the flows on this adapter (source ports, ISNs)."""
        return self._rng if self._rng is not None else self._make_rng()

    def _make_rng(self) -> random.Random:
        rng = self._rng = random.Random(self._seed)
        self._next_port = EPHEMERAL_PORTS.start + rng.randrange(len(EPHEMERAL_PORTS))
        return rng

    def configure(self, *, mtu: int, address: str | None) -> None:
        self.mtu = mtu
        self.address = address

    def attach(self, tap: PacketTap[V]) -> trio.MemoryReceiveChannel[V]:
        """Offer inbound packets to ``tap`` (after the taps attached before it); its
        verdicts arrive on the returned channel. Undo with :meth:`detach`."""
        send_ch, recv_ch = trio.open_memory_channel[V](math.inf)
        self._taps.append((tap, send_ch))
        return recv_ch

    def detach(self, tap: PacketTap[Any]) -> None:
        """Stop offering packets to ``tap`` and close its verdict channel."""
        for i, (t, chan) in enumerate(self._taps):
            if t is tap:
                del self._taps[i]
                chan.close()
                return

    def allocate_port(self) -> int:
        """A free ephemeral source port (49152..65535) for a flow; :meth:`release_port`
        it afterwards. LocalProtocolError when all are taken."""
        span = len(EPHEMERAL_PORTS)
        if self._rng is None:
            self._make_rng()  # the first port is the rng's first draw
        for _ in range(span):
            port = self._next_port
            self._next_port = EPHEMERAL_PORTS.start + (port + 1 - EPHEMERAL_PORTS.start) % span
            if port not in self._ports:
                self._ports.add(port)
                return port
        raise LocalProtocolError("no free ephemeral port on the adapter")

    def release_port(self, port: int) -> None:
        self._ports.discard(port)

    def deliver(self, packet: bytes) -> None:
        """A packet from the headend (one link-level packet: a fragment is one too)."""
        if self.mtu and len(packet) > self.mtu:
            self.counters.rx_dropped_oversize += 1
            return
        self.counters.rx_packets += 1
        self.counters.rx_bytes += len(packet)
        now = now_us()
        out = self.reassembler.handle(now, packet)
        kind = out.kind
        if kind != "pass" and kind != "malformed":
            self.counters.rx_fragments += 1
            if kind != "reassembled":
                return  # held until the rest arrives, or dropped (reassembler.stats())
            self.counters.rx_reassembled += 1
        datagram = out.packet
        if datagram is None:  # pragma: no cover - every kind that gets here has bytes
            return
        for tap, chan in self._taps:
            result = tap.handle_packet(now, datagram)
            if result.kind == "not-ours":
                continue
            if result.kind == "malformed":
                self.counters.rx_malformed += 1
            # a driver that stopped listening leaves the verdict without a reader
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                chan.send_nowait(result)
            return
        self.counters.rx_not_ours += 1

    async def send(self, packet: bytes) -> bool:
        """A packet into the tunnel. False if it was dropped."""
        if self.mtu and len(packet) > self.mtu:
            self.counters.tx_dropped_oversize += 1
            return False
        if not await self._send(packet):
            self.counters.tx_dropped_no_tunnel += 1
            return False
        self.counters.tx_packets += 1
        self.counters.tx_bytes += len(packet)
        return True

    async def ping(
        self,
        target: str,
        *,
        count: int = 5,
        interval: float = 1.0,
        timeout: float = 2.0,
        payload_len: int = 56,
        kind: str = "icmp",
        on_reply: Callable[[PingReply], object] | None = None,
        on_error: Callable[[str], object] | None = None,
    ) -> PingReport:
        """Send ``count`` probes to ``target`` through the tunnel; RTT and loss like ping(8)."""
        if self.address is None:
            raise RuntimeError("adapter has no tunnel address yet")
        prober = Prober(self.address, target, kind=kind, payload_len=payload_len)
        recv_ch = self.attach(prober)
        report = PingReport(target=target, payload_len=payload_len)
        timeout_us = int(timeout * 1_000_000)

        def consume(r: ProbeResult) -> None:
            if r.kind == "reply" and r.seq is not None:
                reply = PingReply(
                    seq=r.seq,
                    rtt_ms=(r.rtt_us or 0) / 1000.0,
                    ttl=r.ttl or 0,
                    size=r.size or 0,
                )
                report.replies.append(reply)
                if on_reply:
                    on_reply(reply)
            elif r.kind == "icmp-error":
                text = (
                    f"from {r.source}: ICMP type {r.icmp_type} code {r.icmp_code}"
                    + (f" (next-hop MTU {r.mtu})" if r.mtu else "")
                    + (f" for icmp_seq={r.seq}" if r.seq is not None else "")
                )
                report.icmp_errors.append(text)
                if on_error:
                    on_error(text)

        try:
            async with trio.open_nursery() as nursery:

                async def collect() -> None:
                    async for r in recv_ch:
                        consume(r)

                nursery.start_soon(collect)
                for i in range(count):
                    _seq, pkt = prober.build(now_us())
                    await self.send(pkt)
                    if i + 1 < count:
                        await trio.sleep(interval)
                # wait for the outstanding replies, at most `timeout`
                while prober.stats()["outstanding"]:
                    deadline = prober.next_expiry(timeout_us)
                    if deadline is None:
                        break
                    if now_us() >= deadline:
                        prober.expire(now_us(), timeout_us)
                        continue
                    await trio.sleep(min((deadline - now_us()) / 1e6, 0.05))
                nursery.cancel_scope.cancel()
        finally:
            self.detach(prober)
        report.stats = dict(prober.stats())
        return report
