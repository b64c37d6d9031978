"""ASA syslog messages around AnyConnect sessions, and where they go (protocol.md §8.3).

Builders return a :class:`SyslogMessage` whose :attr:`~SyslogMessage.text` is the exact
``%ASA-<sev>-<id>: …`` line of §8.3. Field conventions, as in Cisco's real output:
``Group <g> User <u> IP <ip>`` and the 722051 addresses carry literal angle brackets; the
other variable parts (lengths, thresholds, reasons, the user agent, ``TCP``/``UDP``) do
not — as in the tech note's ``Transmitting large packet 1418 (threshold 1347).``
Control characters in caller-supplied fields are removed, so one message is one line.
Beyond §8.3, three messages report bad input: 722001 and 722003 (texts from Cisco's
syslog message guide) and 725006, the failed-handshake message; five report local
authentication: 113012/113015 (success / rejection with a reason), 113006/113007 (a user
locked out by ``aaa local authentication attempts max-fail`` / unlocked by an
administrator) and 113029 (a login refused by the session limit; its formats from Cisco's
message guide, the quotes of 113006/113007 as seen in real logs — UNCONFIRMED for 113007).

Formatting never reads a clock: a :class:`SyslogRouter` stamps each message with the
``datetime`` the caller passes and hands a :class:`SyslogRecord` to its sinks:

* :class:`BufferSink` — the ``logging buffered <level>`` ring buffer behind ``show logging``
  (bounded by ``logging buffer-size`` bytes);
* :class:`TextStreamSink` — a console/stdout text stream;
* :class:`FileSink` — one line per message appended to a file;
* :class:`UdpSyslogSink` — RFC 3164 datagrams (``<PRI>TIMESTAMP HOST %ASA-…``, facility
  local4 = 20 by default) to a loopback receiver, sent without blocking.

Each sink has its own severity level (a message passes when its severity ≤ the level,
``0`` emergencies … ``7`` debugging), like ``logging buffered|console|trap <level>``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal, Protocol, TextIO

from tunnelswarm.errors import ConfigError, LocalProtocolError

__all__ = [
    "DEFAULT_FACILITY",
    "MESSAGE_IDS",
    "SEVERITY_NAMES",
    "BufferSink",
    "FileSink",
    "SessionRef",
    "SyslogMessage",
    "SyslogRecord",
    "SyslogRouter",
    "SyslogSink",
    "TextStreamSink",
    "UdpSyslogSink",
    "aaa_user_auth_rejected",
    "aaa_user_auth_successful",
    "address_assigned",
    "anyconnect_parent_session_started",
    "asa_timestamp",
    "client_type",
    "dtls_disabled_no_cipher",
    "first_svc_connection",
    "format_duration",
    "new_svc_connection_no_existing",
    "new_svc_connection_replacing",
    "parse_level",
    "pmtud_packet_too_big",
    "received_large_packet",
    "rfc3164_timestamp",
    "session_disconnected",
    "session_limit_reached",
    "ssl_handshake_failed",
    "stale_svc_connection_closed",
    "svc_closing_connection",
    "svc_connect_auth_error",
    "svc_connect_parse_error",
    "svc_connection_established",
    "svc_connection_terminated",
    "svc_terminating_session",
    "transmitting_large_packet",
    "user_locked_out",
    "user_unlocked",
    "webvpn_session_started",
    "webvpn_session_terminated",
]

#: ``logging facility 20`` (local4), the ASA default
DEFAULT_FACILITY: Final = 20

#: the ``logging <dest> <level>`` keywords, by number
SEVERITY_NAMES: Final = (
    "emergencies",
    "alerts",
    "critical",
    "errors",
    "warnings",
    "notifications",
    "informational",
    "debugging",
)

#: every message id this module builds
MESSAGE_IDS: Final = (
    113006,
    113007,
    113012,
    113015,
    113019,
    113029,
    113039,
    602101,
    716001,
    716002,
    722001,
    722003,
    722022,
    722023,
    722028,
    722032,
    722033,
    722034,
    722035,
    722036,
    722037,
    722038,
    722043,
    722051,
    722055,
    725006,
)

_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)

Transport = Literal["TCP", "UDP"]


def parse_level(level: int | str) -> int:
    """A severity level from its number (0–7) or its ASA keyword (``informational``).

    Raises:
        ConfigError: anything else.
    """
    if isinstance(level, int) and not isinstance(level, bool):
        if 0 <= level <= 7:
            return level
    elif isinstance(level, str):
        word = level.strip().lower()
        if word.isdigit() and 0 <= int(word) <= 7:
            return int(word)
        if word in SEVERITY_NAMES:
            return SEVERITY_NAMES.index(word)
    raise ConfigError(f"bad logging level {level!r} (0-7 or {', '.join(SEVERITY_NAMES)})")


def _clean(value: object) -> str:
    """A field as one line: control characters removed."""
    return "".join(ch for ch in str(value) if ch.isprintable())


def _sentence(reason: str) -> str:
    """``reason`` ending in exactly one period."""
    text = _clean(reason).rstrip()
    return text if text.endswith(".") else text + "."


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    """One ASA message before it is stamped: severity, id and the text after ``: ``."""

    severity: int
    msg_id: int
    body: str

    @property
    def text(self) -> str:
        """``%ASA-<sev>-<id>: <body>``."""
        return f"%ASA-{self.severity}-{self.msg_id}: {self.body}"

    def with_severity(self, severity: int) -> SyslogMessage:
        """The same message at another level (``logging message <id> level <n>``)."""
        return replace(self, severity=parse_level(severity))


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Who a session message is about: group(-policy) name, user name, public IP."""

    group: str
    user: str
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address

    @property
    def prefix(self) -> str:
        """``Group <g> User <u> IP <ip>`` with literal angle brackets."""
        return f"Group <{_clean(self.group)}> User <{_clean(self.user)}> IP <{_clean(self.ip)}>"


