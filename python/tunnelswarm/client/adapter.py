"""The in-process virtual adapter: what a tun device is to openconnect, without a tun.

Theory of operation: the adapter has the tunnel MTU the session's MTU policy chose.
Packets from the headend are delivered here (dropped and counted when larger than the
MTU, as a real interface would); the probe engine (Rust ``Prober``) classifies them,
and the session sends probe packets through the tunnel. Nothing here parses IP: Python
only moves bytes (house rule 5).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from tunnelswarm._core import Prober, ProbeResult
from tunnelswarm.drive.stream import now_us

__all__ = ["PingReply", "PingReport", "VirtualAdapter"]


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


@dataclass
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


class VirtualAdapter:
    """Delivers tunnel packets to the probe engine; sends probes into the tunnel."""

    def __init__(self, send: Callable[[bytes], Awaitable[bool]]) -> None:
        self._send = send
        self.mtu = 0
        self.address: str | None = None
        self.counters = AdapterCounters()
        self._probers: list[tuple[Prober, trio.MemorySendChannel[ProbeResult]]] = []

    def configure(self, *, mtu: int, address: str | None) -> None:
        self.mtu = mtu
        self.address = address

    def deliver(self, packet: bytes) -> None:
        """A packet from the headend."""
        if self.mtu and len(packet) > self.mtu:
            self.counters.rx_dropped_oversize += 1
            return
        self.counters.rx_packets += 1
        self.counters.rx_bytes += len(packet)
        now = now_us()
        for prober, chan in self._probers:
            result = prober.handle_packet(now, packet)
            if result.kind == "not-ours":
                continue
            if result.kind == "malformed":
                self.counters.rx_malformed += 1
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
        send_ch, recv_ch = trio.open_memory_channel[ProbeResult](math.inf)
        entry = (prober, send_ch)
        self._probers.append(entry)
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
            self._probers.remove(entry)
        report.stats = dict(prober.stats())
        return report
