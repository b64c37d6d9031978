"""Mock ASA capacity: how many concurrent AnyConnect sessions one mock ASA process holds.

What it measures (issue 4, item 9): one ``tunnelswarm mock-asa`` process, pinned to one
core (CPU 0), serves ``--sessions`` emulated clients (default 10,000) that each log in,
CONNECT, bring DTLS up and then hold with keepalive and DPD running on both channels
(the configuration below: ``anyconnect ssl keepalive 20``, ``dpd-interval gateway 30``
and ``client 30``). The clients are tunnelswarm's own, split over ``--workers`` client
processes pinned to the other core(s), because one process may only hold ~20,000 file
descriptors here and each client has a TCP and a UDP socket.

Printed: sessions the mock's ``show vpn-sessiondb summary`` counts, DTLS tunnels, the
mock's resident memory (total, and per session above its idle baseline), the mock's CPU
time per established session during set-up, and its CPU load (% of one core) while the
sessions only hold (keepalive/DPD traffic). It asserts nothing: a benchmark, not a test.
The target stated in the issue (≥ 10,000 sessions, < 1.5 GB, one core) is printed next to
the numbers with whether this run met it.

Run: ``make bench-capacity`` or
``.venv/bin/python benches/bench_mock_asa_capacity.py --sessions 10000 --hold 60``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

CONFIG = """\
ASA Version 9.1(4)
hostname ciscoasa
interface GigabitEthernet0/0
 nameif outside
 ip address 172.16.11.1 255.255.255.0
interface GigabitEthernet0/1
 nameif inside
 ip address 10.1.1.1 255.255.255.0
logging enable
logging timestamp
logging buffered informational
ip local pool big_pool 10.64.0.1-10.64.255.254 mask 255.255.0.0
webvpn
 enable outside
 anyconnect enable
 tunnel-group-list enable
group-policy bench internal
group-policy bench attributes
 vpn-simultaneous-logins 20000
 vpn-idle-timeout none
 vpn-session-timeout none
 vpn-tunnel-protocol ssl-client
 webvpn
  anyconnect ssl dtls enable
  anyconnect ssl keepalive 20
  anyconnect dpd-interval gateway 30
  anyconnect dpd-interval client 30
username bench password bench privilege 0
tunnel-group bench type remote-access
tunnel-group bench general-attributes
 address-pool big_pool
 default-group-policy bench
tunnel-group bench webvpn-attributes
 group-alias bench enable
"""

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------ /proc readings
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def hwm_bytes(pid: int) -> int:
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) * 1024 if m else 0


def udp_rcvbuf_errors() -> int:
    """The kernel's UDP RcvbufErrors counter (all sockets: the mock's and the clients')."""
    head, values = (
        ln.split()
        for ln in Path("/proc/net/snmp").read_text().splitlines()
        if ln.startswith("Udp:")
    )
    return int(values[head.index("RcvbufErrors")])


