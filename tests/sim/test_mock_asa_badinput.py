"""Bad input from one client ends only that client, with the ASA's answer and a syslog line.

Each case starts a mock ASA, connects a well-behaved client first (DTLS up), then sends
one kind of bad input from another connection: garbage after the TLS handshake, a
malformed CONNECT, a CONNECT with a bad cookie, hostile XML, broken CSTP framing after
CONNECT, junk datagrams. Afterwards the bad connection is gone, the good client is still
connected and its ping still works, the expected syslog line and ``show asp drop``
counter are there, and the server still logs new clients in. (Garbage *before* the TLS
handshake is ``test_mock_asa.py::test_garbage_ends_only_that_connection``.)
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from _asa_sim import (
    GUARD,
    INSIDE,
    Admin,
    RawTls,
    options,
    start_asa,
    udp_socket,
    wait_dtls,
    wait_for,
)

from tunnelswarm._core import DtlsConnection
from tunnelswarm.asa.server import MockAsaInfo
from tunnelswarm.client.session import ClientSession, open_client

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<config-auth client="vpn" type="init">&lol4;</config-auth>"""

Case = Callable[[MockAsaInfo], Awaitable[None]]


def lines_with(info: MockAsaInfo, needle: str) -> list[str]:
    return [line for line in info.asa.syslog_buffer.lines() if needle in line]


async def garbage_after_tls(info: MockAsaInfo) -> None:
    assert info.tcp_port is not None
    async with RawTls.connect(info.tcp_port) as raw:
        await raw.send(b"\x00\x01\x02\xff not http at all\r\n\r\n")
        assert await raw.closed_by_peer()
    assert lines_with(info, "%ASA-4-722001: IP <127.0.0.1> Error parsing SVC connect request.")


async def connect_bad_header(info: MockAsaInfo) -> None:
    assert info.tcp_port is not None
    async with RawTls.connect(info.tcp_port) as raw:
        await raw.send(
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-CSTP-MTU 1399\r\nCookie: webvpn=x\r\n\r\n"
        )
        assert await raw.closed_by_peer()
    assert lines_with(info, "%ASA-4-722001:")


