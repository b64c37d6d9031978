"""The real openconnect 9.01 client against :class:`FakeHeadend`'s DTLS server role.

The headend serves real TCP and UDP on one port of 127.0.0.1 (TLS and DTLS in the
Rust core's server roles). openconnect runs with ``--script-tun``: instead of a tun
device it hands IP packets to a tiny reflector (``$VPNFD``, an AF_UNIX datagram
socket) that answers ICMP echo requests with ``tunnelswarm._core.icmp_echo_reply``.
Per DTLS mode the test proves, from openconnect's log and the headend's records
(protocol.md §10.10):

* ``Established DTLS connection`` with the expected openconnect cipher text;
* openconnect's MTU probe (a DTLS DPD-REQ with a 1418-byte payload) reached the headend
  and was echoed, so the tunnel MTU stays 1418 (without the echo 9.01 drops to 576);
* ICMP echo requests the headend's inside host sends over DTLS come back over DTLS;
* SIGINT → openconnect sends DISCONNECT ``b0`` and exits.

Everything is bounded (openconnect gets 30 s), and openconnect plus the reflector (its
own process group) are killed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from _support import reap_process_group

from tunnelswarm.testing.headend import FakeHeadend, HeadendPing, HeadendScript

pytestmark = pytest.mark.interop

OPENCONNECT = shutil.which("openconnect")
STDBUF = shutil.which("stdbuf")
OC_TIMEOUT = 30.0  # seconds, whole openconnect run

REFLECTOR = """\
import os, socket, sys
from tunnelswarm._core import icmp_echo_reply

log = open(sys.argv[1], "a", buffering=1)
log.write(f"pid {os.getpid()} pgid {os.getpgrp()}\\n")
names = ("reason", "INTERNAL_IP4_ADDRESS", "INTERNAL_IP4_MTU")
log.write("env " + " ".join(f"{n}={os.environ.get(n, '')}" for n in names) + "\\n")
with socket.socket(fileno=int(os.environ["VPNFD"])) as sock:
    while True:
        try:
            packet = sock.recv(65536)
        except OSError:
            break
        if not packet:
            break
        reply = icmp_echo_reply(packet)
        log.write(f"rx {len(packet)} {'echo' if reply is not None else 'other'}\\n")
        if reply is not None:
            sock.send(reply)
log.write("eof\\n")
"""

# (id, openconnect cipher option, headend knobs, openconnect's cipher text)
MODES = [
    ("dtls09-aes128", "--dtls-ciphers=AES128-SHA", {}, "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)"),
    ("dtls09-aes256", "--dtls-ciphers=AES256-SHA", {}, "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)"),
    (
        "oc12-aes256gcm",
        "--dtls-ciphers=OC-DTLS1_2-AES256-GCM",
        {},
        "(DTLS1.2)-(RSA)-(AES-256-GCM)",
    ),
    (
        "dtls12-aes128gcm",
        "--dtls12-ciphers=AES128-GCM-SHA256",
        {},
        "(DTLS1.2)-(RSA)-(AES-128-GCM)",
    ),
    (
        "dtls09-aes128-hvr",
        "--dtls-ciphers=AES128-SHA",
        {"hello_verify": True},
        "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)",
    ),
]


@dataclass
class Run:
    """One openconnect run: its output and the reflector's log."""

    output: bytearray = field(default_factory=bytearray)
    eof: trio.Event = field(default_factory=trio.Event)
    returncode: int | None = None
    log_path: Path | None = None
    ping: HeadendPing | None = None

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def log(self) -> str:
        assert self.log_path is not None
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""


async def _read_all(stream: trio.abc.ReceiveStream, run: Run) -> None:
    try:
        while chunk := await stream.receive_some(65536):
            run.output += chunk
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass
    finally:
        run.eof.set()


async def _poll(predicate: Any, what: str, run: Run, timeout: float) -> None:
    """Wait (bounded) until ``predicate()``; fail with openconnect's output tail."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    tail = "\n".join(run.text.splitlines()[-40:])
    pytest.fail(f"timed out waiting for {what}; openconnect output tail:\n{tail}")


def _kill_group_of(pid: int, marker: str) -> None:
    """SIGKILL the process group of ``pid`` if ``pid`` still runs our ``marker`` script."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return
    if marker not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)


async def _run_openconnect(
    tmp_path: Path, hub: FakeHeadend, port: int, cipher_option: str, run: Run
) -> None:
    """Start openconnect, drive the checks, SIGINT it; always kill what is left."""
    assert OPENCONNECT is not None
    reflector = tmp_path / "reflect.py"
    reflector.write_text(REFLECTOR)
    run.log_path = tmp_path / "reflect.log"
    script = f"exec {sys.executable} {reflector} {run.log_path} </dev/null >/dev/null 2>&1"
    cmd = [
        OPENCONNECT,
        "--protocol=anyconnect",
        "--servercert",
        hub.pin,
        "-u",
        "test",
        "--passwd-on-stdin",
        "--non-inter",
        "--script-tun",
        "--script",
        script,
        "-vvv",
        "--dump-http-traffic",
        cipher_option,
        f"https://127.0.0.1:{port}/",
    ]
    if STDBUF is not None:  # openconnect block-buffers into a pipe
        cmd = [STDBUF, "-oL", "-eL", *cmd]
    proc = await trio.lowlevel.open_process(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # openconnect's own process group
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_all, proc.stdout, run)
            with trio.fail_after(OC_TIMEOUT):
                await proc.stdin.send_all(b"test\n")
                await proc.stdin.aclose()
                await _drive(hub, proc, run)
            with trio.move_on_after(2):  # let the last lines arrive
                await run.eof.wait()
            nursery.cancel_scope.cancel()
    finally:
        await reap_process_group(proc)
        with trio.CancelScope(shield=True):
            for line in run.log().splitlines():
                if line.startswith("pid "):
                    _kill_group_of(int(line.split()[1]), str(reflector))
            await proc.stdin.aclose()
            await proc.stdout.aclose()
            run.returncode = proc.returncode


