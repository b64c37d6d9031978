"""Wrong-password and locked-out answers, and ``vpn-simultaneous-logins``, against the real
mock ASA over loopback (``examples/asa-9.1.cfg`` plus the lines each test adds) with our
client, a raw TLS client and the TCP admin console. Every test is bounded by
``trio.fail_after`` in real seconds.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
import trio
from _asa_sim import EXAMPLE, GUARD, INSIDE, Admin, RawTls, options, start_asa, wait_for

from tunnelswarm.asa.server import MockAsa
from tunnelswarm.client.session import open_client
from tunnelswarm.errors import AuthError, CookieRejected, TunnelswarmError

#: alice (privilege 2) is locked out after 2 failures; test (privilege 15) never is
LOCKOUT = (
    "username alice password s3cret privilege 2\naaa local authentication attempts max-fail 2\n"
)
INIT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" type="init" '
    b'aggregate-auth-version="2"><version who="vpn">9.01</version></config-auth>'
)


def log_text(asa: MockAsa) -> str:
    return "\n".join(asa.syslog_buffer.lines())


async def raw_login(port: int, user: str, password: str) -> bytes:
    """One XML login on a new TLS connection; the answer to the auth-reply, with the
    (random) aggauth-handle blanked out."""
    async with RawTls.connect(port) as raw:
        status, body = await raw.post(INIT)
        assert status == 200, body
        m = re.search(rb"<aggauth-handle>(\d+)</aggauth-handle>", body)
        assert m is not None, body
        status, body = await raw.post(
            b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" '
            b'type="auth-reply" aggregate-auth-version="2"><opaque is-for="sg"><aggauth-handle>'
            + m.group(1)
            + b"</aggauth-handle></opaque><auth><username>"
            + user.encode()
            + b"</username><password>"
            + password.encode()
            + b"</password></auth></config-auth>"
        )
        assert status == 200, body
        return re.sub(rb"<aggauth-handle>\d+</aggauth-handle>", b"<aggauth-handle/>", body)


# --------------------------------------------------------------------------- lockout
async def test_locked_out_user_fails_with_the_right_password_until_unlocked(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path, EXAMPLE.read_text() + LOCKOUT)
        asa = info.asa
        assert info.tcp_port is not None
        assert info.admin_port is not None
        alice = partial(options, info, no_dtls=True, user="alice")
        # two wrong passwords: the second locks the account
        with pytest.raises(AuthError, match="Login failed"):
            async with open_client(alice(password="wrong")):
                pass
        assert asa.aaa.failed_attempts("alice") == 1
        assert not asa.aaa.is_locked("alice")
        wrong = await raw_login(info.tcp_port, "alice", "wrong")
        assert b"<error" in wrong
        assert b"Login failed." in wrong
        assert asa.aaa.is_locked("alice")
        # locked: the right password gets the very same answer as a wrong one
        assert await raw_login(info.tcp_port, "alice", "s3cret") == wrong
        with pytest.raises(AuthError, match="Login failed"):
            async with open_client(alice(password="s3cret")):
                pass
        assert len(asa.sessiondb) == 0
        text = log_text(asa)
        assert text.count("-113006:") == 1
        assert (
            "%ASA-6-113006: User 'alice' locked out on exceeding '2' successive failed "
            "authentication attempts" in text
        )
        assert text.count("reason = Invalid password : local database : user = alice") == 2
        assert text.count("reason = Account locked : local database : user = alice") == 2
        assert "-113012:" not in text
        # privilege 15 is never locked out (user test of the example)
        for _ in range(3):
            with pytest.raises(AuthError):
                async with open_client(options(info, no_dtls=True, password="nope")):
                    pass
        async with open_client(options(info, no_dtls=True)) as session:
            assert session.params is not None
        # the admin console shows and clears the lock
        async with Admin.connect(info.admin_port) as admin:
            shown = await admin.cmd("show aaa local user")
            assert shown.splitlines() == [
                "Lock-time Failed-attempts Locked User",
                "        -               2      Y alice",
            ]
            assert await admin.cmd("sh aaa loc us lock") == shown
            assert await admin.cmd("clear aaa local user lockout username alice") == ""
            assert await admin.cmd("show aaa local user locked") == (
                "Lock-time Failed-attempts Locked User"
            )
            assert "unlocked" not in await admin.cmd("clear aaa local user lockout all")
            await admin.cmd("disable")  # privileged only
            assert "ERROR" in await admin.cmd("clear aaa local user lockout all")
        assert log_text(asa).count("%ASA-6-113007: User 'alice' unlocked by 'enable_15'") == 1
        async with open_client(alice(password="s3cret")) as session:
            assert session.params is not None
            assert session.params.address.startswith("10.10.10.")
        assert asa.aaa.rows() == []
        assert (
            "%ASA-6-113012: AAA user authentication Successful : local database : user = alice"
            in log_text(asa)
        )


async def test_no_max_fail_means_no_lockout_and_no_form_unlocks(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path, EXAMPLE.read_text() + LOCKOUT)
        asa = info.asa
        assert info.tcp_port is not None
        assert info.admin_port is not None
        for _ in range(2):
            await raw_login(info.tcp_port, "alice", "wrong")
        assert asa.aaa.is_locked("alice")
        async with Admin.connect(info.admin_port) as admin:
            await admin.config("no aaa local authentication attempts max-fail")
            assert await admin.cmd("show aaa local user") == "Lock-time Failed-attempts Locked User"
        for _ in range(5):
            await raw_login(info.tcp_port, "alice", "wrong")
        async with open_client(options(info, no_dtls=True, user="alice", password="s3cret")):
            pass
        assert log_text(asa).count("-113006:") == 1


# --------------------------------------------------------------------------- simultaneous logins
async def test_third_login_with_limit_two_preempts_the_first_session(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    text = EXAMPLE.read_text().replace(
        " vpn-simultaneous-logins 100\n", " vpn-simultaneous-logins 2\n"
    )
    assert " vpn-simultaneous-logins 2\n" in text
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path, text)
        asa = info.asa
        assert info.tcp_port is not None
        first_up = trio.Event()
        first_cookie: list[str] = []
        first_error: list[TunnelswarmError] = []

        async def first_client() -> None:
            try:
                async with open_client(options(info, no_dtls=True, hostname="first")) as s:
                    first_cookie.append(s.cookie or "")
                    first_up.set()
                    await trio.sleep_forever()
            except TunnelswarmError as e:
                first_error.append(e)

        nursery.start_soon(first_client)
        await first_up.wait()
        [first] = list(asa.sessiondb)
        async with open_client(options(info, no_dtls=True, hostname="second")) as second:
            assert asa.sessiondb.count_user("test") == 2
            assert not first_error
            async with open_client(options(info, no_dtls=True, hostname="third")) as third:
                # the first client sees its tunnel closed, reconnects, and gets a 401
                await wait_for(lambda: bool(first_error), 15)
                assert isinstance(first_error[0], CookieRejected), first_error
                sessions = list(asa.sessiondb)
                assert len(sessions) == 2
                assert first.index not in [s.index for s in sessions]
                for session in (second, third):
                    report = await session.adapter.ping(INSIDE, count=1, timeout=2.0)
                    assert report.received == 1
                    assert session.reconnects == 0
        async with RawTls.connect(info.tcp_port) as raw:
            assert await raw.connect_tunnel(first_cookie[0]) == 401
        text = log_text(asa)
        assert text.count("Reason: Port Preempted") == 1
        assert re.search(
            r"%ASA-4-113019: Group = ac_users_group, Username = test, IP = 127\.0\.0\.1, "
            r"Session disconnected\. Session Type: AnyConnect-Parent, Duration: \S+, "
            r"Bytes xmt: \d+, Bytes rcv: \d+, Reason: Port Preempted",
            text,
        ), text
        assert "WebVPN session terminated: Port Preempted." in text


async def test_simultaneous_logins_zero_refuses_every_login(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    text = EXAMPLE.read_text().replace(
        " vpn-simultaneous-logins 100\n", " vpn-simultaneous-logins 0\n"
    )
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path, text)
        asa = info.asa
        with pytest.raises(AuthError, match="Login failed"):
            async with open_client(options(info, no_dtls=True)):
                pass
        assert len(asa.sessiondb) == 0
        lines = log_text(asa)
        assert (
            "%ASA-4-113029: Group <ac_users_group> User <test> IP <127.0.0.1> Session could "
            "not be established: session limit of 0 reached" in lines
        )
        assert "-113039:" not in lines
