"""DTLS record protection: tunnelswarm's core vs ``openssl speed`` on the same machine.

Runs the Rust bench ``rust/proto/benches/dtls_records.rs`` (sealing and opening whole
DTLS records per suite and size, through ``cipher::write_record`` /
``RecordProtection::open`` — the code ``DtlsConnection`` runs on its data path), then
``openssl speed -elapsed -mr`` for the same cipher and size, and prints both in MB/s
(10⁶ bytes of record plaintext per second) with the ratio tunnelswarm/OpenSSL.

OpenSSL reference per suite (docs/crypto.md explains the choices):

* AES-GCM and ChaCha20-Poly1305: ``-evp <cipher> -aead`` — OpenSSL's "TLS-like
  sequence" (per-record nonce, 13-byte AAD, tag), ``-decrypt`` for opening;
* AES-CBC-SHA1: the stitched ``-evp aes-N-cbc-hmac-sha1`` (AES-NI + SHA1 interleaved),
  timed on the record's padded CBC body length (it refuses lengths that are not whole
  blocks and ``openssl speed`` then silently counts the failures, e.g. 6 GB/s at 1400
  bytes), scaled to the plaintext bytes. OpenSSL's own DTLS does *not* use the stitched
  cipher, so a second line gives the two-pass cost OpenSSL's record layer pays:
  ``aes-N-cbc`` over the padded body plus ``-hmac sha1`` over ``13 + N`` bytes;
* 3DES-CBC-SHA1: that two-pass cost (``des-ede3-cbc`` + ``-hmac sha1``).

It asserts nothing (a benchmark, not a test). Run: ``make bench`` or
``.venv/bin/python benches/bench_dtls_vs_openssl.py [--seconds S] [--suite NAME]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (64, 512, 1400)
SHA1_LEN = 20
HEADER_LEN = 13  # the record MAC covers epoch‖seq‖type‖version‖length ‖ plaintext


@dataclass(frozen=True)
class Reference:
    """How to time one suite's bulk cipher with ``openssl speed``."""

    kind: str  # "aead", "stitched" or "two-pass"
    cipher: str  # EVP name
    block: int = 0  # CBC block size
    stitched: str = ""  # stitched EVP name, CBC-SHA1 with AES only


REFERENCES: dict[str, Reference] = {
    "AES128-SHA": Reference("stitched", "aes-128-cbc", 16, "aes-128-cbc-hmac-sha1"),
    "AES256-SHA": Reference("stitched", "aes-256-cbc", 16, "aes-256-cbc-hmac-sha1"),
    "DES-CBC3-SHA": Reference("two-pass", "des-ede3-cbc", 8),
    "AES128-GCM-SHA256": Reference("aead", "aes-128-gcm"),
    "AES256-GCM-SHA384": Reference("aead", "aes-256-gcm"),
    "PSK-CHACHA20-POLY1305": Reference("aead", "chacha20-poly1305"),
    "PSK-AES128-GCM-SHA256": Reference("aead", "aes-128-gcm"),
    "PSK-AES256-GCM-SHA384": Reference("aead", "aes-256-gcm"),
}


@dataclass(frozen=True)
class Row:
    suite: str
    op: str
    size: int
    mb_per_s: float


LINE = re.compile(r"^suite=(\S+) .*op=(seal|open) bytes=(\d+) .*mb_per_s=([\d.]+)$")


def run_rust(seconds: float, suite: str | None) -> list[Row]:
    cmd = ["cargo", "bench", "-q", "-p", "tunnelswarm-proto", "--bench", "dtls_records"]
    cmd += ["--", "--seconds", str(seconds), "--bytes", ",".join(map(str, SIZES))]
    if suite:
        cmd += ["--suite", suite]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        if m := LINE.match(line.strip()):
            rows.append(Row(m[1], m[2], int(m[3]), float(m[4])))
    if not rows:
        sys.exit(f"no results from {' '.join(cmd)}:\n{out}")
    return rows


