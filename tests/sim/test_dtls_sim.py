"""Our client's DTLS against :class:`FakeHeadend`'s DTLS server role, in virtual time.

The headend's server side is the Rust core's ``DtlsEndpoint`` (protocol.md §5); the
client's UDP sockets are the headend's in-memory ``memory_datagram_opener``, so the
handshakes, records, DPD and timers are the real ones while 60-200 s of protocol time
take no real time (pytest-trio ``autojump_clock``). Every test has a ``trio.fail_after``
guard in virtual seconds. Timing facts are openconnect 9.01's (§5.1, §5.5, §10.10):
12 s handshake budget with ClientHellos at 0/1/3/7 s, a new attempt 60 s after a
failure, DTLS DPD after X-DTLS-DPD of silence repeated every DPD/2, dead at the first
wake-up after 2 x DPD, then an immediate new handshake; CSTP is never reconnected.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing

from tunnelswarm.client.session import ClientOptions, ClientSession, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.testing.headend import (
    DATA,
    FakeHeadend,
    HeadendScript,
    SeenDatagram,
    choose_dtls,
)

URL = "https://vpn.example.com"
INSIDE = "10.10.10.1"
GUARD = 900.0  # virtual seconds
TOL = 0.01  # virtual seconds
HELLOS = [0.0, 1.0, 3.0, 7.0]  # ClientHello (re)transmissions of one attempt (§5.1)

# (id, X-DTLS-CipherSuite offer, X-DTLS12-CipherSuite offer, script knobs,
#  answered header, mode, openconnect-style description)
MODES = [
    (
        "dtls09-aes128",
        "AES128-SHA",
        "",
        {},
        "X-DTLS-CipherSuite",
        "legacy",
        "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)",
    ),
    (
        "dtls09-aes256",
        "AES256-SHA",
        "",
        {},
        "X-DTLS-CipherSuite",
        "legacy",
        "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)",
    ),
    (
        "dtls09-3des",
        "DES-CBC3-SHA",
        "",
        {},
        "X-DTLS-CipherSuite",
        "legacy",
        "(DTLS0.9)-(RSA)-(3DES-CBC)-(SHA1)",
    ),
    (
        "oc12-aes128gcm",
        "OC-DTLS1_2-AES128-GCM",
        "",
        {},
        "X-DTLS-CipherSuite",
        "legacy",
        "(DTLS1.2)-(RSA)-(AES-128-GCM)",
    ),
    (
        "dtls12-aes256gcm",
        "",
        "AES256-GCM-SHA384",
        {},
        "X-DTLS12-CipherSuite",
        "dtls12",
        "(DTLS1.2)-(RSA)-(AES-256-GCM)",
    ),
    (
        "psk",
        "PSK-NEGOTIATE",
        "",
        {"psk": True},
        "X-DTLS-CipherSuite",
        "psk",
        "(DTLS1.2)-(PSK)-(AES-256-GCM)",
    ),
]


def now() -> float:
    return trio.current_time()


def options(hub: FakeHeadend, dtls: str = "AES128-SHA", dtls12: str = "") -> ClientOptions:
    return ClientOptions(
        url=URL,
        user="test",
        password="test",
        servercert=(hub.pin,),
        hostname="sim-host",
        seed=7,
        profile=replace(OPENCONNECT_9_01, dtls_ciphers=dtls, dtls12_ciphers=dtls12),
    )


@asynccontextmanager
async def tunnel(
    nursery: trio.Nursery, opts: Callable[[FakeHeadend], ClientOptions], **script: Any
) -> AsyncIterator[tuple[FakeHeadend, ClientSession]]:
    """A headend with these knobs and a connected client using its in-memory UDP."""
    hub = FakeHeadend(HeadendScript(**script))
    async with open_client(
        opts(hub),
        opener=hub.memory_opener(nursery),
        datagram_opener=hub.memory_datagram_opener(nursery),
    ) as s:
        yield hub, s


async def until(predicate: Callable[[], bool], step: float = 0.001) -> None:
    while not predicate():
        await trio.sleep(step)


async def all_closed(hub: FakeHeadend) -> None:
    with trio.fail_after(5):
        await hub.wait_for(lambda: all(not c.live for c in hub.connections))


async def dtls_up(s: ClientSession) -> None:
    await until(lambda: s.dtls is not None and s.dtls.up)


def times(datagrams: list[SeenDatagram], since: float = 0.0) -> list[float]:
    return [round(d.at - since, 3) for d in datagrams]


def hellos_of(hub: FakeHeadend, peer: int) -> list[SeenDatagram]:
    return [d for d in hub.client_hellos() if d.peer == peer]


def approx(values: list[float]) -> Any:
    return pytest.approx(values, abs=TOL)


# ----------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    ("dtls", "dtls12", "knobs", "header", "mode", "text"),
    [pytest.param(*m[1:], id=m[0]) for m in MODES],
)
async def test_dtls_mode_carries_data_and_dpd(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    dtls: str,
    dtls12: str,
    knobs: dict[str, Any],
    header: str,
    mode: str,
    text: str,
) -> None:
    """§5.2-§5.4: each mode comes up; pings travel on DTLS, not CSTP, in both
    directions; a DPD round trip and the idle DPD after X-DTLS-DPD are answered."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, lambda h: options(h, dtls, dtls12), **knobs) as (hub, s):
            await dtls_up(s)
            assert s.dtls is not None
            d = hub.dtls
            assert d is not None
            assert (d.mode, d.text) == (mode, text)
            assert d.connected == approx([0.0])
            # the CONNECT answer (§3.3.3, §5.4)
            rec = hub.connections[0]
            assert rec.reply_header(header) == d.cipher
            other = "X-DTLS-CipherSuite" if "12" in header else "X-DTLS12-CipherSuite"
            assert rec.reply_header(other) is None
            if mode == "psk":
                assert rec.reply_header("X-DTLS-App-ID") == d.key.hex()
                assert rec.reply_header("X-DTLS-Session-ID") is None
            else:
                assert rec.reply_header("X-DTLS-Session-ID") == d.key.hex().upper()
            assert rec.reply_header("X-DTLS-Port") == "443"
            assert rec.reply_header("X-DTLS-DPD") == "30"
            assert rec.reply_header("X-DTLS-Keepalive") == "20"

            report = await s.adapter.ping(INSIDE, count=3, interval=1.0)
            assert report.received == 3
            assert (s.dtls.counters.tx_packets, s.dtls.counters.rx_packets) == (3, 3)
            assert (s.tx_cstp_packets, s.rx_cstp_packets) == (0, 0)
            assert (d.data_in, d.echo_replies) == (3, 3)
            assert hub.frames_of(DATA) == []

            # headend → client over DTLS (our client counts, it does not answer pings)
            before = s.adapter.counters.rx_packets
            sent = await hub.ping_client(count=2, interval=0.5, timeout=0.5, via="dtls")
            assert (sent.sent_dtls, sent.not_sent) == (2, 0)
            assert s.adapter.counters.rx_packets == before + 2
            assert s.dtls.counters.rx_packets == 5

            assert await s.dtls.dpd_round_trip(payload=b"probe")
            assert d.dpd_requests[-1][1] == len(b"probe")
            last_rx = now()
            await trio.sleep(31)  # idle: the client's own DPD at +30 s is answered
            assert d.dpd_requests[-1][0] == pytest.approx(last_rx + 30, abs=TOL)
            assert s.dtls.dpd_responses == 2
            assert s.dtls.up
            assert s.dtls.counters.attempts == 1
    assert len(hub.connects) == 1
    await all_closed(hub)
    assert d.unregistered_at is not None  # the session ended with its TCP connection
    assert hub.endpoint.session_count == 0


