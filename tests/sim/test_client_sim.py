"""Behaviour of the emulated client against :class:`FakeHeadend`, in virtual time.

Every test but the last runs on pytest-trio's ``autojump_clock`` (``MockClock`` with
``autojump_threshold=0``) over in-memory streams: timers of 30-100 s take no real time
and the times the headend records are exact. Each test has a ``trio.fail_after`` guard
in virtual seconds. The wire facts come from protocol.md (sections cited per test).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import pytest
import trio

from tunnelswarm.client.session import ClientOptions, ClientSession, open_client
from tunnelswarm.drive.datagram import blackhole_opener
from tunnelswarm.errors import (
    AddressChanged,
    AuthError,
    AuthXmlError,
    CookieRejected,
    CstpFramingError,
    HttpProtocolError,
    ReconnectTimeout,
    RemoteProtocolError,
    ServiceUnavailable,
    SessionTerminated,
    TunnelswarmError,
)
from tunnelswarm.testing.headend import (
    DATA,
    DPD_REQ,
    DPD_RESP,
    KEEPALIVE,
    FakeHeadend,
    HeadendScript,
    SeenRequest,
)

Opener = Callable[[str, int], Awaitable[trio.abc.Stream]]

URL = "https://vpn.example.com"
INSIDE = "10.10.10.1"
GUARD = 900.0  # virtual seconds
TOL = 0.01  # virtual seconds

#: openconnect 9.01's CONNECT header order (protocol.md §3.2, no compression, no STRAP)
CONNECT_HEADERS = [
    "Host",
    "User-Agent",
    "Cookie",
    "X-CSTP-Version",
    "X-CSTP-Hostname",
    "X-CSTP-Base-MTU",
    "X-CSTP-MTU",
    "X-CSTP-Address-Type",
    "X-CSTP-Full-IPv6-Capability",
    "X-DTLS-Master-Secret",
    "X-DTLS-CipherSuite",
    "X-DTLS12-CipherSuite",
]


def start(nursery: trio.Nursery, **script: Any) -> tuple[FakeHeadend, Opener]:
    hub = FakeHeadend(HeadendScript(**script))
    return hub, hub.memory_opener(nursery)


def options(hub: FakeHeadend, **kw: Any) -> ClientOptions:
    base: dict[str, Any] = {
        "url": URL,
        "user": "test",
        "password": "test",
        "servercert": (hub.pin,),
        "hostname": "sim-host",
        "seed": 7,
    }
    base.update(kw)
    return ClientOptions(**base)


def now() -> float:
    return trio.current_time()


async def until(predicate: Callable[[], bool], step: float = 0.001) -> None:
    while not predicate():
        await trio.sleep(step)


async def reconnected(hub: FakeHeadend, s: ClientSession, n: int = 1) -> None:
    """Wait until the session is up again after its ``n``-th reconnect."""
    await hub.wait_for(lambda: len(hub.connects) > n and hub.connections[-1].cstp_at is not None)
    await until(lambda: s.reconnects == n and s.connected.is_set())


def kinds(hub: FakeHeadend) -> list[str]:
    return [r.kind for r in hub.requests]


def one_line(e: BaseException) -> str:
    text = str(e)
    assert text
    assert "\n" not in text
    return text


def assert_typed(excinfo: pytest.ExceptionInfo[Any], cls: type[TunnelswarmError]) -> str:
    """The error left open_client as exactly ``cls`` (no ExceptionGroup); its one line."""
    assert type(excinfo.value) is cls
    return one_line(excinfo.value)


def approx(values: list[float]) -> Any:
    return pytest.approx(values, abs=TOL)


async def run_until_error(
    hub: FakeHeadend, opener: Opener, trigger: Callable[[ClientSession], Awaitable[None]], **kw: Any
) -> NoReturn:
    """Connect, run ``trigger``, then wait inside the session until it fails."""
    async with open_client(
        options(hub, **kw), opener=opener, datagram_opener=blackhole_opener
    ) as session:
        await trigger(session)
        await trio.sleep_forever()
    raise AssertionError("the session ended without an error")


# ----------------------------------------------------------------------------- login


async def test_asa_group_select_flow_and_connect_headers(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§2.3.1: init, init + <group-select>, auth-reply (opaque verbatim); §3.2 CONNECT."""
    hub, opener = start(nursery)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            assert s.params is not None
            assert s.params.address == "10.10.10.21"
    assert kinds(hub) == ["init", "init", "auth-reply", "connect"]
    first_init, second_init, reply, connect = hub.requests
    assert first_init.group_select is None
    assert b"<group-select>" not in first_init.body
    assert second_init.group_select == "VPN"  # sent even for the selected group (9.01)
    assert reply.group_select == "VPN"
    # the opaque of the form answering the second init, byte for byte (line breaks too)
    assert len(hub.opaques_issued) == 2
    assert hub.opaques_issued[1].encode() in reply.body
    assert hub.opaques_issued[0].encode() not in reply.body
    # cookies: webvpnlogin returned on later POSTs; the webvpn token is the session cookie
    assert second_init.cookies == {"webvpnlogin": "1"}
    token = hub.cookies_issued[0]
    assert s.cookie == token
    assert "@" in token
    # one TLS connection for the three POSTs and the CONNECT (§2.3.1, §3.1)
    assert {r.conn for r in hub.requests} == {1}
    assert len(hub.connections) == 1
    # CONNECT: exactly openconnect's headers, in order, nothing else
    assert connect.header_names == CONNECT_HEADERS
    assert connect.target == "/CSCOSSLC/tunnel"
    assert connect.header("Host") == "vpn.example.com"
    assert connect.header("User-Agent") == "Open AnyConnect VPN Agent v9.01-3"
    assert connect.header("Cookie") == f"webvpn={token}"
    assert connect.header("X-CSTP-Hostname") == "sim-host"
    assert connect.header("X-CSTP-Base-MTU") == "1406"  # no TCP_INFO: the default (§6.1)
    assert connect.header("X-CSTP-MTU") == str(1406 - 82 - 8 - 20)
    assert connect.header("X-CSTP-Address-Type") == "IPv6,IPv4"
    secret = connect.header("X-DTLS-Master-Secret")
    assert secret is not None
    assert re.fullmatch("[0-9A-F]{96}", secret)
    assert secret == s.master_secret