async def _drive(hub: FakeHeadend, proc: trio.Process, run: Run) -> None:
    """DTLS up → tun script up → pings over DTLS → SIGINT → exit."""
    await _poll(
        lambda: "Established DTLS connection" in run.text or proc.returncode is not None,
        "Established DTLS connection",
        run,
        20,
    )
    assert proc.returncode is None, run.text[-3000:]
    await _poll(lambda: "env " in run.log(), "the --script-tun reflector", run, 10)
    # the headend's inside host pings the client's tunnel address over DTLS
    await _poll(
        lambda: hub.dtls is not None and hub.endpoint.is_established(hub.dtls.key),
        "the headend's side of the DTLS handshake",
        run,
        5,
    )
    run.ping = await hub.ping_client(count=3, interval=0.1, timeout=5.0, via="dtls")
    proc.send_signal(signal.SIGINT)
    await _poll(lambda: proc.returncode is not None, "openconnect to exit after SIGINT", run, 10)


@pytest.fixture
def need_openconnect() -> None:
    if OPENCONNECT is None:
        pytest.skip("openconnect is not installed")


@pytest.mark.parametrize(
    ("cipher_option", "knobs", "text"),
    [pytest.param(*m[1:], id=m[0]) for m in MODES],
)
async def test_openconnect_establishes_dtls_with_our_headend(
    need_openconnect: None,
    nursery: trio.Nursery,
    tmp_path: Path,
    cipher_option: str,
    knobs: dict[str, Any],
    text: str,
) -> None:
    # the §10.10 headend: ASA-style answer, X-CSTP-MTU 1347 + X-DTLS-MTU 1418, DPD 30 /
    # keepalive 20, X-DTLS-Port = the TLS port, DTLS DPD payloads echoed
    hub = FakeHeadend(HeadendScript(cstp_mtu=1347, dtls_mtu=1418, dpd=30, keepalive=20, **knobs))
    port = await hub.listen_tcp(nursery)
    run = Run()
    await _run_openconnect(tmp_path, hub, port, cipher_option, run)
    out = run.text

    # openconnect's view
    assert re.search(r"Established DTLS connection .*" + re.escape(text), out), out[-3000:]
    assert "Received MTU DPD probe (1418 bytes)" in out
    assert "No change in MTU after detection (was 1418)" in out
    assert "Detected MTU of 576" not in out
    env = next(line for line in run.log().splitlines() if line.startswith("env "))
    assert "INTERNAL_IP4_ADDRESS=10.10.10.21" in env
    assert "INTERNAL_IP4_MTU=1418" in env
    assert run.returncode is not None

    # the CONNECT it sent and what the headend answered (§3.2, §3.3.3)
    connect = hub.connects[0]
    option, _, offered = cipher_option.partition("=")
    header = "X-DTLS12-CipherSuite" if option == "--dtls12-ciphers" else "X-DTLS-CipherSuite"
    assert connect.header(header) == offered
    master = connect.header("X-DTLS-Master-Secret") or ""
    assert re.fullmatch(r"[0-9A-F]{96}", master)
    rec = hub.connections[0]
    assert rec.reply_header(header) == offered
    assert rec.reply_header("X-DTLS-Port") == str(port)
    session_id = rec.reply_header("X-DTLS-Session-ID") or ""
    assert re.fullmatch(r"[0-9A-F]{64}", session_id)

    # the headend's DTLS record
    d = hub.dtls
    assert d is not None
    assert d.text == text
    assert len(d.connected) == 1
    # openconnect's MTU probe: a DPD-REQ with a 1418-byte payload (§5.5, §10.10) right
    # after the handshake, echoed by the headend in a datagram of the same size
    assert [length for _, length in d.dpd_requests][:1] == [1418]
    first_app = [g for g in hub.datagrams if g.content_type == 23 and g.epoch == 1]
    probe, echo = first_app[:2]
    assert (probe.direction, probe.seq, echo.direction) == ("in", 1, "out")
    assert echo.size == probe.size
    assert d.final_stats is not None
    assert d.final_stats["dpd_responses_out"] >= 1
    # data both ways over DTLS: the inside host's echo requests came back over DTLS
    assert run.ping is not None
    assert (run.ping.sent_dtls, run.ping.not_sent) == (3, 0)
    assert (run.ping.received_dtls, run.ping.received_cstp) == (3, 0)
    assert d.data_in >= 3
    assert d.data_out >= 3
    assert hub.frames_of(0x00) == []  # no DATA over CSTP
    reflected = [line for line in run.log().splitlines() if line.endswith(" echo")]
    assert len(reflected) >= 3

    # SIGINT: DISCONNECT b0 over CSTP, then the session ends and is unregistered
    assert [bye[0] for bye in hub.byes] == [0xB0]
    with trio.fail_after(5):
        await hub.wait_for(lambda: all(not c.live for c in hub.connections))
    assert d.unregistered_at is not None
    if knobs.get("hello_verify"):
        hellos = hub.client_hellos()
        assert [h.seq for h in hellos[:2]] == [0, 1]  # cookie hello at record seq 1
    else:
        assert len(hub.client_hellos()) == 1
