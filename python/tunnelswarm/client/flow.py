"""A TCP transfer through the tunnel: the client end of the mock ASA's "web server" flow.

Theory of operation
-------------------
:func:`fetch` asks an inside host for ``nbytes`` bytes the way the mock ASA's flow model
(:mod:`tunnelswarm.asa.inside`, whose docstring has the wire format) expects: one SYN
with an MSS option of *adapter MTU − 40* and ``GET /<nbytes>`` as SYN payload, then
cumulative ACKs. The bytes are the Rust core's ``FlowReceiver``
(``rust/proto/src/traffic/flow.rs``): it builds the SYN and ACKs, classifies every
inbound packet, keeps no out-of-order data (the server is go-back-N) and retransmits the
SYN on its own timer (``syn_rto`` doubling, ``syn_retries`` times). This module only
attaches the receiver to the :class:`~tunnelswarm.client.adapter.VirtualAdapter` as a
tap, sends what it wants sent, sleeps until its deadline, and classifies the result.

Packets larger than the adapter MTU never reach the receiver (the adapter drops and
counts them, ``rx_dropped_oversize``): a server that sends segments larger than our MSS
promised, or a tunnel MTU above the adapter's, shows up as gaps and retransmissions.

Outcomes (:class:`FlowResult`)
------------------------------
``completed``
    The in-order FIN arrived and was acknowledged, and none of the *slowed* signs below
    were seen.
``slowed``
    Completed, but the transfer shows that the path made the server work harder. Any of:

    * ``syn-retransmitted``: the SYN had to be sent again (no SYN|ACK within the RTO);
    * ``retransmissions``: a segment carried bytes already received (the server went
      back after its RTO, or repeated the SYN|ACK);
    * ``gaps``: a segment arrived beyond the next expected byte (one before it was lost
      or dropped — e.g. by the adapter for being over its MTU);
    * ``smaller-segments``: a data segment that does not end the response carried fewer
      bytes than the full size min(our MSS, the server's MSS): the server had lowered its
      path-MTU estimate after an ICMP "fragmentation needed" (RFC 1191 PMTUD);
    * ``took-longer``: only when ``expected`` (the loss-free transfer time, seconds) is
      given: SYN-to-completion took more than :data:`SLOW_FACTOR` × ``expected``.
``stalled``
    Not completed within ``timeout`` (e.g. a PMTUD black hole: big segments dropped and
    no ICMP), reset by the server (it gave up after its retries, or refused the
    request), or no SYN|ACK after every SYN retransmission.

The reasons are listed in :attr:`FlowResult.reasons`; the receiver's counters in
:attr:`FlowResult.stats`. Whether the bytes were right is separate: :attr:`FlowResult.intact`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import trio

from tunnelswarm._core import FlowReceiver
from tunnelswarm.client.adapter import VirtualAdapter
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import LocalProtocolError

__all__ = ["SLOW_FACTOR", "FlowOutcome", "FlowResult", "classify", "fetch"]

#: a completed transfer slower than this many times ``expected`` is ``slowed``
SLOW_FACTOR: Final = 3.0
#: IPv4 + TCP headers without options: MSS = adapter MTU − this
TCP_IP_OVERHEAD: Final = 40
_FINAL: Final = frozenset({"complete", "reset", "gave-up"})

FlowOutcome = Literal["completed", "slowed", "stalled"]
FlowStats = dict[str, int | None]


@dataclass(frozen=True, slots=True)
class FlowResult:
    """How one transfer went (times in seconds, relative to the first SYN)."""

    outcome: FlowOutcome
    #: why it was slowed or stalled (empty when completed cleanly)
    reasons: tuple[str, ...]
    target: str
    port: int
    sport: int
    #: bytes asked for, and in-order bytes received
    nbytes: int
    received: int
    #: the MSS the SYN advertised (adapter MTU − 40)
    mss: int
    #: the receiver's final state: complete, reset, gave-up, syn-sent or established
    state: str
    #: SYN to the first response byte, and SYN to completion (or to giving up waiting)
    first_byte: float | None
    elapsed: float
    #: packets the adapter dropped as over its MTU while the flow ran (any traffic)
    adapter_drops: int
    #: the receiver's counters (``FlowReceiver.stats()``)
    stats: FlowStats

    @property
    def completed(self) -> bool:
        """The transfer finished (cleanly or slowed)."""
        return self.outcome != "stalled"

    @property
    def intact(self) -> bool:
        """Every byte asked for arrived, each the right one."""
        return self.received == self.nbytes and not self.stats.get("payload_errors")


def _n(stats: FlowStats, key: str) -> int:
    return stats.get(key) or 0


def classify(
    state: str,
    stats: FlowStats,
    *,
    timeout: float | None = None,
    expected: float | None = None,
) -> tuple[FlowOutcome, tuple[str, ...]]:
    """The outcome of a transfer from the receiver's final ``state`` and ``stats`` (see
    the module docstring); ``timeout`` only words the reason of an unfinished one."""
    if state == "reset":
        return "stalled", ("reset by the server",)
    if state == "gave-up":
        syns = _n(stats, "syns_sent")
        return "stalled", (f"no SYN|ACK after {syns} SYNs",)
    if state != "complete":
        waited = "" if timeout is None else f" within {timeout:g} s"
        got = _n(stats, "bytes")
        return "stalled", (f"not completed{waited} ({state}, {got} bytes in order)",)
    reasons: list[str] = []
    if n := _n(stats, "syn_retransmits"):
        reasons.append(f"syn-retransmitted: {n} SYN retransmission(s)")
    if n := _n(stats, "duplicates"):
        reasons.append(f"retransmissions: {n} segment(s) carried bytes already received")
    if n := _n(stats, "out_of_order"):
        reasons.append(f"gaps: {n} segment(s) arrived after a missing one")
    if n := _n(stats, "short_segments"):
        full = stats.get("full_segment")
        reasons.append(
            f"smaller-segments: {n} segment(s) below the full size {full}"
            f" (largest seen {stats.get('largest_payload')}): the path MTU shrank"
        )
    syn_at, done_at = stats.get("syn_at_us"), stats.get("completed_at_us")
    if expected is not None and syn_at is not None and done_at is not None:
        took = (done_at - syn_at) / 1e6
        if took > SLOW_FACTOR * expected:
            reasons.append(
                f"took-longer: {took:.3f} s > {SLOW_FACTOR:g} x the expected {expected:g} s"
            )
    return ("slowed" if reasons else "completed"), tuple(reasons)


async def fetch(
    adapter: VirtualAdapter,
    target: str,
    nbytes: int,
    *,
    port: int = 80,
    timeout: float = 30.0,
    sport: int | None = None,
    isn: int | None = None,
    syn_rto: float = 1.0,
    syn_retries: int = 3,
    expected: float | None = None,
) -> FlowResult:
    """Fetch ``nbytes`` bytes from ``target:port`` through ``adapter``'s tunnel.

    ``sport`` defaults to a free ephemeral port of the adapter, ``isn`` to a draw from
    its seeded ``rng``; ``syn_rto`` / ``syn_retries`` run the SYN timer; ``timeout``
    bounds the whole transfer; ``expected`` (seconds) enables the ``took-longer`` test.
    LocalProtocolError when the adapter has no address or an MTU of 40 or less;
    ConfigError for a bad target or size.
    """
    if adapter.address is None:
        raise LocalProtocolError("adapter has no tunnel address yet")
    if adapter.mtu <= TCP_IP_OVERHEAD:
        raise LocalProtocolError(f"adapter MTU {adapter.mtu} leaves no room for TCP")
    mss = min(adapter.mtu - TCP_IP_OVERHEAD, 0xFFFF)
    own_port = sport is None
    src_port = adapter.allocate_port() if sport is None else sport
    try:
        rx = FlowReceiver(
            adapter.address,
            target,
            src_port,
            port,
            mss,
            nbytes,
            adapter.rng.getrandbits(32) if isn is None else isn,
            syn_rto_us=round(syn_rto * 1e6),
            syn_retries=syn_retries,
        )
        drops = adapter.counters.rx_dropped_oversize
        verdicts = adapter.attach(rx)
        started = trio.current_time()
        try:
            with trio.move_on_after(timeout):
                await adapter.send(rx.syn(now_us()))
                while rx.state not in _FINAL:
                    deadline = rx.next_deadline()
                    with trio.move_on_at(math.inf if deadline is None else deadline / 1e6):
                        await verdicts.receive()
                    rx.handle_timeout(now_us())
                    while (packet := rx.poll_transmit()) is not None:
                        await adapter.send(packet)
        finally:
            adapter.detach(rx)
        ended = trio.current_time()
    finally:
        if own_port:
            adapter.release_port(src_port)
    stats = rx.stats()
    outcome, reasons = classify(rx.state, stats, timeout=timeout, expected=expected)
    syn_at, first_at, done_at = (
        stats.get("syn_at_us"),
        stats.get("first_byte_at_us"),
        stats.get("completed_at_us"),
    )
    if syn_at is not None and done_at is not None:
        elapsed = (done_at - syn_at) / 1e6
    else:
        elapsed = ended - started
    return FlowResult(
        outcome=outcome,
        reasons=reasons,
        target=target,
        port=port,
        sport=src_port,
        nbytes=nbytes,
        received=_n(stats, "bytes"),
        mss=mss,
        state=rx.state,
        first_byte=None if syn_at is None or first_at is None else (first_at - syn_at) / 1e6,
        elapsed=elapsed,
        adapter_drops=adapter.counters.rx_dropped_oversize - drops,
        stats=stats,
    )
