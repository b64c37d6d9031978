"""openconnect ``--script-tun`` script: ping a host through the tunnel, then drain.

Usage (as openconnect's ``--script``): ``python _tun_ping.py LOG TARGET COUNT``.

openconnect runs it with one end of an AF_UNIX datagram socketpair in ``$VPNFD`` (its
"tun") and the usual script environment. The script sends ``COUNT`` ICMP echo requests
from ``$INTERNAL_IP4_ADDRESS`` to ``TARGET``, one at a time, waiting up to 2 s for each
reply, and writes one line per event to ``LOG``::

    pid <pid> pgid <pgid>
    env reason=... INTERNAL_IP4_ADDRESS=... INTERNAL_IP4_MTU=...
    reply seq=<n> src=<a.b.c.d> dst=<a.b.c.d> len=<bytes>
    timeout seq=<n>
    other len=<bytes>
    done sent=<n> replies=<n>

Then it keeps reading the socket (like ``cat``) until openconnect goes away. Standard
library only.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time
from typing import TextIO

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
PAYLOAD = bytes(range(56))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(src: str, dst: str, ident: int, seq: int) -> bytes:
    icmp = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq) + PAYLOAD
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(icmp),
        seq,
        0x4000,  # DF
        64,
        1,  # ICMP
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


def parse_reply(packet: bytes, ident: int) -> tuple[int, str, str] | None:
    """``(seq, src, dst)`` if ``packet`` is a well-formed echo reply to ``ident``."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 1:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if checksum(packet[:ihl]) != 0:
        return None
    icmp = packet[ihl:]
    if len(icmp) < 8 or checksum(icmp) != 0:
        return None
    kind, _code, _sum, rid, seq = struct.unpack("!BBHHH", icmp[:8])
    if kind != ICMP_ECHO_REPLY or rid != ident or icmp[8:] != PAYLOAD:
        return None
    return seq, socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])


def _await_reply(sock: socket.socket, ident: int, seq: int, log: TextIO) -> bool:
    """Read until the reply to ``seq`` arrives (True) or 2 s pass (False)."""
    deadline = time.monotonic() + 2.0
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            packet = sock.recv(65536)
        except TimeoutError:
            return False
        got = parse_reply(packet, ident)
        if got is None:
            log.write(f"other len={len(packet)}\n")
            continue
        log.write(f"reply seq={got[0]} src={got[1]} dst={got[2]} len={len(packet)}\n")
        if got[0] == seq:
            return True
    return False


def main() -> None:
    log_path, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(log_path, "a", buffering=1) as log:
        log.write(f"pid {os.getpid()} pgid {os.getpgrp()}\n")
        names = ("reason", "INTERNAL_IP4_ADDRESS", "INTERNAL_IP4_MTU")
        log.write("env " + " ".join(f"{n}={os.environ.get(n, '')}" for n in names) + "\n")
        src = os.environ["INTERNAL_IP4_ADDRESS"]
        ident = os.getpid() & 0xFFFF
        with socket.socket(fileno=int(os.environ["VPNFD"])) as sock:
            replies = 0
            for seq in range(1, count + 1):
                sock.send(echo_request(src, target, ident, seq))
                if _await_reply(sock, ident, seq, log):
                    replies += 1
                else:
                    log.write(f"timeout seq={seq}\n")
            log.write(f"done sent={count} replies={replies}\n")
            sock.settimeout(None)
            while True:  # drain until openconnect closes its end
                try:
                    if not sock.recv(65536):
                        break
                except OSError:
                    break


if __name__ == "__main__":
    main()
