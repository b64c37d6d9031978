"""The mock ASA's accelerated-security-path views: listening sockets and drop counters.

Sans-IO. The server asks :class:`SocketTable` which port to *advertise* in ``X-DTLS-Port``
(:attr:`SocketTable.advertised_dtls_port`) and which port its UDP listener really has
(:meth:`SocketTable.listening_dtls_port`); they differ while bug CSCuh61321 is in effect.

CSCuh61321 (protocol.md §8.1, seed tech note [TN116881] "Use of a Non-default DTLS Port"):

* ``webvpn`` → ``enable outside`` opens an SSL (TCP) and a DTLS (UDP) listener on the
  interface address, at the configured ``port`` and ``dtls port``.
* On 9.x a later ``dtls port N`` only changes what is advertised; the DTLS socket keeps
  its old port until ``no enable outside`` + ``enable outside`` (or a reload).
* On 8.4(x) the DTLS socket is re-opened on the new port at once (with a new handle).

``show asp table socket`` column order differs between the versions (seed outputs):
9.x ``Protocol Socket State Local Address Foreign Address``, 8.4 ``Protocol Socket Local
Address Foreign Address State``. The seed text lost its whitespace, so column *widths* are
UNCONFIRMED: 9.x uses the widths of the protocol.md §8.1 sketch (10/10/11/31), 8.4 uses
10/10/31/24. Socket handles are opaque 8-hex-digit numbers; inject them to reproduce a
capture.

Other choices (UNCONFIRMED): ``port N`` (the TLS port) re-binds immediately on both
versions; established sockets (``ESTAB`` rows) are only listed if the server registers them.
A live ``asa-version`` change (:meth:`SocketTable.set_version`, a model: a real ASA changes
version only by a reload) switches the rules and the ``show`` layout at once; a DTLS port
change pending under 9.x is applied when switching to 8.4.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tunnelswarm.asa.sessiondb import format_wall_time
from tunnelswarm.errors import ConfigError, LocalProtocolError

__all__ = [
    "DEFAULT_DTLS_PORT",
    "DEFAULT_SSL_PORT",
    "FLOW_DROP_REASONS",
    "FRAME_DROP_REASONS",
    "AsaVersion",
    "AspDropCounters",
    "AspSocket",
    "SocketTable",
    "render_asp_table_socket",
]

DEFAULT_SSL_PORT: Final = 443
DEFAULT_DTLS_PORT: Final = 443
_ANY_FOREIGN: Final = "0.0.0.0:*"


# ============================================================== version personality
@dataclass(frozen=True, slots=True)
class AsaVersion:
    """An ASA software version such as ``9.1(2)`` or ``8.4(6)``."""

    major: int
    minor: int
    text: str

    @classmethod
    def parse(cls, text: str) -> AsaVersion:
        m = re.match(r"^\s*(\d+)\.(\d+)", text)
        if m is None:
            raise ConfigError(f"not an ASA version: {text!r} (want e.g. '9.1(2)')")
        return cls(int(m.group(1)), int(m.group(2)), text.strip())

    @property
    def has_cscuh61321(self) -> bool:
        """9.x keeps the DTLS socket on its old port (all 9.x here: fixed releases unknown)."""
        return self.major >= 9

    @property
    def state_column_last(self) -> bool:
        """8.x prints ``State`` as the last column of ``show asp table socket``."""
        return self.major < 9


# ============================================================== sockets
@dataclass(frozen=True, slots=True)
class AspSocket:
    """One row of ``show asp table socket``."""

    protocol: str  # "SSL", "DTLS", "TCP", "UDP"
    handle: int
    state: str  # "LISTEN", "ESTAB"
    local_ip: str
    local_port: int
    foreign: str = _ANY_FOREIGN
    interface: str = ""

    @property
    def local(self) -> str:
        return f"{self.local_ip}:{self.local_port}"


_COLS_9X: Final = (("Protocol", 10), ("Socket", 10), ("State", 11), ("Local Address", 31))
_COLS_8X: Final = (("Protocol", 10), ("Socket", 10), ("Local Address", 31), ("Foreign Address", 24))


def _fmt(cells: list[str], widths: list[int]) -> str:
    out = []
    for cell, w in zip(cells, widths, strict=False):
        out.append(cell.ljust(w) if len(cell) < w else cell + " ")
    out.append(cells[-1])
    return "".join(out)


def render_asp_table_socket(sockets: Iterable[AspSocket], version: str | AsaVersion) -> str:
    """``show asp table socket`` in the column layout of ``version`` (module docstring)."""
    ver = version if isinstance(version, AsaVersion) else AsaVersion.parse(version)
    if ver.state_column_last:
        widths = [w for _, w in _COLS_8X]
        lines = [_fmt([*(n for n, _ in _COLS_8X), "State"], widths)]
        for s in sockets:
            cells = [s.protocol, f"{s.handle:08x}", s.local, s.foreign, s.state]
            lines.append(_fmt(cells, widths))
    else:
        widths = [w for _, w in _COLS_9X]
        lines = [_fmt([*(n for n, _ in _COLS_9X), "Foreign Address"], widths)]
        for s in sockets:
            cells = [s.protocol, f"{s.handle:08x}", s.state, s.local, s.foreign]
            lines.append(_fmt(cells, widths))
    return "\n".join(lines) + "\n"


def _default_handles(ver: AsaVersion) -> Iterator[int]:
    # start/step chosen so the first two handles equal the seed captures of each version
    if ver.major >= 9:
        return itertools.count(0x0001FC08, 0x11C0)
    return itertools.count(0x0000BF2F, 0x16B0)


class SocketTable:
    """The ASA's webvpn listeners per interface, with the version's CSCuh61321 behaviour."""

    def __init__(
        self,
        version: str | AsaVersion = "9.1(2)",
        *,
        interfaces: dict[str, str] | None = None,
        handles: Iterable[int] | None = None,
        cscuh61321: bool | None = None,
    ) -> None:
        self.version = version if isinstance(version, AsaVersion) else AsaVersion.parse(version)
        self._forced = cscuh61321
        self.affected = self.version.has_cscuh61321 if cscuh61321 is None else cscuh61321
        self._ifaddr: dict[str, str] = dict(interfaces or {})
        self._handles = iter(handles) if handles is not None else _default_handles(self.version)
        self.ssl_port = DEFAULT_SSL_PORT
        self.dtls_port = DEFAULT_DTLS_PORT
        self._enabled: set[str] = set()
        self._sockets: dict[int, AspSocket] = {}  # insertion order = display order

    # ------------------------------------------------------------ config commands
    def set_interface_address(self, interface: str, ip: str) -> None:
        self._ifaddr[interface] = ip

    def set_ssl_port(self, port: int) -> list[AspSocket]:
        """``webvpn`` → ``port N``. Re-binds enabled SSL listeners now. Returns closed ones."""
        self.ssl_port = _check_port(port)
        return self._rebind("SSL", port)

    def set_version(self, version: str | AsaVersion) -> list[AspSocket]:
        """A live ``asa-version`` change: the new personality's rules apply from now on.

        Pending state: a version without CSCuh61321 keeps its DTLS listeners on the
        configured ``dtls port``, so a port change that 9.x left pending (advertised but
        not bound) is applied at once when switching to 8.4 -- the listener moves, as it
        would on the 8.4 reload such a change stands for. Switching to 9.x leaves the
        listeners where they are (nothing is pending then). Sessions are not touched, and
        existing rows keep their handles. Returns the closed listeners.
        """
        self.version = version if isinstance(version, AsaVersion) else AsaVersion.parse(version)
        self.affected = self.version.has_cscuh61321 if self._forced is None else self._forced
        if self.affected:
            return []
        return self._rebind("DTLS", self.dtls_port)

    def set_dtls_port(self, port: int) -> list[AspSocket]:
        """``webvpn`` → ``dtls port N``. Advertised at once; the listener moves only when
        the version is not affected by CSCuh61321. Returns the closed listeners."""
        self.dtls_port = _check_port(port)
        if self.affected:
            return []
        return self._rebind("DTLS", port)

    def enable(self, interface: str) -> list[AspSocket]:
        """``webvpn`` → ``enable <if>``: open the SSL and DTLS listeners. Returns them."""
        if interface in self._enabled:
            return []
        ip = self._ifaddr.get(interface)
        if ip is None:
            raise LocalProtocolError(f"interface {interface!r} has no address")
        self._enabled.add(interface)
        return [
            self._open("SSL", "LISTEN", ip, self.ssl_port, interface=interface),
            self._open("DTLS", "LISTEN", ip, self.dtls_port, interface=interface),
        ]

    def disable(self, interface: str) -> list[AspSocket]:
        """``webvpn`` → ``no enable <if>``: close every socket on it (sessions drop too)."""
        self._enabled.discard(interface)
        closed = [s for s in self._sockets.values() if s.interface == interface]
        for s in closed:
            del self._sockets[s.handle]
        return closed

    # ------------------------------------------------------------ established sockets
    def open_established(
        self, protocol: str, interface: str, local_port: int, foreign: str
    ) -> AspSocket:
        """Register an accepted connection (``ESTAB`` row), e.g. an SSL-Tunnel's TCP."""
        ip = self._ifaddr.get(interface)
        if ip is None:
            raise LocalProtocolError(f"interface {interface!r} has no address")
        return self._open(protocol, "ESTAB", ip, local_port, foreign=foreign, interface=interface)

    def close(self, handle: int) -> None:
        self._sockets.pop(handle, None)

    # ------------------------------------------------------------ queries for the server
    @property
    def advertised_dtls_port(self) -> int:
        """What ``X-DTLS-Port`` says: always the configured ``dtls port``."""
        return self.dtls_port

    def listening_dtls_port(self, interface: str) -> int | None:
        """The port the DTLS listener on ``interface`` is really bound to (None: none)."""
        return self._listener_port("DTLS", interface)

    def listening_ssl_port(self, interface: str) -> int | None:
        return self._listener_port("SSL", interface)

    def accepts(self, protocol: str, ip: str, port: int) -> bool:
        """Would a datagram/connection to ``ip:port`` reach a ``protocol`` listener?"""
        return any(
            s.protocol == protocol
            and s.state == "LISTEN"
            and s.local_port == port
            and s.local_ip in (ip, "0.0.0.0")
            for s in self._sockets.values()
        )

    @property
    def sockets(self) -> list[AspSocket]:
        return list(self._sockets.values())

    def render(self, version: str | AsaVersion | None = None) -> str:
        """``show asp table socket`` (this table's version unless another is given)."""
        return render_asp_table_socket(self._sockets.values(), version or self.version)

    # ------------------------------------------------------------ internals
    def _listener_port(self, protocol: str, interface: str) -> int | None:
        for s in self._sockets.values():
            if s.protocol == protocol and s.state == "LISTEN" and s.interface == interface:
                return s.local_port
        return None

    def _open(
        self,
        protocol: str,
        state: str,
        ip: str,
        port: int,
        *,
        foreign: str = _ANY_FOREIGN,
        interface: str = "",
    ) -> AspSocket:
        handle = next(self._handles) & 0xFFFFFFFF
        if handle in self._sockets:
            raise LocalProtocolError(f"socket handle {handle:08x} already in use")
        sock = AspSocket(protocol, handle, state, ip, port, foreign, interface)
        self._sockets[handle] = sock
        return sock

    def _rebind(self, protocol: str, port: int) -> list[AspSocket]:
        closed = [
            s
            for s in self._sockets.values()
            if s.protocol == protocol and s.state == "LISTEN" and s.local_port != port
        ]
        for s in closed:
            del self._sockets[s.handle]
            self._open(protocol, "LISTEN", s.local_ip, port, interface=s.interface)
        return closed


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port} out of range 1-65535")
    return port