async def test_no_dtls_sends_no_dtls_headers(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery)
    with trio.fail_after(GUARD):
        async with open_client(
            options(hub, no_dtls=True), opener=opener, datagram_opener=blackhole_opener
        ):
            pass
    names = hub.connects[0].header_names
    assert names == [n for n in CONNECT_HEADERS if not n.startswith("X-DTLS")]


async def test_authgroup_picks_the_group(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery, groups=("VPN", "ENG"))
    with trio.fail_after(GUARD):
        async with open_client(
            options(hub, authgroup="ENG"), opener=opener, datagram_opener=blackhole_opener
        ) as s:
            pass
    assert [r.group_select for r in hub.requests[:3]] == [None, "ENG", "ENG"]
    assert "<tunnel-group>ENG</tunnel-group>" in hub.opaques_issued[1]
    assert s.cookie is not None
    assert hub.sessions[s.cookie].group == "ENG"


async def test_unknown_authgroup_names_the_offered_groups(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery, groups=("VPN", "ENG"))
    with trio.fail_after(GUARD), pytest.raises(AuthError) as ei:
        async with open_client(
            options(hub, authgroup="NOPE"), opener=opener, datagram_opener=blackhole_opener
        ):
            pytest.fail("logged in with an unknown group")
    text = assert_typed(ei, AuthError)
    assert "'NOPE'" in text
    assert "VPN, ENG" in text
    assert hub.connects == []