def _session(severity: int, msg_id: int, who: SessionRef, rest: str) -> SyslogMessage:
    return SyslogMessage(severity, msg_id, f"{who.prefix} {rest}")


def _transport(transport: Transport) -> str:
    if transport not in ("TCP", "UDP"):
        raise LocalProtocolError(f"transport must be TCP or UDP, not {transport!r}")
    return transport


def _count(what: str, value: int) -> int:
    if value < 0:
        raise LocalProtocolError(f"negative {what} {value}")
    return value


def webvpn_session_started(who: SessionRef) -> SyslogMessage:
    """716001 (6): ``Group <g> User <u> IP <ip> WebVPN session started.``"""
    return _session(6, 716001, who, "WebVPN session started.")


def webvpn_session_terminated(who: SessionRef, reason: str = "User Requested") -> SyslogMessage:
    """716002 (6): ``… WebVPN session terminated: <reason>.`` (e.g. ``User Requested``)."""
    return _session(6, 716002, who, f"WebVPN session terminated: {_sentence(reason)}")


def anyconnect_parent_session_started(who: SessionRef) -> SyslogMessage:
    """113039 (6): ``… AnyConnect parent session started.``"""
    return _session(6, 113039, who, "AnyConnect parent session started.")


def address_assigned(
    who: SessionRef,
    ipv4: str | ipaddress.IPv4Address | None,
    ipv6: str | ipaddress.IPv6Address | None = None,
) -> SyslogMessage:
    """722051 (6; seen at 4 and 7 too — use :meth:`SyslogMessage.with_severity`):
    ``… IPv4 Address <a> IPv6 address <a6> assigned to session`` (no final period; note
    ``IPv6 address`` in lower case). A missing address is shown as ``0.0.0.0`` / ``::``
    (``::`` is in the real example of §8.3; ``0.0.0.0`` is UNCONFIRMED)."""
    v4 = "0.0.0.0" if ipv4 is None else _clean(ipv4)
    v6 = "::" if ipv6 is None else _clean(ipv6)
    return _session(6, 722051, who, f"IPv4 Address <{v4}> IPv6 address <{v6}> assigned to session")


