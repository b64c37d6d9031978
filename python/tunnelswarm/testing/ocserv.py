"""A real ocserv (OpenConnect VPN server) as a throwaway peer for interop tests.

Theory of operation
-------------------
:func:`start_ocserv` builds one complete, private AnyConnect-protocol headend:

1. **Network namespace.** A namespace ``tsocs-<pid>-<k>`` is created and joined to the
   host by a veth pair (``ts<hexpid>-<k>h`` on the host, ``...n`` inside). The pair gets
   the /30 ``10.213.(pid % 256).(4k)/30``: ``.4k+1`` on the host side, ``.4k+2`` inside.
   ``ip netns add`` is the atomic claim of slot *k*; slots whose names or addresses are
   already in use on the host are skipped, so several runs (and several instances in one
   run) coexist. IPv6 is switched off on both veth ends so nothing but our IPv4 traffic
   ever crosses the pair.
2. **Credentials.** A test CA (EC P-256) and a server certificate (RSA 2048, SAN
   ``IP:<namespace address>``, ``DNS:localhost``, EKU serverAuth) are made with
   ``cryptography``; the ``pin-sha256:`` pin is the base64 SHA-256 of the server's
   SubjectPublicKeyInfo DER. ``ocpasswd`` writes the password file.
3. **Configuration.** ``ocserv.conf`` is rendered from :data:`_TEMPLATE` (keys of
   :class:`OcservConfig` plus ``extra`` overrides) and checked with ``ocserv -t``.
4. **Launch.** ``ip netns exec NS ocserv -f -d N -c CONF`` runs in its own session with
   stdout/stderr appended to ``ocserv.log``; because ocserv lives in the namespace, its
   ``vpns*`` tun devices and the pool addresses exist only there. We wait until the
   namespace has the TCP (and, with ``udp``, UDP) listener and the occtl socket exists,
   then prove reachability with a TCP connect from the host namespace.
5. **Control and teardown.** ``occtl -s <socket>`` talks to ocserv through the socket
   file, so it runs from the host. :meth:`OcservInstance.stop` (idempotent; also run by
   ``__exit__``, on any startup failure, and at interpreter exit) sends SIGTERM to the
   ocserv main process, SIGKILLs whatever still lives in the namespace (everything in it
   is ours), then deletes the namespace and the host-side veth.
   :meth:`OcservInstance.restart` is a crash and a cold start in place: SIGKILL to the
   main process and to everything in the namespace (sec-mod and every worker, so each
   client's TCP connection is closed by the kernel without a word from ocserv), an
   optional ``down`` time with nothing listening, then step 4 again with the same
   ``ocserv.conf`` in the same namespace — same URL, same pin, a new :attr:`pid`. The
   new ocserv remembers no session: a client reconnecting with its old cookie is refused.

ocserv's workers run as ``nobody`` and connect to the sec-mod socket by path, so the
directory holding ``socket-file`` must be traversable by others and its path short
(AF_UNIX paths are limited to 108 bytes). When ``workdir`` qualifies (it is made 0755)
the sockets live there; otherwise (e.g. under pytest's 0700 ``basetemp``) they go to a
fresh 0755 directory in ``/tmp`` that :meth:`~OcservInstance.stop` removes. Certificates,
keys (0600, read by root-owned ocserv main/sec-mod), config and log always stay in
``workdir``, which belongs to the caller.

Everything here is synchronous and depends only on the standard library,
``cryptography`` and the Debian ``ocserv``/``iproute2`` binaries.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "OcservConfig",
    "OcservInstance",
    "PeerUnavailable",
    "peers_available",
    "start_ocserv",
]

RUN_USER = "nobody"
RUN_GROUP = "nogroup"
REQUIRED_BINARIES = ("ocserv", "ocpasswd", "occtl", "ip", "ss")
NET_PREFIX = "10.213"
SLOTS = 64  # /30 subnets per third octet
LOG_TAIL_LINES = 30
STOP_GRACE = 10.0
CONF_NAME = "ocserv.conf"

# Debian's default: TLS 1.2 only (GnuTLS priority string).
DEFAULT_TLS_PRIORITIES = (
    '"NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-TLS1.3"'
)


class PeerUnavailable(Exception):
    """A real peer cannot be started on this machine; ``str()`` is a one-line reason."""


@dataclass(frozen=True)
class OcservConfig:
    """Knobs of one ocserv instance.

    ``extra`` adds or overrides ``ocserv.conf`` keys (``{"dpd": "5"}``); an empty value
    removes the key from the rendered file. By default only CSTP (TCP) is served:
    ``udp=True`` adds ``udp-port``/``udp-listen-host`` (DTLS) on the same port.
    """

    port: int = 4443
    udp: bool = False
    user: str = "test"
    password: str = "test"
    pool: str = "192.168.99.0/24"
    dpd: int = 90
    keepalive: int = 32400
    cookie_timeout: int = 300
    max_clients: int = 64
    debug: int = 2
    extra: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = 10.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(argv)}: timed out after {timeout}s") from exc
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {msg}")
    return proc


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


def _static_reason() -> str | None:
    """Cheap checks (no side effects) for :func:`peers_available`."""
    if os.geteuid() != 0:
        return "not root: ocserv needs root for network namespaces and tun devices"
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if missing:
        return f"missing programs: {', '.join(missing)} (Debian packages ocserv, iproute2)"
    try:
        if not stat.S_ISCHR(os.stat("/dev/net/tun").st_mode):
            return "/dev/net/tun is not a character device"
    except OSError:
        return "no /dev/net/tun (ocserv needs it for its vpns* devices)"
    try:
        pwd.getpwnam(RUN_USER)
        grp.getgrnam(RUN_GROUP)
    except KeyError:
        return f"user {RUN_USER!r} or group {RUN_GROUP!r} does not exist"
    return None


_probe_counter = 0
_probe_lock = threading.Lock()


def peers_available() -> str | None:
    """Return None if ocserv can be started here, else a one-line reason why not.

    Besides the static checks this creates (and deletes) a probe namespace with a veth
    end inside, which is what :func:`start_ocserv` needs.
    """
    global _probe_counter
    reason = _static_reason()
    if reason is not None:
        return reason
    with _probe_lock:
        _probe_counter += 1
        n = _probe_counter
    ns = f"tsprobe-{os.getpid()}-{n}"
    veth = f"tp{os.getpid():x}-{n}"[:13]
    try:
        add = _run(["ip", "netns", "add", ns], check=False)
        if add.returncode != 0:
            return f"network namespace creation failed: {_first_line(add.stderr)}"
        link = _run(
            [
                "ip",
                "link",
                "add",
                f"{veth}h",
                "type",
                "veth",
                "peer",
                "name",
                f"{veth}n",
                "netns",
                ns,
            ],
            check=False,
        )
        if link.returncode != 0:
            return f"veth pair creation failed: {_first_line(link.stderr)}"
        ex = _run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=False)
        if ex.returncode != 0:
            return f"ip netns exec failed: {_first_line(ex.stderr)}"
        return None
    except RuntimeError as exc:  # timeouts
        return f"network namespace probe failed: {_first_line(str(exc))}"
    finally:
        _run(["ip", "link", "del", f"{veth}h"], check=False)
        _run(["ip", "netns", "del", ns], check=False)


def _reachable_by_others(path: Path) -> bool:
    """True if a process of another uid (``nobody``) can traverse into ``path``."""
    for p in (path, *path.parents):
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _proc_alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = data.rpartition(")")[2].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def _wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _proc_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _proc_alive(p)]
    return alive


def _netns_pids(ns: str) -> list[int]:
    proc = _run(["ip", "netns", "pids", ns], check=False)
    if proc.returncode != 0:
        return []
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def _netns_exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _host_ipv4_addresses() -> list[ipaddress.IPv4Interface]:
    out = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    return [ipaddress.IPv4Interface(m) for m in re.findall(r"\binet (\S+)", out)]


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class _Certs:
    cafile: Path
    certfile: Path
    keyfile: Path
    pin: str
    cert_sha256_hex: str


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _make_certs(workdir: Path, address: str) -> _Certs:
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tunnelswarm test"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"tunnelswarm test CA {os.getpid()}"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address(address)),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    cafile = workdir / "ca-cert.pem"
    certfile = workdir / "server-cert.pem"
    keyfile = workdir / "server-key.pem"
    cafile.write_bytes(ca_cert.public_bytes(pem))
    certfile.write_bytes(cert.public_bytes(pem))
    os.chmod(cafile, 0o644)
    os.chmod(certfile, 0o644)
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    _write_private(keyfile, key.private_bytes(pem, pkcs8, none))
    _write_private(workdir / "ca-key.pem", ca_key.private_bytes(pem, pkcs8, none))

    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = "pin-sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")
    der = cert.public_bytes(serialization.Encoding.DER)
    return _Certs(cafile, certfile, keyfile, pin, hashlib.sha256(der).hexdigest())


# --------------------------------------------------------------------------- config

# (key, value) lines in file order; "@NAME@" placeholders are filled by _render_config.
_TEMPLATE: tuple[tuple[str, str], ...] = (
    ("auth", '"plain[passwd=@PASSWD@]"'),
    ("listen-host", "@HOST@"),
    ("tcp-port", "@PORT@"),
    ("udp-listen-host", "@HOST@"),
    ("udp-port", "@PORT@"),
    ("run-as-user", RUN_USER),
    ("run-as-group", RUN_GROUP),
    ("socket-file", "@RUNDIR@/ocserv.sock"),
    ("occtl-socket-file", "@RUNDIR@/occtl.sock"),
    ("use-occtl", "true"),
    ("pid-file", "@RUNDIR@/ocserv.pid"),
    ("server-cert", "@CERT@"),
    ("server-key", "@KEY@"),
    ("isolate-workers", "false"),
    ("max-clients", "@MAX_CLIENTS@"),
    ("max-same-clients", "0"),
    ("rate-limit-ms", "0"),
    ("max-ban-score", "0"),
    ("ban-reset-time", "1"),
    ("min-reauth-time", "0"),
    ("auth-timeout", "240"),
    ("cookie-timeout", "@COOKIE_TIMEOUT@"),
    ("deny-roaming", "false"),
    ("keepalive", "@KEEPALIVE@"),
    ("dpd", "@DPD@"),
    ("mobile-dpd", "1800"),
    ("switch-to-tcp-timeout", "25"),
    ("try-mtu-discovery", "false"),
    ("rekey-time", "172800"),
    ("rekey-method", "ssl"),
    ("tls-priorities", DEFAULT_TLS_PRIORITIES),
    ("cisco-client-compat", "true"),
    ("dtls-legacy", "true"),
    ("dtls-psk", "true"),
    ("log-level", "1"),
    ("device", "vpns"),
    ("predictable-ips", "true"),
    ("ipv4-network", "@POOL@"),
    ("route", "@POOL@"),
    ("tunnel-all-dns", "false"),
    ("ping-leases", "false"),
)
_UDP_KEYS = ("udp-port", "udp-listen-host")
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _render_config(values: Mapping[str, str], config: OcservConfig) -> str:
    def fill(text: str) -> str:
        return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)

    lines = [(key, fill(value)) for key, value in _TEMPLATE if config.udp or key not in _UDP_KEYS]
    for key, value in config.extra.items():
        if not _KEY_RE.match(key) or "\n" in value:
            raise ValueError(f"bad ocserv.conf override: {key!r} = {value!r}")
    rendered: list[str] = ["# generated by tunnelswarm.testing.ocserv"]
    seen: set[str] = set()
    for key, value in lines:
        if key in config.extra:
            if key in seen:
                continue
            seen.add(key)
            value = config.extra[key]
            if value == "":
                continue
        rendered.append(f"{key} = {value}")
    for key, value in config.extra.items():
        if key not in seen and value != "":
            rendered.append(f"{key} = {value}")
    return "\n".join(rendered) + "\n"


# --------------------------------------------------------------------------- resources


@dataclass
class _Resources:
    """Everything :func:`start_ocserv` created, in the order it was created."""

    netns: str | None = None
    veth_host: str | None = None
    rundir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    logfile: IO[bytes] | None = None
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cleanup(self) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
            problems: list[str] = []
            self._stop_processes(problems)
            if self.netns is not None and _netns_exists(self.netns):
                res = _run(["ip", "netns", "del", self.netns], check=False)
                if res.returncode != 0:
                    problems.append(f"ip netns del {self.netns}: {res.stderr.strip()}")
            if self.veth_host is not None and _link_exists(self.veth_host):
                # normally gone with the namespace (its peer lived there); make sure
                _run(["ip", "link", "del", self.veth_host], check=False)
                if _link_exists(self.veth_host):
                    problems.append(f"veth {self.veth_host} still exists")
            if self.rundir is not None:
                shutil.rmtree(self.rundir, ignore_errors=True)
            if self.logfile is not None:
                self.logfile.close()
            _LIVE.pop(id(self), None)
            if problems:
                raise RuntimeError("ocserv cleanup incomplete: " + "; ".join(problems))

    def _stop_processes(self, problems: list[str]) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"ocserv main {proc.pid} survived SIGKILL")
        if self.netns is None or not _netns_exists(self.netns):
            return
        # sec-mod and workers normally exit with main; everything left in the
        # namespace is ours by construction.
        leftovers = _wait_gone(_netns_pids(self.netns), 2.0)
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            leftovers = _wait_gone(leftovers, grace)
        if leftovers:
            problems.append(f"processes survived SIGKILL in {self.netns}: {leftovers}")

    def kill_processes(self, problems: list[str]) -> None:
        """SIGKILL the ocserv main process and everything in the namespace (a crash)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self.netns is not None:
            # the main process is dead (or dying): nothing forks new workers any more
            for _ in range(3):
                pids = _netns_pids(self.netns)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                _wait_gone(pids, 3.0)
            leftovers = [p for p in _netns_pids(self.netns) if _proc_alive(p)]
            if leftovers:
                problems.append(f"processes survived SIGKILL in {self.netns}: {leftovers}")
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append(f"ocserv main {proc.pid} survived SIGKILL")