@pytest.mark.parametrize("layout", ["one-datagram", "separate", "first-alone"])
@pytest.mark.parametrize(("dtls", "dtls12"), [("AES256-SHA", ""), ("", "AES128-GCM-SHA256")])
async def test_hello_verify_and_flight_layouts(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    dtls: str,
    dtls12: str,
    layout: str,
) -> None:
    """§5.2.3: with a HelloVerifyRequest the client re-sends its hello with the cookie;
    the server's SH/CCS/Finished may come in one, two or three datagrams."""
    with trio.fail_after(GUARD):
        async with tunnel(
            nursery, lambda h: options(h, dtls, dtls12), hello_verify=True, flight_layout=layout
        ) as (hub, s):
            await dtls_up(s)
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            assert s.tx_cstp_packets == 0
    hellos = hub.client_hellos()
    assert [h.seq for h in hellos] == [0, 1]  # second hello (with cookie) at record seq 1
    after = hub.datagrams[hub.datagrams.index(hellos[1]) + 1 :]
    server_flight = list(itertools.takewhile(lambda g: g.direction == "out", after))
    assert len(server_flight) == {"one-datagram": 1, "first-alone": 2, "separate": 3}[layout]
    assert server_flight[0].seq == 1  # ServerHello at record seq 1 after HVR


