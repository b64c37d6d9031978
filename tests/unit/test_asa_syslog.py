"""Unit tests for tunnelswarm.asa.syslog: the ASA message formats of protocol.md §8.3 and
§6.4 (string equality), timestamps, the router's filters and its sinks (ring buffer, text
stream, file, RFC 3164 UDP to a real loopback receiver)."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import trio

from tunnelswarm.asa import syslog as s
from tunnelswarm.asa.mtu import MtuConfig, negotiate
from tunnelswarm.errors import ConfigError, LocalProtocolError

AT = datetime(2026, 11, 30, 4, 12, 14)
WHO = s.SessionRef("ac_users_group", "vpn", "10.1.75.111")
P = "Group <ac_users_group> User <vpn> IP <10.1.75.111>"

# --- formats ------------------------------------------------------------------------------


def test_tech_note_722036_verbatim() -> None:
    """[TN116881], the message the whole MTU story is about, with the model's numbers."""
    mtu = negotiate(MtuConfig(), "AES256-SHA")
    assert mtu.dtls_mtu is not None
    msg = s.transmitting_large_packet(WHO, mtu.dtls_mtu, mtu.threshold("tls"))
    assert msg.text == (
        "%ASA-6-722036: Group <ac_users_group> User <vpn> IP <10.1.75.111> "
        "Transmitting large packet 1418 (threshold 1347)."
    )
    assert (msg.severity, msg.msg_id) == (6, 722036)


def test_722051_real_example_verbatim() -> None:
    who = s.SessionRef("apple_short", "jdoe", "174.46.152.7")
    assert s.address_assigned(who, "10.82.239.225", "::").text == (
        "%ASA-6-722051: Group <apple_short> User <jdoe> IP <174.46.152.7> "
        "IPv4 Address <10.82.239.225> IPv6 address <::> assigned to session"
    )
    assert s.address_assigned(who, "10.82.239.225").text.endswith(
        "IPv6 address <::> assigned to session"
    )
    assert "IPv4 Address <0.0.0.0>" in s.address_assigned(who, None, "2001:db8::5").text


