"""The mock ASA follows its ``logging`` configuration live (asa/server.py, "Syslog").

A UDP socket on 127.0.0.1 plays the syslog server of ``logging host inside 127.0.0.1
udp/<port>``; the configuration is typed on the TCP admin console; our client logs in,
brings DTLS up and logs out; the datagrams must be RFC 3164 (``<PRI>TIMESTAMP HOST
MSG``, PRI = facility·8 + severity) and filtered by ``logging trap``.
"""

from __future__ import annotations

import re
from pathlib import Path

import trio
from _asa_sim import (
    GUARD,
    INSIDE,
    Admin,
    options,
    receive_all,
    start_asa,
    udp_socket,
    wait_dtls,
    wait_for,
)

from tunnelswarm.asa.server import MockAsaInfo
from tunnelswarm.client.session import open_client

#: ``<PRI>Mmm dd hh:mm:ss HOST %ASA-s-nnnnnn: …`` (RFC 3164 TIMESTAMP: day space-padded)
RFC3164 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"%ASA-(?P<sev>[0-7])-(?P<id>\d{6}): (?P<body>.*)"
)
#: the same with ``logging timestamp``: the ASA's ``Mmm dd yyyy hh:mm:ss`` as TIMESTAMP
ASA_STAMPED = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} \d\d \d{4} \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"%ASA-(?P<sev>[0-7])-(?P<id>\d{6}): (?P<body>.*)"
)


def ids(datagrams: list[bytes]) -> list[str]:
    return [m.group(1).decode() for d in datagrams if (m := re.search(rb"%ASA-\d-(\d{6}):", d))]


async def one_session(info: MockAsaInfo, *, dtls: bool = True) -> None:
    """Log in (DTLS up unless ``dtls`` is false), ping, log out; wait for the logout."""
    opts = options(info) if dtls else options(info, no_dtls=True)
    async with open_client(opts) as session:
        if dtls:
            assert await wait_dtls(session)
        report = await session.adapter.ping(INSIDE, count=1, timeout=2.0)
        assert report.received == 1
    await wait_for(lambda: len(info.asa.sessiondb) == 0)


async def test_logging_host_gets_rfc3164_datagrams_filtered_by_trap(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        assert info.admin_port is not None
        async with udp_socket() as rx, Admin.connect(info.admin_port) as admin:
            port = rx.getsockname()[1]
            await admin.config(
                "logging enable",
                "no logging timestamp",
                "logging trap informational",
                f"logging host inside 127.0.0.1 udp/{port}",
            )
            shown = await admin.cmd("sh logg")
            assert "Trap logging: level informational, facility 20, 0 message lines" in shown
            assert f"Logging to inside 127.0.0.1 udp/{port}" in shown
            await one_session(info)
            got = await receive_all(rx)
            text = [d.decode() for d in got]
            matches = [RFC3164.fullmatch(t) for t in text]
            assert all(matches), text
            for m in matches:
                assert m is not None
                assert int(m["pri"]) == 20 * 8 + int(m["sev"])  # local4
                assert m["host"] == "ciscoasa"
                assert int(m["sev"]) <= 6
            for msg_id in ("716001", "113039", "722051", "722055", "722033", "722022"):
                assert msg_id in [m["id"] for m in matches if m is not None], (msg_id, text)
            assert {"113019", "716002"} <= set(ids(got))  # logout
            assert any(
                "Group <ac_users_group> User <test> IP <127.0.0.1> IPv4 Address <10.10.10.10>" in t
                for t in text
            )
            assert f"{len(got)} message lines logged" in await admin.cmd("show logging")
            # the buffer follows `no logging timestamp` too: bare %ASA lines
            assert info.asa.syslog_buffer.lines()[-1].startswith("%ASA-")

            # notifications (5): 716001/113039/722051 (6) are filtered, 722033 (5) and
            # 113019 (4) pass; logging timestamp: the ASA's timestamp with the year
            await admin.config("logging trap notifications", "logging timestamp")
            await one_session(info)
            got = await receive_all(rx)
            assert got, "nothing at level notifications"
            assert all(ASA_STAMPED.fullmatch(d.decode()) for d in got), got
            assert {"722033", "113019"} <= set(ids(got))
            assert not {"716001", "113039", "722051", "722022"} & set(ids(got))

            # no logging enable: nothing anywhere, the buffer included
            buffered = info.asa.syslog_buffer.logged
            await admin.config("no logging enable")
            await one_session(info, dtls=False)
            assert await receive_all(rx) == []
            assert info.asa.syslog_buffer.logged == buffered
            assert "Syslog logging: disabled" in await admin.cmd("show logging")

            # back on, then no logging host: the host gets nothing, the buffer does
            await admin.config("logging enable", "no logging host inside 127.0.0.1")
            await one_session(info, dtls=False)
            assert await receive_all(rx) == []
            assert info.asa.syslog_buffer.logged > buffered


async def test_buffer_needs_a_level_and_taps_ignore_the_config(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        async with udp_socket() as tap:
            info = await start_asa(nursery, tmp_path, syslog_udp=tap.getsockname())
            assert info.admin_port is not None
            async with Admin.connect(info.admin_port) as admin:
                await tap_checks(info, tap, admin)


async def tap_checks(info: MockAsaInfo, tap: trio.socket.SocketType, admin: Admin) -> None:
    asa = info.asa
    await admin.config("no logging buffered")
    assert "Buffer logging: disabled" in await admin.cmd("show logging")
    logged = asa.syslog_buffer.logged
    await one_session(info, dtls=False)
    assert asa.syslog_buffer.logged == logged
    # the command line's tap sees everything, logging enable or not
    assert "716001" in ids(await receive_all(tap))
    await admin.config("no logging enable")
    await one_session(info, dtls=False)
    assert "113019" in ids(await receive_all(tap))
    await admin.config("logging enable", "logging buffered errors")
    await one_session(info, dtls=False)
    assert asa.syslog_buffer.logged == logged  # nothing at severity <= 3
    await admin.config("logging buffered warnings")
    await one_session(info, dtls=False)
    assert any("%ASA-4-113019:" in line for line in asa.syslog_buffer.lines())
    assert not any("%ASA-6-" in line for line in asa.syslog_buffer.lines())


async def test_logging_host_follows_hostname_facility_and_refuses_non_loopback(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        assert info.admin_port is not None
        async with udp_socket() as rx, Admin.connect(info.admin_port) as admin:
            port = rx.getsockname()[1]
            await admin.config(
                "hostname edge1",
                "logging trap debugging",
                "logging facility 23",
                f"logging host inside 127.0.0.1 udp/{port}",
            )
            await one_session(info, dtls=False)
            got = [d.decode() for d in await receive_all(rx)]
            assert got
            for t in got:
                m = ASA_STAMPED.fullmatch(t)
                assert m is not None, t
                assert (m["host"], int(m["pri"])) == ("edge1", 23 * 8 + int(m["sev"]))
            assert await admin.cmd("conf t") == ""
            out = await admin.cmd("logging host inside 10.1.1.51 udp/1514")
            assert out.startswith("WARNING: logging host 10.1.1.51 not used:"), out
            assert "only 127.0.0.0/8 and ::1" in out
            await admin.cmd("end")
            assert any("10.1.1.51 not used" in e for e in info.asa.errors)
            assert "Logging to inside 10.1.1.51 udp/1514  (not used by the mock)" in (
                await admin.cmd("show logging")
            )
            assert f"Logging to inside 127.0.0.1 udp/{port}\n" in (
                await admin.cmd("show logging") + "\n"
            )