def client_type(who: SessionRef, user_agent: str) -> SyslogMessage:
    """722055 (6): ``… Client Type: <User-Agent>``. The user agent is written without
    angle brackets and without a final period (bracketing UNCONFIRMED)."""
    return _session(6, 722055, who, f"Client Type: {_clean(user_agent)}")


def first_svc_connection(who: SessionRef, transport: Transport = "TCP") -> SyslogMessage:
    """722033 (5): ``… First TCP SVC connection established for SVC session.``"""
    return _session(
        5, 722033, who, f"First {_transport(transport)} SVC connection established for SVC session."
    )


def new_svc_connection_no_existing(who: SessionRef, transport: Transport = "UDP") -> SyslogMessage:
    """722034 (5): ``… New UDP SVC connection, no existing connection.``"""
    return _session(
        5, 722034, who, f"New {_transport(transport)} SVC connection, no existing connection."
    )


def new_svc_connection_replacing(who: SessionRef, transport: Transport) -> SyslogMessage:
    """722032 (5): ``… New TCP SVC connection replacing old connection.``"""
    return _session(
        5, 722032, who, f"New {_transport(transport)} SVC connection replacing old connection."
    )


def svc_connection_established(
    who: SessionRef, transport: Transport, *, compression: bool = False
) -> SyslogMessage:
    """722022 (6): ``… TCP SVC connection established without compression`` (no period)."""
    how = "with" if compression else "without"
    return _session(
        6, 722022, who, f"{_transport(transport)} SVC connection established {how} compression"
    )


def svc_connection_terminated(
    who: SessionRef, transport: Transport, *, compression: bool = False
) -> SyslogMessage:
    """722023 (6): ``… UDP SVC connection terminated without compression`` (no period)."""
    how = "with" if compression else "without"
    return _session(
        6, 722023, who, f"{_transport(transport)} SVC connection terminated {how} compression"
    )


def stale_svc_connection_closed(who: SessionRef) -> SyslogMessage:
    """722028 (5): ``… Stale SVC connection closed.``"""
    return _session(5, 722028, who, "Stale SVC connection closed.")


def received_large_packet(who: SessionRef, length: int, threshold: int) -> SyslogMessage:
    """722035 (3): ``… Received large packet <len> (threshold <n>).`` (client → ASA)."""
    return _session(
        3,
        722035,
        who,
        f"Received large packet {_count('length', length)} "
        f"(threshold {_count('threshold', threshold)}).",
    )


def transmitting_large_packet(who: SessionRef, length: int, threshold: int) -> SyslogMessage:
    """722036 (6; 3 in old message tables): ``… Transmitting large packet 1418 (threshold
    1347).`` (ASA → client; the tech note's message, [TN116881])."""
    return _session(
        6,
        722036,
        who,
        f"Transmitting large packet {_count('length', length)} "
        f"(threshold {_count('threshold', threshold)}).",
    )


def svc_closing_connection(who: SessionRef, reason: str) -> SyslogMessage:
    """722037 (5): ``… SVC closing connection: <reason>.`` — e.g. ``DPD failure``,
    ``Transport closing``, ``Idle timeout``; the reason strings are UNCONFIRMED."""
    return _session(5, 722037, who, f"SVC closing connection: {_sentence(reason)}")


def svc_terminating_session(who: SessionRef, reason: str) -> SyslogMessage:
    """722038 (5): ``… SVC terminating session: <reason>.`` (reasons UNCONFIRMED)."""
    return _session(5, 722038, who, f"SVC terminating session: {_sentence(reason)}")


def dtls_disabled_no_cipher(who: SessionRef) -> SyslogMessage:
    """722043 (5): ``… DTLS disabled: unable to negotiate cipher.``"""
    return _session(5, 722043, who, "DTLS disabled: unable to negotiate cipher.")