CASES: list[tuple[Callable[[], s.SyslogMessage], str]] = [
    (lambda: s.webvpn_session_started(WHO), f"%ASA-6-716001: {P} WebVPN session started."),
    (
        lambda: s.webvpn_session_terminated(WHO, "User Requested"),
        f"%ASA-6-716002: {P} WebVPN session terminated: User Requested.",
    ),
    (
        lambda: s.webvpn_session_terminated(WHO, "Idle Timeout."),
        f"%ASA-6-716002: {P} WebVPN session terminated: Idle Timeout.",
    ),
    (
        lambda: s.anyconnect_parent_session_started(WHO),
        f"%ASA-6-113039: {P} AnyConnect parent session started.",
    ),
    (
        lambda: s.client_type(WHO, "Cisco AnyConnect VPN Agent for Windows 4.10.05085"),
        f"%ASA-6-722055: {P} Client Type: Cisco AnyConnect VPN Agent for Windows 4.10.05085",
    ),
    (
        lambda: s.first_svc_connection(WHO, "TCP"),
        f"%ASA-5-722033: {P} First TCP SVC connection established for SVC session.",
    ),
    (
        lambda: s.new_svc_connection_no_existing(WHO, "UDP"),
        f"%ASA-5-722034: {P} New UDP SVC connection, no existing connection.",
    ),
    (
        lambda: s.new_svc_connection_replacing(WHO, "UDP"),
        f"%ASA-5-722032: {P} New UDP SVC connection replacing old connection.",
    ),
    (
        lambda: s.new_svc_connection_replacing(WHO, "TCP"),
        f"%ASA-5-722032: {P} New TCP SVC connection replacing old connection.",
    ),
    (
        lambda: s.svc_connection_established(WHO, "TCP"),
        f"%ASA-6-722022: {P} TCP SVC connection established without compression",
    ),
    (
        lambda: s.svc_connection_established(WHO, "UDP", compression=True),
        f"%ASA-6-722022: {P} UDP SVC connection established with compression",
    ),
    (
        lambda: s.svc_connection_terminated(WHO, "UDP"),
        f"%ASA-6-722023: {P} UDP SVC connection terminated without compression",
    ),
    (
        lambda: s.svc_connection_terminated(WHO, "TCP", compression=True),
        f"%ASA-6-722023: {P} TCP SVC connection terminated with compression",
    ),
    (
        lambda: s.stale_svc_connection_closed(WHO),
        f"%ASA-5-722028: {P} Stale SVC connection closed.",
    ),
    (
        lambda: s.received_large_packet(WHO, 1500, 1418),
        f"%ASA-3-722035: {P} Received large packet 1500 (threshold 1418).",
    ),
    (
        lambda: s.svc_closing_connection(WHO, "DPD failure"),
        f"%ASA-5-722037: {P} SVC closing connection: DPD failure.",
    ),
    (
        lambda: s.svc_closing_connection(WHO, "Transport closing."),
        f"%ASA-5-722037: {P} SVC closing connection: Transport closing.",
    ),
    (
        lambda: s.svc_terminating_session(WHO, "Idle timeout"),
        f"%ASA-5-722038: {P} SVC terminating session: Idle timeout.",
    ),
    (
        lambda: s.dtls_disabled_no_cipher(WHO),
        f"%ASA-5-722043: {P} DTLS disabled: unable to negotiate cipher.",
    ),
    (
        lambda: s.session_disconnected(
            "GP-VPN",
            "jdoe",
            "198.51.100.7",
            session_type="AnyConnect-Parent",
            duration=timedelta(days=1, hours=19, minutes=41, seconds=14),
            bytes_xmt=15736,
            bytes_rcv=12894,
            reason="User Requested",
        ),
        "%ASA-4-113019: Group = GP-VPN, Username = jdoe, IP = 198.51.100.7, Session "
        "disconnected. Session Type: AnyConnect-Parent, Duration: 1d 19h:41m:14s, "
        "Bytes xmt: 15736, Bytes rcv: 12894, Reason: User Requested",
    ),
    (
        lambda: s.session_disconnected(
            "GP-VPN",
            "jdoe",
            "198.51.100.7",
            session_type="SSL",
            duration=312,
            bytes_xmt=0,
            bytes_rcv=0,
            reason="Idle Timeout",
        ),
        "%ASA-4-113019: Group = GP-VPN, Username = jdoe, IP = 198.51.100.7, Session "
        "disconnected. Session Type: SSL, Duration: 0h:05m:12s, Bytes xmt: 0, Bytes rcv: 0, "
        "Reason: Idle Timeout",
    ),
    (
        lambda: s.pmtud_packet_too_big(1418, 1347, "10.1.75.111", "192.0.2.80", 6),
        "%ASA-6-602101: PMTU-D packet 1418 bytes greater than effective mtu 1347, "
        "dest_addr=10.1.75.111, src_addr=192.0.2.80, prot=tcp",
    ),
    (
        lambda: s.pmtud_packet_too_big(1500, 1400, "10.0.0.1", "10.0.0.2", "udp"),
        "%ASA-6-602101: PMTU-D packet 1500 bytes greater than effective mtu 1400, "
        "dest_addr=10.0.0.1, src_addr=10.0.0.2, prot=udp",
    ),
    (
        lambda: s.svc_connect_parse_error("198.51.100.7"),
        "%ASA-4-722001: IP <198.51.100.7> Error parsing SVC connect request.",
    ),
    (
        lambda: s.svc_connect_auth_error("198.51.100.7\n"),
        "%ASA-4-722003: IP <198.51.100.7> Error authenticating SVC connect request.",
    ),
    (
        lambda: s.ssl_handshake_failed("outside", "198.51.100.7", 52044, "172.16.11.1", 443),
        "%ASA-6-725006: Device failed SSL handshake with client "
        "outside:198.51.100.7/52044 to 172.16.11.1/443",
    ),
    (
        lambda: s.aaa_user_auth_successful("test"),
        "%ASA-6-113012: AAA user authentication Successful : local database : user = test",
    ),
    (
        lambda: s.aaa_user_auth_rejected("test", "198.51.100.7", "Invalid password"),
        "%ASA-6-113015: AAA user authentication Rejected : reason = Invalid password : "
        "local database : user = test : user IP = 198.51.100.7",
    ),
    (
        lambda: s.user_locked_out("alice\n", 3),
        "%ASA-6-113006: User 'alice' locked out on exceeding '3' successive failed "
        "authentication attempts",
    ),
    (
        lambda: s.user_unlocked("alice", "enable_15"),
        "%ASA-6-113007: User 'alice' unlocked by 'enable_15'",
    ),
    (
        lambda: s.session_limit_reached(WHO, 0),
        f"%ASA-4-113029: {P} Session could not be established: session limit of 0 reached",
    ),
]


