"""The session's observables for the load engine: channel counters and DPD round trips.

Our client against the mock ASA over the in-memory network, in virtual time
(``MockClock(autojump_threshold=0)``). The network adds a known one-way latency
(:data:`LATENCY`) between client and headend and the mock answers at once, so a DPD
round trip is exactly ``2 x LATENCY`` of Trio time. The mock's group policy gives the
client DPD 30 s and keepalive 20 s on both channels (``X-CSTP-DPD``, ``X-DTLS-DPD``).
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.client.session import (
    SAMPLES,
    ChannelCounters,
    ClientOptions,
    ClientSession,
    open_client,
)
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.drive.impair import LinkImpairments
from tunnelswarm.drive.memnet import MemNetwork

HEADEND = "172.16.11.1"
CLIENT = "198.51.100.7"
INSIDE = "10.1.1.1"
LATENCY = 0.02  # one way, client <-> headend
RTT = 2 * LATENCY
#: an ICMP echo request/reply with the default 56-byte payload: 20 (IPv4) + 8 + 56
PING_BYTES = 84


async def _start(nursery: trio.Nursery, net: MemNetwork, tmp_path: Path) -> MockAsaInfo:
    cfg = MockAsaConfig(listen=HEADEND, network=net, state_dir=tmp_path)
    info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
    return info


def _options(info: MockAsaInfo, **kw: Any) -> ClientOptions:
    return ClientOptions(
        url=info.url,
        user="test",
        password="test",
        servercert=(info.pin,),
        profile=replace(OPENCONNECT_9_01, dtls_ciphers="AES128-SHA", dtls12_ciphers=""),
        hostname="virtual",
        seed=7,
        reconnect_timeout=60,
        **kw,
    )


def _client(
    info: MockAsaInfo, net: MemNetwork, **kw: Any
) -> contextlib.AbstractAsyncContextManager[ClientSession]:
    """One client of the mock over the in-memory network (``kw``: ClientOptions fields,
    or ``on_sample``)."""
    on_sample = kw.pop("on_sample", None)
    return open_client(
        _options(info, **kw),
        opener=net.stream_opener(CLIENT),
        datagram_opener=net.datagram_opener(CLIENT),
        on_sample=on_sample,
    )


def _network(seed: int) -> tuple[MemNetwork, LinkImpairments]:
    imp = LinkImpairments(latency=LATENCY, rng=random.Random(seed))
    net = MemNetwork(imp)
    net.add_headend(HEADEND)
    return net, imp


async def _dtls_up(s: ClientSession) -> None:
    while s.dtls is None or not s.dtls.up:
        await trio.sleep(0.1)


async def _reconnected(s: ClientSession, n: int) -> None:
    while s.reconnects < n or not s.connected.is_set():
        await trio.sleep(0.1)


async def test_counters_follow_pings_over_dtls_and_survive_a_reconnect(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net, imp = _network(1)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            async with _client(info, net) as s:
                assert s.channel_counters() == ChannelCounters()
                await _dtls_up(s)
                report = await s.adapter.ping(INSIDE, count=3, interval=1)
                assert report.received == 3
                c = s.channel_counters()
                assert (c.dtls_tx_packets, c.dtls_rx_packets) == (3, 3)
                assert (c.dtls_tx_bytes, c.dtls_rx_bytes) == (3 * PING_BYTES, 3 * PING_BYTES)
                # control frames (DPD, keepalive) are not data: CSTP carried none
                await trio.sleep(100)
                c = s.channel_counters()
                assert (c.cstp_tx_packets, c.cstp_rx_packets) == (0, 0)
                assert (c.cstp_tx_bytes, c.cstp_rx_bytes) == (0, 0)
                assert c.dtls_tx_packets == 3

                imp.cut_tcp()  # the TLS connection dies: a new tunnel, a new DTLS channel
                await _reconnected(s, 1)
                await _dtls_up(s)
                report = await s.adapter.ping(INSIDE, count=2, interval=1)
                assert report.received == 2
                c = s.channel_counters()
                assert (c.dtls_tx_packets, c.dtls_rx_packets) == (5, 5)
                assert (c.dtls_tx_bytes, c.dtls_rx_bytes) == (5 * PING_BYTES, 5 * PING_BYTES)
                assert (c.cstp_tx_packets, c.cstp_rx_packets) == (0, 0)
            nursery.cancel_scope.cancel()
    # still readable after the session ended, nothing lost with the last channel
    assert s.channel_counters().dtls_tx_packets == 5


async def test_counters_follow_pings_over_cstp_and_survive_a_reconnect(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net, imp = _network(2)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            async with _client(info, net, no_dtls=True) as s:
                report = await s.adapter.ping(INSIDE, count=3, interval=1, payload_len=100)
                assert report.received == 3
                c = s.channel_counters()
                assert (c.cstp_tx_packets, c.cstp_rx_packets) == (3, 3)
                assert (c.cstp_tx_bytes, c.cstp_rx_bytes) == (3 * 128, 3 * 128)
                assert (c.dtls_tx_packets, c.dtls_rx_packets, c.dtls_tx_bytes) == (0, 0, 0)
                # the older attribute names stay the same numbers
                assert (s.tx_cstp_packets, s.rx_cstp_packets) == (3, 3)

                imp.cut_tcp()
                await _reconnected(s, 1)
                report = await s.adapter.ping(INSIDE, count=2, interval=1, payload_len=100)
                assert report.received == 2
                c = s.channel_counters()
                assert (c.cstp_tx_packets, c.cstp_rx_packets) == (5, 5)
                assert (c.cstp_tx_bytes, c.cstp_rx_bytes) == (5 * 128, 5 * 128)
                assert c.dtls_rx_packets == 0
            nursery.cancel_scope.cancel()


async def test_dpd_round_trips_are_sampled_per_channel(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net, _imp = _network(3)
    samples: list[tuple[str, float, float]] = []

    def on_sample(name: str, value: float) -> None:
        samples.append((name, value, trio.current_time()))

    with trio.fail_after(900):
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            async with _client(info, net, on_sample=on_sample) as s:
                await _dtls_up(s)
                t0 = trio.current_time()
                # both channels idle (no data): each DPD timer (30 s) sends requests
                await trio.sleep(200)
                timer = list(samples)
                names = {n for n, _, _ in timer}
                assert names == set(SAMPLES)
                for name in SAMPLES:
                    got = [v for n, v, _ in timer if n == name]
                    # one request per DPD interval of silence, each answered: ~6 in 200 s
                    assert 4 <= len(got) <= 8, (name, got)
                    assert got == pytest.approx([RTT] * len(got), abs=1e-9)
                assert all(t > t0 for _, _, t in timer)
                stream = s._stream
                assert stream is not None
                cstp = [n for n, _, _ in timer if n == "dpd_rtt_cstp"]
                assert len(cstp) == stream.conn.stats()["dpd_sent"]  # every one answered

                # explicit round trips are samples too (one each)
                samples.clear()
                assert await s.check_round_trip()
                assert s.dtls is not None
                assert await s.dtls.dpd_round_trip()
                assert [n for n, _, _ in samples] == ["dpd_rtt_cstp", "dpd_rtt_dtls"]
                assert [v for _, v, _ in samples] == pytest.approx([RTT, RTT], abs=1e-9)
            nursery.cancel_scope.cancel()


async def test_longer_path_gives_longer_dpd_round_trips(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net, imp = _network(4)
    samples: list[tuple[str, float]] = []
    with trio.fail_after(900):
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            async with _client(info, net, on_sample=lambda n, v: samples.append((n, v))) as s:
                await _dtls_up(s)
                imp.set("latency", 0.15)
                await trio.sleep(100)
                assert {n for n, _ in samples} == set(SAMPLES)
                assert [v for _, v in samples] == pytest.approx([0.3] * len(samples), abs=1e-9)
            nursery.cancel_scope.cancel()


def test_answers_without_a_pending_request_are_no_samples() -> None:
    """A DPD response is a sample only when this client has a request pending on that
    channel, and one request gives at most one sample."""

    async def main() -> None:
        samples: list[tuple[str, float]] = []
        s = ClientSession(
            ClientOptions(url="https://vpn.example.com", servercert=("pin-sha256:x",)),
            on_sample=lambda n, v: samples.append((n, v)),
        )
        answer = [SimpleNamespace(kind="dpd-response", payload=b"")]
        assert s._dispatch(answer) is None  # type: ignore[arg-type]
        assert samples == []
        s._cstp_dpd_sent = trio.current_time()
        await trio.sleep(0.25)
        s._dispatch(answer)  # type: ignore[arg-type]
        s._dispatch(answer)  # type: ignore[arg-type]  # a second answer: nothing pending
        assert [n for n, _ in samples] == ["dpd_rtt_cstp"]
        assert samples[0][1] == pytest.approx(0.25)
        # answers to the headend's own DPD requests are not ours to time
        s._cstp_dpd_sent = None
        s._dispatch([SimpleNamespace(kind="dpd-request", payload=b"")])  # type: ignore[list-item]
        assert len(samples) == 1

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_lazy_randomness_draws_what_one_kept_generator_would() -> None:
    """The session keeps no ``random.Random`` (memory) and the adapter makes its own on
    first use: the bytes are still those of one generator seeded once (house rule 6)."""
    s = ClientSession(
        ClientOptions(url="https://vpn.example.com", servercert=("pin-sha256:x",), seed=5)
    )
    kept = random.Random(5)
    assert s.master_secret == kept.randbytes(48).hex().upper()
    assert [s._draw_dtls_seed() for _ in range(3)] == [kept.randbytes(32) for _ in range(3)]

    ref = random.Random(0)  # the session's adapter: seed 0
    first = 49152 + ref.randrange(16384)
    assert s.adapter.allocate_port() == first
    assert s.adapter.rng.getrandbits(32) == ref.getrandbits(32)
    assert s.adapter.reassembler is s.adapter.reassembler  # made once, then kept
