"""The client's DTLS channel: openconnect's behaviour (protocol.md §5.1, §5.4, §5.5).

Theory of operation
-------------------
After a successful CONNECT that offered DTLS (``X-DTLS-Session-ID`` or ``X-DTLS-App-ID``
and a cipher), :func:`plan_dtls` decides the mode from the headend's answer:

* ``X-DTLS-CipherSuite: PSK-NEGOTIATE`` → PSK: the 32-byte PSK is exported from the
  CSTP TLS session (label ``EXPORTER-openconnect-psk``, no context), the ClientHello
  session id is the App-ID (§5.4);
* ``X-DTLS12-CipherSuite: NAME`` → DTLS 1.2 resumption (§5.3);
* ``X-DTLS-CipherSuite: NAME`` → DTLS 0.9 resumption, or DTLS 1.2 for ``OC-DTLS1_2-*``
  names (§5.2, §5.3); the master secret is the client's ``X-DTLS-Master-Secret``.

:class:`DtlsChannel` then runs for as long as the CSTP connection lives (a CSTP
reconnect restarts it, as in openconnect): each *attempt* opens a fresh UDP socket (a new
source port — ocserv will not answer a second ClientHello on the same port, §5.2.5)
towards ``X-DTLS-Port`` on the headend, and drives one Rust ``DtlsConnection``. Once the
handshake completes, data goes over DTLS and CSTP carries control only. The timing is
the profile's :class:`~tunnelswarm.client.policy.DtlsRetryPolicy`: a handshake that does
not finish within its give-up time (openconnect: 12 s) → wait the retry period (60 s)
and try again; DTLS dead-peer detection (no record for more than 2 × ``X-DTLS-DPD``) →
drop DTLS, data falls back to CSTP at once, and a new handshake starts immediately
(``rehandshake``; §5.5, verified behaviour of openconnect 9.01) or after the retry
period. The channel reports to its owner through callbacks: ``on_up`` (handshake done),
``on_down`` (an established channel lost) and ``on_fail`` (an attempt that never came
up). The CSTP session is never touched by DTLS trouble here; what the client does about
it (AnyConnect's MTU reconnect) is the session's MTU policy.

Impairments (:class:`Impairments`) are the hook tests and scenarios use to break the
UDP path from the client side: with ``block_udp`` every datagram is dropped in both
directions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from tunnelswarm._core import CstpConnection, DtlsConnection, DtlsEvent
from tunnelswarm.client.policy import DtlsRetryPolicy
from tunnelswarm.config.params import TunnelParams
from tunnelswarm.drive.datagram import DatagramChannel, DatagramOpener, udp_opener
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import ConfigError, TunnelswarmError

__all__ = ["DtlsChannel", "DtlsPlan", "Impairments", "plan_dtls"]

PSK_EXPORTER_LABEL = b"EXPORTER-openconnect-psk"


@dataclass
class Impairments:
    """Client-side network impairments, switchable at run time."""

    #: drop every DTLS datagram, both directions (UDP blocked on the path)
    block_udp: bool = False


@dataclass(frozen=True, slots=True)
class DtlsPlan:
    """How to bring DTLS up for one CSTP connection."""

    mode: str  # "legacy" (X-DTLS-CipherSuite) | "dtls12" (X-DTLS12-CipherSuite) | "psk"
    cipher: str
    session_id: bytes
    master_secret: bytes
    psk: bytes | None
    host: str
    port: int
    dpd: int
    keepalive: int


def plan_dtls(
    params: TunnelParams,
    *,
    host: str,
    default_port: int,
    master_secret_hex: str,
    cstp: CstpConnection,
) -> DtlsPlan | None:
    """The DTLS plan the headend's CONNECT answer asks for, or None (no DTLS offered)."""
    if not params.dtls_offered:
        return None
    master = bytes.fromhex(master_secret_hex)
    port = params.dtls_port or default_port
    if params.dtls_cipher_suite == "PSK-NEGOTIATE":
        if params.dtls_app_id is None:
            return None
        psk = cstp.export_keying_material(PSK_EXPORTER_LABEL, 32)
        mode, cipher, sid = "psk", "PSK-NEGOTIATE", bytes.fromhex(params.dtls_app_id)
    elif params.dtls_session_id is None:
        return None
    elif params.dtls12_cipher_suite:
        psk, mode, cipher = None, "dtls12", params.dtls12_cipher_suite
        sid = bytes.fromhex(params.dtls_session_id)
    elif params.dtls_cipher_suite:
        psk, mode, cipher = None, "legacy", params.dtls_cipher_suite
        sid = bytes.fromhex(params.dtls_session_id)
    else:
        return None
    return DtlsPlan(
        mode=mode,
        cipher=cipher,
        session_id=sid,
        master_secret=master,
        psk=psk,
        host=host,
        port=port,
        dpd=params.dtls_dpd,
        keepalive=params.dtls_keepalive,
    )