@pytest.mark.parametrize(("build", "text"), CASES)
def test_formats(build: Callable[[], s.SyslogMessage], text: str) -> None:
    msg = build()
    assert msg.text == text
    assert text.startswith(f"%ASA-{msg.severity}-{msg.msg_id}: ")


def test_every_listed_id_is_built() -> None:
    built = {build().msg_id for build, _ in CASES} | {722036, 722051}
    assert built == set(s.MESSAGE_IDS)
    assert {
        716001,
        113039,
        722051,
        722055,
        722033,
        722034,
        722032,
        722022,
        722023,
        722028,
        722035,
        722036,
        722037,
        722043,
        113019,
        716002,
        602101,
    } <= built


def test_fields_stay_on_one_line() -> None:
    who = s.SessionRef("g\nrp", "u\r\nser", "10.0.0.1")
    msg = s.client_type(who, "evil\n%ASA-1-000000: forged")
    assert "\n" not in msg.text
    assert "\r" not in msg.text
    assert msg.text == (
        "%ASA-6-722055: Group <grp> User <user> IP <10.0.0.1> "
        "Client Type: evil%ASA-1-000000: forged"
    )


def test_builder_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        s.svc_connection_established(WHO, "SCTP")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        s.transmitting_large_packet(WHO, -1, 1347)
    with pytest.raises(LocalProtocolError):
        s.format_duration(-5)


def test_format_duration() -> None:
    assert s.format_duration(0) == "0h:00m:00s"
    assert s.format_duration(timedelta(hours=2, minutes=21, seconds=21)) == "2h:21m:21s"
    assert s.format_duration(86400) == "1d 0h:00m:00s"
    assert s.format_duration(timedelta(days=1, hours=19, minutes=41, seconds=14)) == (
        "1d 19h:41m:14s"
    )


def test_with_severity() -> None:
    msg = s.address_assigned(WHO, "10.0.0.5").with_severity(4)
    assert msg.text.startswith("%ASA-4-722051: ")
    with pytest.raises(ConfigError):
        msg.with_severity(8)


# --- timestamps and levels ----------------------------------------------------------------


def test_timestamps() -> None:
    assert s.asa_timestamp(AT) == "Nov 30 2026 04:12:14"
    assert s.asa_timestamp(datetime(2013, 1, 5, 1, 2, 3)) == "Jan 05 2013 01:02:03"
    assert s.rfc3164_timestamp(AT) == "Nov 30 04:12:14"
    assert s.rfc3164_timestamp(datetime(2013, 11, 3, 1, 28, 50)) == "Nov  3 01:28:50"


def test_parse_level() -> None:
    assert s.parse_level("informational") == 6
    assert s.parse_level("Errors") == 3
    assert s.parse_level("7") == 7
    assert s.parse_level(0) == 0
    for bad in (8, -1, "verbose", True, 6.0):
        with pytest.raises(ConfigError):
            s.parse_level(bad)  # type: ignore[arg-type]


# --- router and local sinks ---------------------------------------------------------------


def test_router_filters_by_sink_level() -> None:
    informational = s.BufferSink("informational")
    errors = s.BufferSink(3)
    router = s.SyslogRouter([informational, errors])
    router.emit(s.transmitting_large_packet(WHO, 1418, 1347), AT)  # 6
    router.emit(s.received_large_packet(WHO, 1500, 1418), AT)  # 3
    router.emit(
        s.session_disconnected(
            "g",
            "u",
            "1.2.3.4",
            session_type="SSL",
            duration=1,
            bytes_xmt=1,
            bytes_rcv=1,
            reason="User Requested",
        ),
        AT,
    )  # 4
    assert [line.split(": ")[1][:14] for line in informational.lines()] == [
        "%ASA-6-722036",
        "%ASA-3-722035",
        "%ASA-4-113019",
    ]
    assert errors.lines() == [
        f"Nov 30 2026 04:12:14: %ASA-3-722035: {P} Received large packet 1500 (threshold 1418)."
    ]
    informational.level = "warnings"
    router.emit(s.webvpn_session_started(WHO), AT)
    assert len(informational.lines()) == 3
    router.remove(errors)
    router.remove(errors)  # not there any more: no error
    router.emit(s.received_large_packet(WHO, 1500, 1418), AT)
    assert len(errors.lines()) == 1
    assert len(informational.lines()) == 4