# ============================================================== drop counters
#: ``show asp drop`` frame-drop reasons the mock uses: name → description. Spellings are
#: those of real ASA output (ntc-templates ``show asp drop`` sample; ``capture type
#: asp-drop ?`` listing for mp-svc-bad-framing / -bad-length / -compress-error /
#: -decompres-error / -addr-renew-response).
FRAME_DROP_REASONS: Final[dict[str, str]] = {
    "mp-svc-addr-renew-response": "SVC Module received address renew response data frame",
    "mp-svc-bad-framing": "SVC Module received badly framed data",
    "mp-svc-bad-length": "SVC Module received bad data length",
    "mp-svc-compress-error": "SVC Module compression error",
    "mp-svc-decompres-error": "SVC Module decompression error",
    "mp-svc-no-fragment": "SVC Module unable to fragment packet",
    "mp-svc-flow-control": "SVC Module is in flow control",
    "mp-svc-no-session": "SVC Module does not have a session",
    "mp-svc-no-channel": "SVC Module does not have a channel for reinjection",
}

#: ``show asp drop`` flow-drop reasons (same real sample).
FLOW_DROP_REASONS: Final[dict[str, str]] = {
    "svc-replacement-conn": "SVC replacement connection established",
    "ssl-record-decrypt-error": "SSL record decryption failed",
    "dtls-hello-close": "DTLS hello processed and closed",
    "ssl-handshake-failed": "SSL handshake failed",
    "ssl-bad-record-detect": "SSL bad record detected",
}

