"""The emulated client against a real ocserv 1.1.6 (Debian), CSTP only.

ocserv runs in its own network namespace (fixture ``ocserv_server``); the client runs
in the test process in the host namespace and reaches it over the veth pair. Each
test asserts what the real headend did: its ``occtl`` view, its answers to pings
through the tunnel (ocserv's tunnel-side address is the namespace kernel, which
answers ICMP echo), its 401s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio

from tunnelswarm.client.session import ClientOptions, ClientSession, open_client
from tunnelswarm.errors import AuthError, CertificateError, CookieRejected
from tunnelswarm.testing.ocserv import OcservConfig, OcservInstance

if TYPE_CHECKING:
    from collections.abc import Callable

    OcservFactory = Callable[..., OcservInstance]

pytestmark = pytest.mark.interop


def _options(server: OcservInstance, **kw: Any) -> ClientOptions:
    base: dict[str, Any] = {
        "url": server.url,
        "user": server.user,
        "password": server.password,
        "servercert": (server.pin,),
        "reconnect_timeout": 30.0,
    }
    base.update(kw)
    return ClientOptions(**base)


def _users_with(server: OcservInstance, address: str) -> list[dict[str, Any]]:
    found = []
    for u in server.show_users():
        values = {str(v) for v in u.values()}
        if address in values or any(address == str(v).split("/")[0] for v in values):
            found.append(u)
    return found


async def test_login_ping_occtl_and_clean_disconnect(ocserv_server: OcservInstance) -> None:
    server = ocserv_server
    with trio.fail_after(60):
        async with open_client(_options(server)) as session:
            p = session.params
            assert p is not None
            assert p.address is not None
            assert p.server_name is not None
            assert p.server_name.startswith("ocserv")
            # ocserv 1.1.6 with a plain password file: init, username form, password form
            assert [(m, s) for m, _path, s in session.auth_log] == [
                ("POST", 200),
                ("POST", 200),
                ("POST", 200),
            ]
            report = await session.adapter.ping(server.gateway, count=5, interval=0.1)
            assert report.received == 5, report.stats
            assert all(r.rtt_ms > 0 for r in report.replies)
            assert [r.seq for r in report.replies] == [0, 1, 2, 3, 4]
            users = await trio.to_thread.run_sync(_users_with, server, p.address)
            assert len(users) == 1, server.show_users()
            address = p.address
        # BYE b0 = user logout: ocserv drops the session
        for _ in range(50):
            if not await trio.to_thread.run_sync(_users_with, server, address):
                break
            await trio.sleep(0.1)
        assert not _users_with(server, address)


async def test_dpd_round_trip_and_data_counters(ocserv_server: OcservInstance) -> None:
    with trio.fail_after(60):
        async with open_client(_options(ocserv_server)) as session:
            assert await session.check_round_trip(timeout=5)
            report = await session.adapter.ping(ocserv_server.gateway, count=3, interval=0.05)
            assert report.received == 3
            assert session.adapter.counters.tx_packets == 3
            assert session.adapter.counters.rx_packets >= 3


async def test_reconnect_with_cookie_after_headend_cuts_tls(ocserv_server: OcservInstance) -> None:
    server = ocserv_server
    with trio.fail_after(90):
        async with open_client(_options(server)) as session:
            first = session.params
            assert first is not None
            assert (await session.adapter.ping(server.gateway, count=1)).received == 1
            cookie = session.cookie
            # the headend side aborts every established TCP connection of its port (RST)
            await trio.to_thread.run_sync(
                lambda: subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        server.namespace,
                        "ss",
                        "-K",
                        "state",
                        "established",
                        "(",
                        "sport",
                        "=",
                        f":{server.port}",
                        ")",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
            )
            while session.reconnects == 0:
                await trio.sleep(0.05)
            await session.connected.wait()
            assert session.cookie == cookie
            again = session.params
            assert again is not None
            assert again.address == first.address
            report = await session.adapter.ping(server.gateway, count=3, interval=0.1)
            assert report.received == 3


async def test_wrong_password_is_a_clear_auth_error(ocserv_server: OcservInstance) -> None:
    with trio.fail_after(30), pytest.raises(AuthError) as info:
        async with open_client(_options(ocserv_server, password="not-the-password")):
            pytest.fail("login with a wrong password succeeded")
    assert "401" in str(info.value)
    assert "\n" not in str(info.value)


async def test_wrong_pin_is_refused_naming_the_real_pin(ocserv_server: OcservInstance) -> None:
    bad = "pin-sha256:" + "A" * 43 + "="
    with trio.fail_after(30), pytest.raises(CertificateError) as info:
        async with open_client(_options(ocserv_server, servercert=(bad,))):
            pytest.fail("connected despite a wrong pin")
    assert ocserv_server.pin in str(info.value)


async def test_untrusted_certificate_without_pin_is_refused(ocserv_server: OcservInstance) -> None:
    with trio.fail_after(30), pytest.raises(CertificateError) as info:
        async with open_client(_options(ocserv_server, servercert=())):
            pytest.fail("connected to an untrusted server")
    assert "--servercert " + ocserv_server.pin in str(info.value)


async def test_cafile_trusts_the_headend(ocserv_server: OcservInstance) -> None:
    with trio.fail_after(30):
        async with open_client(
            _options(ocserv_server, servercert=(), cafile=str(ocserv_server.cafile))
        ) as session:
            assert session.params is not None


async def test_logged_out_cookie_is_rejected_with_401(ocserv_server: OcservInstance) -> None:
    with trio.fail_after(60):
        async with open_client(_options(ocserv_server)) as session:
            cookie = session.cookie
        assert cookie
        # the BYE (0xb0) above logged the cookie out: a CONNECT with it must get 401
        with pytest.raises(CookieRejected) as info:
            async with open_client(_options(ocserv_server, cookie=cookie)):
                pytest.fail("a logged-out cookie was accepted")
        assert "401" in str(info.value)


async def test_expired_cookie_ends_reconnect_at_once(ocserv_factory: OcservFactory) -> None:
    server = await trio.to_thread.run_sync(
        lambda: ocserv_factory(OcservConfig(port=4445, cookie_timeout=1))
    )
    with trio.fail_after(60):
        session = ClientSession(_options(server))
        await session.authenticate()
        cookie = session.cookie
        await session._open_tunnel(reconnect=False)
        # leave without BYE: ocserv keeps the cookie for cookie-timeout (1 s)
        # plus its 10 s AUTH_SLACK_TIME
        assert session._stream is not None
        await session._stream.aclose()
        await trio.sleep(16)
        with pytest.raises(CookieRejected):
            async with open_client(_options(server, cookie=cookie)):
                pytest.fail("an expired cookie was accepted")


def _cli(server: OcservInstance, *extra: str, password: str = "env") -> list[str]:
    """argv of ``tunnelswarm connect`` against ``server``; password from env or stdin."""
    how = ["--password-env", "TS_TEST_PASSWORD"] if password == "env" else ["--passwd-on-stdin"]
    return [
        sys.executable, "-m", "tunnelswarm", "connect", server.url, "-u", server.user,
        *how, "--servercert", server.pin, *extra,
    ]  # fmt: skip


def test_cli_connect_prints_five_replies(ocserv_server: OcservInstance) -> None:
    env = dict(os.environ, TS_TEST_PASSWORD=ocserv_server.password)
    proc = subprocess.run(
        _cli(
            ocserv_server,
            "--ping",
            ocserv_server.gateway,
            "--ping-count",
            "5",
            "--ping-interval",
            "0.2",
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    replies = [
        line for line in proc.stdout.splitlines() if f"bytes from {ocserv_server.gateway}" in line
    ]
    assert len(replies) == 5, proc.stdout
    assert "5 packets transmitted, 5 received, 0% packet loss" in proc.stdout
    assert "ocserv" in proc.stdout  # negotiated parameters printed


def test_cli_passwd_on_stdin_and_wrong_password_exit_codes(ocserv_server: OcservInstance) -> None:
    base = _cli(ocserv_server, password="stdin")
    ok = subprocess.run(
        base,
        input=ocserv_server.password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "carried traffic" in ok.stdout
    bad = subprocess.run(
        base,
        input="wrong\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 3
    assert bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("tunnelswarm: error: login failed: 401")


def test_cli_ctrl_c_disconnects_cleanly(ocserv_server: OcservInstance, tmp_path: Any) -> None:
    """SIGINT while the tunnel is up: BYE 'Aborted by caller', ocserv drops the session."""
    import signal
    import time

    keylog = tmp_path / "keys.log"
    env = dict(os.environ, TS_TEST_PASSWORD=ocserv_server.password, SSLKEYLOGFILE=str(keylog))
    proc = subprocess.Popen(
        _cli(ocserv_server, "--duration", "120"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        address = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip().startswith("address"):
                address = line.split()[1].split("/")[0]
                break
            assert time.monotonic() < deadline
        assert address is not None
        deadline = time.monotonic() + 10
        while not _users_with(ocserv_server, address):
            assert time.monotonic() < deadline, "session never showed up in occtl"
            time.sleep(0.1)
        byes_before = ocserv_server.log_text().count("received BYE packet")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the DPD round trip carried traffic before the interrupt → exit 0, no traceback
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while _users_with(ocserv_server, address):
        assert time.monotonic() < deadline, "ocserv kept the session after Ctrl-C"
        time.sleep(0.1)
    # ocserv saw our DISCONNECT (BYE), not just a closed TCP connection
    while ocserv_server.log_text().count("received BYE packet") <= byes_before:
        assert time.monotonic() < deadline, "ocserv logged no BYE after Ctrl-C"
        time.sleep(0.1)
    # SSLKEYLOGFILE: NSS key-log lines for the TLS channel
    lines = keylog.read_text().splitlines()
    assert lines
    for line in lines:
        label, client_random, secret = line.split()
        assert label in {
            "CLIENT_RANDOM",
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
            "EXPORTER_SECRET",
        }
        assert len(client_random) == 64
        int(secret, 16)