def test_router_message_controls() -> None:
    buf = s.BufferSink("debugging", timestamp=False)
    router = s.SyslogRouter([buf])
    router.disable(722036)
    assert router.emit(s.transmitting_large_packet(WHO, 1418, 1347), AT) is None
    router.enable(722036)
    router.set_level(722051, "debugging")
    record = router.emit(s.address_assigned(WHO, "10.0.0.5"), AT)
    assert record is not None
    assert record.message.severity == 7
    router.emit(s.transmitting_large_packet(WHO, 1418, 1347), AT)
    assert buf.lines() == [
        f"%ASA-7-722051: {P} IPv4 Address <10.0.0.5> IPv6 address <::> assigned to session",
        f"%ASA-6-722036: {P} Transmitting large packet 1418 (threshold 1347).",
    ]
    router.set_level(722036, 7)
    strict = s.BufferSink("informational")
    router.add(strict)
    router.emit(s.transmitting_large_packet(WHO, 1418, 1347), AT)
    assert strict.lines() == []
    router.enabled = False
    assert router.emit(s.webvpn_session_started(WHO), AT) is None


def test_buffer_is_bounded() -> None:
    buf = s.BufferSink("debugging", buffer_size=4096)
    router = s.SyslogRouter([buf])
    for n in range(200):
        router.emit(s.transmitting_large_packet(WHO, 1400 + n, 1347), AT + timedelta(seconds=n))
    lines = buf.lines()
    assert sum(len(line.encode()) + 1 for line in lines) <= 4096
    assert len(lines) + buf.evicted == 200 == buf.logged
    assert lines[-1].endswith("Transmitting large packet 1599 (threshold 1347).")
    assert lines[-1].startswith("Nov 30 2026 04:15:33: ")
    assert buf.show() == "".join(f"{line}\n" for line in lines)
    buf.clear()
    assert buf.lines() == []
    with pytest.raises(ConfigError):
        s.BufferSink(buffer_size=0)


def test_buffer_keeps_one_oversized_line() -> None:
    buf = s.BufferSink(buffer_size=10)
    s.SyslogRouter([buf]).emit(s.webvpn_session_started(WHO), AT)
    assert len(buf.lines()) == 1


def test_text_stream_sink() -> None:
    out = io.StringIO()
    router = s.SyslogRouter([s.TextStreamSink(out, "notifications")])
    router.emit(s.first_svc_connection(WHO), AT)
    router.emit(s.svc_connection_established(WHO, "TCP"), AT)  # 6 > 5: filtered
    assert out.getvalue() == (
        f"Nov 30 2026 04:12:14: %ASA-5-722033: {P} "
        "First TCP SVC connection established for SVC session.\n"
    )


def test_file_sink(tmp_path: Path) -> None:
    path = tmp_path / "asa.log"
    with s.FileSink(path, "informational") as sink:
        router = s.SyslogRouter([sink])
        router.emit(s.webvpn_session_started(WHO), AT)
        router.emit(s.anyconnect_parent_session_started(WHO), AT + timedelta(seconds=1))
        assert path.read_text(encoding="utf-8").count("\n") == 2  # flushed per line
    assert path.read_text(encoding="utf-8") == (
        f"Nov 30 2026 04:12:14: %ASA-6-716001: {P} WebVPN session started.\n"
        f"Nov 30 2026 04:12:15: %ASA-6-113039: {P} AnyConnect parent session started.\n"
    )
    with pytest.raises(LocalProtocolError):
        sink.write(s.SyslogRecord(s.webvpn_session_started(WHO), AT))
    with s.FileSink(path, timestamp=False) as again:
        s.SyslogRouter([again]).emit(s.stale_svc_connection_closed(WHO), AT)
    assert path.read_text(encoding="utf-8").splitlines()[-1] == (
        f"%ASA-5-722028: {P} Stale SVC connection closed."
    )
    with pytest.raises(ConfigError):
        s.FileSink(tmp_path / "missing" / "asa.log")