class OpenSsl:
    """``openssl speed`` in machine-readable mode, each distinct command run once."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.cache: dict[tuple[str, ...], float | None] = {}

    def bytes_per_s(self, *args: str, size: int) -> float | None:
        """Bytes per second, or ``None`` when this build cannot run it."""
        key = (*args, str(size))
        if key not in self.cache:
            cmd = ["openssl", "speed", "-elapsed", "-mr", "-seconds", str(self.seconds)]
            cmd += [*args, "-bytes", str(size)]
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
            m = re.search(r"^\+F:\d+:[^:]+:([\d.]+)$", p.stdout, re.MULTILINE)
            self.cache[key] = float(m[1]) if p.returncode == 0 and m else None
        return self.cache[key]

    def time_per_op(self, *args: str, size: int) -> float | None:
        bps = self.bytes_per_s(*args, size=size)
        return size / bps if bps else None


def cbc_body_len(size: int, block: int) -> int:
    """Length of ``CBC(pt ‖ HMAC-SHA1 ‖ pad)`` for ``size`` plaintext bytes (minimal pad)."""
    n = size + SHA1_LEN + 1
    return -(-n // block) * block


def references(ssl: OpenSsl, ref: Reference, op: str, size: int) -> list[tuple[float, str]]:
    """(OpenSSL MB/s of record plaintext, description) for one row, best reference first."""
    dec = ["-decrypt"] if op == "open" else []
    out: list[tuple[float, str]] = []
    if ref.kind == "aead":
        bps = ssl.bytes_per_s("-evp", ref.cipher, "-aead", *dec, size=size)
        desc = f"-evp {ref.cipher} -aead"
        if bps is None:  # OpenSSL < 3.0 has no -aead
            bps = ssl.bytes_per_s("-evp", ref.cipher, *dec, size=size)
            desc = f"-evp {ref.cipher}"
        if bps:
            out.append((bps / 1e6, desc))
        return out
    body = cbc_body_len(size, ref.block)
    if ref.stitched:
        bps = ssl.bytes_per_s("-evp", ref.stitched, *dec, size=body)
        if bps:
            out.append((bps / body * size / 1e6, f"-evp {ref.stitched} @{body} B (stitched)"))
    t_cbc = ssl.time_per_op("-evp", ref.cipher, *dec, size=body)
    t_mac = ssl.time_per_op("-hmac", "sha1", size=HEADER_LEN + size)
    if t_cbc and t_mac:
        desc = f"2-pass: {ref.cipher} @{body} B + hmac sha1 @{HEADER_LEN + size} B"
        out.append((size / (t_cbc + t_mac) / 1e6, desc))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=1, help="per measurement (default 1)")
    ap.add_argument("--suite", help="only this suite (e.g. AES128-GCM-SHA256)")
    a = ap.parse_args()
    if shutil.which("openssl") is None:
        sys.exit("openssl not found on PATH")
    version = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    rows = run_rust(a.seconds, a.suite)
    ssl = OpenSsl(a.seconds)
    print(f"DTLS record protection, MB/s of record plaintext; {version}, wall clock")
    head = f"{'suite':22} {'bytes':>5} {'op':4} {'tunnelswarm':>11} {'OpenSSL':>9} {'ratio':>6}"
    print(f"{head}  OpenSSL reference")
    for r in rows:
        refs = references(ssl, REFERENCES[r.suite], r.op, r.size)
        if not refs:
            print(f"{r.suite:22} {r.size:5} {r.op:4} {r.mb_per_s:11.1f} {'n/a':>9}")
            continue
        for i, (mbs, desc) in enumerate(refs):
            left = f"{r.suite:22} {r.size:5} {r.op:4} {r.mb_per_s:11.1f}" if i == 0 else " " * 45
            print(f"{left} {mbs:9.1f} {r.mb_per_s / mbs:6.2f}  {desc}")


if __name__ == "__main__":
    main()