async def test_ocserv_two_step_flow(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§2.4 (ocserv 1.1.6): username form, password form bound to webvpncontext."""
    hub, opener = start(nursery, flow="ocserv")
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            assert s.params is not None
            assert s.params.server_name == "ocserv 1.1.6"
    assert kinds(hub) == ["init", "auth-reply", "auth-reply", "connect"]
    _init, user_reply, pass_reply, connect = hub.requests
    assert user_reply.target == "/auth"
    assert b"<username>test</username>" in user_reply.body
    assert b"<password>" not in user_reply.body
    assert "webvpncontext" not in user_reply.cookies  # cleared by step 1
    assert b"<password>test</password>" in pass_reply.body
    context = pass_reply.cookies.get("webvpncontext")
    assert context
    assert s.cookie == hub.cookies_issued[0]
    assert connect.header("Cookie") == f"webvpn={s.cookie}"


async def test_ocserv_wrong_password_is_auth_error(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery, flow="ocserv")
    with trio.fail_after(GUARD), pytest.raises(AuthError) as ei:
        async with open_client(
            options(hub, password="wrong"), opener=opener, datagram_opener=blackhole_opener
        ):
            pytest.fail("logged in with a wrong password")
    text = assert_typed(ei, AuthError)
    assert "401" in text
    assert "Authentication failed" in text
    assert hub.sessions == {}


async def test_asa_wrong_password_is_auth_error_with_server_text(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery)
    with trio.fail_after(GUARD), pytest.raises(AuthError) as ei:
        async with open_client(
            options(hub, password="wrong"), opener=opener, datagram_opener=blackhole_opener
        ):
            pytest.fail("logged in with a wrong password")
    text = assert_typed(ei, AuthError)
    assert "Login failed." in text
    assert kinds(hub) == ["init", "init", "auth-reply"]  # no second guess
    assert hub.sessions == {}


async def test_legacy_form_flow(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§2.5: XML probe refused, GET, urlencoded POST, redirect with the cookie."""
    hub, opener = start(nursery, flow="legacy")
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            assert s.params is not None
    assert kinds(hub) == ["xml-probe", "get", "form", "portal", "connect"]
    probe, get, form, _portal, connect = hub.requests
    assert get.method == "GET"
    assert get.header("X-Aggregate-Auth") is None
    assert get.conn != probe.conn  # the XML-probe connection is closed first
    assert form.target == "/+webvpn+/index.html"
    assert form.header("Content-Type") == "application/x-www-form-urlencoded"
    assert form.body == b"username=test&password=test&group_list=VPN"
    assert s.cookie == hub.cookies_issued[0]
    assert connect.header("Cookie") == f"webvpn={s.cookie}"


# ----------------------------------------------------------------------------- tunnel


@pytest.mark.parametrize(("dtls_mtu", "expected"), [(1418, 1418), (None, 1347)])
async def test_tunnel_mtu_is_max_of_cstp_and_dtls(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    dtls_mtu: int | None,
    expected: int,
) -> None:
    """§3.3.2: tunnel MTU = max(X-CSTP-MTU, X-DTLS-MTU)."""
    hub, opener = start(nursery, cstp_mtu=1347, dtls_mtu=dtls_mtu)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            assert s.params is not None
            assert s.params.cstp_mtu == 1347
            assert s.params.dtls_mtu == dtls_mtu
            assert s.params.tunnel_mtu == expected
            assert s.adapter.mtu == expected


async def test_ping_through_the_tunnel(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery, echo_delay=0.05)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            t0 = now()
            report = await s.adapter.ping(INSIDE, count=3, interval=1.0)
            elapsed = now() - t0
    assert report.transmitted == 3
    assert report.received == 3
    assert [r.rtt_ms for r in report.replies] == pytest.approx([50.0] * 3, abs=0.01)
    # last probe at 2 s, its reply at 2.05 s; ping() notices within its 50 ms poll step
    assert 2.05 - TOL <= elapsed <= 2.10 + TOL
    sent = [f for f in hub.frames_of(DATA)]
    assert len(sent) == 3
    assert {bytes(f.payload[12:16]) for f in sent} == {bytes([10, 10, 10, 21])}  # our address
    assert s.adapter.counters.rx_packets == 3


@pytest.mark.parametrize(
    ("dpd", "requests", "dead"), [(30, [30.0, 45.0, 60.0], 75.0), (5, [5.0, 7.0, 9.0], 11.0)]
)
async def test_dpd_declares_silent_peer_dead_and_reconnects(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    dpd: int,
    requests: list[float],
    dead: float,
) -> None:
    """§7.1: DPD-REQ at dpd, then every dpd/2; dead at the first wake-up after 2·dpd."""
    hub, opener = start(nursery, dpd=dpd)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            await trio.sleep(2)
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            hub.go_silent()
            last_rx = hub.frames_of(DATA)[-1].at  # the echo reply left at once: the last rx
            await reconnected(hub, s)
            first, second = hub.connections[0], hub.connections[-1]
            dpd_times = [f.at - last_rx for f in first.frames_of(DPD_REQ)]
            assert dpd_times == approx(requests)
            assert first.closed_at is not None
            assert first.closed_at - last_rx == pytest.approx(dead, abs=TOL)
            assert len(hub.connects) == 2
            again = hub.connects[1]
            assert again.at - last_rx == pytest.approx(dead, abs=TOL)
            assert again.conn == second.id != first.id
            assert again.header("Cookie") == hub.connects[0].header("Cookie")
            assert again.header("X-CSTP-Address") == "10.10.10.21"
            assert again.header("X-DTLS-Master-Secret") == s.master_secret
            assert kinds(hub)[-2:] == ["connect", "connect"]  # no new login
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1


@pytest.mark.parametrize("answer_dpd", [True, False])
async def test_dpd_answers_keep_the_tunnel_up(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, answer_dpd: bool
) -> None:
    """§7.1: answered DPDs keep an idle tunnel up; a headend that keeps TCP open but
    never answers DPD is declared dead every 75 s (DPD 30)."""
    hub, opener = start(nursery, dpd=30, keepalive=20, answer_dpd=answer_dpd)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            t0 = now()
            await trio.sleep(285)  # clear of the timer slots at 270 and 290 s
    connects = [r.at - t0 for r in hub.connects]
    if answer_dpd:
        assert connects == approx([0.0])
        assert s.reconnects == 0
        dpd_times = [f.at - t0 for f in hub.frames_of(DPD_REQ)]
        assert dpd_times == approx([30.0 * k for k in range(1, 10)])
        keepalives = [f.at - t0 for f in hub.frames_of(KEEPALIVE)]
        assert keepalives == approx([20.0 + 30.0 * k for k in range(9)])
    else:
        assert connects == approx([0.0, 75.0, 150.0, 225.0])
        assert s.reconnects == 3
        first = [f.at - t0 for f in hub.connections[0].frames_of(DPD_REQ)]
        assert first == approx([30.0, 45.0, 60.0])


async def test_keepalive_every_20_s_of_idle(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§7.1: KEEPALIVE keepalive seconds after the last transmission."""
    hub, opener = start(nursery, dpd=0, keepalive=20)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            t0 = hub.connections[0].cstp_at
            assert t0 is not None
            await trio.sleep(30 - (now() - t0))
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1  # tx at 30
            await trio.sleep(95 - (now() - t0))
    times = [f.at - t0 for f in hub.frames_of(KEEPALIVE)]
    assert times == approx([20.0, 50.0, 70.0, 90.0])
    assert hub.frames_of(DPD_REQ) == []


@pytest.mark.parametrize("how", ["cut", "close_notify"])
async def test_lost_tls_reconnects_at_once_with_the_same_cookie(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, how: str
) -> None:
    """§7.4: TLS lost (cut, or closed without DISCONNECT): the first attempt follows at
    once, with the same cookie and master secret."""
    hub, opener = start(nursery)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            await trio.sleep(5)
            t_cut = now()
            if how == "cut":
                hub.cut_all()
            else:
                await hub.close_all()
            await reconnected(hub, s)
            assert s.reconnects == 1
            assert hub.connections[0].cut == (how == "cut")
            first, again = hub.connects
            assert again.at - t_cut == pytest.approx(0, abs=TOL)
            assert again.conn != first.conn
            assert again.header("Cookie") == first.header("Cookie") == f"webvpn={s.cookie}"
            assert again.header("X-DTLS-Master-Secret") == first.header("X-DTLS-Master-Secret")
            assert again.header("X-CSTP-Address") == "10.10.10.21"
            assert first.header("X-CSTP-Address") is None
            # reconnect headers: X-CSTP-Address right after X-CSTP-Address-Type (§3.2)
            names = again.header_names
            assert names[names.index("X-CSTP-Address-Type") + 1] == "X-CSTP-Address"
            assert kinds(hub).count("connect") == 2
            assert len(hub.requests) == 5  # no second login
            report = await s.adapter.ping(INSIDE, count=2, interval=0.5)
            assert report.received == 2
            assert hub.connections[-1].frames_of(DATA)


@pytest.mark.parametrize(
    ("refusal", "last_error"),
    [
        ("503", "VPN service unavailable; reason: No address available for SVC connection"),
        ("tcp", "TCP connect to vpn.example.com failed: Connection refused"),
    ],
    ids=["503", "tcp-refused"],
)
async def test_reconnect_backoff_then_reconnect_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, refusal: str, last_error: str
) -> None:
    """§7.4: attempts at 0, 10, 30, 60 s; budget 60 s spent → ReconnectTimeout."""
    hub, opener = start(nursery)
    marks: dict[str, float] = {}

    async def refuse_then_cut(s: ClientSession) -> None:
        await trio.sleep(7)
        if refusal == "503":
            hub.script.connect_status = 503
        else:
            hub.script.refuse_tcp = True
        marks["cut"] = now()
        hub.cut_all()

    with trio.fail_after(GUARD), pytest.raises(ReconnectTimeout) as ei:
        await run_until_error(hub, opener, refuse_then_cut, reconnect_timeout=60)
    text = assert_typed(ei, ReconnectTimeout)
    assert "--reconnect-timeout 60 s" in text
    assert text.endswith(last_error)
    attempts = [at - marks["cut"] for _host, _port, at in hub.dials[1:]]
    assert attempts == approx([0.0, 10.0, 30.0, 60.0])
    assert now() - marks["cut"] == pytest.approx(60.0, abs=TOL)
    if refusal == "503":
        assert [r.at for r in hub.connects[1:]] == approx([at for *_, at in hub.dials[1:]])
        assert len({r.conn for r in hub.connects}) == 5  # a fresh TCP connection each time
    else:
        assert len(hub.connects) == 1


async def test_first_connect_503_is_service_unavailable(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§3.3.1: 503 + X-Reason on the first CONNECT fails at once."""
    hub, opener = start(nursery, connect_status=503, x_reason="Licence limit reached")
    with trio.fail_after(GUARD), pytest.raises(ServiceUnavailable) as ei:
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener):
            pytest.fail("connected despite 503")
    text = assert_typed(ei, ServiceUnavailable)
    assert "reason: Licence limit reached" in text
    assert len(hub.connects) == 1
    assert now() < TOL


async def test_401_on_reconnect_is_cookie_rejected_without_retries(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery)
    marks: dict[str, float] = {}

    async def invalidate_then_cut(s: ClientSession) -> None:
        await trio.sleep(3)
        hub.invalidate_cookies()
        marks["cut"] = now()
        hub.cut_all()

    with trio.fail_after(GUARD), pytest.raises(CookieRejected) as ei:
        await run_until_error(hub, opener, invalidate_then_cut)
    text = assert_typed(ei, CookieRejected)
    assert "401" in text
    assert now() - marks["cut"] == pytest.approx(0, abs=TOL)
    assert len(hub.connects) == 2
    assert len(hub.dials) == 2


async def test_different_address_on_reconnect_is_address_changed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery, address_on_reconnect="10.10.10.99")

    async def cut(s: ClientSession) -> None:
        assert s.params is not None
        assert s.params.address == "10.10.10.21"
        hub.cut_all()

    with trio.fail_after(GUARD), pytest.raises(AddressChanged) as ei:
        await run_until_error(hub, opener, cut)
    text = assert_typed(ei, AddressChanged)
    assert "10.10.10.99" in text
    assert "10.10.10.21" in text
    assert len(hub.connects) == 2