def admin(port: int, *commands: str) -> str:
    """Run commands on the mock's admin console; their output."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("enable\n\n" + "".join(c + "\n" for c in commands) + "exit\n").encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):  # not root: the most we may
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------------ one client worker
def worker(url: str, pin: str, count: int, base: int, concurrency: int) -> None:
    """Bring ``count`` sessions up, report on stdout, hold until stdin closes."""
    import trio

    from tunnelswarm.client.session import ClientOptions, open_client
    from tunnelswarm.config.profile import OPENCONNECT_9_01
    from tunnelswarm.errors import TunnelswarmError

    profile = replace(OPENCONNECT_9_01, dtls_ciphers="AES128-SHA", dtls12_ciphers="")
    up = dtls = 0
    errors: dict[str, int] = {}
    final = {"dtls_up": 0, "dtls_dead_peer": 0, "dtls_failures": 0, "cstp_alive": 0}
    all_up = trio.Event()
    pending = count

    async def one(i: int, gate: trio.Semaphore, stop: trio.Event) -> None:
        nonlocal up, dtls, pending
        opts = ClientOptions(
            url=url,
            user="bench",
            password="bench",
            servercert=(pin,),
            profile=profile,
            hostname=f"bench-{i}",
            seed=i,
            reconnect_timeout=30,
        )
        counted = False

        def done() -> None:
            nonlocal pending, counted
            if not counted:
                counted = True
                pending -= 1
                if pending == 0:
                    all_up.set()

        await gate.acquire()  # bounds the set-ups in flight, released once DTLS is up
        released = False
        try:
            async with open_client(opts) as s:
                with trio.move_on_after(30):
                    while s.dtls is not None and not s.dtls.up:
                        await trio.sleep(0.05)
                gate.release()
                released = True
                up += 1
                dtls += bool(s.dtls is not None and s.dtls.up)
                done()
                await stop.wait()
                if s.dtls is not None:
                    final["dtls_up"] += s.dtls.up
                    final["dtls_dead_peer"] += s.dtls.counters.dead_peer
                    final["dtls_failures"] += s.dtls.counters.handshake_failures
                alive = await s.check_round_trip(timeout=20)
                final["cstp_alive"] += alive
        except TunnelswarmError as e:
            errors[e.cause] = errors.get(e.cause, 0) + 1
        finally:
            if not released:
                gate.release()
            done()

    async def main() -> None:
        gate = trio.Semaphore(concurrency)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, base + i, gate, stop)
            await all_up.wait()
            print(json.dumps({"up": up, "dtls": dtls, "errors": errors}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # the parent closes stdin: stop
            stop.set()
        print(json.dumps(final), flush=True)

    trio.run(main)


# ------------------------------------------------------------------ the run
def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the workers' JSON reports (numbers, and dicts of numbers)."""
    out: dict[str, Any] = {}
    for r in reports:
        for k, v in r.items():
            if isinstance(v, dict):
                d = out.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            else:
                out[k] = out.get(k, 0) + v
    return out


def start_mock(tmp: Path, cpus: set[int]) -> tuple[subprocess.Popen[bytes], str, str, int]:
    """Start ``tunnelswarm mock-asa`` on ``cpus``; (process, URL, pin, admin port)."""
    (tmp / "asa.cfg").write_text(CONFIG)
    out = tmp / "mock.out"
    cmd = [sys.executable, "-m", "tunnelswarm", "mock-asa", "--config", str(tmp / "asa.cfg")]
    cmd += ["--port", "0", "--state-dir", str(tmp), "--admin", "127.0.0.1:0"]
    with out.open("w") as log:
        mock = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
    deadline = time.monotonic() + 60
    while not (
        m := re.search(
            r"URL: (\S+)(?s:.*)(pin-sha256:\S+)(?s:.*)admin console: .*:(\d+)", out.read_text()
        )
    ):
        if mock.poll() is not None or time.monotonic() > deadline:
            mock.kill()
            raise SystemExit(f"mock ASA did not start:\n{out.read_text()}")
        time.sleep(0.1)
    return mock, m.group(1), m.group(2), int(m.group(3))


def start_workers(
    url: str, pin: str, sessions: int, n_workers: int, concurrency: int, cpus: set[int]
) -> list[subprocess.Popen[str]]:
    workers, base = [], 0
    for i in range(n_workers):
        n = sessions // n_workers + (i < sessions % n_workers)
        cmd = [sys.executable, __file__, "--worker", url, pin, str(n), str(base), str(concurrency)]
        workers.append(
            subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=lambda: os.sched_setaffinity(0, cpus),
            )
        )
        base += n
    return workers


def read_reports(workers: list[subprocess.Popen[str]]) -> dict[str, Any]:
    reports = []
    for w in workers:
        line = w.stdout.readline() if w.stdout is not None else ""
        if not line:
            raise SystemExit(f"a client worker died (exit {w.wait()})")
        reports.append(json.loads(line))
    return merge(reports)


def stop(mock: subprocess.Popen[bytes], workers: list[subprocess.Popen[str]]) -> None:
    for w in workers:
        if w.stdin is not None and not w.stdin.closed:
            w.stdin.close()
    for w in workers:
        try:
            w.wait(timeout=120)
        except subprocess.TimeoutExpired:
            w.kill()
    mock.terminate()
    try:
        mock.wait(timeout=30)
    except subprocess.TimeoutExpired:
        mock.kill()


