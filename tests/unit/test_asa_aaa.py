"""The mock ASA's local-user lockout (asa/aaa.py): ``aaa local authentication attempts
max-fail``, its state machine, ``clear aaa local user …`` and ``show aaa local user``."""

from __future__ import annotations

import pytest

from tunnelswarm.asa.aaa import (
    REASON_INVALID_PASSWORD,
    REASON_LOCKED,
    REASON_NO_USER,
    LocalAaa,
    render_show_aaa_local_user,
)
from tunnelswarm.asa.config import AsaConfig, parse_config

USERS = """\
username alice password a1 privilege 2
username bob password b1
username root password r1 privilege 15
"""


def cfg(max_fail: int | None) -> AsaConfig:
    extra = "" if max_fail is None else f"aaa local authentication attempts max-fail {max_fail}\n"
    return parse_config(USERS + extra)


def test_without_max_fail_nothing_is_counted_or_locked() -> None:
    c, aaa = cfg(None), LocalAaa()
    for _ in range(20):
        out = aaa.authenticate(c, "alice", "wrong")
        assert (out.ok, out.reason, out.locked_now) == (False, REASON_INVALID_PASSWORD, None)
    ok = aaa.authenticate(c, "alice", "a1")
    assert ok.ok
    assert ok.user is not None
    assert ok.user.name == "alice"
    assert aaa.rows() == []


def test_lockout_after_n_failures_then_even_the_right_password_fails() -> None:
    c, aaa = cfg(3), LocalAaa()
    assert [aaa.authenticate(c, "alice", "x").locked_now for _ in range(2)] == [None, None]
    assert aaa.failed_attempts("alice") == 2
    assert not aaa.is_locked("alice")
    third = aaa.authenticate(c, "alice", "x")
    assert (third.ok, third.reason, third.locked_now) == (False, REASON_INVALID_PASSWORD, 3)
    assert aaa.is_locked("alice")
    # locked: the right password fails too, 113006 is not reported again
    for password in ("a1", "x"):
        out = aaa.authenticate(c, "alice", password)
        assert (out.ok, out.reason, out.locked_now) == (False, REASON_LOCKED, None)
    assert aaa.failed_attempts("alice") == 3  # attempts on a locked account do not count
    # others are not affected
    assert aaa.authenticate(c, "bob", "b1").ok
    assert aaa.rows() == [("alice", 3, True)]


def test_success_resets_the_counter() -> None:
    c, aaa = cfg(3), LocalAaa()
    for password in ("x", "x", "a1", "x", "x"):
        aaa.authenticate(c, "alice", password)
    assert aaa.failed_attempts("alice") == 2
    assert not aaa.is_locked("alice")
    assert aaa.authenticate(c, "alice", "a1").ok
    assert aaa.rows() == []


def test_max_fail_one_locks_at_the_first_failure() -> None:
    c, aaa = cfg(1), LocalAaa()
    assert aaa.authenticate(c, "bob", "x").locked_now == 1
    assert aaa.authenticate(c, "bob", "b1").reason == REASON_LOCKED


def test_privilege_15_and_unknown_users_are_never_locked() -> None:
    c, aaa = cfg(1), LocalAaa()
    for _ in range(5):
        assert aaa.authenticate(c, "root", "x").reason == REASON_INVALID_PASSWORD
        out = aaa.authenticate(c, "nobody", "x")
        assert (out.ok, out.reason, out.locked_now) == (False, REASON_NO_USER, None)
    assert aaa.authenticate(c, "root", "r1").ok
    assert aaa.rows() == []


def test_clear_lockout_one_or_all_and_fail_attempts() -> None:
    c, aaa = cfg(2), LocalAaa()
    for name in ("bob", "alice", "bob", "alice"):
        aaa.authenticate(c, name, "x")
    assert aaa.locked == {"alice", "bob"}
    assert aaa.clear_lockout("carol") == []
    assert aaa.clear_lockout("bob") == ["bob"]
    assert aaa.failed_attempts("bob") == 0
    assert aaa.clear_lockout("bob") == []
    assert aaa.authenticate(c, "bob", "b1").ok
    aaa.authenticate(c, "bob", "x")
    assert aaa.rows() == [("alice", 2, True), ("bob", 1, False)]
    aaa.clear_fail_attempts("bob")
    assert aaa.rows() == [("alice", 2, True)]
    aaa.authenticate(c, "bob", "x")
    aaa.clear_fail_attempts()  # counters go, locks stay
    assert aaa.rows() == [("alice", 0, True)]
    assert aaa.authenticate(c, "alice", "a1").reason == REASON_LOCKED
    aaa.authenticate(c, "bob", "x")
    assert aaa.clear_lockout() == ["alice"]
    assert aaa.rows() == []
    assert aaa.authenticate(c, "alice", "a1").ok


def test_forget_and_reset() -> None:
    c, aaa = cfg(1), LocalAaa()
    aaa.authenticate(c, "alice", "x")
    aaa.authenticate(c, "bob", "x")
    aaa.forget("alice")
    assert aaa.rows() == [("bob", 1, True)]
    aaa.reset()
    assert aaa.rows() == []
    assert aaa.authenticate(c, "bob", "b1").ok


def test_lowering_max_fail_locks_at_the_next_failure() -> None:
    aaa = LocalAaa()
    for _ in range(3):
        aaa.authenticate(cfg(5), "alice", "x")
    assert not aaa.is_locked("alice")
    assert aaa.authenticate(cfg(2), "alice", "x").locked_now == 2


@pytest.mark.parametrize("locked_only", [False, True])
def test_show_aaa_local_user_layout(locked_only: bool) -> None:
    rows = [("alice", 3, True), ("bob", 12, False)]
    lines = render_show_aaa_local_user(rows, locked_only=locked_only)
    expected = [
        "Lock-time Failed-attempts Locked User",
        "        -               3      Y alice",
        "        -              12      N bob",
    ]
    assert lines == (expected[:2] if locked_only else expected)
    header = lines[0]
    # the values end under the end of their column titles
    assert lines[1].index("3") == header.index("Failed-attempts") + len("Failed-attempts") - 1
    assert lines[1].index("Y") == header.index("Locked") + len("Locked") - 1
    assert lines[1].index("alice") == header.index("User")
    assert render_show_aaa_local_user([]) == [expected[0]]
