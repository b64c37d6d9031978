"""The real openconnect (Debian's 9.01) against the mock ASA on 127.0.0.1.

openconnect runs with ``--protocol=anyconnect``, logs in with the XML dialogue (user
``test``, password on stdin, the mock's ``pin-sha256:``) and gets the CONNECT answer of
``examples/asa-9.1.cfg`` (``X-CSTP-MTU 1347``). ``--script-tun`` replaces the tun device
with ``_tun_ping.py``: it gets one end of a datagram socketpair in ``$VPNFD`` and pings
the mock's ``inside`` interface (10.1.1.1) from the address openconnect was given.

``test_openconnect_session_agrees_with_vpn_sessiondb`` brings DTLS up per cipher (DTLS
0.9 ``AES128-SHA`` / ``AES256-SHA`` via ``--dtls-ciphers``; DTLS 1.2 via
``--dtls12-ciphers``, i.e. ``X-DTLS12-CipherSuite``, which the mock picks from its
``ssl cipher dtlsv1.2`` preference) or runs CSTP only (``--no-dtls``), and checks that
openconnect's log and ``show vpn-sessiondb anyconnect`` agree on user, address,
protocols and ciphers, and that the echo replies came back over the expected tunnel (the
mock's per-tunnel byte counters).

``test_openconnect_dpd_on_cstp_and_dtls`` shortens DPD in the group policy
(``anyconnect dpd-interval client|gateway 5``) and waits for DPD requests and responses
on both channels, in each direction.

openconnect and the script each run in their own process group, killed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
import trio
from _support import reap_process_group

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.asa.sessiondb import Session

pytestmark = pytest.mark.interop

OPENCONNECT = shutil.which("openconnect")
STDBUF = shutil.which("stdbuf")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"
TUN_PING = Path(__file__).resolve().with_name("_tun_ping.py")
USER = "test"
PASSWORD = "test"  # examples/asa-9.1.cfg: username test password test
PINGS = 3
PING_BYTES = 84  # IPv4 20 + ICMP 8 + 56 bytes of payload (as _tun_ping.py builds them)
OC_TIMEOUT = 40.0  # seconds, one whole openconnect run


@dataclass(frozen=True)
class Mode:
    """One way of running the tunnel: openconnect's option and what both sides show."""

    option: str
    #: the cipher header of the mock's CONNECT answer (None: no DTLS)
    header: str | None = None
    #: openconnect's "Established DTLS connection (using GnuTLS). Ciphersuite ..." text
    oc_cipher: str | None = None
    #: the DTLS-Tunnel's Encryption / Hashing in show vpn-sessiondb, and its Encapsulation
    encryption: str | None = None
    hashing: str | None = None
    encapsulation: str | None = None
    #: X-DTLS-MTU = the tun MTU openconnect keeps after its MTU probe
    dtls_mtu: int | None = None


MODES: dict[str, Mode] = {
    "dtls0.9-aes128": Mode(
        "--dtls-ciphers=AES128-SHA",
        "X-DTLS-CipherSuite: AES128-SHA",
        "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)",
        "AES128",
        "SHA1",
        "DTLSv1.0",
        1418,
    ),
    "dtls0.9-aes256": Mode(
        "--dtls-ciphers=AES256-SHA",
        "X-DTLS-CipherSuite: AES256-SHA",
        "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)",
        "AES256",
        "SHA1",
        "DTLSv1.0",
        1418,
    ),
    "dtls1.2-aes128gcm": Mode(
        "--dtls12-ciphers=AES128-GCM-SHA256",
        "X-DTLS12-CipherSuite: AES128-GCM-SHA256",
        "(DTLS1.2)-(RSA)-(AES-128-GCM)",
        "AES-GCM-128",
        "SHA256",
        "DTLSv1.2",
        1434,
    ),
    "dtls1.2-aes256gcm": Mode(
        "--dtls12-ciphers=AES256-GCM-SHA384",
        "X-DTLS12-CipherSuite: AES256-GCM-SHA384",
        "(DTLS1.2)-(RSA)-(AES-256-GCM)",
        "AES-GCM-256",
        "SHA384",
        "DTLSv1.2",
        1434,
    ),
    "dtls1.2-ecdhe-aes256gcm": Mode(
        "--dtls12-ciphers=ECDHE-RSA-AES256-GCM-SHA384",
        "X-DTLS12-CipherSuite: ECDHE-RSA-AES256-GCM-SHA384",
        "(DTLS1.2)-(ECDHE-RSA)-(AES-256-GCM)",
        "AES-GCM-256",
        "SHA384",
        "DTLSv1.2",
        1434,
    ),
    "cstp-only": Mode("--no-dtls"),
}