@pytest.mark.parametrize("how", ["disconnect", "terminate"])
async def test_server_bye_ends_the_session(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, how: str
) -> None:
    """§4.3: DISCONNECT / TERMINATE from the headend are final (no reconnect)."""
    hub, opener = start(nursery)
    sessions: list[ClientSession] = []

    async def bye(s: ClientSession) -> None:
        sessions.append(s)
        await trio.sleep(4)
        if how == "disconnect":
            await hub.disconnect_all(0xB0, "Administrator Reset")
        else:
            await hub.terminate_all()

    with trio.fail_after(GUARD), pytest.raises(SessionTerminated) as ei:
        await run_until_error(hub, opener, bye)
    text = assert_typed(ei, SessionTerminated)
    if how == "disconnect":
        assert "b0" in text
        assert "Administrator Reset" in text
    else:
        assert "TERMINATE" in text
    assert now() == pytest.approx(4.0, abs=TOL)
    assert sessions[0].reconnects == 0
    assert len(hub.connects) == 1
    assert len(hub.dials) == 1


async def test_client_answers_server_dpd_with_an_empty_response(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§4.2: openconnect answers a DPD-REQ with an empty DPD-RESP and a KEEPALIVE with
    nothing; both count as received traffic (no client DPD while the server talks)."""
    hub, opener = start(nursery, dpd=30, keepalive=0)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            for _ in range(4):
                await trio.sleep(20)
                await hub.send_frame_all(DPD_REQ, b"payload-to-ignore")
                await hub.send_frame_all(KEEPALIVE)
            await trio.sleep(1)
            assert s.reconnects == 0
    answers = hub.frames_of(DPD_RESP)
    assert [f.payload for f in answers] == [b""] * 4
    assert [f.at for f in answers] == approx([20.0, 40.0, 60.0, 80.0])
    assert hub.frames_of(DPD_REQ) == []  # last_rx never got 30 s old
    assert hub.frames_of(KEEPALIVE) == []


async def test_unknown_packet_type_ends_the_session_with_a_bye(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§4.2: type 0x06 from the server → BYE b0 "Unknown packet received", no reconnect."""
    hub, opener = start(nursery)

    async def unknown(s: ClientSession) -> None:
        await trio.sleep(2)
        await hub.send_frame_all(0x06)

    with trio.fail_after(GUARD), pytest.raises(CstpFramingError) as ei:
        await run_until_error(hub, opener, unknown)
    assert "0x06" in assert_typed(ei, CstpFramingError)
    with trio.fail_after(1):
        await hub.wait_for(lambda: not hub.connections[0].live)
    assert hub.byes == [(0xB0, "Unknown packet received")]
    assert len(hub.connects) == 1


async def test_rekey_new_tunnel_opens_a_new_connection(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§7.3: new-tunnel rekey = a new TLS connection and CONNECT with the same cookie."""
    hub, opener = start(nursery, rekey_time=120, rekey_method="new-tunnel")
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            t0 = now()
            await reconnected(hub, s)
            first, again = hub.connects
            assert again.at - t0 == pytest.approx(120, abs=TOL)
            assert again.conn != first.conn
            assert again.header("Cookie") == first.header("Cookie")
            assert hub.connections[0].closed_at == pytest.approx(t0 + 120, abs=TOL)
            assert (await s.adapter.ping(INSIDE, count=1)).received == 1
            await trio.sleep(120 - (now() - again.at) + 1)
            assert len(hub.connects) == 3  # the rekey timer runs again on the new tunnel


async def test_clean_close_sends_bye_and_close_notify(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery)
    with trio.fail_after(GUARD):
        async with open_client(
            options(hub),
            opener=opener,
            datagram_opener=blackhole_opener,
            bye_text="Aborted by caller",
        ):
            await trio.sleep(1)
        conn = hub.connections[0]
        await hub.wait_for(lambda: conn.closed_at is not None)
    assert conn.bye == (0xB0, "Aborted by caller")
    assert hub.byes == [(0xB0, "Aborted by caller")]
    assert conn.close_notify
    assert not conn.cut
    assert hub.valid_cookies == []  # BYE b0 logged the cookie out
    assert len(hub.connects) == 1


# ----------------------------------------------------------------------------- hostile peers


@pytest.mark.parametrize("flow", ["asa", "ocserv"])
async def test_billion_laughs_is_auth_xml_error(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, flow: str
) -> None:
    hub, opener = start(nursery, flow=flow, hostile_xml=True)
    with trio.fail_after(GUARD), pytest.raises(AuthXmlError) as ei:
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener):
            pytest.fail("accepted a hostile document")
    assert_typed(ei, AuthXmlError)
    assert len(hub.requests) == 1
    with trio.fail_after(1):  # the client closed the connection
        await hub.wait_for(lambda: not hub.connections[0].live)


async def test_malformed_http_is_http_protocol_error(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, opener = start(nursery, malformed_http=True)
    with trio.fail_after(GUARD), pytest.raises(HttpProtocolError) as ei:
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener):
            pytest.fail("accepted malformed HTTP")
    assert "malformed HTTP" in assert_typed(ei, HttpProtocolError)


async def test_connect_answer_without_mtu_is_refused(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§3.3.2: X-CSTP-MTU is mandatory ("No MTU received"); the connection is closed."""
    hub, opener = start(nursery, connect_omit=("X-CSTP-MTU",))
    with trio.fail_after(GUARD), pytest.raises(RemoteProtocolError) as ei:
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener):
            pytest.fail("accepted a CONNECT answer without MTU")
    assert "No MTU received" in assert_typed(ei, RemoteProtocolError)
    with trio.fail_after(1):
        await hub.wait_for(lambda: not hub.connections[0].live)
    assert len(hub.connects) == 1


@pytest.mark.parametrize("delay", [0.0, 5.0])
async def test_garbage_instead_of_cstp_frame_ends_the_session(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, delay: float
) -> None:
    """§4.1: bad magic ends the session (no reconnect loop), with or without delay."""
    hub, opener = start(nursery, cstp_garbage=b"XTF\x01\x00\x00\x00\x00", garbage_delay=delay)
    with trio.fail_after(GUARD), pytest.raises(CstpFramingError) as ei:
        await run_until_error(hub, opener, lambda s: trio.sleep(0))
    assert_typed(ei, CstpFramingError)
    assert now() == pytest.approx(delay, abs=TOL)
    with trio.fail_after(1):  # the client closed the connection
        await hub.wait_for(lambda: not hub.connections[0].live)
    with trio.fail_after(GUARD):
        await trio.sleep(300)  # nothing comes back
    assert len(hub.connects) == 1
    assert len(hub.dials) == 1


# ----------------------------------------------------------------------------- real sockets


async def test_smoke_over_real_tcp(nursery: trio.Nursery) -> None:
    """Real time, real sockets on 127.0.0.1: login, CONNECT, ping, clean close."""
    hub = FakeHeadend(HeadendScript(flow="ocserv"))
    port = await hub.listen_tcp(nursery)
    opts = options(hub, url=f"https://127.0.0.1:{port}")
    with trio.fail_after(10):
        async with open_client(opts, datagram_opener=blackhole_opener, bye_text="smoke done") as s:
            report = await s.adapter.ping(INSIDE, count=2, interval=0.05)
            assert report.received == 2
            assert s.tls_version == "TLSv1_3"
        await hub.wait_for(lambda: all(not c.live for c in hub.connections))
    connect: SeenRequest = hub.connects[0]
    assert connect.header("Host") == f"127.0.0.1:{port}"
    assert int(connect.header("X-CSTP-Base-MTU") or 0) >= 1280
    assert hub.byes == [(0xB0, "smoke done")]
    assert hub.connections[-1].close_notify


async def test_dtls_trouble_never_ends_the_cstp_session(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """§5.5: a DTLS path that cannot even be opened (no route, DNS failure) or that
    never answers leaves the session on CSTP; attempts repeat every 60 s."""
    calls: list[float] = []

    async def unreachable(host: str, port: int) -> Any:
        calls.append(now())
        await trio.lowlevel.checkpoint()
        raise OSError(101, "Network is unreachable")

    hub, opener = start(nursery)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=unreachable) as s:
            await trio.sleep(130)
            assert s.dtls is not None
            assert not s.dtls.up
            assert s.dtls.last_failure is not None
            assert "Network is unreachable" in s.dtls.last_failure
            assert (await s.adapter.ping(INSIDE, count=2, interval=0.5)).received == 2
            assert s.tx_cstp_packets == 2
    assert [round(c - calls[0]) for c in calls] == [0, 60, 120]

    hub, opener = start(nursery)
    with trio.fail_after(GUARD):
        async with open_client(options(hub), opener=opener, datagram_opener=blackhole_opener) as s:
            await trio.sleep(13)
            assert s.dtls is not None
            assert s.dtls.last_failure == "handshake failed: timeout"
            assert s.dtls.counters.attempts == 1
            assert s.reconnects == 0