_LIVE: dict[int, _Resources] = {}


@atexit.register
def _cleanup_all_at_exit() -> None:
    for res in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            res.cleanup()


# --------------------------------------------------------------------------- instance


@dataclass
class OcservInstance:
    """A running ocserv inside its own network namespace (see the module docstring)."""

    namespace: str
    host: str
    host_side: str
    port: int
    url: str
    pin: str
    cafile: Path
    cert_sha256_hex: str
    user: str
    password: str
    workdir: Path
    log_path: Path
    occtl_socket: Path
    gateway: str
    pid: int
    config: OcservConfig = field(default_factory=OcservConfig, repr=False)
    _res: _Resources = field(default_factory=_Resources, repr=False, compare=False)

    def occtl(self, *args: str, timeout: float = 10) -> str:
        """Run ``occtl -s <socket> ARGS...`` and return its stdout."""
        proc = _run(["occtl", "-s", str(self.occtl_socket), *args], timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"occtl {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc.stdout

    def show_users(self) -> list[dict[str, Any]]:
        """``occtl --json show users``, parsed; ``[]`` when nobody is connected."""
        return _parse_occtl_json(self.occtl("--json", "show", "users"))

    def log_text(self) -> str:
        """Everything ocserv wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    @property
    def host_veth(self) -> str | None:
        """Name of the host-side veth interface (None once it could not be created)."""
        return self._res.veth_host

    def running(self) -> bool:
        proc = self._res.proc
        return proc is not None and proc.poll() is None

    def stop(self) -> None:
        """Stop ocserv and remove the namespace and veth; safe to call repeatedly."""
        self._res.cleanup()

    def restart(self, down: float = 0.0, *, wait: float = 15.0) -> None:
        """Crash ocserv and start it again in the same namespace with the same config.

        SIGKILL goes to the main process and to everything else in the namespace (sec-mod,
        every worker: each client's TCP connection is closed by the kernel, nobody is
        told); the namespace, veth, certificates, password file and ``ocserv.conf`` stay,
        so :attr:`url` and :attr:`pin` do not change. After ``down`` seconds without a
        listener ocserv is started again and this returns once it listens (the checks of
        :func:`start_ocserv`, ``wait`` seconds at most); :attr:`pid` is the new main
        process. The new ocserv knows none of the old sessions or cookies. Raises
        ``RuntimeError`` after :meth:`stop` or when ocserv does not come back (it is then
        stopped by the next :meth:`stop` as usual).
        """
        res = self._res
        with res.lock:
            if res.done or res.netns is None or res.logfile is None:
                raise RuntimeError("ocserv restart after stop()")
            problems: list[str] = []
            res.kill_processes(problems)
            if problems:
                raise RuntimeError("ocserv restart: " + "; ".join(problems))
            if down > 0:
                time.sleep(down)
            proc = _launch(
                res,
                res.netns,
                self.workdir / CONF_NAME,
                self.config,
                self.host,
                self.occtl_socket,
                wait,
                f"restart (down {down:g} s)",
            )
            self.pid = proc.pid
        self._settle()

    def _settle(self) -> None:
        # The readiness probe connection shows up as a "pre-auth" entry in `occtl show
        # users` for ~0.1 s; let it go so that callers start from an empty user list.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and self.show_users():
            time.sleep(0.05)

    def __enter__(self) -> OcservInstance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _parse_occtl_json(text: str) -> list[dict[str, Any]]:
    """Parse occtl's hand-written JSON.

    occtl 1.1.6 prints ``[\n]`` for no users, may leave trailing commas, and repeats
    keys (``"Routes": []`` then ``"Routes": "defaultroute"`` when everything is routed);
    for repeated keys the last value wins.
    """
    if not text.strip():
        return []
    cleaned = re.sub(r",(\s*[\]}])", r"\1", text)
    data = json.loads(cleaned)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(u, dict) for u in data):
        raise RuntimeError(f"unexpected occtl JSON: {text[:200]!r}")
    return data


# --------------------------------------------------------------------------- start

_slot_lock = threading.Lock()
_next_slot = 0


@dataclass(frozen=True)
class _Slot:
    netns: str
    veth_host: str
    veth_ns: str
    host_side: ipaddress.IPv4Interface
    ns_side: ipaddress.IPv4Interface


def _candidate_slots() -> Iterator[_Slot]:
    global _next_slot
    pid = os.getpid()
    third = pid % 256
    with _slot_lock:
        start = _next_slot
        _next_slot = (_next_slot + 1) % SLOTS
    for i in range(SLOTS):
        k = (start + i) % SLOTS
        base = ipaddress.IPv4Address(f"{NET_PREFIX}.{third}.{4 * k}")
        yield _Slot(
            netns=f"tsocs-{pid}-{k}",
            veth_host=f"ts{pid:x}-{k}h",
            veth_ns=f"ts{pid:x}-{k}n",
            host_side=ipaddress.IPv4Interface(f"{base + 1}/30"),
            ns_side=ipaddress.IPv4Interface(f"{base + 2}/30"),
        )


def _claim_slot(res: _Resources) -> _Slot:
    """Create the namespace of the first free slot (``ip netns add`` is the claim)."""
    for slot in _candidate_slots():
        if _netns_exists(slot.netns) or _link_exists(slot.veth_host):
            continue
        if _link_exists(slot.veth_ns):
            continue
        if any(a.ip in slot.host_side.network for a in _host_ipv4_addresses()):
            continue
        add = _run(["ip", "netns", "add", slot.netns], check=False)
        if add.returncode != 0:
            if "exists" in add.stderr:
                continue
            raise PeerUnavailable(f"network namespace creation failed: {_first_line(add.stderr)}")
        res.netns = slot.netns
        return slot
    raise RuntimeError(
        f"no free {NET_PREFIX}.{os.getpid() % 256}.x/30 slot for an ocserv namespace"
    )


def _disable_ipv6(netns: str | None, dev: str) -> None:
    path = f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"
    if netns is None:
        with contextlib.suppress(OSError):
            Path(path).write_text("1\n")
        return
    _run(["ip", "netns", "exec", netns, "sh", "-c", f"[ ! -e {path} ] || echo 1 > {path}"])


def _setup_network(res: _Resources) -> _Slot:
    slot = _claim_slot(res)
    ns = slot.netns
    link = _run(
        [
            "ip",
            "link",
            "add",
            slot.veth_host,
            "type",
            "veth",
            "peer",
            "name",
            slot.veth_ns,
            "netns",
            ns,
        ],
        check=False,
    )
    if link.returncode != 0:
        raise PeerUnavailable(f"veth pair creation failed: {_first_line(link.stderr)}")
    res.veth_host = slot.veth_host
    _disable_ipv6(None, slot.veth_host)
    _disable_ipv6(ns, slot.veth_ns)
    _run(["ip", "addr", "add", str(slot.host_side), "dev", slot.veth_host])
    _run(["ip", "link", "set", slot.veth_host, "up"])
    _run(["ip", "-n", ns, "addr", "add", str(slot.ns_side), "dev", slot.veth_ns])
    _run(["ip", "-n", ns, "link", "set", slot.veth_ns, "up"])
    _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    return slot


def _choose_rundir(workdir: Path, res: _Resources) -> Path:
    # ocserv appends suffixes to socket-file; keep well below the 108-byte AF_UNIX limit
    if _reachable_by_others(workdir) and len(str(workdir)) <= 70:
        return workdir
    for base in (tempfile.gettempdir(), "/tmp", "/run", "/var/tmp"):
        if os.path.isdir(base) and _reachable_by_others(Path(base)) and len(base) <= 40:
            rundir = Path(tempfile.mkdtemp(prefix=f"tsocs-{os.getpid()}-", dir=base))
            res.rundir = rundir
            os.chmod(rundir, 0o755)
            return rundir
    raise RuntimeError(f"no directory reachable by {RUN_USER} for ocserv's sockets")


def _listening(ns: str, port: int, udp: bool) -> bool:
    checks = [("-Hltn", "tcp")] + ([("-Hlun", "udp")] if udp else [])
    for flags, _proto in checks:
        out = _run(["ss", "-N", ns, flags, f"sport = :{port}"], check=False).stdout
        if not out.strip():
            return False
    return True


def _write_passwd(path: Path, user: str, password: str) -> None:
    if "\n" in password or ":" in user or "\n" in user:
        raise ValueError("user/password must not contain newlines (nor ':' in the user)")
    path.unlink(missing_ok=True)
    _run(["ocpasswd", "-c", str(path), user], stdin=f"{password}\n{password}\n")
    os.chmod(path, 0o600)


def start_ocserv(
    workdir: Path,
    config: OcservConfig | None = None,
    *,
    wait: float = 15.0,
) -> OcservInstance:
    """Start ocserv in a fresh network namespace and return it once it accepts TCP.

    Raises :class:`PeerUnavailable` when this machine cannot run it at all and
    ``RuntimeError`` (with ocserv's output) when it was rejected or did not come up.
    Whatever was created is removed again on any failure (also KeyboardInterrupt).
    """
    config = config if config is not None else OcservConfig()
    reason = _static_reason()
    if reason is not None:
        raise PeerUnavailable(reason)
    pool = ipaddress.IPv4Network(config.pool, strict=True)
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)

    res = _Resources()
    _LIVE[id(res)] = res
    try:
        return _start(workdir, config, pool, res, wait)
    except BaseException:
        with contextlib.suppress(Exception):
            res.cleanup()
        raise


def _start(
    workdir: Path,
    config: OcservConfig,
    pool: ipaddress.IPv4Network,
    res: _Resources,
    wait: float,
) -> OcservInstance:
    slot = _setup_network(res)
    host = str(slot.ns_side.ip)
    rundir = _choose_rundir(workdir, res)
    certs = _make_certs(workdir, host)
    passwd = workdir / "passwd"
    _write_passwd(passwd, config.user, config.password)

    values = {
        "PASSWD": str(passwd),
        "HOST": host,
        "PORT": str(config.port),
        "RUNDIR": str(rundir),
        "CERT": str(certs.certfile),
        "KEY": str(certs.keyfile),
        "MAX_CLIENTS": str(config.max_clients),
        "COOKIE_TIMEOUT": str(config.cookie_timeout),
        "KEEPALIVE": str(config.keepalive),
        "DPD": str(config.dpd),
        "POOL": str(pool),
    }
    conf = workdir / CONF_NAME
    conf.write_text(_render_config(values, config))
    check = _run(["ocserv", "-t", "-c", str(conf)], check=False, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(
            f"ocserv -t rejected {conf} (exit {check.returncode}):\n"
            + (check.stdout + check.stderr).strip()
        )

    occtl_socket = rundir / "occtl.sock"
    log_path = workdir / "ocserv.log"
    res.logfile = open(log_path, "ab")  # noqa: SIM115 - closed by _Resources.cleanup
    proc = _launch(res, slot.netns, conf, config, host, occtl_socket, wait, "start")

    inst = OcservInstance(
        namespace=slot.netns,
        host=host,
        host_side=str(slot.host_side.ip),
        port=config.port,
        url=f"https://{host}:{config.port}/",
        pin=certs.pin,
        cafile=certs.cafile,
        cert_sha256_hex=certs.cert_sha256_hex,
        user=config.user,
        password=config.password,
        workdir=workdir,
        log_path=log_path,
        occtl_socket=occtl_socket,
        gateway=str(pool.network_address + 1),
        pid=proc.pid,
        config=config,
        _res=res,
    )
    inst._settle()
    return inst


def _launch(
    res: _Resources,
    netns: str,
    conf: Path,
    config: OcservConfig,
    host: str,
    occtl_socket: Path,
    wait: float,
    what: str,
) -> subprocess.Popen[bytes]:
    """Run ocserv in ``netns`` (``res.proc``) and return it once it listens and is reachable.

    Stale socket and pid files of an earlier run are removed first, so the occtl socket's
    existence means *this* ocserv made it. Used by :func:`start_ocserv` and
    :meth:`OcservInstance.restart`; ``res.logfile`` must be open.
    """
    assert res.logfile is not None
    rundir = occtl_socket.parent
    for stale in (occtl_socket, rundir / "ocserv.pid", *rundir.glob("ocserv.sock*")):
        stale.unlink(missing_ok=True)
    log_path = Path(res.logfile.name)
    res.logfile.write(f"=== tunnelswarm {what} {datetime.datetime.now(datetime.UTC)}\n".encode())
    res.logfile.flush()
    res.proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "ocserv", "-f", "-d", str(config.debug), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=res.logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = res.proc

    deadline = time.monotonic() + wait
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"ocserv exited during {what} (exit {proc.returncode}); last log lines:\n"
                + _tail(log_path)
            )
        if occtl_socket.exists() and _listening(netns, config.port, config.udp):
            break
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"ocserv not listening on {host}:{config.port} after {wait}s; last log lines:\n"
                + _tail(log_path)
            )
        time.sleep(0.05)

    try:
        with socket.create_connection((host, config.port), timeout=max(1.0, wait / 3)):
            pass
    except OSError as exc:
        raise RuntimeError(
            f"ocserv listens in {netns} but {host}:{config.port} is unreachable "
            f"from the host: {exc}"
        ) from exc
    return proc
