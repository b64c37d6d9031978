"""MTU policy of the emulated client (protocol.md §6.1, openconnect ``calculate_dtls_mtu``).

Pure functions, no IO: the session passes in what the kernel said about the TLS socket
(``TCP_INFO``), the user's flags, and the headend's answer.

* ``base`` = ``--base-mtu``; else the socket's path MTU (``tcpi_pmtu``); else
  ``min(rcv_mss, snd_mss) − 13``; else 1406; never below 1280.
* requested tunnel MTU = ``--mtu``; else ``base − 82 − 8 − (20 | 40)`` (DTLS overhead 82,
  UDP 8, IPv4 or IPv6 header by the family of the connection to the headend).
* tunnel MTU = ``max(X-CSTP-MTU, X-DTLS-MTU)`` (:attr:`TunnelParams.tunnel_mtu`).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Protocol

from tunnelswarm._core import openconnect_request_mtu

__all__ = [
    "DEFAULT_BASE_MTU",
    "DTLS_OVERHEAD",
    "MIN_BASE_MTU",
    "TcpInfo",
    "choose_base_mtu",
    "read_tcp_info",
    "request_mtu",
]

#: 1 (AnyConnect header) + 13 (DTLS record) + 20 (SHA-1 MAC) + 32 (IV) + 16 (padding)
DTLS_OVERHEAD = 82
DEFAULT_BASE_MTU = 1406
MIN_BASE_MTU = 1280


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """The parts of Linux ``struct tcp_info`` openconnect looks at."""

    pmtu: int
    snd_mss: int
    rcv_mss: int


class _HasGetsockopt(Protocol):
    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


def read_tcp_info(sock: _HasGetsockopt) -> TcpInfo | None:
    """``TCP_INFO`` of a connected Linux TCP socket (stdlib or Trio), or None."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
    except OSError:
        return None
    if len(raw) < 64:
        return None
    # 8 bytes of u8 fields, then u32: rto ato snd_mss rcv_mss unacked sacked lost retrans
    # fackets last_data_sent last_ack_sent last_data_recv last_ack_recv pmtu ...
    fields = struct.unpack_from("=14I", raw, 8)
    return TcpInfo(pmtu=fields[13], snd_mss=fields[2], rcv_mss=fields[3])


def choose_base_mtu(user_base: int | None, info: TcpInfo | None) -> int:
    """The link MTU sent as ``X-CSTP-Base-MTU``."""
    if user_base:
        base = user_base
    elif info is not None and info.pmtu:
        base = info.pmtu
    elif info is not None and info.snd_mss and info.rcv_mss:
        base = min(info.snd_mss, info.rcv_mss) - 13
    else:
        base = DEFAULT_BASE_MTU
    return max(base, MIN_BASE_MTU)


def request_mtu(base: int, *, ipv6: bool, user_mtu: int | None = None) -> int:
    """The tunnel MTU proposed as ``X-CSTP-MTU`` (the arithmetic is the core's)."""
    if user_mtu:
        return user_mtu
    return openconnect_request_mtu(base, ipv6=ipv6)