@dataclass(slots=True)
class DtlsCounters:
    attempts: int = 0
    established: int = 0
    handshake_failures: int = 0
    dead_peer: int = 0
    #: data packets (inner IP packets) sent / received over DTLS, and their bytes
    tx_packets: int = 0
    rx_packets: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    dropped_impaired: int = 0


@dataclass(slots=True)
class DtlsChannel:
    """One CSTP connection's DTLS: attempts, the UDP socket, the data path."""

    plan: DtlsPlan
    deliver: Callable[[bytes], None]
    impairments: Impairments
    log: logging.Logger
    seed: Callable[[], bytes]
    retry: DtlsRetryPolicy = field(default_factory=DtlsRetryPolicy)
    on_up: Callable[[DtlsConnection], None] | None = None
    #: an established channel was lost (the reason)
    on_down: Callable[[str], None] | None = None
    #: an attempt ended without the channel coming up (the reason)
    on_fail: Callable[[str], None] | None = None
    opener: DatagramOpener = udp_opener
    #: the round trip (seconds) of each answered DPD request this channel sent (its DPD
    #: timer or :meth:`dpd_round_trip`); one pending at a time, a newer one replaces it
    on_dpd_rtt: Callable[[float], None] | None = None
    counters: DtlsCounters = field(default_factory=DtlsCounters)
    conn: DtlsConnection | None = None
    sock: DatagramChannel | None = None
    up: bool = False
    last_failure: str | None = None
    state_changed: trio.Event = field(default_factory=trio.Event)
    dpd_responses: int = 0
    _dpd_waiters: list[trio.Event] = field(default_factory=list)
    #: Trio time the pending DPD request was sent on the current connection (or None)
    _dpd_sent: float | None = None

    def _new_connection(self) -> DtlsConnection:
        p = self.plan
        try:
            return DtlsConnection.client(
                now_us(),
                mode=p.mode,
                cipher=p.cipher,
                session_id=p.session_id,
                master_secret=p.master_secret,
                psk=p.psk,
                seed=self.seed(),
                handshake_timeout=int(self.retry.handshake_timeout * 1_000_000),
                dpd=p.dpd,
                keepalive=p.keepalive,
                keylog=True,
            )
        except ConfigError:
            raise
        except TunnelswarmError as e:  # pragma: no cover - mapped by the binding
            raise ConfigError(str(e)) from None

    def _changed(self) -> None:
        self.state_changed.set()
        self.state_changed = trio.Event()

    async def run(self) -> None:
        """Attempt DTLS forever (the caller cancels it with the CSTP connection)."""
        while True:
            reason = await self._attempt()
            if self.up:
                self.up = False
                if self.on_down:
                    self.on_down(reason)
            elif self.on_fail:
                self.on_fail(reason)
            self.last_failure = reason
            self._changed()
            dead = reason.startswith("dead peer")
            if dead:
                self.counters.dead_peer += 1
            else:
                self.counters.handshake_failures += 1
            delay = self.retry.delay_after(dead_peer=dead)
            if delay <= 0:
                self.log.warning("DTLS: %s; data over CSTP, new handshake now", reason)
                continue
            self.log.warning("DTLS: %s; data over CSTP, next attempt in %g s", reason, delay)
            await trio.sleep(delay)

    async def _attempt(self) -> str:
        self.counters.attempts += 1
        p = self.plan
        try:
            conn = self._new_connection()
        except TunnelswarmError as e:
            return f"cannot start DTLS: {e}"
        try:
            sock = await self.opener(p.host, p.port)
        except OSError as e:
            return f"cannot open UDP to {p.host}:{p.port}: {e.strerror or e}"
        self.conn, self.sock = conn, sock
        self._dpd_sent = None
        try:
            self.log.info("DTLS: handshake %s %s to %s:%d", p.mode, p.cipher, p.host, p.port)
            await self._flush(conn, sock)
            return await self._serve(conn, sock)
        finally:
            self.conn, self.sock = None, None
            sock.close()

    async def _flush(
        self, conn: DtlsConnection, sock: DatagramChannel, now: int | None = None
    ) -> None:
        """Send what the core has queued; ``now``: the caller's reading of the clock, if it
        has one (a clock read costs as much as the core's call; one per flush is enough)."""
        if now is None:
            now = now_us()
        while (dgram := conn.poll_transmit(now)) is not None:
            if self.impairments.block_udp:
                self.counters.dropped_impaired += 1
                continue
            try:
                await sock.send(dgram)
            except OSError as e:
                self.log.debug("DTLS send failed: %s", e)

    def _dispatch(self, conn: DtlsConnection, events: list[DtlsEvent]) -> str | None:
        for ev in events:
            k = ev.kind
            if k == "data":
                payload = ev.payload
                self.counters.rx_packets += 1
                self.counters.rx_bytes += len(payload)
                self.deliver(payload)
            elif k == "connected":
                self.up = True
                self.counters.established += 1
                self.log.info("Established DTLS connection: %s", ev.text)
                if self.on_up:
                    self.on_up(conn)
                self._changed()
            elif k == "dpd-response":
                self.dpd_responses += 1
                sent, self._dpd_sent = self._dpd_sent, None
                if sent is not None and self.on_dpd_rtt is not None:
                    self.on_dpd_rtt(trio.current_time() - sent)
                waiters, self._dpd_waiters = self._dpd_waiters, []
                for w in waiters:
                    w.set()
            elif k == "handshake-failed":
                return f"handshake failed: {ev.text}"
            elif k == "peer-dead":
                return "dead peer: no DTLS record for more than 2 x DPD"
        return None

    async def _serve(self, conn: DtlsConnection, sock: DatagramChannel) -> str:
        """One attempt's single task: each datagram in, each timer when it is due, until a
        reason to end the attempt (a failed handshake, a dead peer).

        It waits for a datagram until the core's next deadline; the datagram channels
        lose nothing to a receive cut short by that deadline."""
        while True:
            deadline = conn.next_deadline()
            data: bytes | None = None
            with trio.move_on_at(math.inf if deadline is None else deadline / 1_000_000):
                data = await self._receive(sock)
            now = now_us()
            if data is None:  # the deadline: run the core's timers
                if self.on_dpd_rtt is None:
                    conn.handle_timeout(now)
                else:
                    sent = conn.stats()["dpd_requests_out"]
                    conn.handle_timeout(now)
                    if conn.stats()["dpd_requests_out"] != sent:  # the DPD timer sent one
                        self._dpd_sent = trio.current_time()
            elif self.impairments.block_udp:
                self.counters.dropped_impaired += 1
                continue
            else:
                conn.handle_datagram(now, data)
            await self._flush(conn, sock, now)
            if (r := self._dispatch(conn, conn.poll_events())) is not None:
                return r

    @staticmethod
    async def _receive(sock: DatagramChannel) -> bytes:
        while True:
            try:
                return await sock.recv()
            except OSError:
                # ICMP port unreachable and the like: keep waiting; the give-up timer decides
                await trio.sleep(0.05)

    async def send(self, packet: bytes) -> bool:
        """Send an IP packet over DTLS. False if DTLS is not up (use CSTP)."""
        conn, sock = self.conn, self.sock
        if not self.up or conn is None or sock is None:
            return False
        try:
            now = now_us()
            conn.send_data(now, packet)
        except TunnelswarmError:
            return False
        self.counters.tx_packets += 1
        self.counters.tx_bytes += len(packet)
        await self._flush(conn, sock, now)
        return True

    async def dpd_round_trip(self, timeout: float = 5.0, payload: bytes = b"") -> bool:
        """Send a DTLS DPD request; True when the headend answered within ``timeout``."""
        conn, sock = self.conn, self.sock
        if not self.up or conn is None or sock is None:
            return False
        done = trio.Event()
        self._dpd_waiters.append(done)
        conn.send_control(now_us(), 0x03, payload)
        self._dpd_sent = trio.current_time()
        await self._flush(conn, sock)
        with trio.move_on_after(timeout):
            await done.wait()
        return done.is_set()
