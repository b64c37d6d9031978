"""Setup cost: client CPU time per established session against one real ocserv.

What it measures (issue 6, item 8, "setup cost"): a throwaway Debian ``ocserv`` in a
network namespace (``tunnelswarm.testing.ocserv``, CSTP + DTLS on one port, no limits on
clients, rate or ban score) serves both sides in turn:

* **tunnelswarm**: one ``tunnelswarm run`` load process (one Trio loop, ``--workers 1``),
  open model: ``--sessions`` sessions arrive at ``--rate`` (``--open RATE --duration
  N/RATE``), each with a fixed ``--lifetime`` of ``--hold`` seconds: it logs in,
  CONNECTs, brings DTLS up, holds, disconnects — the same life as one openconnect
  process below (the lifetime counts from the session's start, so it holds its set-up
  time, ~20 ms, less). Its CPU time is the ``os.wait4`` rusage of the process (user +
  system, all threads). The same command with one session (run before and after the big
  run) is the fixed cost: interpreter start, imports, one session. Two numbers follow:
  *marginal* = (cpu(N) - cpu(1)) / (U - 1), what one more session costs, and *total* =
  cpu(N) / U, everything the run spent divided by its sessions; U counts the sessions
  that came up with DTLS (the CPU of failed set-ups is charged to them).
* **openconnect**: ``--openconnect`` processes, ``--parallel`` at a time, each Debian's
  ``openconnect --script-tun`` with a script that only holds the socket (no tun device).
  Each is started, waited for until it logs "Established DTLS connection", held
  ``--hold`` seconds, sent SIGTERM (it sends a BYE and exits) and reaped with
  ``os.wait4``: its CPU time is the whole process, exec and library start-up included —
  the cost of one session the one-process-per-user way.

* **Trio floor** (``setup_floor.py``): the same wire exchange per session — the requests
  of one real login replayed with each session's cookies, CONNECT, DTLS, hold, BYE — on
  the same building blocks (direct sockets, ``TlsStream``, the Rust TLS/DTLS cores) but
  none of tunnelswarm's engine, session, policy or statistics logic. Measured like the
  tunnelswarm side (marginal CPU), it is the least any client that drives each socket
  from Python on a Trio loop can spend here: openconnect's figure divided by it is the
  best ratio that design can reach on this machine.

All sides do the same work per session (TLS login, CONNECT, DTLS, a hold of the same
length, disconnect); only sessions with DTLS up count, and a side with failures says so.
(Until 2026-11-30 the tunnelswarm side was a closed model whose early sessions held until
the whole ramp was over; an idle session costs the process some 20-40 us of CPU per
second, so that charged tunnelswarm ~0.3 ms per session of holding openconnect did not
do.) CPU *time* is measured, not wall time, so a busy machine hardly skews it. Printed: CPU ms per
session on each side, their ratio and the target of the issue (tunnelswarm ≥ 10× less
CPU per session than openconnect). It asserts nothing.

Needs root (network namespace), ``ocserv`` and ``openconnect``; without them it says why.
Run: ``.venv/bin/python benches/bench_setup_cost.py [--sessions N] [--openconnect M]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mock_asa_capacity import raise_nofile

from tunnelswarm.testing.ocserv import OcservConfig, OcservInstance, peers_available, start_ocserv

HOLD_SCRIPT = "exec sleep 3600 </dev/null >/dev/null 2>&1"
DTLS_UP = "Established DTLS connection"
TARGET = 10.0

#: every child process still running, killed on the way out (also on Ctrl-C); True for
#: one that leads its own session (openconnect: its hold script runs in that session, in
#: a process group of its own)
LIVE: dict[int, tuple[subprocess.Popen[Any], bool]] = {}


def reap(proc: subprocess.Popen[Any], block: bool) -> tuple[int, float] | None:
    """``(exit code, CPU seconds)`` of ``proc`` once it exited (None if still running)."""
    pid, status, ru = os.wait4(proc.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not
    LIVE.pop(proc.pid, None)
    return proc.returncode, ru.ru_utime + ru.ru_stime


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (one we started with start_new_session)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def kill_live() -> None:
    """Kill every child still running (openconnect with its hold script: the session)."""
    for proc, session in list(LIVE.values()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.kill()
        if session:
            kill_session(proc.pid)
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        LIVE.pop(proc.pid, None)


def wait_no_users(server: OcservInstance, timeout: float) -> int:
    """Sessions ocserv still lists after up to ``timeout`` s (0: all disconnects arrived)."""
    deadline = time.monotonic() + timeout
    while (users := len(server.show_users())) and time.monotonic() < deadline:
        time.sleep(0.2)
    return users


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({argv[0]}: {e})"
    return next((ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()), "")


# ------------------------------------------------------------------ tunnelswarm
@dataclass
class TsRun:
    sessions: int
    cpu: float
    wall: float
    exit_code: int
    completed: int
    dtls: int
    errors: int
    aborted: int
    setup_p99: float | None
    why: str


def tunnelswarm_run(
    server: OcservInstance, sessions: int, rate: str, hold: float, tmp: Path
) -> TsRun:
    """One ``tunnelswarm run`` load process against ``server``; its CPU and outcome."""
    out, err = tmp / f"ts-{sessions}.jsonl", tmp / f"ts-{sessions}.err"
    per_s = float(rate.removesuffix("/s"))
    cmd = [sys.executable, "-m", "tunnelswarm", "run", "--open", rate]
    cmd += ["--duration", f"{sessions / per_s:g}s", "--lifetime", f"{hold:g}s"]
    cmd += ["--headend", server.url, "--servercert", server.pin]
    cmd += ["--user", server.user, "--password", server.password, "--workers", "1"]
    cmd += ["--no-preflight", "-q", "--json-lines"]
    t0 = time.monotonic()
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
    LIVE[proc.pid] = (proc, False)
    done = reap(proc, block=True)
    assert done is not None
    code, cpu = done
    wall = time.monotonic() - t0
    lines = [ln for ln in out.read_text().splitlines() if ln.strip()]
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    metrics: dict[str, Any] = summary.get("metrics") or {}
    completed = int(metrics.get("setups_completed") or 0)
    dtls = int(metrics.get("dtls_established") or 0)
    errors = int(metrics.get("errors") or 0)
    aborted = int(metrics.get("setups_aborted") or 0)
    p99 = metrics.get("setup_p99")
    started = int(metrics.get("sessions_started") or 0)
    why = ""
    if summary.get("type") != "summary":
        why = "no summary: " + " | ".join(err.read_text().strip().splitlines()[-3:])
    elif code != 0 or completed != sessions or dtls != sessions or errors:
        why = f"exit {code}, {started} set-ups started for {sessions} slots (failed ones retry)"
        if examples := summary.get("error_examples"):
            why += f", errors: {json.dumps(examples)[:300]}"
    return TsRun(sessions, cpu, wall, code, completed, dtls, errors, aborted, p99, why)


# ------------------------------------------------------------------ openconnect
@dataclass
class FloorRun:
    sessions: int
    cpu: float
    up: int
    dtls: int
    failed: int
    why: str


def floor_run(server: OcservInstance, sessions: int, rate: str, hold: float, tmp: Path) -> FloorRun:
    """``setup_floor.py`` (the same wire exchange on a bare Trio loop): CPU and outcome."""
    per_s = float(rate.removesuffix("/s"))
    err = tmp / f"floor-{sessions}.err"
    cmd = [sys.executable, str(Path(__file__).with_name("setup_floor.py")), server.url]
    cmd += [server.pin, server.user, server.password, str(sessions), f"{per_s:g}", f"{hold:g}"]
    with err.open("w") as fe:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=fe, text=True
        )
    LIVE[proc.pid] = (proc, False)
    assert proc.stdout is not None
    out = proc.stdout.read()
    done = reap(proc, block=True)
    assert done is not None
    code, cpu = done
    lines = [ln for ln in out.splitlines() if ln.strip()]
    counts: dict[str, int] = json.loads(lines[-1]) if lines and code == 0 else {}
    why = "" if counts else f"exit {code}: {err.read_text(errors='replace').strip()[-300:]}"
    if counts.get("failed"):
        why = f"{counts['failed']} failed: {err.read_text(errors='replace').strip()[-300:]}"
    return FloorRun(
        sessions, cpu, counts.get("up", 0), counts.get("dtls", 0), counts.get("failed", 0), why
    )


@dataclass
class OcRun:
    proc: subprocess.Popen[str]
    log: Path
    started: float
    up_at: float | None = None
    stop_at: float | None = None
    cpu: float | None = None
    failure: str = ""


def openconnect_start(oc: str, server: OcservInstance, log: Path) -> OcRun:
    cmd = [oc, "--protocol=anyconnect", "--servercert", server.pin, "-u", server.user]
    cmd += ["--passwd-on-stdin", "--non-inter", "--script-tun", "--script", HOLD_SCRIPT]
    cmd += [server.url]
    with log.open("w") as f:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=f,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own session: the hold script can be found
        )
    LIVE[proc.pid] = (proc, True)
    assert proc.stdin is not None
    proc.stdin.write(server.password + "\n")
    proc.stdin.close()
    return OcRun(proc, log, time.monotonic())


def openconnect_step(r: OcRun, hold: float, now: float) -> bool:
    """Advance one openconnect through up → hold → SIGTERM → reaped; True when done."""
    if r.stop_at is None:
        if r.up_at is None and DTLS_UP in r.log.read_text(errors="replace"):
            r.up_at = now
        if r.up_at is not None and now - r.up_at >= hold:
            r.stop_at = now
        elif r.up_at is None and now - r.started > 30:
            r.failure, r.stop_at = "no DTLS within 30 s", now
        if r.stop_at is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.proc.pid, signal.SIGTERM)  # a BYE to ocserv, then exit
    done = reap(r.proc, block=False)
    if done is None:
        if r.stop_at is not None and now - r.stop_at > 10:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.proc.pid, signal.SIGKILL)
            r.failure = r.failure or "did not exit 10 s after SIGTERM"
        return False
    code, r.cpu = done
    if r.stop_at is None and not r.failure:
        r.failure = f"exited by itself (exit {code}) " + ("after DTLS" if r.up_at else "")
    kill_session(r.proc.pid)  # the hold script, if still there
    return True


def openconnect_runs(
    server: OcservInstance, count: int, parallel: int, hold: float, tmp: Path
) -> list[OcRun]:
    oc = shutil.which("openconnect")
    assert oc is not None
    running: list[OcRun] = []
    finished: list[OcRun] = []
    started = 0
    while len(finished) < count:
        while started < count and len(running) < parallel:
            running.append(openconnect_start(oc, server, tmp / f"oc-{started}.log"))
            started += 1
        time.sleep(0.05)
        now = time.monotonic()
        for r in list(running):
            if openconnect_step(r, hold, now):
                running.remove(r)
                finished.append(r)
    return finished


# ------------------------------------------------------------------ the run
def pool_for(clients: int) -> str:
    """An address pool with room for ``clients`` (ocserv takes one address per session)."""
    bits = max(8, (clients + 16).bit_length())
    return f"10.96.0.0/{32 - bits}"


def run(args: argparse.Namespace) -> int:
    reason = peers_available()
    if reason is None and shutil.which("openconnect") is None:
        reason = "openconnect is not installed"
    if reason is not None:
        print(f"setup cost: not measured ({reason})")
        return 0
    raise_nofile()
    ocserv_version = first_line(["ocserv", "--version"])
    oc_version = first_line(["openconnect", "--version"])
    clients = max(args.sessions, args.parallel)
    config = OcservConfig(
        port=args.port,
        udp=True,
        user="bench",
        password="bench",
        pool=pool_for(clients),
        max_clients=clients + 16,
        debug=0,
    )
    tmp = Path(tempfile.mkdtemp(prefix="tunnelswarm-setup-cost-"))
    with start_ocserv(tmp / "ocserv", config) as server:
        print(f"{ocserv_version} at {server.url} (namespace {server.namespace})", flush=True)
        print(f"{oc_version}; client side: {sys.executable}", flush=True)
        n, rate, hold = args.sessions, args.rate, args.hold
        try:  # clients die before ocserv does, also on Ctrl-C
            base1 = tunnelswarm_run(server, 1, rate, hold, tmp)
            big = tunnelswarm_run(server, n, rate, hold, tmp)
            base2 = tunnelswarm_run(server, 1, rate, hold, tmp)
            wait_no_users(server, 5.0)
            floor1 = floor_run(server, 1, rate, hold, tmp)
            wait_no_users(server, 5.0)
            floor_big = floor_run(server, n, rate, hold, tmp)
            wait_no_users(server, 5.0)
            ocs = openconnect_runs(server, args.openconnect, args.parallel, hold, tmp)
            still = wait_no_users(server, 5.0)
        finally:
            kill_live()
    base = (base1.cpu + base2.cpu) / 2
    print()
    print(
        f"tunnelswarm: one process, {n} sessions arriving at {rate}, each held {hold:g} s "
        "(--lifetime), then disconnected"
    )
    for r in (base1, big, base2):
        ok = r.completed == r.sessions and r.dtls == r.sessions and not r.why
        print(
            f"  {r.sessions:>5} sessions  CPU {r.cpu:7.3f} s  wall {r.wall:5.1f} s  set-ups "
            f"{r.completed}/{r.sessions}, DTLS {r.dtls}, errors {r.errors}, aborted {r.aborted}"
            + ("" if r.setup_p99 is None else f", setup p99 {r.setup_p99 * 1000:.0f} ms")
            + ("" if ok else f"  FAILURES: {r.why}")
        )
    print(
        f"Trio floor (setup_floor.py): the same wire exchange, {n} sessions at {rate}, "
        "no engine or session logic"
    )
    for f in (floor1, floor_big):
        print(
            f"  {f.sessions:>5} sessions  CPU {f.cpu:7.3f} s  up {f.up}/{f.sessions}, DTLS {f.dtls}"
            + (f"  FAILURES: {f.why}" if f.why else "")
        )
    good = [r for r in ocs if not r.failure and r.cpu is not None]
    cpus = sorted(r.cpu for r in good if r.cpu is not None)
    print(
        f"openconnect: {len(ocs)} processes, {args.parallel} at a time, each up with DTLS, "
        f"held {hold:g} s, SIGTERM (BYE), reaped"
    )
    print(f"  {len(good)}/{len(ocs)} reached DTLS and exited cleanly")
    for o in ocs:
        if o.failure:
            tail = o.log.read_text(errors="replace").strip().splitlines()[-2:]
            print(f"  FAILED pid {o.proc.pid}: {o.failure}: {' | '.join(tail)}")
    if still:
        print(f"  ocserv still lists {still} sessions 5 s after the end (disconnects lost?)")
    if not cpus or big.dtls < 2:
        print("setup cost: not enough successful sessions to compare")
        return 0
    oc_ms = sum(cpus) / len(cpus) * 1000
    up = big.dtls  # established = DTLS up; failed set-ups' CPU is charged to them
    marginal_ms = (big.cpu - base) / (up - 1) * 1000
    total_ms = big.cpu / up * 1000
    print()
    print("| client CPU per established session | ms | what it includes |")
    print("| --- | --- | --- |")
    print(
        f"| tunnelswarm, marginal | {marginal_ms:.2f} | (cpu({n}) - cpu(1)) / {up - 1}: "
        f"login, CONNECT, DTLS, hold, disconnect |"
    )
    print(
        f"| tunnelswarm, total | {total_ms:.2f} | cpu({n}) / {up}: the above plus the "
        f"process's start and imports ({base * 1000:.0f} ms with one session) |"
    )
    print(
        f"| openconnect, one process | {oc_ms:.2f} | mean of {len(cpus)} (min "
        f"{cpus[0] * 1000:.1f}, median {cpus[len(cpus) // 2] * 1000:.1f}, max "
        f"{cpus[-1] * 1000:.1f}): exec, library start-up, the same session |"
    )
    floor_ms = None
    if floor_big.dtls >= 2 and not floor_big.why:
        floor_ms = (floor_big.cpu - floor1.cpu) / (floor_big.dtls - 1) * 1000
        print(
            f"| Trio floor, marginal | {floor_ms:.2f} | the same exchange with no tunnelswarm "
            "logic: the least a Python-driven client spends on this machine |"
        )
    ratio_m, ratio_t = oc_ms / marginal_ms, oc_ms / total_ms
    print()
    print(f"ratio openconnect / tunnelswarm: {ratio_m:.1f}x (marginal), {ratio_t:.1f}x (total)")
    if floor_ms is not None:
        best = oc_ms / floor_ms
        print(f"ratio openconnect / Trio floor: {best:.1f}x (the most a Python-driven client gets)")
    failed = big.why or len(good) < len(ocs)
    if failed or still:
        print(f"(clients' and ocserv's logs: {tmp})")
    print(
        f"target (tunnelswarm >= {TARGET:g}x less client CPU per session, marginal): "
        f"{'met' if ratio_m >= TARGET else 'NOT met'}"
        + (" (this run had failures, see above)" if failed else "")
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=500, help="tunnelswarm sessions")
    ap.add_argument("--rate", default="25/s", help="session arrival rate (tunnelswarm, floor)")
    ap.add_argument("--openconnect", type=int, default=30, help="openconnect processes")
    ap.add_argument("--parallel", type=int, default=5, help="openconnect processes at a time")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds each session holds")
    ap.add_argument("--port", type=int, default=4443, help="ocserv's port in its namespace")
    args = ap.parse_args()
    if args.sessions < 2 or args.openconnect < 1 or args.parallel < 1:
        ap.error("need --sessions >= 2, --openconnect >= 1 and --parallel >= 1")
    try:
        return run(args)
    except KeyboardInterrupt:  # clients and ocserv are gone by now (finally, with)
        print("setup cost: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
