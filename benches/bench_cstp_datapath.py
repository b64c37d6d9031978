"""CSTP data path: tunnelswarm's core vs OpenSSL (CPython ``ssl``) doing the same work.

Both sides run in this process, single-threaded, TLS 1.3 with AES-256-GCM, so the
numbers compare like with like: for each 1400-byte IP packet the client frames it as a
CSTP DATA frame (8-byte header) and encrypts it as one TLS record; the server decrypts
it and recovers the packet. tunnelswarm does both ends through ``_core.CstpConnection``
(rustls + the CSTP deframer, one Python call per packet and per read); the peer does
the same with ``ssl.SSLObject`` over memory BIOs and the header built in Python. The
result is printed as packets/s and the ratio; it asserts nothing (a benchmark, not a
test). Run: ``make bench`` or ``.venv/bin/python benches/bench_cstp_datapath.py``.
"""

from __future__ import annotations

import contextlib
import ssl
import struct
import time

import trustme

from tunnelswarm._core import CstpConnection

PACKETS = 50_000
SIZE = 1400
BATCH = 32  # packets per TCP "read"


def _certs() -> tuple[trustme.CA, trustme.LeafCert]:
    ca = trustme.CA()
    return ca, ca.issue_cert("vpn.example.com")


def bench_tunnelswarm(ca: trustme.CA, leaf: trustme.LeafCert) -> float:
    client = CstpConnection.client(
        "vpn.example.com", wall_time=int(time.time()), ca_pem=ca.cert_pem.bytes()
    )
    server = CstpConnection.server(
        b"".join(b.bytes() for b in leaf.cert_chain_pems),
        leaf.private_key_pem.bytes(),
        wall_time=int(time.time()),
    )
    for _ in range(10):
        if (d := client.poll_transmit()) is not None:
            server.handle_input(0, d)
        if (d := server.poll_transmit()) is not None:
            client.handle_input(0, d)
    assert not client.is_handshaking
    client.start_cstp(0, dpd=0, keepalive=0, rekey=0)
    server.start_cstp(0, dpd=0, keepalive=0, rekey=0)
    packet = bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256)
    got = 0
    t0 = time.perf_counter()
    for _ in range(PACKETS // BATCH):
        for _ in range(BATCH):
            client.send_data(1, packet)
        wire = client.poll_transmit()
        assert wire is not None
        server.handle_input(1, wire)
        got += sum(1 for e in server.poll_events() if e.kind == "data")
    dt = time.perf_counter() - t0
    assert got == (PACKETS // BATCH) * BATCH
    return got / dt


def bench_openssl(ca: trustme.CA, leaf: trustme.LeafCert) -> float:
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(cctx)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(sctx)
    for ctx in (cctx, sctx):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    cin, cout, sin, sout = (ssl.MemoryBIO() for _ in range(4))
    c = cctx.wrap_bio(cin, cout, server_hostname="vpn.example.com")
    s = sctx.wrap_bio(sin, sout, server_side=True)
    for _ in range(10):
        for obj in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        sin.write(cout.read())
        cin.write(sout.read())
    packet = bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256)
    got = 0
    buf = bytearray()
    t0 = time.perf_counter()
    for _ in range(PACKETS // BATCH):
        for _ in range(BATCH):
            c.write(b"STF\x01" + struct.pack(">HBB", len(packet), 0, 0) + packet)
        sin.write(cout.read())
        while True:
            try:
                buf += s.read(65536)
            except ssl.SSLWantReadError:
                break
        while len(buf) >= 8:
            n = struct.unpack_from(">H", buf, 4)[0]
            if len(buf) < 8 + n:
                break
            del buf[: 8 + n]
            got += 1
    dt = time.perf_counter() - t0
    assert got == (PACKETS // BATCH) * BATCH
    return got / dt


def main() -> None:
    ca, leaf = _certs()
    ours = max(bench_tunnelswarm(ca, leaf) for _ in range(3))
    peer = max(bench_openssl(ca, leaf) for _ in range(3))
    mbit = SIZE * 8 / 1e6
    print(f"CSTP data path, {SIZE}-byte packets, TLS 1.3, client encrypt + server decrypt:")
    print(f"  tunnelswarm core (rustls) {ours:12,.0f} packets/s  {ours * mbit:8,.0f} Mbit/s")
    print(f"  OpenSSL via CPython ssl   {peer:12,.0f} packets/s  {peer * mbit:8,.0f} Mbit/s")
    print(f"  ratio tunnelswarm/OpenSSL {ours / peer:12.2f}")


if __name__ == "__main__":
    main()
