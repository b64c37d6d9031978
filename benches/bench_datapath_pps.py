"""Data path: inner packets per second through tunnels, tunnelswarm beside openconnect.

What it measures (issue 6, item 8, the "data path" benchmark): UDP echo round trips of
``--payload`` bytes (default 100: 128-byte IPv4 packets) through the tunnel, with a
bounded window of requests in flight per tunnel (``--window``, default 32, for one
tunnel; ``--session-window``, default 4, per session in the aggregate runs), so that the
figure is throughput, not loss: a reply frees one slot, and only then is the next request
sent. A window that sees no reply for 500 ms is declared lost and refilled (counted in
``lost``). Replies are counted for ``--seconds`` after a ``--warmup``; printed as echo
replies per second (each is one inner packet up and one down, so the tunnel carries twice
as many packets).

* **tunnelswarm ↔ mock ASA**: a ``tunnelswarm mock-asa`` process pinned to CPU 0 (the
  configuration of ``bench_mock_asa_capacity.py``), its inside network answering UDP echo
  at 10.1.1.1 inside the mock process; one client process pinned to CPU 1 (the library's
  ``open_client`` and ``VirtualAdapter`` with a ``Prober`` tap, no tun): one tunnel over
  DTLS, one over CSTP only (``no_dtls``), then ``--small`` (20) sessions and ``--sessions``
  (1,000) sessions at once, all in one process.
* **openconnect ↔ ocserv**: Debian's ocserv in its own network namespace
  (:mod:`tunnelswarm.testing.ocserv`), its processes and a UDP echo server (this file,
  ``--udp-echo``, inside ocserv's namespace on the tunnel's gateway address) on CPU 0;
  Debian's openconnect with real tun devices in a second namespace made here (a veth
  pair straight into ocserv's namespace; the tunnel addresses, tun devices and routes
  exist only there), and a sender (this file, ``--oc-sender``) in that namespace on CPU
  1 sending through the tun devices with the same packets and windows. One tunnel over
  DTLS and over CSTP (``--no-dtls``), then ``--oc-procs`` (20) openconnect processes: one
  process per user costs ~14 MB and a core's share each, so 1,000 are out of reach on a
  2-core box; their per-process figure is printed beside tunnelswarm's per session.

Also printed: the CPU time each side spent (headend and client), so pps per CPU-second
can be compared when one side is not saturated. ``--profile`` runs the one-tunnel DTLS
client under cProfile and prints where its time goes. It asserts nothing (a benchmark).
Needs root, ``ocserv`` and ``openconnect`` for the second half; without them that half
says why and is skipped.

Run: ``.venv/bin/python benches/bench_datapath_pps.py [--seconds 5] [--sessions 1000]``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import cProfile
import json
import os
import pstats
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio
from bench_mock_asa_capacity import cpu_seconds, raise_nofile, start_mock

from tunnelswarm._core import Prober
from tunnelswarm.client.session import ClientOptions, ClientSession, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.drive.stream import now_us
from tunnelswarm.errors import TunnelswarmError
from tunnelswarm.testing.ocserv import OcservConfig, peers_available, start_ocserv

#: the mock's inside host that answers UDP echo (the ``inside`` interface's network)
MOCK_ECHO = "10.1.1.1"
ECHO_PORT = 7
#: a window without any reply for this long is declared lost and refilled
LULL = 0.5
OC_NS_PREFIX = "tsdpc"
OC_POOL = "192.168.99.0/24"
OC_GATEWAY = "192.168.99.1"

_cleanups: list[Callable[[], None]] = []


def _cleanup() -> None:
    while _cleanups:
        with contextlib.suppress(Exception):
            _cleanups.pop()()


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


# ================================================================== results
@dataclass
class Result:
    """One measurement: echo replies in ``elapsed`` seconds, plus CPU seconds per side."""

    replies: int = 0
    sent: int = 0
    lost: int = 0
    elapsed: float = 0.0
    tunnels: int = 0
    client_cpu: float = 0.0
    headend_cpu: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pps(self) -> float:
        return self.replies / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def client_us(self) -> float:
        return self.client_cpu / self.replies * 1e6 if self.replies else 0.0

    @property
    def headend_us(self) -> float:
        return self.headend_cpu / self.replies * 1e6 if self.replies else 0.0


# ================================================================== tunnelswarm client
class EchoWorker:
    """One client process: ``spec['sessions']`` tunnels to the mock, each pumping a window
    of UDP echo requests through its ``VirtualAdapter`` with a ``Prober`` tap."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.n, self.window = int(spec["sessions"]), int(spec["window"])
        self.stats = {"up": 0, "dtls": 0, "replies": 0, "sent": 0, "lost": 0}
        self.errors: dict[str, int] = {}
        self.ciphers: set[str] = set()
        self.ready, self.go = trio.Event(), trio.Event()
        self.pending = self.n
        self.start = self.end = 0.0
        self.profiler = cProfile.Profile() if spec.get("profile") else None

    def settled(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.ready.set()

    async def pump(self, s: ClientSession) -> None:
        """Keep ``window`` echo requests in flight until the end of the measuring window."""
        assert s.adapter.address is not None
        prober = Prober(
            s.adapter.address,
            MOCK_ECHO,
            kind="udp",
            dst_port=ECHO_PORT,
            payload_len=int(self.spec["payload"]),
            dont_fragment=False,
        )
        replies = s.adapter.attach(prober)
        stats, outstanding = self.stats, 0

        async def fill() -> None:
            nonlocal outstanding
            while outstanding < self.window:
                _seq, pkt = prober.build(now_us())
                outstanding += 1
                stats["sent"] += 1
                await s.adapter.send(pkt)

        try:
            await fill()
            while (t := trio.current_time()) < self.end:
                with trio.move_on_after(LULL) as cs:
                    batch = [await replies.receive()]
                if cs.cancelled_caught:  # the whole window is gone: count it, refill
                    lost = len(prober.expire(now_us(), int(LULL * 1e6)))
                    stats["lost"] += lost
                    outstanding -= lost
                    await fill()
                    continue
                with contextlib.suppress(trio.WouldBlock):
                    while True:
                        batch.append(replies.receive_nowait())
                got = sum(1 for r in batch if r.kind == "reply")
                outstanding -= got
                if t >= self.start:
                    stats["replies"] += got
                await fill()
        finally:
            s.adapter.detach(prober)

    async def one(self, i: int, gate: trio.Semaphore) -> None:
        spec = self.spec
        opts = ClientOptions(
            url=spec["url"],
            user="bench",
            password="bench",
            servercert=(spec["pin"],),
            profile=OPENCONNECT_9_01,
            hostname=f"pps-{i}",
            seed=i,
            no_dtls=bool(spec["no_dtls"]),
            reconnect_timeout=30,
        )
        released = False
        await gate.acquire()  # bounds the set-ups in flight
        try:
            async with open_client(opts) as s:
                with trio.move_on_after(30):
                    while s.dtls is not None and not s.dtls.up:
                        await trio.sleep(0.05)
                self.stats["up"] += 1
                if s.dtls is not None and s.dtls.up:
                    self.stats["dtls"] += 1
                    self.ciphers.add(f"{s.dtls.plan.mode} {s.dtls.plan.cipher}")
                gate.release()
                released = True
                self.settled()
                await self.go.wait()
                await self.pump(s)
        except TunnelswarmError as e:
            self.errors[e.cause] = self.errors.get(e.cause, 0) + 1
        finally:
            if not released:
                gate.release()
                self.settled()

    async def main(self) -> None:
        gate = trio.Semaphore(int(self.spec["concurrency"]))
        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i in range(self.n):
                nursery.start_soon(self.one, int(self.spec["base"]) + i, gate)
            await self.ready.wait()
            setup = time.monotonic() - t0
            self.start = trio.current_time() + float(self.spec["warmup"])
            self.end = self.start + float(self.spec["seconds"])
            self.go.set()
            await trio.sleep_until(self.start)
            print("start", flush=True)  # the parent samples the headend's CPU time
            if self.profiler is not None:
                self.profiler.enable()
            c0, w0 = time.process_time(), time.monotonic()
            await trio.sleep_until(self.end)
            cpu, wall = time.process_time() - c0, time.monotonic() - w0
            if self.profiler is not None:
                self.profiler.disable()
            print("end", flush=True)
        out = dict(self.stats, errors=self.errors, ciphers=sorted(self.ciphers), setup_s=setup)
        print(json.dumps(dict(out, elapsed=wall, client_cpu=cpu)), flush=True)
        if self.profiler is not None:
            st = pstats.Stats(self.profiler, stream=sys.stderr)
            st.sort_stats("tottime").print_stats(25)


def run_marked(
    cmd: list[str], cpus: set[int], sample: Callable[[], list[float]], quiet: bool = True
) -> tuple[list[float], list[str]]:
    """Run a measuring process pinned to ``cpus``: the change of ``sample()`` (CPU
    seconds of the other processes) between its ``start`` and ``end`` lines, and the
    rest of its stdout lines."""
    err = tempfile.TemporaryFile("w+") if quiet else None  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    _cleanups.append(proc.kill)
    assert proc.stdout is not None
    lines: list[str] = []
    first: list[float] = []
    used: list[float] = []
    for line in proc.stdout:
        if line.strip() == "start":
            first = sample()
        elif line.strip() == "end":
            used = [b - a for a, b in zip(first, sample(), strict=True)]
        else:
            lines.append(line.strip())
    if proc.wait(timeout=600) and err is not None:  # failed: keep its last words
        err.seek(0)
        lines.append("error: " + " | ".join(err.read().strip().splitlines()[-3:]))
    if err is not None:
        err.close()
    return used or [0.0] * len(sample()), lines


def ts_measure(url: str, pin: str, mock_pid: int, cpus: set[int], spec: dict[str, Any]) -> Result:
    """Run one :func:`ts_worker` in a client process pinned to ``cpus``."""
    spec = dict(spec, url=url, pin=pin, base=spec.get("base", 0))
    cmd = [sys.executable, __file__, "--ts-worker", json.dumps(spec)]
    used, lines = run_marked(
        cmd, cpus, lambda: [cpu_seconds(mock_pid)], quiet=not spec.get("profile")
    )
    if not lines or not lines[-1].startswith("{"):
        return Result(note="client process failed: " + (lines[-1][:300] if lines else "?"))
    headend_cpu = used[0]
    r = json.loads(lines[-1])
    return Result(
        replies=r["replies"],
        sent=r["sent"],
        lost=r["lost"],
        elapsed=r["elapsed"],
        tunnels=r["up"],
        client_cpu=r["client_cpu"],
        headend_cpu=headend_cpu,
        note=(
            f"{r['up']} up ({r['dtls']} DTLS {', '.join(r['ciphers']) or '-'}), set-up "
            f"{r['setup_s']:.1f} s" + (f", errors {r['errors']}" if r["errors"] else "")
        ),
    )


# ================================================================== openconnect side
def udp_echo(port: int) -> None:
    """A UDP echo server (runs inside ocserv's namespace)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", port))
    recvfrom, sendto = s.recvfrom, s.sendto
    while True:
        data, addr = recvfrom(4096)
        sendto(data, addr)


def oc_sender(spec: dict[str, Any]) -> None:
    """Echo windows through tun devices (runs inside the client namespace); one JSON line."""
    payload = bytes(int(spec["payload"]))
    window = int(spec["window"])
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    state: dict[int, list[float]] = {}  # fd -> [outstanding, last reply time]
    for dev, addr in spec["tunnels"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
        s.bind((addr, 0))
        s.connect((spec["target"], ECHO_PORT))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    socks_by_fd = {s.fileno(): s for s in socks}
    replies = sent = lost = 0
    now = time.monotonic()
    start = now + float(spec["warmup"])
    end = start + float(spec["seconds"])

    def fill(s: socket.socket, st: list[float]) -> int:
        n = 0
        while st[0] < window:
            try:
                s.send(payload)
            except BlockingIOError:
                break
            st[0] += 1
            n += 1
        return n

    for s in socks:
        state[s.fileno()] = [0, now]
        sent += fill(s, state[s.fileno()])
    c0 = w0 = 0.0
    while (now := time.monotonic()) < end:
        if not w0 and now >= start:
            print("start", flush=True)  # the parent samples the other processes' CPU
            c0, w0 = time.process_time(), now
        for key, _ev in sel.select(LULL / 4):
            s = socks_by_fd[key.fd]
            st = state[s.fileno()]
            with contextlib.suppress(BlockingIOError):
                while True:
                    s.recv(4096)
                    st[0] -= 1
                    st[1] = now
                    replies += now >= start
            sent += fill(s, st)
        for s in socks:
            st = state[s.fileno()]
            if st[0] and now - st[1] > LULL:
                lost += int(st[0])
                st[0], st[1] = 0, now
                sent += fill(s, st)
    out: dict[str, float] = {"replies": replies, "sent": sent, "lost": lost}
    out |= {"elapsed": time.monotonic() - w0, "client_cpu": time.process_time() - c0}
    print("end", flush=True)
    print(json.dumps(out), flush=True)


def _ip(*args: str, check: bool = True) -> str:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def _netns_pids(ns: str) -> list[int]:
    return [int(t) for t in _ip("netns", "pids", ns, check=False).split() if t.isdigit()]


def _tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


TUN_SCRIPT = """#!/bin/sh
# openconnect's --script: configure the tun device inside the client namespace only
case "$reason" in
connect)
  ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1400}"
  ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
  n="${TUNDEV#dptun}"
  ip route add GATEWAY/32 dev "$TUNDEV" metric $((n + 1))
  ;;