#: GnuTLS's bulk cipher words (last group of openconnect's ciphersuite text) → the ASA's
#: ``Encryption`` words
ASA_ENCRYPTION: dict[str, str] = {
    "AES-128-CBC": "AES128",
    "AES-256-CBC": "AES256",
    "AES-128-GCM": "AES-GCM-128",
    "AES-256-GCM": "AES-GCM-256",
}

DTLS_CIPHER_RE = re.compile(r"Established DTLS connection \(using GnuTLS\)\. Ciphersuite (\S+)\.")
TLS_CIPHER_RE = re.compile(r"Connected to HTTPS on \S+ with ciphersuite (\S+)")
CONFIGURED_RE = re.compile(r"Configured as ([\d.]+), with SSL connected and DTLS ([a-z ]+)")


# ------------------------------------------------------------------ running openconnect
@dataclass
class Run:
    """One openconnect process: its output and the tun script's log."""

    proc: trio.Process
    tun_log: Path
    output: bytearray = field(default_factory=bytearray)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def script_log(self) -> str:
        try:
            return self.tun_log.read_text()
        except FileNotFoundError:
            return ""

    async def poll(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait (bounded) until ``predicate()``; fail with openconnect's output tail."""
        with trio.move_on_after(timeout):
            while not predicate():
                await trio.sleep(0.05)
            return
        tail = "\n".join(self.text.splitlines()[-40:])
        pytest.fail(
            f"timed out after {timeout} s waiting for {what}; openconnect output tail:\n"
            f"{tail}\ntun script log:\n{self.script_log()}"
        )

    async def configured(self) -> re.Match[str]:
        """Wait for openconnect's ``Configured as ...`` line (tunnel up, script started)."""
        await self.poll(
            lambda: CONFIGURED_RE.search(self.text) is not None or self.proc.returncode is not None,
            "openconnect's 'Configured as' line",
            20,
        )
        found = CONFIGURED_RE.search(self.text)
        assert found is not None, f"openconnect exited ({self.proc.returncode}):\n{self.text}"
        return found


async def _read_all(stream: trio.abc.ReceiveStream, output: bytearray) -> None:
    with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
        while chunk := await stream.receive_some(65536):
            output += chunk


def _kill_script_group(tun_log: Path) -> None:
    """SIGKILL the tun script's process group if it still runs ``_tun_ping.py``."""
    with contextlib.suppress(OSError):
        for line in tun_log.read_text().splitlines():
            if not line.startswith("pid "):
                continue
            pid = int(line.split()[1])
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if TUN_PING.name.encode() in cmdline:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)


@contextlib.asynccontextmanager
async def openconnect(
    info: MockAsaInfo, tmp_path: Path, option: str, *, pings: int
) -> AsyncIterator[Run]:
    """openconnect logged in to the mock with ``option``; its tun script pings the
    mock's inside host ``pings`` times. Killed (with the script) on exit."""
    assert OPENCONNECT is not None
    inside = info.asa.asa_config.interface_by_nameif("inside")
    assert inside is not None
    assert inside.ip_address is not None
    tun_log = tmp_path / "tun.log"
    argv = [sys.executable, str(TUN_PING), str(tun_log), str(inside.ip_address), str(pings)]
    script = f"exec {shlex.join(argv)} </dev/null >/dev/null 2>&1"
    cmd = [
        OPENCONNECT,
        "--protocol=anyconnect",
        "--servercert",
        info.pin,
        "-u",
        USER,
        "--passwd-on-stdin",
        "--non-inter",
        "--script-tun",
        "--script",
        script,
        "-v",
        option,
        info.url,
    ]
    if STDBUF is not None:  # openconnect block-buffers into a pipe
        cmd = [STDBUF, "-oL", "-eL", *cmd]
    proc = await trio.lowlevel.open_process(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    run = Run(proc, tun_log)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_all, proc.stdout, run.output)
            with trio.fail_after(OC_TIMEOUT):
                await proc.stdin.send_all(f"{PASSWORD}\n".encode())
                await proc.stdin.aclose()
                yield run
            nursery.cancel_scope.cancel()
    finally:
        await reap_process_group(proc)
        with trio.CancelScope(shield=True):
            _kill_script_group(tun_log)
            await proc.stdin.aclose()
            await proc.stdout.aclose()


async def _sigint(run: Run, info: MockAsaInfo) -> None:
    """SIGINT → openconnect sends BYE, exits 0, and the mock logs the session out."""
    run.proc.send_signal(signal.SIGINT)
    await run.poll(lambda: run.proc.returncode is not None, "openconnect to exit", 10)
    assert run.proc.returncode == 0, run.text[-3000:]
    await run.poll(lambda: len(info.asa.sessiondb) == 0, "the mock's logout", 10)