async def connect_bad_target(info: MockAsaInfo) -> None:
    assert info.tcp_port is not None
    async with RawTls.connect(info.tcp_port) as raw:
        await raw.send(b"CONNECT /etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _ = await raw.response()
        assert status == 404
        assert await raw.closed_by_peer()
    assert lines_with(info, "%ASA-4-722001:")


async def connect_bad_cookie(info: MockAsaInfo) -> None:
    assert info.tcp_port is not None
    async with RawTls.connect(info.tcp_port) as raw:
        assert await raw.connect_tunnel(secrets.token_hex(16).upper()) == 401
        assert await raw.closed_by_peer()
    assert lines_with(
        info, "%ASA-4-722003: IP <127.0.0.1> Error authenticating SVC connect request."
    )


async def hostile_xml(info: MockAsaInfo) -> None:
    assert info.tcp_port is not None
    async with RawTls.connect(info.tcp_port) as raw:
        status, _ = await raw.post(BILLION_LAUGHS)
        assert status == 400
        assert await raw.closed_by_peer()
    assert lines_with(info, "%ASA-4-722001:")
    assert any("EntitiesForbidden" in e for e in info.asa.errors)


async def bad_cstp_frames(info: MockAsaInfo) -> None:
    assert info.tcp_port is not None
    asa = info.asa
    async with RawTls.connect(info.tcp_port) as raw:
        cookie = await raw.login()
        assert await raw.connect_tunnel(cookie) == 200
        await wait_for(lambda: len(asa.sessiondb) == 2)
        # not "STF\x01": the stream is broken
        await raw.send(b"XTF\x01\x00\x04\x00\x00" + b"\x45\x00\x00\x04")
        assert await raw.closed_by_peer()
    assert asa.drops["mp-svc-bad-framing"] == 1
    closing = lines_with(info, "SVC closing connection: CstpFramingError")
    assert closing, asa.syslog_buffer.lines()[-10:]
    assert closing[0].split(": ", 1)[1].startswith("%ASA-5-722037: Group <ac_users_group>")
    # the Parent stays: the cookie resumes it (as after any transport loss)
    assert len(asa.sessiondb) == 2
    async with RawTls.connect(info.tcp_port) as raw:
        assert await raw.connect_tunnel(cookie) == 200


async def junk_datagrams(info: MockAsaInfo) -> None:
    assert info.udp_port is not None
    asa = info.asa
    async with udp_socket() as junk:
        for i in range(5):
            await junk.sendto(bytes([i]) * 40, ("127.0.0.1", info.udp_port))
        await junk.sendto(b"\x17\xfe\xff" + b"\x00" * 20, ("127.0.0.1", info.udp_port))
        port = junk.getsockname()[1]
        await wait_for(lambda: asa.drops["mp-svc-bad-framing"] == 6)
    # one line for the source, not one per datagram
    seen = lines_with(info, f"with client outside:127.0.0.1/{port} to 172.16.11.1/443")
    assert len(seen) == 1, seen
    assert seen[0].split(": ", 1)[1].startswith("%ASA-6-725006: Device failed SSL handshake")
    # the good client's peer is kept, the junk source is not
    assert ("127.0.0.1", port) not in asa._dtls_server.addresses()
    assert len(asa._dtls_server.addresses()) == 1


async def hello_for_no_session(info: MockAsaInfo) -> None:
    assert info.udp_port is not None
    conn = DtlsConnection.client(
        0,
        mode="legacy",
        cipher="AES128-SHA",
        session_id=secrets.token_bytes(32),
        master_secret=secrets.token_bytes(48),
        seed=secrets.token_bytes(32),
    )
    hello = conn.poll_transmit(0)
    assert hello is not None
    async with udp_socket() as sock:
        await sock.sendto(hello, ("127.0.0.1", info.udp_port))
        await wait_for(lambda: info.asa.drops["mp-svc-no-session"] == 1)
        with trio.move_on_after(0.2) as scope:  # ocserv/ASA: no answer at all
            await sock.recv(65536)
        assert scope.cancelled_caught
    assert lines_with(info, "%ASA-6-725006:")


CASES: dict[str, tuple[Case, str]] = {
    "garbage-after-tls": (garbage_after_tls, ""),
    "connect-bad-header": (connect_bad_header, ""),
    "connect-bad-target": (connect_bad_target, ""),
    "connect-bad-cookie": (connect_bad_cookie, ""),
    "hostile-xml": (hostile_xml, ""),
    "bad-cstp-frames": (bad_cstp_frames, "mp-svc-bad-framing"),
    "junk-datagrams": (junk_datagrams, "mp-svc-bad-framing"),
    "hello-for-no-session": (hello_for_no_session, "mp-svc-no-session"),
}


async def assert_alive(session: ClientSession, info: MockAsaInfo, index: int) -> None:
    assert session.connected.is_set()
    assert session.reconnects == 0
    assert any(s.index == index for s in info.asa.sessiondb)
    report = await session.adapter.ping(INSIDE, count=2, interval=0.05, timeout=2.0)
    assert report.received == 2
    assert session.dtls is not None
    assert session.dtls.up


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_ends_only_that_client(
    nursery: trio.Nursery, tmp_path: Path, name: str
) -> None:
    case, counter = CASES[name]
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info)) as good:
            assert await wait_dtls(good)
            (index,) = [s.index for s in asa.sessiondb]
            await case(info)
            await assert_alive(good, info, index)
            if counter:
                assert info.admin_port is not None
                async with Admin.connect(info.admin_port) as admin:
                    shown = await admin.cmd("sh asp drop")
                    assert f"({counter})" in shown, shown
            # the server still serves: a new client logs in and pings
            async with open_client(options(info, no_dtls=True)) as other:
                report = await other.adapter.ping(INSIDE, count=1, timeout=2.0)
                assert report.received == 1
            await assert_alive(good, info, index)


async def test_junk_from_a_clients_own_address_keeps_its_dtls(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # anyone can send a datagram with a client's source address: the ASA drops and counts
    # it and the client's DTLS tunnel carries on
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info)) as good:
            assert await wait_dtls(good)
            (index,) = [s.index for s in asa.sessiondb]
            assert good.dtls is not None
            sock = good.dtls.sock
            assert sock is not None
            for _ in range(3):
                await sock.send(b"\x17\xfe\xff\x00\x01" + b"\xee" * 30)  # bad record length
                await sock.send(b"junk")
            await wait_for(lambda: asa.drops["mp-svc-bad-framing"] == 6)
            assert len(lines_with(info, "%ASA-6-725006:")) == 1
            await assert_alive(good, info, index)
            assert good.dtls.counters.rx_packets >= 2