def svc_connect_parse_error(
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> SyslogMessage:
    """722001 (4): ``IP <ip> Error parsing SVC connect request.`` -- Cisco: "the request
    from the SVC was invalid". The mock logs it for any request before a session exists
    that it cannot parse (broken HTTP, hostile or broken XML); the brackets around the
    address follow the other 722xxx messages (UNCONFIRMED for this one)."""
    return SyslogMessage(4, 722001, f"IP <{_clean(ip)}> Error parsing SVC connect request.")


def svc_connect_auth_error(
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> SyslogMessage:
    """722003 (4): ``IP <ip> Error authenticating SVC connect request.`` -- a CONNECT
    whose ``webvpn`` cookie names no (resumable) session."""
    return SyslogMessage(4, 722003, f"IP <{_clean(ip)}> Error authenticating SVC connect request.")


def ssl_handshake_failed(
    nameif: str,
    peer_ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    peer_port: int,
    local_ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    local_port: int,
) -> SyslogMessage:
    """725006 (6): ``Device failed SSL handshake with client outside:198.51.100.7/52044
    to 172.16.11.1/443`` (no final period). The mock also uses it, as a model, for junk
    datagrams on the DTLS port."""
    return SyslogMessage(
        6,
        725006,
        f"Device failed SSL handshake with client {_clean(nameif)}:{_clean(peer_ip)}/"
        f"{_count('port', peer_port)} to {_clean(local_ip)}/{_count('port', local_port)}",
    )


def aaa_user_auth_successful(user: str) -> SyslogMessage:
    """113012 (6): ``AAA user authentication Successful : local database : user = <u>``."""
    return SyslogMessage(
        6, 113012, f"AAA user authentication Successful : local database : user = {_clean(user)}"
    )


def aaa_user_auth_rejected(
    user: str, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, reason: str
) -> SyslogMessage:
    """113015 (6): ``AAA user authentication Rejected : reason = <reason> : local database :
    user = <u> : user IP = <ip>`` (reasons: ``Invalid password``, ``User was not found``;
    the mock's ``Account locked`` for a locked-out user is UNCONFIRMED)."""
    return SyslogMessage(
        6,
        113015,
        f"AAA user authentication Rejected : reason = {_clean(reason)} : local database : "
        f"user = {_clean(user)} : user IP = {_clean(ip)}",
    )


def user_locked_out(user: str, attempts: int) -> SyslogMessage:
    """113006 (6): ``User '<u>' locked out on exceeding '<n>' successive failed
    authentication attempts`` (``n`` = the ``max-fail`` value)."""
    return SyslogMessage(
        6,
        113006,
        f"User '{_clean(user)}' locked out on exceeding '{_count('attempts', attempts)}' "
        "successive failed authentication attempts",
    )


def user_unlocked(user: str, administrator: str) -> SyslogMessage:
    """113007 (6): ``User '<u>' unlocked by '<administrator>'`` (quotes UNCONFIRMED)."""
    return SyslogMessage(6, 113007, f"User '{_clean(user)}' unlocked by '{_clean(administrator)}'")


def session_limit_reached(who: SessionRef, limit: int) -> SyslogMessage:
    """113029 (4): ``… Session could not be established: session limit of <n> reached``.
    The mock logs it for a login refused by ``vpn-simultaneous-logins 0`` (use
    UNCONFIRMED)."""
    return _session(
        4,
        113029,
        who,
        f"Session could not be established: session limit of {_count('limit', limit)} reached",
    )


def format_duration(duration: timedelta | int) -> str:
    """113019's duration: ``1d 19h:41m:14s``, or ``0h:05m:12s`` under a day.
    (The spec's example has a day part; the zero-padded minutes/seconds and the form under
    a day follow ``show vpn-sessiondb``'s ``2h:21m:21s`` — UNCONFIRMED for 113019.)"""
    seconds = int(duration.total_seconds()) if isinstance(duration, timedelta) else duration
    seconds = _count("duration", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}h:{minutes:02d}m:{secs:02d}s"
    return f"{days}d {clock}" if days else clock


def session_disconnected(
    group: str,
    user: str,
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    *,
    session_type: str,
    duration: timedelta | int,
    bytes_xmt: int,
    bytes_rcv: int,
    reason: str,
) -> SyslogMessage:
    """113019 (4): ``Group = <g>, Username = <u>, IP = <ip>, Session disconnected. Session
    Type: <SSL|AnyConnect-Parent|…>, Duration: <1d 19h:41m:14s>, Bytes xmt: <n>, Bytes rcv:
    <n>, Reason: <User Requested|Idle Timeout|Port Preempted|Max time exceeded|…>`` — no
    angle brackets around the values, no final period."""
    body = (
        f"Group = {_clean(group)}, Username = {_clean(user)}, IP = {_clean(ip)}, "
        f"Session disconnected. Session Type: {_clean(session_type)}, "
        f"Duration: {format_duration(duration)}, "
        f"Bytes xmt: {_count('byte count', bytes_xmt)}, "
        f"Bytes rcv: {_count('byte count', bytes_rcv)}, Reason: {_clean(reason)}"
    )
    return SyslogMessage(4, 113019, body)


_PROTOCOL_NAMES: Final = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}


def pmtud_packet_too_big(
    size: int,
    effective_mtu: int,
    dest: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    src: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    protocol: str | int,
) -> SyslogMessage:
    """602101 (6): ``PMTU-D packet <n> bytes greater than effective mtu <m>,
    dest_addr=<ip>, src_addr=<ip>, prot=<p>`` — a DF packet over the egress MTU (§6.4).
    A numeric protocol is written by name (1 icmp, 6 tcp, 17 udp, 58 icmp6) else as the
    number; the spelling of ``prot`` values is UNCONFIRMED."""
    prot = _PROTOCOL_NAMES.get(protocol, str(protocol)) if isinstance(protocol, int) else protocol
    body = (
        f"PMTU-D packet {_count('size', size)} bytes greater than effective mtu "
        f"{_count('mtu', effective_mtu)}, dest_addr={_clean(dest)}, src_addr={_clean(src)}, "
        f"prot={_clean(prot)}"
    )
    return SyslogMessage(6, 602101, body)


# --- timestamps ----------------------------------------------------------------------------


def asa_timestamp(at: datetime) -> str:
    """``logging timestamp`` format: ``Nov 30 2026 04:12:14`` (day zero-padded; English
    month names whatever the locale). The datetime is used as given (no time-zone
    conversion)."""
    return (
        f"{_MONTHS[at.month - 1]} {at.day:02d} {at.year:04d} "
        f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}"
    )