async def _start_mock(nursery: trio.Nursery, tmp_path: Path, config_text: str) -> MockAsaInfo:
    info: MockAsaInfo = await nursery.start(
        serve_mock_asa,
        MockAsaConfig(asa=parse_config(config_text), port=0, state_dir=tmp_path / "state"),
    )
    return info


def _only_session(info: MockAsaInfo) -> Session:
    sessions = list(info.asa.sessiondb)
    assert len(sessions) == 1, sessions
    return sessions[0]


# ------------------------------------------------------------------ show vpn-sessiondb
def _field(listing: str, label: str) -> str:
    """One field of ``show vpn-sessiondb anyconnect`` (up to the next two spaces)."""
    found = re.search(rf"(?:^|  ){re.escape(label)}\s*: (\S+(?: \S+)*)", listing, re.MULTILINE)
    assert found is not None, f"no {label!r} in:\n{listing}"
    return found.group(1)


def _per_tunnel(listing: str, label: str) -> dict[str, str]:
    """``Encryption : AnyConnect-Parent: (1)none  SSL-Tunnel: (1)AES-GCM-256 ...`` → dict."""
    found = re.search(rf"^{label}\s*: (.*)$", listing, re.MULTILINE)
    assert found is not None, f"no {label!r} in:\n{listing}"
    return dict(re.findall(r"(\S+): \(1\)(\S+)", found.group(1)))


def _bulk_cipher(gnutls_text: str) -> str:
    """``(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)`` → the ASA word for ``AES-128-CBC``."""
    groups = re.findall(r"\(([^)]*)\)", gnutls_text)
    bulk = next(g for g in reversed(groups) if g in ASA_ENCRYPTION)
    return ASA_ENCRYPTION[bulk]


# ------------------------------------------------------------------ tests
@pytest.fixture
def need_openconnect(peer_unavailable: Callable[[str], NoReturn]) -> None:
    """Skip without openconnect (fail instead with TUNNELSWARM_REQUIRE_PEERS=1)."""
    if OPENCONNECT is None:
        peer_unavailable("openconnect is not installed")


@pytest.mark.parametrize("mode", [pytest.param(m, id=k) for k, m in MODES.items()])
async def test_openconnect_session_agrees_with_vpn_sessiondb(
    need_openconnect: None, nursery: trio.Nursery, tmp_path: Path, mode: Mode
) -> None:
    info = await _start_mock(nursery, tmp_path, EXAMPLE.read_text())
    asa = info.asa
    dtls = mode.header is not None
    async with openconnect(info, tmp_path, mode.option, pings=PINGS) as run:
        configured = await run.configured()
        await run.poll(lambda: "done " in run.script_log(), "the tun script's pings", 15)
        if dtls:
            await run.poll(
                lambda: all(s.dtls is not None for s in asa.sessiondb),
                "the mock's DTLS-Tunnel",
                5,
            )
        listing = asa.show("vpn-sessiondb anyconnect")
        session = _only_session(info)
        script_log = run.script_log()
        out = run.text

        # ---- the address: openconnect's log, the script's env and the mock agree
        address = configured.group(1)
        assert f"X-CSTP-Address: {address}" in out
        assert f"INTERNAL_IP4_ADDRESS={address}" in script_log
        assert _field(listing, "Assigned IP") == address == session.assigned_ip
        assert _field(listing, "Username") == USER
        assert _field(listing, "Public IP") == "127.0.0.1"

        # ---- protocols
        assert configured.group(2) == ("connected" if dtls else "disabled")
        protocols = "AnyConnect-Parent SSL-Tunnel" + (" DTLS-Tunnel" if dtls else "")
        assert _field(listing, "Protocol") == protocols

        # ---- ciphers: the TLS one, then the DTLS one
        encryption = _per_tunnel(listing, "Encryption")
        hashing = _per_tunnel(listing, "Hashing")
        assert encryption.keys() == hashing.keys() == set(protocols.split())
        assert encryption["AnyConnect-Parent"] == hashing["AnyConnect-Parent"] == "none"
        tls = TLS_CIPHER_RE.search(out)
        assert tls is not None, out[-3000:]
        assert encryption["SSL-Tunnel"] == _bulk_cipher(tls.group(1))
        assert "X-CSTP-MTU: 1347" in out
        if mode.header is not None:
            assert mode.oc_cipher is not None
            established = DTLS_CIPHER_RE.search(out)
            assert established is not None, out[-3000:]
            assert established.group(1) == mode.oc_cipher
            assert encryption["DTLS-Tunnel"] == mode.encryption == _bulk_cipher(mode.oc_cipher)
            assert hashing["DTLS-Tunnel"] == mode.hashing
            assert session.dtls is not None
            assert session.dtls.encapsulation == mode.encapsulation
            assert mode.header in out
            assert f"X-DTLS-Port: {info.udp_port}" in out
            assert f"X-DTLS-MTU: {mode.dtls_mtu}" in out
            assert f"No change in MTU after detection (was {mode.dtls_mtu})" in out
            assert f"INTERNAL_IP4_MTU={mode.dtls_mtu}" in script_log
        else:
            assert "Established DTLS connection" not in out
            assert "X-DTLS-" not in out
            assert session.dtls is None
            assert "INTERNAL_IP4_MTU=1347" in script_log

        # ---- data: every echo request answered by the inside host, on the right tunnel
        assert f"done sent={PINGS} replies={PINGS}" in script_log, script_log
        inside = asa.asa_config.interface_by_nameif("inside")
        assert inside is not None
        replies = [line for line in script_log.splitlines() if line.startswith("reply ")]
        assert replies == [
            f"reply seq={n} src={inside.ip_address} dst={address} len={PING_BYTES}"
            for n in range(1, PINGS + 1)
        ]
        carrier, other = (session.dtls, session.ssl) if dtls else (session.ssl, None)
        assert carrier is not None
        assert carrier.bytes_rx == carrier.bytes_tx == PINGS * PING_BYTES
        if other is not None:  # nothing went over CSTP while DTLS was up
            assert other.bytes_rx == other.bytes_tx == 0
        assert session.bytes_rx == session.bytes_tx == PINGS * PING_BYTES
        assert _field(listing, "Bytes Tx") == _field(listing, "Bytes Rx") == str(PINGS * PING_BYTES)

        await _sigint(run, info)

    syslog = "\n".join(asa.syslog_buffer.lines())
    assert f"user = {USER}" in syslog
    assert "-722033:" in syslog
    assert f"IPv4 Address <{address}>" in syslog
    assert "Client Type: Open AnyConnect VPN Agent" in syslog
    assert ("UDP SVC connection established" in syslog) is dtls
    assert "-722043:" not in syslog  # "DTLS disabled: unable to negotiate cipher"
    assert "Reason: User Requested" in syslog
    assert asa.errors == []