def test_cipher_choice_follows_the_headend_preference() -> None:
    """Selection rule of :func:`choose_dtls` with openconnect 9.01's default offer (§3.2)."""
    legacy, d12 = OPENCONNECT_9_01.dtls_ciphers, OPENCONNECT_9_01.dtls12_ciphers
    assert choose_dtls(HeadendScript(), legacy, d12)[0] == ("legacy", "AES256-SHA")
    assert choose_dtls(HeadendScript(prefer_dtls12=True), legacy, d12)[0] == (
        "dtls12",
        "AES256-GCM-SHA384",
    )
    assert choose_dtls(HeadendScript(psk=True), legacy, d12)[0] == ("psk", "PSK-NEGOTIATE")
    # case-insensitive names; the other header is the fallback
    assert choose_dtls(HeadendScript(), "aes128-sha", None) == [("legacy", "AES128-SHA")]
    assert choose_dtls(HeadendScript(), "RC4-MD5", "AES128-GCM-SHA256") == [
        ("dtls12", "AES128-GCM-SHA256")
    ]
    assert choose_dtls(HeadendScript(), "RC4-MD5", None) == []


async def test_no_common_cipher_means_no_dtls(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """An ASA without a matching DTLS cipher offers no DTLS (§5.2.1): CSTP only."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, lambda h: options(h, "DHE-RSA-AES128-SHA")) as (hub, s):
            assert s.dtls is None
            assert s.params is not None
            assert not s.params.dtls_offered
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            assert s.tx_cstp_packets == 1
    assert hub.dtls_sessions == []
    assert hub.datagrams == []


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("how", ["muted", "dropped"])
async def test_dead_dtls_falls_back_to_cstp_and_returns(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, how: str
) -> None:
    """§5.5 (verified against openconnect 9.01): the headend stops answering UDP once
    DTLS is up. DTLS DPD at +30/+45/+60 s after the last received record, dead at +75 s;
    data moves to CSTP at once and a new handshake starts at once (hellos at 0/1/3/7 s,
    12 s budget), then 60 s after each failure; once UDP is answered again DTLS comes
    back. CSTP is never reconnected."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, options) as (hub, s):
            await dtls_up(s)
            assert s.dtls is not None
            d = hub.dtls
            assert d is not None
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            # the last record the client will receive: the echo reply
            t_last = [g for g in hub.datagrams if g.direction == "out"][-1].at
            if how == "muted":
                hub.script.dtls_mute = True  # read, processed, never answered
            else:
                hub.script.answer_dtls = False  # dropped unread
            await until(lambda: s.dtls is not None and s.dtls.counters.dead_peer == 1, 0.01)
            t_dead = hub.udp_dials[-1][2]  # the new attempt's UDP socket: opened at once
            assert len(hub.udp_dials) == 2
            assert t_dead - t_last == pytest.approx(75, abs=TOL)
            assert not s.dtls.up
            assert s.dtls.last_failure == "dead peer: no DTLS record for more than 2 x DPD"
            if how == "muted":
                dpds = [round(at - t_last, 3) for at, _ in d.dpd_requests]
                assert dpds == approx([30, 45, 60])
                assert [round(at - t_last, 3) for at in d.keepalives] == approx([20])
            else:  # keepalive at +20, DPDs at +30/+45/+60: all dropped unread
                lost = [g for g in hub.datagrams_in(delivered=False) if g.content_type == 23]
                assert times(lost, t_last) == approx([20, 30, 45, 60])

            # data over CSTP at once
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            assert s.tx_cstp_packets == 1
            assert hub.frames_of(DATA)[0].at - t_dead < 0.02

            # new handshake at once (new UDP socket), then 60 s after each failure
            await trio.sleep(2 * 72 - (now() - t_dead) - 1)  # just before the 3rd attempt
            dials = [round(at - t_dead, 3) for _, _, at in hub.udp_dials[1:]]
            assert dials == approx([0, 72])
            for peer, start in ((2, 0.0), (3, 72.0)):
                assert times(hellos_of(hub, peer), t_dead) == approx([start + h for h in HELLOS])
            assert s.dtls.counters.handshake_failures == 2

            hub.script.dtls_mute = False
            hub.script.answer_dtls = True
            await dtls_up(s)
            assert now() - t_dead == pytest.approx(144, abs=TOL)
            assert d.connected[-1] - t_dead == pytest.approx(144, abs=TOL)
            assert (await s.adapter.ping(INSIDE, count=2, interval=0.5)).received == 2
            assert s.dtls.counters.tx_packets == 3
            assert s.tx_cstp_packets == 1
            assert s.reconnects == 0
    assert len(hub.connects) == 1  # CSTP never reconnected
    assert len(hub.connections) == 1


async def test_handshake_timeout_while_udp_is_dropped(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§5.1: UDP dropped from the start. Hellos at 0/1/3/7 s, give-up at 12 s, next
    attempt 60 s later; the tunnel works over CSTP all along."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, options, answer_dtls=False) as (hub, s):
            t0 = now()
            await trio.sleep(5)
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            assert s.tx_cstp_packets == 1
            assert s.dtls is not None
            assert not s.dtls.up
            await until(lambda: s.dtls is not None and s.dtls.last_failure is not None, 0.01)
            assert now() - t0 == pytest.approx(12, abs=TOL)
            assert s.dtls.last_failure == "handshake failed: timeout"
            await trio.sleep(80 - (now() - t0))
            assert times(hub.client_hellos(), t0) == approx(HELLOS + [72 + h for h in HELLOS])
            assert all(h.dropped == "answer_dtls off" for h in hub.client_hellos())
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            assert s.tx_cstp_packets == 2
            assert s.reconnects == 0
    d = hub.dtls
    assert d is not None
    assert d.connected == []
    assert not any(g.direction == "out" for g in hub.datagrams)


async def test_advertised_dtls_port_nobody_listens_on(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """CSCuh61321 (§8.1): X-DTLS-Port says 8443, the headend only listens on 443.
    DTLS never comes up, data stays on CSTP, a new attempt 60 s after each failure."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, options, dtls_port=8443) as (hub, s):
            t0 = now()
            assert s.params is not None
            assert s.params.dtls_port == 8443
            await trio.sleep(200)
            assert s.dtls is not None
            assert not s.dtls.up
            assert s.dtls.counters.established == 0
            assert s.dtls.counters.handshake_failures == 3
            assert (await s.adapter.ping(INSIDE, count=3, interval=1.0)).received == 3
            assert s.tx_cstp_packets == 3
            assert s.reconnects == 0
    assert [(host, port) for host, port, _ in hub.udp_dials] == [("vpn.example.com", 8443)] * 3
    assert [round(at - t0, 3) for _, _, at in hub.udp_dials] == approx([0, 72, 144])
    assert len(hub.client_hellos()) == 12
    assert {g.dropped for g in hub.datagrams} == {"no listener"}
    d = hub.dtls
    assert d is not None
    assert d.connected == []
    assert hub.endpoint.stats()["datagrams_in"] == 0


async def test_cstp_reconnect_registers_a_new_dtls_session(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§7.4: a CSTP reconnect gets a new X-DTLS-Session-ID; the old one is unregistered
    and the client re-handshakes with the new one from a new UDP socket."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, options) as (hub, s):
            await dtls_up(s)
            first = hub.dtls
            assert first is not None
            hub.cut_all()
            await until(lambda: s.reconnects == 1 and s.connected.is_set())
            await dtls_up(s)
            second = hub.dtls
            assert second is not None
            assert second is not first
            assert second.key != first.key
            assert first.unregistered_at is not None
            assert second.connected
            assert second.unregistered_at is None
            assert hub.endpoint.session_count == 1
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            assert second.data_in == 1
            assert s.tx_cstp_packets == 0
    await all_closed(hub)
    assert hub.endpoint.session_count == 0


async def test_lossy_udp_still_brings_dtls_up(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """Flight retransmission (§5.2.3): with 30 % loss each way (the client's
    CCS+Finished is lost here) both sides still complete the handshake and data flows
    over DTLS, minus the lost packets; nothing moves to CSTP."""
    with trio.fail_after(GUARD):
        async with tunnel(nursery, options, udp_loss=0.3, seed=3) as (hub, s):
            await dtls_up(s)
            report = await s.adapter.ping(INSIDE, count=10, interval=1.0)
            assert 3 <= report.received < 10
            d = hub.dtls
            assert d is not None
            assert len(d.connected) == 1
            assert s.tx_cstp_packets == 0
            assert s.dtls is not None
            assert s.dtls.counters.attempts == 1
    lost = [g for g in hub.datagrams if g.dropped == "lost"]
    assert lost
    assert lost[0].content_type == 20  # the client's CCS + Finished


# ----------------------------------------------------------------------------- real sockets


async def test_dtls_over_real_udp(nursery: trio.Nursery) -> None:
    """Real time, real sockets on 127.0.0.1: TLS and DTLS share one port number (TCP +
    UDP), pings travel over DTLS, the session is unregistered after the BYE."""
    hub = FakeHeadend(HeadendScript(dtls_mtu=1418))
    port = await hub.listen_tcp(nursery)
    opts = replace(options(hub, "AES256-SHA"), url=f"https://127.0.0.1:{port}")
    with trio.fail_after(10):
        async with open_client(opts) as s:  # the client's real udp_opener
            await dtls_up(s)
            report = await s.adapter.ping(INSIDE, count=3, interval=0.05)
            assert report.received == 3
            assert s.tx_cstp_packets == 0
            assert s.dtls is not None
            assert await s.dtls.dpd_round_trip(payload=b"x" * 100)
        await all_closed(hub)
    d = hub.dtls
    assert d is not None
    assert d.text == "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)"
    assert (d.data_in, d.echo_replies) == (3, 3)
    assert d.dpd_requests[-1][1] == 100
    assert hub.connections[0].reply_header("X-DTLS-Port") == str(port)
    assert d.unregistered_at is not None
    assert hub.endpoint.session_count == 0
    assert hub.byes == [(0xB0, "Client disconnected")]