esac
exit 0
"""


class OpenconnectSide:
    """ocserv in its namespace, a client namespace joined to it, openconnect processes."""

    def __init__(self, tmp: Path, headend_cpus: set[int], client_cpus: set[int]) -> None:
        self.tmp, self.headend_cpus, self.client_cpus = tmp, headend_cpus, client_cpus
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server = start_ocserv(
            tmp / "ocserv",
            OcservConfig(port=4443, udp=True, pool=OC_POOL, max_clients=128, debug=0),
        )
        _cleanups.append(self.server.stop)
        for pid in _netns_pids(self.server.namespace):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, headend_cpus)
        self.ns = f"{OC_NS_PREFIX}-{os.getpid()}"
        _ip("netns", "add", self.ns)
        _cleanups.append(self._remove_ns)
        third = os.getpid() % 256
        mine, theirs = f"10.214.{third}.1", f"10.214.{third}.2"
        vc, vs = f"dp{os.getpid():x}c", f"dp{os.getpid():x}s"
        _ip("link", "add", vc, "netns", self.ns, "type", "veth", "peer", "name", vs)
        _ip("link", "set", vs, "netns", self.server.namespace)
        _ip("-n", self.ns, "addr", "add", f"{mine}/30", "dev", vc)
        _ip("-n", self.server.namespace, "addr", "add", f"{theirs}/30", "dev", vs)
        for ns, dev in ((self.ns, vc), (self.server.namespace, vs), (self.ns, "lo")):
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", self.ns, "route", "add", f"{self.server.host}/32", "via", theirs)
        for key in ("all", "default"):
            self._ns_exec("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
        self.script = tmp / "tun-script.sh"
        self.script.write_text(TUN_SCRIPT.replace("GATEWAY", OC_GATEWAY))
        self.script.chmod(0o755)
        echo = [*self._in(self.server.namespace), sys.executable, __file__, "--udp-echo"]
        self._spawn(echo, headend_cpus, tmp / "echo.log")

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _in(ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def _ns_exec(self, *argv: str) -> None:
        subprocess.run([*self._in(self.ns), *argv], check=True, timeout=30)

    def _spawn(
        self, argv: list[str], cpus: set[int], log: Path, stdin: bytes | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as f:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: os.sched_setaffinity(0, cpus),
            )
        if stdin is not None and p.stdin is not None:
            p.stdin.write(stdin)
            p.stdin.close()
        self.procs.append(p)
        return p

    def _remove_ns(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        for pid in _netns_pids(self.ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", self.ns, check=False)

    # ------------------------------------------------------------------ clients
    def connect(self, count: int, no_dtls: bool) -> tuple[list[tuple[str, str]], list[int], str]:
        """Start ``count`` openconnect processes; their (tun, address), pids, cipher."""
        oc = shutil.which("openconnect")
        assert oc is not None
        started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        for k in range(count):
            dev = f"dptun{k}"
            cmd = [*self._in(self.ns), oc, "--protocol=anyconnect", "--servercert"]
            cmd += [self.server.pin, "-u", self.server.user, "--passwd-on-stdin", "--non-inter"]
            cmd += ["--script", str(self.script), "-i", dev, "-v"]
            cmd += ["--no-dtls"] if no_dtls else []
            log = self.tmp / f"oc-{k}.log"
            p = self._spawn([*cmd, self.server.url], self.client_cpus, log, b"test\n")
            started.append((p, dev, log))
        tunnels, pids, cipher = [], [], ""
        deadline = time.monotonic() + 60
        for p, dev, log in started:
            # "Configured as" comes once the tun is set up, after DTLS when it is used
            want = "Configured as" if no_dtls else "with SSL connected and DTLS connected"
            while want not in (text := log.read_text(errors="replace")) or not (
                a := re.search(r"inet (\S+)/", _ip("-n", self.ns, "addr", "show", dev, check=False))
            ):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"openconnect {dev} did not come up:\n{text[-2000:]}")
                time.sleep(0.1)
            m = re.search(r"Established DTLS connection.*?Ciphersuite ([^\n]+?)\.?\n", text)
            cipher = cipher or (m.group(1).strip() if m else "CSTP (TLS)")
            tunnels.append((dev, a.group(1)))
            pids.append(p.pid)
        return tunnels, pids, cipher

    def disconnect(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGINT)  # openconnect logs off on SIGINT
        keep = []
        for p in self.procs:
            if p.pid in pids:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=5)
            else:
                keep.append(p)
        self.procs = keep
        time.sleep(0.5)

    def measure(self, count: int, no_dtls: bool, spec: dict[str, Any]) -> Result:
        tunnels, pids, cipher = self.connect(count, no_dtls)
        try:
            time.sleep(0.5)
            cmd = [*self._in(self.ns), sys.executable, __file__, "--oc-sender"]
            cmd.append(json.dumps(dict(spec, tunnels=tunnels, target=OC_GATEWAY)))

            def sample() -> list[float]:
                return [_tree_cpu(_netns_pids(self.server.namespace)), _tree_cpu(pids)]

            (server_cpu, oc_cpu), lines = run_marked(cmd, self.client_cpus, sample)
            r = json.loads(lines[-1])
            links = json.loads(_ip("-n", self.ns, "-s", "-j", "link", "show") or "[]")
            tun_tx = sum(
                ln.get("stats64", {}).get("tx", {}).get("packets", 0)
                for ln in links
                if str(ln.get("ifname", "")).startswith("dptun")
            )
            return Result(
                replies=r["replies"],
                sent=r["sent"],
                lost=r["lost"],
                elapsed=r["elapsed"],
                tunnels=len(tunnels),
                client_cpu=r["client_cpu"] + oc_cpu,
                headend_cpu=server_cpu,
                note=f"{len(tunnels)} openconnect, {cipher}, {tun_tx} packets into the tun",
                extra={"sender_cpu": r["client_cpu"]},
            )
        finally:
            self.disconnect(pids)


# ================================================================== the run
def oc_unavailable() -> str | None:
    """Why the openconnect ↔ ocserv half cannot run here, or None."""
    if shutil.which("openconnect") is None:
        return "openconnect is not installed"
    return peers_available()


def show(side: str, label: str, r: Result) -> None:
    if not r.elapsed:
        print(f"  {side:<12} {label:<24} not measured: {r.note}", flush=True)
        return
    print(
        f"  {side:<12} {label:<24} {r.pps:9,.0f} replies/s  {r.pps / max(r.tunnels, 1):9,.1f}"
        f"/tunnel  lost {r.lost:<5} CPU µs per reply: client {r.client_us:5.1f}, headend "
        f"{r.headend_us:5.1f}   [{r.note}]",
        flush=True,
    )


def ratio(a: Result | None, b: Result | None) -> str:
    return f"{a.pps / b.pps:.2f}" if a and b and a.pps and b.pps else "-"


class Sides:
    """Both headends up for the whole run, so each line measures the two back to back."""

    def __init__(self, args: argparse.Namespace, cpus: list[int]) -> None:
        self.args = args
        headend, client = {cpus[0]}, set(cpus[1:]) or {cpus[0]}
        self.client_cpus = client
        tmp = Path(tempfile.mkdtemp(prefix="tunnelswarm-pps-"))
        self.mock, self.url, self.pin, _admin = start_mock(tmp, headend)
        mock = self.mock
        _cleanups.append(mock.kill)
        print(
            f"tunnelswarm: mock ASA pid {mock.pid} on CPU {sorted(headend)}, client on "
            f"CPU {sorted(client)}",
            flush=True,
        )
        self.oc: OpenconnectSide | None = None
        why = "--skip-openconnect" if args.skip_openconnect else oc_unavailable()
        if why is None:
            self.oc = OpenconnectSide(tmp, headend, client)
            print(
                f"openconnect ↔ ocserv: ocserv and the echo server in {self.oc.server.namespace}"
                f" (CPU {sorted(headend)}), openconnect and the sender in {self.oc.ns} "
                f"(CPU {sorted(client)})",
                flush=True,
            )
        else:
            print(f"openconnect ↔ ocserv: not measured ({why})", flush=True)
        self.runs = 0

    def tunnelswarm(self, sessions: int, window: int, no_dtls: bool) -> Result:
        a = self.args
        spec = {"payload": a.payload, "seconds": a.seconds, "warmup": a.warmup}
        spec |= {"concurrency": 64, "no_dtls": no_dtls, "sessions": sessions, "window": window}
        self.runs += 1
        spec["base"] = self.runs * 10_000  # fresh hostnames and seeds every time
        return ts_measure(self.url, self.pin, self.mock.pid, self.client_cpus, spec)

    def openconnect(self, procs: int, window: int, no_dtls: bool) -> Result:
        if self.oc is None:
            return Result(note="openconnect side not available")
        a = self.args
        spec = {"payload": a.payload, "seconds": a.seconds, "warmup": a.warmup, "window": window}
        try:
            return self.oc.measure(procs, no_dtls, spec)
        except (RuntimeError, ValueError, IndexError) as e:
            return Result(note=str(e).splitlines()[0] if str(e) else type(e).__name__)

    def profile(self) -> None:
        """cProfile the client over the measuring window: one tunnel (DTLS, CSTP), many."""
        a = self.args
        for label, n, window, no_dtls in (
            ("one tunnel, DTLS", 1, a.window, False),
            ("one tunnel, CSTP only", 1, a.window, True),
            (f"{a.sessions} tunnels, DTLS", a.sessions, a.many_window, False),
        ):
            spec = {"payload": a.payload, "seconds": a.seconds, "warmup": a.warmup}
            spec |= {"concurrency": 64, "no_dtls": no_dtls, "sessions": n, "window": window}
            self.runs += 1
            spec |= {"profile": True, "base": self.runs * 10_000}
            print(f"\ncProfile of the client, {label} (tottime, top 25):", flush=True)
            r = ts_measure(self.url, self.pin, self.mock.pid, self.client_cpus, spec)
            show("tunnelswarm", f"{label} (cProfile)", r)


def best(results: list[Result]) -> Result:
    return max(results, key=lambda r: r.pps)


def run(args: argparse.Namespace, cpus: list[int]) -> None:
    sides = Sides(args, cpus)
    lines = [
        ("one tunnel, DTLS", 1, 1, args.window, False),
        ("one tunnel, CSTP only", 1, 1, args.window, True),
        (f"{args.small} tunnels, DTLS", args.small, args.oc_procs, args.session_window, False),
    ]
    ts: dict[str, list[Result]] = {}
    oc: dict[str, list[Result]] = {}
    for rnd in range(args.rounds):
        print(f"round {rnd + 1} of {args.rounds}:", flush=True)
        for label, n_ts, n_oc, window, no_dtls in lines:
            ts.setdefault(label, []).append(r := sides.tunnelswarm(n_ts, window, no_dtls))
            show("tunnelswarm", label, r)
            oc.setdefault(label, []).append(r := sides.openconnect(n_oc, window, no_dtls))
            show("openconnect", label.replace(f"{args.small} tunnels", f"{n_oc} processes"), r)
        many = f"{args.sessions} tunnels, DTLS"
        r = sides.tunnelswarm(args.sessions, args.many_window, False)
        ts.setdefault(many, []).append(r)
        show("tunnelswarm", many, r)
    if args.profile:
        sides.profile()
    summary(args, {k: best(v) for k, v in ts.items()}, {k: best(v) for k, v in oc.items()})


def summary(args: argparse.Namespace, ts: dict[str, Result], oc: dict[str, Result]) -> None:
    print(f"\nbest of {args.rounds} round(s), echo replies per second (CPU µs per reply):")
    print(
        "| line | tunnelswarm ↔ mock ASA | openconnect ↔ ocserv | ratio | "
        "client CPU µs/reply (ts / oc) | headend CPU µs/reply (mock / ocserv) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, t in ts.items():
        o = oc.get(label)
        o_pps = f"{o.pps:,.0f}" if o and o.pps else "-"
        if o and o.pps and o.tunnels > 1:
            o_pps += f" ({o.tunnels} processes; {o.pps / o.tunnels:,.0f} each)"
        t_pps = f"{t.pps:,.0f}" + (f" ({t.pps / t.tunnels:,.1f} each)" if t.tunnels > 1 else "")
        if o is None and oc.get(f"{args.small} tunnels, DTLS"):
            o = oc[f"{args.small} tunnels, DTLS"]  # the many-session line: vs the processes
            o_pps = f"({o.tunnels} processes above)"
        oc_us = (f"{o.client_us:.1f}", f"{o.headend_us:.1f}") if o and o.pps else ("-", "-")
        print(
            f"| {label} | {t_pps} | {o_pps} | {ratio(t, o)} | {t.client_us:.1f} / {oc_us[0]} "
            f"| {t.headend_us:.1f} / {oc_us[1]} |"
        )
    print(
        f"\n1,000 openconnect processes are not run: each user is a process with its own TLS "
        f"and DTLS state (~14 MB resident, bench_client_scale.py), a tun device and its own "
        f"share of the CPU; {args.oc_procs} processes stand for them."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="measuring window per test")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--payload", type=int, default=100, help="UDP payload bytes")
    ap.add_argument("--window", type=int, default=32, help="in flight, one-tunnel tests")
    ap.add_argument("--session-window", type=int, default=4, help="in flight per session")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--many-window", type=int, default=1, help="in flight per session, many")
    ap.add_argument("--small", type=int, default=20, help="tunnelswarm sessions, small run")
    ap.add_argument("--oc-procs", type=int, default=20, help="openconnect processes")
    ap.add_argument("--profile", action="store_true", help="cProfile the one-tunnel client")
    ap.add_argument("--skip-openconnect", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="measure every line this often")
    ap.add_argument("--ts-worker", help=argparse.SUPPRESS)
    ap.add_argument("--oc-sender", help=argparse.SUPPRESS)
    ap.add_argument("--udp-echo", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.udp_echo:
        udp_echo(ECHO_PORT)
        return 0
    if args.oc_sender:
        oc_sender(json.loads(args.oc_sender))
        return 0
    raise_nofile()
    if args.ts_worker:
        trio.run(EchoWorker(json.loads(args.ts_worker)).main)
        return 0
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    cpus = sorted(os.sched_getaffinity(0))
    print(
        f"data path: UDP echo, {args.payload}-byte payload ({args.payload + 28}-byte IPv4), "
        f"window {args.window} (one tunnel) / {args.session_window} per session, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per line",
        flush=True,
    )
    try:
        run(args, cpus)
    finally:
        _cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