def rfc3164_timestamp(at: datetime) -> str:
    """RFC 3164 TIMESTAMP: ``Nov  3 04:12:14`` (day space-padded, no year)."""
    return f"{_MONTHS[at.month - 1]} {at.day:2d} {at.hour:02d}:{at.minute:02d}:{at.second:02d}"


# --- routing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyslogRecord:
    """A message stamped with the time it was logged."""

    message: SyslogMessage
    at: datetime

    @property
    def severity(self) -> int:
        return self.message.severity

    def line(self, *, timestamp: bool = True) -> str:
        """The console / buffer line: ``Nov 30 2026 04:12:14: %ASA-6-…`` (the ``": "``
        after the timestamp is the usual ASA console layout, not pinned by the spec), or
        the bare message text without ``logging timestamp``."""
        if not timestamp:
            return self.message.text
        return f"{asa_timestamp(self.at)}: {self.message.text}"


class SyslogSink(Protocol):
    """A destination. ``level`` filters (severity ≤ level passes); ``write`` must not block
    for long (it runs inside Trio tasks)."""

    @property
    def level(self) -> int: ...

    def write(self, record: SyslogRecord) -> None: ...


class BufferSink:
    """``logging buffered <level>``: the ring buffer ``show logging`` prints.

    Bounded like the ASA's ``logging buffer-size`` (bytes, default 4096): the oldest lines
    are evicted until the newest fits (each line counts ``len(utf-8) + 1``).
    """

    def __init__(
        self, level: int | str = "debugging", *, buffer_size: int = 4096, timestamp: bool = True
    ) -> None:
        if buffer_size <= 0:
            raise ConfigError(f"logging buffer-size must be positive, not {buffer_size}")
        self._level = parse_level(level)
        self.buffer_size = buffer_size
        self.timestamp = timestamp
        self._lines: deque[str] = deque()
        self._bytes = 0
        #: messages accepted, and lines evicted to make room
        self.logged = 0
        self.evicted = 0

    @property
    def level(self) -> int:
        return self._level

    @level.setter
    def level(self, level: int | str) -> None:
        self._level = parse_level(level)

    def write(self, record: SyslogRecord) -> None:
        line = record.line(timestamp=self.timestamp)
        size = len(line.encode()) + 1
        self._lines.append(line)
        self._bytes += size
        self.logged += 1
        while self._bytes > self.buffer_size and len(self._lines) > 1:
            old = self._lines.popleft()
            self._bytes -= len(old.encode()) + 1
            self.evicted += 1

    def lines(self) -> list[str]:
        """The buffered lines, oldest first."""
        return list(self._lines)

    def show(self) -> str:
        """The lines as ``show logging`` prints them (header not modelled)."""
        return "".join(line + "\n" for line in self._lines)

    def clear(self) -> None:
        """``clear logging buffer``."""
        self._lines.clear()
        self._bytes = 0


