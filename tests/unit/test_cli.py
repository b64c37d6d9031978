"""``python -m tunnelswarm connect …`` as a user runs it: one error line, the right status.

Every failure prints exactly one line on stderr, ``tunnelswarm: error: <reason>``, and
no traceback; exit status 2 for bad usage or configuration, 1 for a failed connection
(see the module doc of :mod:`tunnelswarm.cli`).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Sequence

import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tunnelswarm._core import pin_sha256

TIMEOUT = 30


def _env(**overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run_cli(
    args: Sequence[str], *, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunnelswarm", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env=env if env is not None else _env(),
        timeout=TIMEOUT,
        check=False,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tunnelswarm: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- usage -------------------------------------------------------------------------------


def test_help() -> None:
    r = run_cli(["--help"])
    assert r.returncode == 0, r.stderr
    assert "connect" in r.stdout
    assert r.stderr == ""


def test_connect_help_lists_openconnect_flags() -> None:
    r = run_cli(["connect", "--help"])
    assert r.returncode == 0, r.stderr
    for flag in ("--servercert", "--passwd-on-stdin", "--password-env", "--base-mtu", "--mtu"):
        assert flag in r.stdout


def test_no_command_is_usage_error() -> None:
    r = run_cli([])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_bad_flag_value_is_usage_error() -> None:
    r = run_cli(["connect", "https://127.0.0.1/", "--mtu", "many"])
    assert r.returncode == 2
    assert "--mtu" in r.stderr
    assert "Traceback" not in r.stderr


# --- configuration errors: status 2 --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://vpn.example.com/", "scheme must be https"),
        ("https://", "no host"),
        ("https://[::1/", "bad headend URL"),
    ],
)
def test_bad_url(url: str, why: str) -> None:
    r = run_cli(["connect", url])
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert why in line


@pytest.mark.parametrize("port", ["99999", "65536", "http"])
def test_bad_port(port: str) -> None:
    r = run_cli(["connect", f"https://127.0.0.1:{port}/"])
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert "bad headend URL" in line


def test_password_env_unset() -> None:
    var = "TUNNELSWARM_TEST_SURELY_UNSET"
    r = run_cli(
        ["connect", f"https://127.0.0.1:{free_port()}/", "-u", "u", "--password-env", var],
        env=_env(**{var: None}),
    )
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert var in line


def test_passwd_on_stdin_with_empty_stdin() -> None:
    r = run_cli(["connect", f"https://127.0.0.1:{free_port()}/", "-u", "u", "--passwd-on-stdin"])
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert "--passwd-on-stdin" in line


@pytest.mark.parametrize("pin", ["sha1:abcdef", "AAAA", "pin-sha1:AAAA"])
def test_servercert_must_be_pin_sha256(pin: str) -> None:
    r = run_cli(["connect", f"https://127.0.0.1:{free_port()}/", "--servercert", pin])
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert "pin-sha256:" in line
    assert pin in line


def test_unreadable_cafile() -> None:
    r = run_cli(["connect", f"https://127.0.0.1:{free_port()}/", "--cafile", "/nonexistent/ca.pem"])
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert "--cafile" in line


# --- connection failures: status 1 --------------------------------------------------------


def test_connection_refused() -> None:
    port = free_port()
    r = run_cli(["connect", f"https://127.0.0.1:{port}/", "--reconnect-timeout", "0"])
    line = one_error_line(r.stderr)
    assert r.returncode == 1
    assert f"127.0.0.1:{port}" in line
    assert r.stdout == ""


# --- a local TLS server with an untrusted certificate -------------------------------------

CA = trustme.CA()
LEAF = CA.issue_cert("127.0.0.1", "localhost")
LEAF_PIN = pin_sha256(
    x509.load_pem_x509_certificate(LEAF.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
)


async def _serve_tls(listener: trio.SocketListener, handshakes: list[str]) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    LEAF.configure_cert(ctx)
    while True:
        tcp = await listener.accept()
        stream = trio.SSLStream(tcp, ctx, server_side=True)
        try:
            await stream.do_handshake()
            handshakes.append("ok")
        except trio.BrokenResourceError:
            handshakes.append("refused")
        finally:
            await trio.aclose_forcefully(stream)


async def _cli_against_local_tls(*extra: str, cafile: str | None = None) -> tuple[int, str, str]:
    with trio.fail_after(TIMEOUT):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listener = listeners[0]
        port = listener.socket.getsockname()[1]
        handshakes: list[str] = []
        args = [sys.executable, "-m", "tunnelswarm", "connect", f"https://127.0.0.1:{port}/"]
        args += ["-u", "user", "--password-env", "TUNNELSWARM_TEST_PW", "--reconnect-timeout", "0"]
        if cafile is not None:
            args += ["--cafile", cafile]
        args += list(extra)
        async with listener, trio.open_nursery() as nursery:
            nursery.start_soon(_serve_tls, listener, handshakes)
            proc = await trio.run_process(
                args,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=_env(TUNNELSWARM_TEST_PW="pw"),
            )
            nursery.cancel_scope.cancel()
        assert handshakes, "the client never completed a TLS exchange with the server"
        assert "ok" not in handshakes
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


async def test_untrusted_certificate_names_the_pin() -> None:
    rc, out, err = await _cli_against_local_tls()
    line = one_error_line(err)
    assert rc == 1
    assert "pin-sha256:" in line
    assert LEAF_PIN is not None
    assert LEAF_PIN in line
    assert out == ""


async def test_certificate_from_another_ca_names_the_pin(tmp_path: os.PathLike[str]) -> None:
    other = trustme.CA()
    path = os.path.join(tmp_path, "other-ca.pem")
    other.cert_pem.write_to_path(path)
    rc, _, err = await _cli_against_local_tls(cafile=path)
    line = one_error_line(err)
    assert rc == 1
    assert f"--servercert {LEAF_PIN}" in line


async def test_wrong_pin_names_the_servers_pin() -> None:
    rc, _, err = await _cli_against_local_tls("--servercert", "pin-sha256:" + "B" * 43 + "=")
    line = one_error_line(err)
    assert rc == 1
    assert LEAF_PIN is not None
    assert LEAF_PIN in line
    assert "matches no --servercert pin" in line
