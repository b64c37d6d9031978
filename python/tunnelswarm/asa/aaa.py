"""The mock ASA's local user authentication with the lockout of ``aaa local authentication
attempts max-fail``: a sans-IO state machine and ``show aaa local user``.

Theory of operation
-------------------
:class:`LocalAaa` holds the runtime state the configuration does not: per local user the
number of consecutive failed logins and whether the account is locked. Every login goes
through :meth:`LocalAaa.authenticate` with the current :class:`AsaConfig` snapshot and
returns an :class:`AuthOutcome` that says what to log and answer; nothing here logs, reads
a clock or touches a socket.

* Without ``aaa local authentication attempts max-fail N`` (the ASA default) nothing is
  counted and nobody is locked. Removing the command (:meth:`LocalAaa.reset`) unlocks
  everybody and forgets the counters (UNCONFIRMED: what a real ASA does with existing
  locks then is not documented; IOS keeps them).
* With it, each failed login of a local user adds one; the failure that reaches ``N``
  locks the account (:attr:`AuthOutcome.locked_now`: syslog 113006 once). A locked
  user's logins fail whatever the password, with the same answer as a wrong password
  (the ASA gives no hint) and 113015 reason ``Account locked`` (UNCONFIRMED text). A
  success resets the counter.
* Users of privilege 15 are not affected (ASA command reference for ``aaa local
  authentication attempts max-fail``: "this feature does not affect level 15 users");
  their failures are not counted either.
* A name that is no local user is rejected with reason ``User was not found`` and
  counts nothing (there is no account to lock).
* ``clear aaa local user lockout {all | username N}`` unlocks and zeroes the counter
  (:meth:`LocalAaa.clear_lockout`); ``clear aaa local user fail-attempts {all |
  username N}`` zeroes counters and keeps locks (:meth:`LocalAaa.clear_fail_attempts`).

``show aaa local user [locked]`` (:func:`render_show_aaa_local_user`) lists the users with
a failed attempt or a lock; the layout follows the sample in Cisco's command reference as
remembered (UNCONFIRMED): ``Lock-time Failed-attempts Locked User`` and rows such as
``        -               3      Y test``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tunnelswarm.asa.config import AsaConfig, User

__all__ = [
    "EXEMPT_PRIVILEGE",
    "REASON_INVALID_PASSWORD",
    "REASON_LOCKED",
    "REASON_NO_USER",
    "AuthOutcome",
    "LocalAaa",
    "render_show_aaa_local_user",
]

#: users of this privilege level are never locked out
EXEMPT_PRIVILEGE: Final = 15
#: 113015 ``reason =`` texts
REASON_INVALID_PASSWORD: Final = "Invalid password"
REASON_NO_USER: Final = "User was not found"
REASON_LOCKED: Final = "Account locked"  # UNCONFIRMED wording
SHOW_HEADER: Final = "Lock-time Failed-attempts Locked User"


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What one login attempt came to.

    ``user`` is the authenticated local user (``None``: rejected, ``reason`` says why, for
    syslog 113015); ``locked_now`` is set on the one failure that locked the account (the
    ``max-fail`` value it exceeded, for syslog 113006)."""

    user: User | None
    reason: str | None = None
    locked_now: int | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


class LocalAaa:
    """Failed-login counters and locks of the local user database (module docstring)."""

    def __init__(self) -> None:
        self._failed: dict[str, int] = {}
        self._locked: set[str] = set()

    # ---------------------------------------------------------------- queries
    def failed_attempts(self, name: str) -> int:
        return self._failed.get(name, 0)

    def is_locked(self, name: str) -> bool:
        return name in self._locked

    @property
    def locked(self) -> frozenset[str]:
        return frozenset(self._locked)

    # ---------------------------------------------------------------- logins
    def authenticate(self, cfg: AsaConfig, name: str, password: str) -> AuthOutcome:
        """Check ``name``/``password`` against ``cfg``'s local users and the lockout."""
        user = cfg.user(name)
        if user is None:
            return AuthOutcome(None, REASON_NO_USER)
        max_fail = cfg.aaa_local_max_fail
        counted = max_fail is not None and user.privilege != EXEMPT_PRIVILEGE
        if counted and name in self._locked:
            return AuthOutcome(None, REASON_LOCKED)
        if user.password == password:
            self._failed.pop(name, None)
            return AuthOutcome(user)
        if not counted or max_fail is None:
            return AuthOutcome(None, REASON_INVALID_PASSWORD)
        n = self._failed.get(name, 0) + 1
        self._failed[name] = n
        if n >= max_fail:
            self._locked.add(name)
            return AuthOutcome(None, REASON_INVALID_PASSWORD, locked_now=max_fail)
        return AuthOutcome(None, REASON_INVALID_PASSWORD)

    # ---------------------------------------------------------------- administration
    def clear_lockout(self, name: str | None = None) -> list[str]:
        """Unlock ``name`` (None: everybody) and zero its counter; the names that were
        locked, sorted (one syslog 113007 each)."""
        if name is None:
            names = sorted(self._locked)
            self.reset()
            return names
        was = name in self._locked
        self._locked.discard(name)
        self._failed.pop(name, None)
        return [name] if was else []

    def clear_fail_attempts(self, name: str | None = None) -> None:
        """Zero the counter of ``name`` (None: everybody); locks stay."""
        if name is None:
            self._failed.clear()
        else:
            self._failed.pop(name, None)

    def forget(self, name: str) -> None:
        """The local user was removed (``no username``)."""
        self._failed.pop(name, None)
        self._locked.discard(name)

    def reset(self) -> None:
        """``no aaa local authentication attempts max-fail``: nobody locked, no counts."""
        self._failed.clear()
        self._locked.clear()

    def rows(self) -> list[tuple[str, int, bool]]:
        """``(user, failed attempts, locked)`` of every user with either, by name."""
        names = sorted(set(self._failed) | self._locked)
        return [(n, self._failed.get(n, 0), n in self._locked) for n in names]


def render_show_aaa_local_user(
    rows: Iterable[tuple[str, int, bool]], *, locked_only: bool = False
) -> list[str]:
    """``show aaa local user [locked]`` lines (layout UNCONFIRMED, module docstring).

    Lock-time is always ``-`` (the mock keeps no lock times)."""
    out = [SHOW_HEADER]
    for name, failed, locked in rows:
        if locked_only and not locked:
            continue
        out.append(f"{'-':>9} {failed:>15} {'Y' if locked else 'N':>6} {name}")
    return out