class CallbackSink:
    """Hands every record at or below ``level`` to ``callback``: an in-process observer
    (a scenario's timeline, a load run's report) tapping the mock's syslog."""

    def __init__(
        self, callback: Callable[[SyslogRecord], None], level: int | str = "debugging"
    ) -> None:
        self._callback = callback
        self._level = parse_level(level)

    @property
    def level(self) -> int:
        return self._level

    def write(self, record: SyslogRecord) -> None:
        self._callback(record)


class TextStreamSink:
    """``logging console|stdout <level>``: one line per message on a text stream (flushed)."""

    def __init__(
        self, stream: TextIO, level: int | str = "debugging", *, timestamp: bool = True
    ) -> None:
        self.stream = stream
        self._level = parse_level(level)
        self.timestamp = timestamp

    @property
    def level(self) -> int:
        return self._level

    def write(self, record: SyslogRecord) -> None:
        self.stream.write(record.line(timestamp=self.timestamp) + "\n")
        self.stream.flush()


class FileSink:
    """One line per message appended to a file (UTF-8, flushed per line; a small blocking
    write, acceptable inside a Trio task). Use as a context manager or call :meth:`close`."""

    def __init__(
        self, path: str | Path, level: int | str = "debugging", *, timestamp: bool = True
    ) -> None:
        self._level = parse_level(level)
        self.timestamp = timestamp
        self.path = Path(path)
        try:
            self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open syslog file {self.path}: {exc.strerror}") from exc

    @property
    def level(self) -> int:
        return self._level

    def write(self, record: SyslogRecord) -> None:
        if self._file is None:
            raise LocalProtocolError(f"syslog file {self.path} is closed")
        self._file.write(record.line(timestamp=self.timestamp) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UdpSyslogSink:
    """``logging host <if> <ip>`` + ``logging trap <level>``: RFC 3164 datagrams
    ``<PRI>TIMESTAMP HOST %ASA-<sev>-<id>: …`` with PRI = facility·8 + severity
    (``<166>`` for a severity-6 message at local4).

    Only loopback targets (127.0.0.0/8, ::1) are allowed: this is a test rig, not a log
    shipper. Sends are synchronous and non-blocking on a datagram socket, so ``write`` is
    safe from Trio code; a datagram the kernel will not take at once is dropped and counted
    in :attr:`dropped`. Datagrams are cut at 1024 bytes (RFC 3164 §4.1).

    Arguments:
        host, port: the receiver (an IP literal, or ``localhost`` for 127.0.0.1).
        level: ``logging trap`` level.
        facility: ``logging facility`` (16–23, default 20 = local4).
        hostname: the HOST field (the ASA's ``hostname``).
        asa_timestamp: TIMESTAMP in the ``logging timestamp`` format (with the year)
            instead of RFC 3164's ``Mmm dd hh:mm:ss``.

    Raises:
        ConfigError: a non-loopback or unparsable address, a bad port or facility.
    """

    MAX_DATAGRAM: Final = 1024

    def __init__(
        self,
        host: str,
        port: int = 514,
        level: int | str = "informational",
        *,
        facility: int = DEFAULT_FACILITY,
        hostname: str = "ciscoasa",
        asa_timestamp: bool = False,
    ) -> None:
        text = "127.0.0.1" if host == "localhost" else host
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise ConfigError(f"syslog host must be a loopback IP address, not {host!r}") from None
        if not addr.is_loopback:
            raise ConfigError(f"syslog host {host} refused: only 127.0.0.0/8 and ::1 are allowed")
        if not 0 < port < 65536:
            raise ConfigError(f"bad syslog port {port}")
        if not 16 <= facility <= 23:
            raise ConfigError(f"logging facility must be 16-23 (local0-local7), not {facility}")
        if not hostname or any(ch.isspace() or not ch.isprintable() for ch in hostname):
            raise ConfigError(f"bad syslog HOST field {hostname!r}")
        self._level = parse_level(level)
        self.facility = facility
        self.hostname = hostname
        self.asa_timestamp = asa_timestamp
        self.address = (str(addr), port)
        family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        self._sock: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        #: datagrams sent, and dropped because the socket would block or failed
        self.sent = 0
        self.dropped = 0

    @property
    def level(self) -> int:
        return self._level

    def datagram(self, record: SyslogRecord) -> bytes:
        """The bytes sent for ``record``."""
        pri = self.facility * 8 + record.severity
        stamp = asa_timestamp(record.at) if self.asa_timestamp else rfc3164_timestamp(record.at)
        data = f"<{pri}>{stamp} {self.hostname} {record.message.text}".encode()
        return data[: self.MAX_DATAGRAM]

    def write(self, record: SyslogRecord) -> None:
        if self._sock is None:
            raise LocalProtocolError("syslog UDP sink is closed")
        try:
            self._sock.sendto(self.datagram(record), self.address)
        except OSError:  # BlockingIOError, ENOBUFS, ECONNREFUSED from an earlier ICMP error
            self.dropped += 1
        else:
            self.sent += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> UdpSyslogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyslogRouter:
    """Stamps messages and fans them out to sinks by severity.

    ``no logging message <id>`` → :meth:`disable`; ``logging message <id> level <n>`` →
    :meth:`set_level` (the rewritten severity is what filters and what ``%ASA-<sev>``
    shows). Sinks are called in the order they were added.
    """

    def __init__(self, sinks: list[SyslogSink] | None = None, *, enabled: bool = True) -> None:
        self.sinks: list[SyslogSink] = list(sinks or [])
        #: ``logging enable``
        self.enabled = enabled
        self._disabled: set[int] = set()
        self._levels: dict[int, int] = {}

    def add(self, sink: SyslogSink) -> None:
        self.sinks.append(sink)

    def remove(self, sink: SyslogSink) -> None:
        """Stop sending to ``sink`` (no error if it was not added)."""
        self.sinks = [s for s in self.sinks if s is not sink]

    def disable(self, msg_id: int) -> None:
        """``no logging message <id>``."""
        self._disabled.add(msg_id)

    def enable(self, msg_id: int) -> None:
        """``logging message <id>``."""
        self._disabled.discard(msg_id)

    def set_level(self, msg_id: int, level: int | str) -> None:
        """``logging message <id> level <level>``."""
        self._levels[msg_id] = parse_level(level)

    def emit(self, message: SyslogMessage, at: datetime) -> SyslogRecord | None:
        """Log ``message`` as of ``at``; the record given to the sinks, or None when logging
        is disabled or the id is suppressed."""
        if not self.enabled or message.msg_id in self._disabled:
            return None
        level = self._levels.get(message.msg_id)
        if level is not None:
            message = message.with_severity(level)
        record = SyslogRecord(message, at)
        for sink in self.sinks:
            if record.severity <= sink.level:
                sink.write(record)
        return record
