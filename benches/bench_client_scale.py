"""Client scale: sessions one tunnelswarm process holds, and its memory beside openconnect's.

What it measures (issue 6, item 8, first benchmark): a mock ASA process (pinned to CPU
0, the capacity configuration of ``bench_mock_asa_capacity.py``) and **one**
``tunnelswarm run`` load process (pinned to CPU 1, one worker) holding ``--sessions``
closed-model sessions (default 10,000) with CSTP + DTLS and keepalive/DPD running. It
samples the client process's resident memory during the hold and reads the run's own
summary (sessions up, DTLS ratio, setup percentiles). Then, in the same run, it starts
one real ``openconnect`` (Debian's, ``--script-tun`` with a script that just holds the
socket — no tun, no root needed for the tunnel) against the same mock, waits until it
has DTLS up, and reads its resident memory: the cost of one emulated user the
one-process-per-user way. Printed: client KiB per session, openconnect KiB per process,
their ratio, and the target of the issue (≤ 100 KB per session). It asserts nothing.

Run: ``.venv/bin/python benches/bench_client_scale.py [--sessions N] [--hold S]``
(needs ``openconnect`` for the comparison; without it that line says so).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from bench_mock_asa_capacity import (
    raise_nofile,
    rss_bytes,
    start_mock,
)

HOLD_SCRIPT = "exec sleep 3600 </dev/null >/dev/null 2>&1"


def client_run(
    url: str, pin: str, sessions: int, hold: float, rate: str, cpus: set[int]
) -> tuple[subprocess.Popen[str], Path]:
    out = Path(tempfile.mkdtemp(prefix="tunnelswarm-scale-")) / "summary.jsonl"
    cmd = [sys.executable, "-m", "tunnelswarm", "run", "-n", str(sessions), "--rate", rate]
    cmd += ["--hold", f"{hold}s", "--headend", url, "--servercert", pin, "--user", "bench"]
    cmd += ["--password", "bench", "--no-preflight", "--json-lines", "-q", "--workers", "1"]
    with out.open("w") as f:
        proc = subprocess.Popen(
            cmd,
            stdout=f,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
    return proc, out


def last_json(path: Path) -> dict[str, object]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def openconnect_rss(url: str, pin: str) -> tuple[int | None, str]:
    """RSS of one openconnect with DTLS up against the mock, or (None, why)."""
    oc = shutil.which("openconnect")
    if oc is None:
        return None, "openconnect is not installed"
    cmd = [oc, "--protocol=anyconnect", "--servercert", pin, "-u", "bench", "--passwd-on-stdin"]
    cmd += ["--non-inter", "--script-tun", "--script", HOLD_SCRIPT, "-v", url]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write("bench\n")
        proc.stdin.close()
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if "Established DTLS connection" in line:
                time.sleep(2)  # let it settle (MTU probe, first keepalives)
                return rss_bytes(proc.pid), "DTLS up"
            if time.monotonic() > deadline:
                break
        return None, "openconnect did not bring DTLS up within 30 s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--hold", type=float, default=60.0)
    ap.add_argument("--rate", default="250/s", help="ramp-up rate of the closed model")
    args = ap.parse_args()
    raise_nofile()  # the client process inherits it: a TCP and a UDP socket per session
    cpus = sorted(os.sched_getaffinity(0))
    mock_cpu, client_cpus = {cpus[0]}, (set(cpus[1:]) or {cpus[0]})
    tmp = Path(tempfile.mkdtemp(prefix="tunnelswarm-scale-mock-"))
    mock, url, pin, _admin = start_mock(tmp, mock_cpu)
    try:
        client, out = client_run(url, pin, args.sessions, args.hold, args.rate, client_cpus)
        time.sleep(1)
        idle = rss_bytes(client.pid)
        print(
            f"client pid {client.pid} on CPU {sorted(client_cpus)}, mock on CPU "
            f"{sorted(mock_cpu)}; {args.sessions} sessions at {args.rate}, hold {args.hold:g} s",
            flush=True,
        )
        peak = 0
        while client.poll() is None:
            try:
                peak = max(peak, rss_bytes(client.pid))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(1)
        summary = last_json(out)
        text = json.dumps(summary)
        up = _first_number(text, r'"sessions_up":\s*([0-9.]+)')
        dtls = _first_number(text, r'"dtls_ratio":\s*([0-9.]+)')
        p99 = _first_number(text, r'"setup_p99":\s*([0-9.eE+-]+)')
        print(
            f"client exit {client.returncode}; sessions up (peak) {up}, DTLS ratio {dtls}, "
            f"setup p99 {p99 if p99 is None else f'{p99 * 1000:.1f} ms'}"
        )
        per = (peak - idle) / max(up or args.sessions, 1)
        print(
            f"client RSS idle {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB: "
            f"{per / 1024:.1f} KiB per session"
        )
        oc, why = openconnect_rss(url, pin)
        if oc is None:
            print(f"openconnect: not measured ({why})")
        else:
            print(
                f"openconnect, one process with DTLS up: {oc / 1024:.0f} KiB resident "
                f"({why}); ratio openconnect/tunnelswarm per user: {oc / max(per, 1):.1f}x"
            )
        print(
            f"target (<= 100 KB per session in one client process): "
            f"{'met' if per <= 100_000 else 'NOT met'}"
        )
        return 0
    finally:
        mock.terminate()
        try:
            mock.wait(timeout=30)
        except subprocess.TimeoutExpired:
            mock.kill()


def _first_number(text: str, pattern: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


if __name__ == "__main__":
    sys.exit(main())