def _dpd_config(client: str, gateway: str) -> str:
    text = EXAMPLE.read_text()
    for side, value in (("client", client), ("gateway", gateway)):
        old = f" anyconnect dpd-interval {side} 30\n"
        assert old in text
        text = text.replace(old, f" anyconnect dpd-interval {side} {value}\n")
    return text


DPD = 5  # seconds, the smallest `anyconnect dpd-interval`
#: (the group policy's DPD settings, openconnect's DPD, openconnect's expected log lines)
DPD_DIRECTIONS = {
    "client": (
        _dpd_config(client=str(DPD), gateway="none"),
        DPD,
        (
            "Send CSTP DPD",
            "Got CSTP DPD response",
            "Send DTLS DPD",
            "Got DTLS DPD response",
        ),
    ),
    "gateway": (
        _dpd_config(client="none", gateway=str(DPD)),
        0,
        ("Got CSTP DPD request", "Got DTLS DPD request"),
    ),
}


@pytest.mark.parametrize("direction", list(DPD_DIRECTIONS))
@pytest.mark.parametrize("mode_id", ["dtls0.9-aes128", "dtls1.2-aes256gcm"])
async def test_openconnect_dpd_on_cstp_and_dtls(
    need_openconnect: None, nursery: trio.Nursery, tmp_path: Path, mode_id: str, direction: str
) -> None:
    mode = MODES[mode_id]
    config_text, client_dpd, expected = DPD_DIRECTIONS[direction]
    info = await _start_mock(nursery, tmp_path, config_text)
    async with openconnect(info, tmp_path, mode.option, pings=0) as run:
        configured = await run.configured()
        assert configured.group(2) == "connected"
        start = trio.current_time()
        out = run.text
        assert f"CSTP connected. DPD {client_dpd}, Keepalive 20" in out
        assert f"DTLS initialised. DPD {client_dpd}, Keepalive 20" in out
        # the first DPD is due DPD seconds after the last frame received; openconnect's
        # and the core's timers run in whole seconds
        await run.poll(
            lambda: all(line in run.text for line in expected),
            f"DPD lines {expected}",
            DPD + 5,
        )
        took = trio.current_time() - start
        assert took >= DPD - 2, (took, run.text[-2000:])
        session = _only_session(info)
        # both tunnels survived the exchange
        assert session.ssl is not None
        assert session.dtls is not None
        assert session.dtls.encapsulation == mode.encapsulation
        out = run.text
        if direction == "gateway":  # openconnect itself never asked
            assert "Send CSTP DPD" not in out
            assert "Send DTLS DPD" not in out
        else:
            assert "DPD request" not in out
        assert "Dead Peer Detection detected dead peer" not in out
        await _sigint(run, info)
    assert info.asa.errors == []