# --- UDP sink -----------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def test_udp_sink_sends_rfc3164(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    with s.UdpSyslogSink("127.0.0.1", port, "informational", hostname="asa01") as sink:
        router = s.SyslogRouter([sink])
        router.emit(s.transmitting_large_packet(WHO, 1418, 1347), AT)
        router.emit(s.address_assigned(WHO, "10.0.0.5").with_severity(7), AT)  # filtered
        router.emit(s.received_large_packet(WHO, 1500, 1418), datetime(2026, 3, 4, 5, 6, 7))
        first, _ = receiver.recvfrom(4096)
        second, _ = receiver.recvfrom(4096)
        assert (sink.sent, sink.dropped) == (2, 0)
    assert first == (
        b"<166>Nov 30 04:12:14 asa01 %ASA-6-722036: Group <ac_users_group> User <vpn> "
        b"IP <10.1.75.111> Transmitting large packet 1418 (threshold 1347)."
    )
    assert second.startswith(b"<163>Mar  4 05:06:07 asa01 %ASA-3-722035: ")  # 20*8 + 3


def test_udp_sink_asa_timestamp_and_facility(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    with s.UdpSyslogSink("localhost", port, 7, facility=23, asa_timestamp=True) as sink:
        sink.write(s.SyslogRecord(s.webvpn_session_started(WHO), AT))
        data, _ = receiver.recvfrom(4096)
    assert data == (
        f"<190>Nov 30 2026 04:12:14 ciscoasa %ASA-6-716001: {P} WebVPN session started.".encode()
    )
    with pytest.raises(LocalProtocolError):
        sink.write(s.SyslogRecord(s.webvpn_session_started(WHO), AT))


def test_udp_sink_truncates_to_1024(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    with s.UdpSyslogSink("127.0.0.1", port) as sink:
        sink.write(s.SyslogRecord(s.client_type(WHO, "A" * 3000), AT))
        data, _ = receiver.recvfrom(4096)
    assert len(data) == 1024
    assert data.startswith(b"<166>Nov 30 04:12:14 ciscoasa %ASA-6-722055: ")


def test_udp_sink_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        try:
            rx.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 not available")
        rx.settimeout(5.0)
        with s.UdpSyslogSink("::1", rx.getsockname()[1]) as sink:
            sink.write(s.SyslogRecord(s.dtls_disabled_no_cipher(WHO), AT))
            data, _ = rx.recvfrom(4096)
        assert data.endswith(b"DTLS disabled: unable to negotiate cipher.")
    finally:
        rx.close()


def test_udp_sink_counts_instead_of_raising() -> None:
    """Nobody listening: a send either succeeds (unconnected UDP) or is counted, never raised."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with s.UdpSyslogSink("127.0.0.1", port) as sink:
        for _ in range(3):
            sink.write(s.SyslogRecord(s.webvpn_session_started(WHO), AT))
        assert sink.sent + sink.dropped == 3


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.1",
        "10.0.0.1",
        "0.0.0.0",
        "::",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "example.com",
        "",
    ],
)
def test_udp_sink_refuses_non_loopback(host: str) -> None:
    with pytest.raises(ConfigError):
        s.UdpSyslogSink(host, 514)


@pytest.mark.parametrize(
    "kwargs",
    [{"port": 0}, {"port": 65536}, {"facility": 15}, {"facility": 24}, {"hostname": "a b"}],
)
def test_udp_sink_refuses_bad_settings(kwargs: dict[str, int | str]) -> None:
    port = int(kwargs.get("port", 514))
    facility = int(kwargs.get("facility", 20))
    hostname = str(kwargs.get("hostname", "asa"))
    with pytest.raises(ConfigError):
        s.UdpSyslogSink("127.0.0.2", port, facility=facility, hostname=hostname)


async def test_udp_sink_from_trio() -> None:
    """Non-blocking writes from a Trio task, received by a Trio loopback socket."""
    rx = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with rx:
        await rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        with s.UdpSyslogSink("127.0.0.1", port, "debugging") as sink:
            router = s.SyslogRouter([sink])
            for n in range(5):
                router.emit(s.transmitting_large_packet(WHO, 1400 + n, 1347), AT)
            got = []
            with trio.fail_after(5):
                for _ in range(5):
                    data, _addr = await rx.recvfrom(4096)
                    got.append(data)
        assert [d.split(b"packet ")[1] for d in got] == [
            f"{1400 + n} (threshold 1347).".encode() for n in range(5)
        ]
