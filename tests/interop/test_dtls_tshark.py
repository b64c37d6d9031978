"""An independent proof that our DTLS records are standard: Wireshark decrypts them.

The client runs with a key-log file (NSS format: the TLS secrets, and for DTLS the
client random with the master secret — for the resumption modes that is the
``X-DTLS-Master-Secret`` value). tshark captures the session on the host side of the
veth pair to ocserv's namespace, then decrypts the capture with that key log; from
tshark's own decode we assert that DTLS application data carries our ICMP echo
requests (AnyConnect type byte ``00``, an IPv4 ICMP echo request with our probe
magic ``TSWP``) and ocserv's echo replies.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import trio
from _support import dtls_options

from tunnelswarm.client.session import open_client
from tunnelswarm.testing.ocserv import OcservInstance

pytestmark = pytest.mark.interop

PROBE_MAGIC = b"TSWP".hex()


def _start_capture(server: OcservInstance, pcap: Path) -> subprocess.Popen[bytes]:
    """Start tshark on the host side of the veth and wait until it really captures.

    "Capturing on" comes before dumpcap records anything, so we knock on the headend's
    TCP port until the pcap file grows.
    """
    iface, port = server.host_veth, server.port
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed (Debian package tshark)")
    proc = subprocess.Popen(
        ["tshark", "-i", iface, "-f", f"port {port}", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    seen = b""
    while b"Capturing on" not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"tshark exited: {seen.decode(errors='replace')}")
        seen += line
    deadline = time.monotonic() + 20
    while not pcap.exists() or pcap.stat().st_size == 0:
        assert time.monotonic() < deadline, "tshark wrote no pcap file"
        time.sleep(0.05)
    start = pcap.stat().st_size
    while pcap.stat().st_size <= start:
        assert time.monotonic() < deadline, "tshark captured nothing"
        with socket.create_connection((server.host, port), timeout=2):
            pass
        time.sleep(0.1)
    return proc


def _decrypted_payloads(pcap: Path, keylog: Path) -> list[bytes]:
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-Y", "dtls",
         "-T", "fields", "-e", "data.data"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    payloads = []
    for line in out.splitlines():
        for field in line.split(","):
            field = field.strip().replace(":", "")
            if field:
                payloads.append(bytes.fromhex(field))
    return payloads


@pytest.mark.parametrize(
    ("dtls", "dtls12"),
    [("AES128-SHA", ""), ("", "AES256-GCM-SHA384"), ("PSK-NEGOTIATE", "")],
    ids=["dtls09-aes128", "dtls12-aes256gcm", "psk"],
)
async def test_tshark_decrypts_our_dtls(
    ocserv_udp_server: OcservInstance, tmp_path: Path, dtls: str, dtls12: str
) -> None:
    pcap, keylog = tmp_path / "session.pcap", tmp_path / "keys.log"
    cap = await trio.to_thread.run_sync(_start_capture, ocserv_udp_server, pcap)
    try:
        opts = dtls_options(ocserv_udp_server, dtls, dtls12, keylog_file=str(keylog))
        with trio.fail_after(60):
            async with open_client(opts) as session:
                with trio.fail_after(15):
                    while session.dtls is None or not session.dtls.up:
                        await trio.sleep(0.02)
                report = await session.adapter.ping(
                    ocserv_udp_server.gateway, count=3, interval=0.05
                )
                assert report.received == 3
                assert session.dtls.counters.tx_packets == 3
        await trio.sleep(1.0)  # let tshark write the last packets
    finally:
        cap.send_signal(signal.SIGINT)
        await trio.to_thread.run_sync(lambda: cap.communicate(timeout=20))
    payloads = await trio.to_thread.run_sync(_decrypted_payloads, pcap, keylog)
    # AnyConnect DATA (00) + IPv4 (45) + ICMP; echo request type 8, reply type 0
    icmp = [p for p in payloads if p[:2] == b"\x00\x45" and len(p) > 29 and p[10] == 1]
    requests = [p for p in icmp if p[21] == 8 and PROBE_MAGIC in p.hex()]
    replies = [p for p in icmp if p[21] == 0 and PROBE_MAGIC in p.hex()]
    assert len(requests) == 3, f"{len(payloads)} decrypted payloads, none of ours"
    assert len(replies) == 3
