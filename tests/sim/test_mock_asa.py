"""Our client against the mock ASA (``tunnelswarm.asa.server``) over real loopback.

The mock runs ``examples/asa-9.1.cfg`` (user test/test, group ``ac_users``, pool
10.10.10.10-250, inside host 10.1.1.1) on 127.0.0.1 with a kernel-chosen port (the
ASA's port 443 maps onto it; ``port_offset`` converts). Every test is bounded by
``trio.fail_after`` in real seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
from _asa_sim import EXAMPLE, GUARD, INSIDE, Admin, options, start_asa
from _asa_sim import wait_dtls as _wait_dtls

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.server import (
    MockAsa,
    MockAsaConfig,
    MockAsaInfo,
    fragment_ipv4,
    serve_mock_asa,
)
from tunnelswarm.client.session import ClientSession, open_client
from tunnelswarm.errors import AuthError, TunnelswarmError


async def wait_dtls(session: ClientSession, timeout: float = 5.0) -> bool:
    return await _wait_dtls(session, timeout, fail_fast=True)


def mock(info: MockAsaInfo) -> MockAsa:
    return info.asa


# --------------------------------------------------------------------------- login
@pytest.mark.parametrize(
    ("dtls", "dtls12", "header", "cipher", "dtls_mtu", "text"),
    [
        ("AES128-SHA", "", "X-DTLS-CipherSuite", "AES128-SHA", 1418, "AES-128-CBC"),
        ("AES256-SHA", "", "X-DTLS-CipherSuite", "AES256-SHA", 1418, "AES-256-CBC"),
        ("", "AES256-GCM-SHA384", "X-DTLS12-CipherSuite", "AES256-GCM-SHA384", None, "AES-256-GCM"),
    ],
    ids=["dtls09-aes128", "dtls09-aes256", "dtls12-aes256gcm"],
)
async def test_login_connect_dtls_and_ping(
    nursery: trio.Nursery,
    tmp_path: Path,
    dtls: str,
    dtls12: str,
    header: str,
    cipher: str,
    dtls_mtu: int | None,
    text: str,
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = mock(info)
        assert info.tcp_port is not None
        assert info.udp_port == info.tcp_port
        async with open_client(options(info, dtls, dtls12)) as session:
            p = session.params
            assert p is not None
            assert p.address == "10.10.10.10"
            assert p.netmask == "255.255.255.0"
            assert p.cstp_mtu == 1347
            if dtls_mtu is not None:
                assert p.dtls_mtu == dtls_mtu
            else:
                assert p.dtls_mtu is not None
                assert p.dtls_mtu > 1347
            assert p.dpd == 30
            assert p.keepalive == 20
            assert p.idle_timeout == 3600
            assert p.disconnected_timeout == 3600
            assert p.split_include == ("10.1.1.0/255.255.255.0",)
            assert p.dtls_port == info.tcp_port
            assert re.fullmatch(r"[0-9A-Fa-f]{64}", p.dtls_session_id or "")
            got = p.dtls12_cipher_suite if header == "X-DTLS12-CipherSuite" else p.dtls_cipher_suite
            assert got == cipher
            assert await wait_dtls(session)
            report = await session.adapter.ping(INSIDE, count=3, interval=0.05, timeout=2.0)
            assert report.received == 3
            assert session.dtls is not None
            assert session.dtls.counters.rx_packets >= 3
            assert session.rx_cstp_packets == 0
            out = asa.show("vpn-sessiondb anyconnect")
            assert "test" in out
            assert "10.10.10.10" in out
            assert "AnyConnect-Parent SSL-Tunnel DTLS-Tunnel" in out
            assert text.split("-")[0] in out  # e.g. AES128 / AES-GCM-256 in Encryption
        # the client's DISCONNECT b0 logged the session out
        with trio.fail_after(5):
            while len(asa.sessiondb):
                await trio.sleep(0.02)
        lines = "\n".join(asa.syslog_buffer.lines())
        for msg_id in ("113039", "716001", "722022", "722033", "722051", "113019", "716002"):
            assert f"-{msg_id}:" in lines, msg_id
        assert "Group <ac_users_group> User <test> IP <127.0.0.1>" in lines


async def test_wrong_password_is_auth_error(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        with pytest.raises(AuthError, match="Login failed"):
            async with open_client(options(info, "AES128-SHA", password="wrong")):
                pass
        assert len(info.asa.sessiondb) == 0
        assert any("-113015:" in line for line in info.asa.syslog_buffer.lines())


async def test_pin_is_kept_in_state_dir(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        first = MockAsa(MockAsaConfig(state_dir=tmp_path / "s"))
        second = MockAsa(MockAsaConfig(state_dir=tmp_path / "s"))
        assert first.pin == second.pin
        assert first.pin.startswith("pin-sha256:")
        assert MockAsa(MockAsaConfig(state_dir=tmp_path / "other")).pin != first.pin


async def test_garbage_ends_only_that_connection(nursery: trio.Nursery, tmp_path: Path) -> None:
    # more bad input (after TLS, CONNECT, XML, CSTP, DTLS): test_mock_asa_badinput.py
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        assert info.tcp_port is not None
        async with open_client(options(info, no_dtls=True)) as good:
            bad = await trio.open_tcp_stream("127.0.0.1", info.tcp_port)
            async with bad:
                await bad.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
                with trio.move_on_after(5):
                    while await bad.receive_some(4096):
                        pass
            # UDP garbage too: dropped and counted
            udp = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
            with udp:
                await udp.sendto(b"\x16\xfe\xff" + b"\0" * 100, ("127.0.0.1", info.tcp_port))
            with trio.fail_after(5):
                while info.asa.drops["mp-svc-bad-framing"] != 1:
                    await trio.sleep(0.02)
            report = await good.adapter.ping(INSIDE, count=1, timeout=2.0)
            assert report.received == 1
            assert good.reconnects == 0
        async with open_client(options(info, "AES128-SHA")) as session:
            assert session.params is not None
        assert any("-725006:" in line for line in info.asa.syslog_buffer.lines())


async def test_cookie_reconnect_resumes_session(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info, no_dtls=True)) as session:
            cookie = session.cookie
            assert session.params is not None
            address = session.params.address
            # drop the TCP connection from the server side: the session stays (Parent)
            for c in list(asa.conns):
                c.end("test cut")
            with trio.fail_after(10):
                while session.reconnects == 0 or not session.connected.is_set():
                    await trio.sleep(0.02)
            assert session.cookie == cookie
            assert session.params is not None
            assert session.params.address == address
            assert len(asa.sessiondb) == 1
            lines = "\n".join(asa.syslog_buffer.lines())
            assert "-722032:" in lines  # New TCP SVC connection replacing old connection


# --------------------------------------------------------------------------- admin console
async def test_dtls_port_change_follows_cscuh61321(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        off = info.port_offset
        assert info.admin_port is not None
        async with Admin.connect(info.admin_port, enable=False) as admin:
            await admin.cmd("enable")
            assert await admin.cmd("") == ""  # empty enable password
            for line in ("conf t", "webvpn", "dtls port 444", "end"):
                out = await admin.cmd(line)
                assert "ERROR" not in out, (line, out)
            sockets = await admin.cmd("show asp table socket")
            assert re.search(r"DTLS\s+\S+\s+LISTEN\s+172\.16\.11\.1:443\b", sockets), sockets
            assert "444" not in sockets
            assert asa.listening("DTLS") == 443 + off
            # a new session is told X-DTLS-Port 444 (+offset) and DTLS fails: data on CSTP
            async with open_client(options(info, "AES128-SHA")) as session:
                assert session.params is not None
                assert session.params.dtls_port == 444 + off
                assert not await wait_dtls(session, timeout=6)
                report = await session.adapter.ping(INSIDE, count=2, interval=0.05, timeout=2.0)
                assert report.received == 2
                assert session.rx_cstp_packets >= 2
                listed = await admin.cmd("show vpn-sessiondb anyconnect")
                assert "AnyConnect-Parent SSL-Tunnel" in listed
                assert "DTLS-Tunnel" not in listed
            # no enable outside + enable outside: the UDP socket moves to 444
            for line in ("conf t", "webvpn", "no enable outside", "enable outside", "end"):
                out = await admin.cmd(line)
                assert "ERROR" not in out, (line, out)
            sockets = await admin.cmd("show asp table socket")
            assert re.search(r"DTLS\s+\S+\s+LISTEN\s+172\.16\.11\.1:444\b", sockets), sockets
            assert asa.listening("DTLS") == 444 + off
            async with open_client(options(info, "AES128-SHA")) as session:
                assert session.params is not None
                assert session.params.dtls_port == 444 + off
                assert await wait_dtls(session)
                report = await session.adapter.ping(INSIDE, count=2, interval=0.05, timeout=2.0)
                assert report.received == 2
                listed = await admin.cmd("show vpn-sessiondb anyconnect")
                assert "Username     : test" in listed
                assert "AnyConnect-Parent SSL-Tunnel DTLS-Tunnel" in listed
                assert "AES128" in listed
            summary = await admin.cmd("show vpn-sessiondb summary")
            assert "AnyConnect" in summary
            logging_out = await admin.cmd("show logging")
            assert "%ASA-6-113039" in logging_out


async def test_dtls_port_moves_at_once_on_8_4(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        text = EXAMPLE.read_text().replace("ASA Version 9.1(4)", "ASA Version 8.4(6)")
        info: MockAsaInfo = await nursery.start(
            serve_mock_asa,
            MockAsaConfig(asa=parse_config(text), port=0, admin=("127.0.0.1", 0)),
        )
        asa = info.asa
        console = asa.console(privileged=True)
        for line in ("conf t", "webvpn", "dtls port 444", "end"):
            assert "ERROR" not in "\n".join(asa.admin_line(console, line))
        assert asa.listening("DTLS") == 444 + info.port_offset
        assert re.search(r"DTLS\s+\S+\s+172\.16\.11\.1:444\b", asa.show("asp table socket"))
        async with open_client(options(info, "AES256-SHA")) as session:
            assert await wait_dtls(session)


async def test_live_asa_version_change_switches_personality(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa, off = info.asa, info.port_offset
        assert info.admin_port is not None
        async with Admin.connect(info.admin_port, enable=False) as admin:
            await admin.cmd("enable")
            await admin.cmd("")
            for line in ("conf t", "webvpn", "dtls port 444", "end"):
                assert await admin.cmd(line) == "", line
            assert asa.listening("DTLS") == 443 + off  # 9.1: CSCuh61321, pending
            for line in ("conf t", "asa-version 8.4(6)", "end"):
                assert await admin.cmd(line) == "", line
            assert await admin.cmd("sh ver") == (
                "Cisco Adaptive Security Appliance Software Version 8.4(6)"
            )
            # 8.4 keeps no pending port: the real UDP socket moved, the layout is 8.4's
            assert asa.listening("DTLS") == 444 + off
            sockets = await admin.cmd("show asp table socket")
            assert sockets.splitlines()[0].split()[-1] == "State", sockets
            assert re.search(r"DTLS\s+\S+\s+172\.16\.11\.1:444\s+0\.0\.0\.0:\*\s+LISTEN", sockets)
            async with open_client(options(info, "AES128-SHA")) as session:
                assert session.params is not None
                assert session.params.dtls_port == 444 + off
                assert await wait_dtls(session)
            # the 8.4 rule from now on; back on 9.x the next change is pending again
            for line in ("conf t", "webvpn", "dtls port 445", "end"):
                assert await admin.cmd(line) == "", line
            assert asa.listening("DTLS") == 445 + off
            for line in ("conf t", "asa-version 9.1(4)", "webvpn", "dtls port 446", "end"):
                assert await admin.cmd(line) == "", line
            assert asa.listening("DTLS") == 445 + off
            assert "State      Local Address" in await admin.cmd("sh asp table socket")


async def test_show_commands_over_the_tcp_admin_console(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        assert info.admin_port is not None
        async with Admin.connect(info.admin_port, enable=False) as admin:
            assert (await admin.cmd("show version")).endswith("Version 9.1(4)")  # user mode
            await admin.cmd("enable")
            await admin.cmd("")
            webvpn = await admin.cmd("sh run webvpn")
            assert webvpn == await admin.cmd("show running-config webvpn")
            assert webvpn.splitlines()[:2] == ["webvpn", " enable outside"]
            assert (await admin.cmd("sh run group-policy")).startswith(
                "group-policy ac_users_group internal"
            )
            assert "group-alias ac_users enable" in await admin.cmd("sh run tunnel-group ac_users")
            full = await admin.cmd("sh run")
            assert full.splitlines()[2] == "ASA Version 9.1(4)"
            assert "logging buffered informational" in full
            async with open_client(options(info, no_dtls=True)) as session:
                assert session.params is not None
                session.adapter.mtu = 1500
                await session.adapter.ping(INSIDE, count=1, timeout=0.5, payload_len=1390)
                listed = await admin.cmd("sh vpn-sessiondb anyconnect")
                assert "Username     : test" in listed
                summary = await admin.cmd("sh vpn-sessiondb summary")
                assert re.search(r"AnyConnect Client\s+:\s+1 :", summary), summary
            drops = await admin.cmd("sh asp drop")
            assert re.search(
                r"SVC Module unable to fragment packet \(mp-svc-no-fragment\)\s+1$", drops, re.M
            ), drops
            assert await admin.cmd("cl asp dr") == ""
            assert asa.drops["mp-svc-no-fragment"] == 0
            drops = await admin.cmd("show asp drop")
            assert "mp-svc-no-fragment" not in drops
            assert "Last clearing: Never" not in drops
            logging_out = await admin.cmd("sh logg")
            assert logging_out.splitlines()[0] == "Syslog logging: enabled"
            assert "Buffer logging: level informational" in logging_out
            assert "%ASA-6-722036:" in logging_out
            # `clear asp drop` is a privileged command
            await admin.cmd("disable")
            assert "ERROR" in await admin.cmd("clear asp drop")


async def test_large_echo_reply_over_tls_is_dropped(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info, no_dtls=True)) as session:
            assert session.params is not None
            assert session.params.cstp_mtu == 1347
            session.adapter.mtu = 1500  # the client sends bigger packets than the ASA allows
            report = await session.adapter.ping(INSIDE, count=1, timeout=1.0, payload_len=1418 - 28)
            assert report.received == 0
            small = await session.adapter.ping(INSIDE, count=1, timeout=2.0)
            assert small.received == 1
        assert asa.drops["mp-svc-no-fragment"] == 1
        lines = "\n".join(asa.syslog_buffer.lines())
        assert "Transmitting large packet 1418 (threshold 1347)." in lines
        console = asa.console(privileged=True)
        assert "mp-svc-no-fragment" in "\n".join(asa.admin_line(console, "show asp drop"))
        asa.admin_line(console, "clear asp drop")
        assert asa.drops["mp-svc-no-fragment"] == 0


def test_fragment_ipv4_splits_on_8_byte_boundaries() -> None:
    from tunnelswarm._core import Prober

    _, pkt = Prober("10.0.0.1", "10.0.0.2", payload_len=1400, dont_fragment=False).build(0)
    frags = fragment_ipv4(bytes(pkt), 576)
    assert len(frags) == 3
    assert all(len(f) <= 576 for f in frags)
    assert sum(len(f) - 20 for f in frags) == len(pkt) - 20
    offs = [int.from_bytes(f[6:8], "big") for f in frags]
    assert [o & 0x2000 for o in offs] == [0x2000, 0x2000, 0]
    assert (offs[1] & 0x1FFF) * 8 == len(frags[0]) - 20


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [("vpn-idle-timeout 1", "Idle Timeout"), ("vpn-session-timeout 1", "Max time exceeded")],
)
async def test_timeouts_end_the_session(
    nursery: trio.Nursery, tmp_path: Path, attribute: str, reason: str
) -> None:
    text = EXAMPLE.read_text().replace(
        " vpn-idle-timeout 60\n vpn-session-timeout none", f" {attribute}"
    )
    assert attribute in text
    with trio.fail_after(GUARD):
        info: MockAsaInfo = await nursery.start(
            serve_mock_asa,
            MockAsaConfig(asa=parse_config(text), port=0, time_scale=1 / 60),
        )
        asa = info.asa

        async def run_client() -> None:
            async with open_client(options(info, no_dtls=True)) as session:
                if reason == "Max time exceeded":
                    # traffic: the idle timer (30 min inherited) plays no part
                    report = await session.adapter.ping(INSIDE, count=3, interval=0.1)
                    assert report.received == 3
                with trio.fail_after(5):
                    while len(asa.sessiondb):
                        await trio.sleep(0.05)
                await trio.sleep_forever()  # the client learns it (reconnect → 401)

        with pytest.raises(TunnelswarmError):
            await run_client()
        lines = "\n".join(asa.syslog_buffer.lines())
        assert f"Reason: {reason}" in lines


def test_cli_mock_asa_bad_config_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tunnelswarm.cli import build_parser, main

    args = build_parser().parse_args(
        ["mock-asa", "--port", "0", "--admin", "127.0.0.1:0", "--syslog-udp", "127.0.0.1:5514"]
    )
    assert (args.port, args.admin, args.syslog_udp) == (0, ("127.0.0.1", 0), ("127.0.0.1", 5514))
    assert main(["mock-asa", "--config", str(tmp_path / "missing.cfg")]) == 2
    bad = tmp_path / "bad.cfg"
    bad.write_text("webvpn\n dtls port 99999\n")
    assert main(["mock-asa", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all(line.startswith("tunnelswarm: error: ") for line in err)