def run(args: argparse.Namespace) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    mock_cpu = {cpus[0]}
    client_cpus = set(cpus[1:]) or mock_cpu
    tmp = Path(tempfile.mkdtemp(prefix="tunnelswarm-capacity-"))
    mock, url, pin, admin_port = start_mock(tmp, mock_cpu)
    workers: list[subprocess.Popen[str]] = []
    try:
        time.sleep(1)
        idle_rss, cpu0, rcvbuf0 = rss_bytes(mock.pid), cpu_seconds(mock.pid), udp_rcvbuf_errors()
        print(
            f"mock ASA pid {mock.pid} on CPU {sorted(mock_cpu)}, {url}, idle RSS "
            f"{idle_rss / 2**20:.1f} MiB; {args.sessions} sessions from {args.workers} "
            f"client processes on CPU {sorted(client_cpus)}",
            flush=True,
        )
        t0 = time.monotonic()
        workers = start_workers(
            url, pin, args.sessions, args.workers, args.concurrency, client_cpus
        )
        setup = read_reports(workers)
        setup_s, cpu_setup = time.monotonic() - t0, cpu_seconds(mock.pid) - cpu0
        up = setup.get("up", 0)
        print(
            f"set-up: {up} sessions up ({setup.get('dtls', 0)} with DTLS) in {setup_s:.1f} s, "
            f"errors {setup.get('errors') or 'none'}",
            flush=True,
        )
        # hold: keepalive and DPD run; measure the mock's CPU and memory
        c1, t1, peak = cpu_seconds(mock.pid), time.monotonic(), 0
        while time.monotonic() - t1 < args.hold:
            time.sleep(1)
            peak = max(peak, rss_bytes(mock.pid))
        hold_cpu = (cpu_seconds(mock.pid) - c1) / (time.monotonic() - t1)
        summary = admin(admin_port, "show vpn-sessiondb", "show asp drop")
        rss = rss_bytes(mock.pid)
        m = re.search(r"AnyConnect Client\s*:\s*(\d+)", summary)
        active = int(m.group(1)) if m else -1
        d = re.search(r"DTLS-Tunnel\s*:\s*(\d+)", summary)
        print("\n".join("  | " + ln for ln in summary.splitlines() if ln.strip()))
        for w in workers:
            if w.stdin is not None:
                w.stdin.close()  # the workers check every session once more, then stop
        final = read_reports(workers)
        print()
        print(
            f"sessions held by the mock ASA ........ {active} "
            f"(DTLS tunnels {d.group(1) if d else '?'})"
        )
        print(
            f"mock RSS ............................. {rss / 2**20:.0f} MiB now, "
            f"{max(peak, hwm_bytes(mock.pid)) / 2**20:.0f} MiB peak"
        )
        print(
            f"memory per session ................... {(rss - idle_rss) / max(up, 1) / 1024:.1f} KiB"
        )
        print(f"mock CPU per session set-up .......... {cpu_setup / max(up, 1) * 1000:.2f} ms")
        print(f"mock CPU while holding ............... {hold_cpu * 100:.1f} % of one core")
        print(f"UDP datagrams dropped (RcvbufErrors) .. {udp_rcvbuf_errors() - rcvbuf0}")
        print(
            f"clients at the end of the hold ....... DTLS up {final.get('dtls_up', 0)}, "
            f"DTLS dead-peer events {final.get('dtls_dead_peer', 0)}, CSTP DPD answered "
            f"{final.get('cstp_alive', 0)}/{up}"
        )
        ok = active >= 10_000 and rss < 1.5 * 2**30
        print(f"target (>= 10,000 sessions, < 1.5 GB RSS, one core): {'met' if ok else 'NOT met'}")
        return 0
    finally:
        stop(mock, workers)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=3, help="client processes")
    ap.add_argument("--hold", type=float, default=60.0, help="seconds to hold all sessions")
    ap.add_argument("--concurrency", type=int, default=64, help="set-ups in flight per worker")
    ap.add_argument("--worker", nargs=5, metavar=("URL", "PIN", "N", "BASE", "CONC"))
    args = ap.parse_args()
    raise_nofile()
    if args.worker:
        url, pin, n, base, conc = args.worker
        worker(url, pin, int(n), int(base), int(conc))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
