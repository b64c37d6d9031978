"""Tests of the ocserv fixture itself, with the real openconnect client as independent peer.

openconnect runs in the host namespace in ``--script-tun`` mode (no tun device, no
routes) and reaches ocserv through the veth pair at the namespace address.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tunnelswarm.testing.ocserv import (
    OcservConfig,
    OcservInstance,
    peers_available,
    start_ocserv,
)

CONNECTED_MARKERS = ("Configured as", "Connected as")
Factory = Callable[..., OcservInstance]


# --------------------------------------------------------------------------- helpers


class OpenConnect:
    """One openconnect process whose merged output is collected line by line."""

    def __init__(
        self, inst: OcservInstance, piddir: Path, *opts: str, password: str | None = None
    ) -> None:
        # The script gets its own process group and is only SIGHUPed on a clean exit:
        # record its pid so that it can be ended on any other exit, and keep it off our
        # stdout pipe so that the pipe reaches EOF when openconnect exits.
        fd, name = tempfile.mkstemp(prefix="script-", suffix=".pid", dir=piddir)
        os.close(fd)
        self.script_pidfile = Path(name)
        argv = [
            "openconnect",
            "--protocol=anyconnect",
            "--user",
            inst.user,
            "--passwd-on-stdin",
            "--script-tun",
            "--script",
            f"echo $$ > {self.script_pidfile}; exec cat <&$VPNFD >/dev/null 2>&1",
            "--timestamp",
            "-v",
            *opts,
            inst.url,
        ]
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write((inst.password if password is None else password) + "\n")
        self.proc.stdin.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needles: tuple[str, ...], timeout: float) -> str | None:
        """Return the first line containing a needle; None on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self._q.put(None)  # keep EOF visible to later calls
                return None
            self.lines.append(line)
            if any(n in line for n in needles):
                return line
        return None

    def wait_exit(self, timeout: float) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self.wait_for((), 0.01)  # drain what the reader collected
        while True:
            try:
                line = self._q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return rc

    def interrupt(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait_exit(timeout)

    def close(self) -> None:
        """End openconnect (SIGINT, then SIGKILL) and its script; idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.script_pidfile.read_text())
            if alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "cat":
                os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        if not self._reader.is_alive() and self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def openconnect(
    peer_unavailable: Callable[[str], NoReturn], scratch: Path
) -> Iterator[Callable[..., OpenConnect]]:
    if shutil.which("openconnect") is None:
        peer_unavailable("openconnect is not installed (Debian package openconnect)")
    clients: list[OpenConnect] = []

    def spawn(inst: OcservInstance, *opts: str, password: str | None = None) -> OpenConnect:
        client = OpenConnect(inst, scratch, *opts, password=password)
        clients.append(client)
        return client

    try:
        yield spawn
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A 0755 temp dir (reachable by ocserv's workers), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="tsocs-test-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def netns_list() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    out = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return [int(tok) for tok in out.split()]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def connected_users(inst: OcservInstance, user: str) -> list[dict[str, object]]:
    return [
        u for u in inst.show_users() if u.get("Username") == user and u.get("State") == "connected"
    ]


def connect_and_check(
    inst: OcservInstance, spawn: Callable[..., OpenConnect], *opts: str
) -> OpenConnect:
    """Connect openconnect, check occtl sees the session, leave it connected."""
    client = spawn(inst, *opts)
    line = client.wait_for(CONNECTED_MARKERS, timeout=20)
    assert line is not None, (
        f"openconnect did not connect:\n{client.output}\n--- ocserv:\n{inst.log_tail()}"
    )
    assert wait_until(lambda: bool(connected_users(inst, inst.user)), 5), inst.show_users()
    (user,) = connected_users(inst, inst.user)
    assert ipaddress.ip_address(str(user["IPv4"])) in ipaddress.ip_network(inst.config.pool)
    assert user["P-t-P IPv4"] == inst.gateway
    assert user["Remote IP"] == inst.host_side
    return client


# --------------------------------------------------------------------------- tests


def test_peers_available_here() -> None:
    assert peers_available() is None


def test_server_fields(ocserv_server: OcservInstance) -> None:
    inst = ocserv_server
    assert inst.namespace in netns_list()
    assert ipaddress.ip_address(inst.host) in ipaddress.ip_network("10.213.0.0/16")
    assert ipaddress.ip_network(f"{inst.host}/30", strict=False) == ipaddress.ip_network(
        f"{inst.host_side}/30", strict=False
    )
    assert inst.url == f"https://{inst.host}:{inst.port}/"
    assert inst.port == 4443
    assert inst.gateway == "192.168.99.1"
    assert inst.pin.startswith("pin-sha256:")
    assert len(base64.b64decode(inst.pin.removeprefix("pin-sha256:"))) == 32
    assert len(bytes.fromhex(inst.cert_sha256_hex)) == 32
    assert inst.cafile.is_file()
    assert inst.occtl_socket.exists()
    assert alive(inst.pid)
    assert inst.pid in netns_pids(inst.namespace)
    assert "Status: online" in inst.occtl("show", "status")
    assert inst.show_users() == []
    assert "initialized ocserv" in inst.log_text()
    # the pool lives only inside the namespace, never on the host
    host_addrs = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert "192.168.99." not in host_addrs
    assert f"{inst.host}/" not in host_addrs


def test_pin_matches_certificate(ocserv_server: OcservInstance) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = (ocserv_server.workdir / "server-cert.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert ocserv_server.pin == f"pin-sha256:{expected}"
    der = cert.public_bytes(serialization.Encoding.DER)
    assert ocserv_server.cert_sha256_hex == hashlib.sha256(der).hexdigest()


def test_openconnect_connects_with_pin(
    ocserv_server: OcservInstance, openconnect: Callable[..., OpenConnect]
) -> None:
    inst = ocserv_server
    client = connect_and_check(inst, openconnect, "--servercert", inst.pin, "--no-dtls")
    assert "DTLS disabled" in client.output or "Connected as" in client.output
    rc = client.interrupt(timeout=10)
    assert rc in (0, 1, 130), client.output  # openconnect exits after SIGINT
    assert wait_until(lambda: not connected_users(inst, inst.user), 10), inst.show_users()


def test_openconnect_verifies_with_cafile(
    ocserv_server: OcservInstance, openconnect: Callable[..., OpenConnect]
) -> None:
    """The CA chain and the IP SAN are accepted by GnuTLS' normal verification."""
    inst = ocserv_server
    client = connect_and_check(inst, openconnect, "--cafile", str(inst.cafile), "--no-dtls")
    assert "Server certificate verify failed" not in client.output
    client.interrupt(timeout=10)


def test_openconnect_rejects_wrong_pin(
    ocserv_server: OcservInstance, openconnect: Callable[..., OpenConnect]
) -> None:
    wrong = "pin-sha256:" + base64.b64encode(hashlib.sha256(b"not the key").digest()).decode()
    client = openconnect(ocserv_server, "--servercert", wrong, "--no-dtls", "--non-inter")
    rc = client.wait_exit(timeout=20)
    assert rc != 0, client.output
    assert not any(m in client.output for m in CONNECTED_MARKERS), client.output
    assert "certificate" in client.output.lower(), client.output
    assert not connected_users(ocserv_server, ocserv_server.user)


def test_factory_custom_config_dtls_and_stop(
    ocserv_factory: Factory, openconnect: Callable[..., OpenConnect]
) -> None:
    cfg = OcservConfig(
        port=4444,
        udp=True,
        user="alice",
        password="s3cret",
        pool="192.168.77.0/24",
        dpd=20,
        extra={"banner": '"hello from tunnelswarm"'},
    )
    a = ocserv_factory(cfg)
    b = ocserv_factory()
    assert a.namespace != b.namespace
    assert a.host != b.host
    assert a.gateway == "192.168.77.1"
    conf = (a.workdir / "ocserv.conf").read_text()
    assert "udp-port = 4444" in conf
    assert "banner = " in conf
    assert "udp-port" not in (b.workdir / "ocserv.conf").read_text()
    udp = subprocess.run(
        ["ss", "-N", a.namespace, "-Hlun", "sport = :4444"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert udp.strip(), "ocserv does not listen on UDP"

    client = connect_and_check(a, openconnect, "--servercert", a.pin)
    # openconnect logs the DTLS handshake before "Configured as" (PSK-NEGOTIATE)
    assert "Established DTLS connection" in client.output, client.output
    (user,) = connected_users(a, "alice")
    assert user["DPD"] == "20"

    pids = netns_pids(a.namespace)
    assert a.pid in pids
    assert len(pids) >= 3  # main, sec-mod, worker
    a.stop()
    a.stop()  # idempotent
    assert a.namespace not in netns_list()
    assert not any(alive(p) for p in pids), [p for p in pids if alive(p)]
    assert a.host_veth is not None
    assert not Path("/sys/class/net", a.host_veth).exists()
    # openconnect notices the loss and tries to reconnect; end it
    client.close()
    # the other instance is unaffected
    assert b.namespace in netns_list()
    assert "Status: online" in b.occtl("show", "status")


def test_rejected_config_cleans_up(scratch: Path) -> None:
    before = set(netns_list())
    with pytest.raises(RuntimeError, match="ocserv -t rejected"):
        start_ocserv(scratch, OcservConfig(extra={"auth": '"bogus[x]"'}))
    assert set(netns_list()) == before
    ours = {n for n in netns_list() if n.startswith(f"tsocs-{os.getpid()}-")}
    assert ours <= before


def test_startup_failure_reports_log_and_cleans_up(scratch: Path) -> None:
    before = set(netns_list())
    # passes `ocserv -t` but cannot bind: the address does not exist in the namespace
    cfg = OcservConfig(extra={"listen-host": "10.213.255.254"})
    with pytest.raises(RuntimeError, match="ocserv") as exc_info:
        start_ocserv(scratch, cfg, wait=5)
    assert "log" in str(exc_info.value)
    assert set(netns_list()) == before


def test_context_manager_stops(scratch: Path) -> None:
    workdir = scratch / "w"
    with start_ocserv(workdir) as inst:
        ns, pid = inst.namespace, inst.pid
        assert ns in netns_list()
        # a workdir reachable by `nobody` holds the sockets itself
        assert inst.occtl_socket.parent == workdir
    assert ns not in netns_list()
    assert not alive(pid)
    assert not inst.running()