_DROP_W: Final = 80  # counts right-aligned to column 80 (real sample)
_DROP_W_LONG: Final = 113  # … or 113 when the description is too long (real sample)


def _drop_line(desc: str, name: str, count: int) -> str:
    text = f"  {desc} ({name})"
    num = str(count)
    for width in (_DROP_W, _DROP_W_LONG):
        if len(text) + 1 + len(num) <= width:
            return text + num.rjust(width - len(text))
    return f"{text} {num}"


class AspDropCounters:
    """``show asp drop`` / ``clear asp drop``: only non-zero counters are listed."""

    def __init__(self) -> None:
        self._frame: dict[str, int] = dict.fromkeys(FRAME_DROP_REASONS, 0)
        self._flow: dict[str, int] = dict.fromkeys(FLOW_DROP_REASONS, 0)
        self._last_clearing = "Never"

    def drop(self, name: str, count: int = 1) -> None:
        """Count a dropped frame (``mp-svc-*``)."""
        if name not in self._frame:
            raise LocalProtocolError(f"unknown asp frame drop reason {name!r}")
        self._frame[name] += count

    def drop_flow(self, name: str, count: int = 1) -> None:
        if name not in self._flow:
            raise LocalProtocolError(f"unknown asp flow drop reason {name!r}")
        self._flow[name] += count

    def __getitem__(self, name: str) -> int:
        if name in self._frame:
            return self._frame[name]
        if name in self._flow:
            return self._flow[name]
        raise KeyError(name)

    def clear(self, wall: datetime | None = None, by: str = "enable_15") -> None:
        """``clear asp drop``; ``wall`` (the wall time now) fills ``Last clearing:``."""
        for d in (self._frame, self._flow):
            for k in d:
                d[k] = 0
        if wall is not None:
            self._last_clearing = f"{format_wall_time(wall, weekday=False)} by {by}"

    def render_show_asp_drop(self) -> str:
        lines = ["Frame drop:"]
        lines += [_drop_line(FRAME_DROP_REASONS[k], k, v) for k, v in self._frame.items() if v]
        lines += ["", f"Last clearing: {self._last_clearing}", "", "Flow drop:"]
        lines += [_drop_line(FLOW_DROP_REASONS[k], k, v) for k, v in self._flow.items() if v]
        lines += ["", f"Last clearing: {self._last_clearing}"]
        return "\n".join(lines) + "\n"
