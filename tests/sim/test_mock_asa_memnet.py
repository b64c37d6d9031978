"""The mock ASA and our client over the in-memory network, in virtual time.

Both run in one Trio run under ``MockClock(autojump_threshold=0)``: minutes of protocol
time (DPD, keepalive, DTLS retries) pass in well under a second of real time, and the
syslog timestamps follow the virtual clock.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import trio
import trio.testing

from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.client.dtls import Impairments
from tunnelswarm.client.session import ClientOptions, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.drive.impair import LinkImpairments
from tunnelswarm.drive.memnet import MemNetwork

HEADEND = "172.16.11.1"  # the outside interface address of the default configuration
CLIENT = "198.51.100.7"
START = datetime(2026, 11, 30, 9, 0, 0)


async def _start(nursery: trio.Nursery, net: MemNetwork, tmp_path: Path) -> MockAsaInfo:
    t0 = trio.current_time()
    cfg = MockAsaConfig(
        listen=HEADEND,
        network=net,
        state_dir=tmp_path,
        wall_clock=lambda: START + timedelta(seconds=trio.current_time() - t0),
    )
    info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
    return info


def _options(info: MockAsaInfo) -> ClientOptions:
    return ClientOptions(
        url=info.url,
        user="test",
        password="test",
        servercert=(info.pin,),
        profile=replace(OPENCONNECT_9_01, dtls_ciphers="AES128-SHA", dtls12_ciphers=""),
        hostname="virtual",
        seed=1,
    )


async def test_connect_dtls_ping_in_virtual_time(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net = MemNetwork(LinkImpairments(latency=0.02, rng=random.Random(1)))
    net.add_headend(HEADEND)
    with trio.fail_after(1200):  # virtual seconds
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            assert info.url == f"https://{HEADEND}/"
            assert info.udp_port == 443  # no offset on a network of its own
            async with open_client(
                _options(info),
                opener=net.stream_opener(CLIENT),
                datagram_opener=net.datagram_opener(CLIENT),
            ) as s:
                while s.dtls is None or not s.dtls.up:
                    await trio.sleep(0.1)
                report = await s.adapter.ping("10.1.1.1", count=3, interval=1)
                assert report.received == 3
                # ~40 ms round trip over DTLS (two one-way latencies)
                assert all(39 <= r.rtt_ms <= 41 for r in report.replies)
                # ten virtual minutes of DPD and keepalives: still up, same session
                await trio.sleep(600)
                assert s.dtls.up
                assert await s.check_round_trip()
                listing = info.asa.show("vpn-sessiondb anyconnect")
                assert "test" in listing
                assert CLIENT in listing
            nursery.cancel_scope.cancel()
    logged = info.asa.syslog_buffer.lines()
    assert any("716001" in ln for ln in logged)
    # syslog timestamps follow the virtual clock, not the machine's
    assert any("Nov 30 2026 09:" in ln for ln in logged)


async def test_udp_blocked_on_the_path_keeps_cstp(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    imp = LinkImpairments(rng=random.Random(2))
    imp.set("block_udp", True)
    net = MemNetwork(imp)
    net.add_headend(HEADEND)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            async with open_client(
                _options(info),
                opener=net.stream_opener(CLIENT),
                datagram_opener=net.datagram_opener(CLIENT),
                impairments=Impairments(),
            ) as s:
                await trio.sleep(130)  # two DTLS attempts (12 s give-up, 60 s period)
                assert s.dtls is not None
                assert not s.dtls.up
                assert s.dtls.counters.attempts >= 2
                report = await s.adapter.ping("10.1.1.1", count=2, interval=1)
                assert report.received == 2  # over CSTP
            nursery.cancel_scope.cancel()
    assert imp.counters.udp_blocked > 0


async def test_cookie_reuse_while_old_tunnel_alive_closes_it_as_stale(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A second CONNECT with the session's cookie while the first TCP connection still
    looks alive (the client moved and its old connection hangs): the ASA keeps the session
    and its address, closes the old connection (722028) and logs the replacement (722032);
    the new DTLS tunnel, with the old one gone, is 'no existing connection' (722034)."""
    net = MemNetwork(LinkImpairments(rng=random.Random(3)))
    net.add_headend(HEADEND)
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            info = await _start(nursery, net, tmp_path)
            moved_away = False
            old_network = net.stream_opener(CLIENT)

            async def old_opener(host: str, port: int) -> trio.abc.Stream:
                if moved_away:  # the laptop left this network: its reconnects go nowhere
                    raise OSError(101, "network is unreachable")
                return await old_network(host, port)

            async with open_client(
                replace(_options(info), reconnect_timeout=60),
                opener=old_opener,
                datagram_opener=net.datagram_opener(CLIENT),
            ) as first:
                while first.dtls is None or not first.dtls.up:
                    await trio.sleep(0.1)
                assert first.cookie is not None
                moved_away = True
                moved = replace(_options(info), cookie=first.cookie, reconnect_timeout=1)
                async with open_client(
                    moved,
                    opener=net.stream_opener("203.0.113.9"),
                    datagram_opener=net.datagram_opener("203.0.113.9"),
                ) as second:
                    while second.dtls is None or not second.dtls.up:
                        await trio.sleep(0.1)
                    assert second.params is not None
                    assert first.params is not None
                    assert second.params.address == first.params.address
                    assert len(list(info.asa.sessiondb)) == 1
            nursery.cancel_scope.cancel()
    text = "\n".join(info.asa.syslog_buffer.lines())
    assert "%ASA-5-722028:" in text
    assert "Stale SVC connection closed." in text
    assert "New TCP SVC connection replacing old connection." in text
    assert "%ASA-5-722034:" in text or "%ASA-5-722032:" in text
