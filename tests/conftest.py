"""Project-wide pytest configuration.

Tests marked ``interop`` need a real peer (ocserv in a network namespace, see
:mod:`tunnelswarm.testing.ocserv`). When this machine cannot run one they are skipped
with the one-line reason, except when ``TUNNELSWARM_REQUIRE_PEERS=1`` (CI): then they
fail with that reason and are never skipped.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

import pytest

REQUIRE_PEERS_ENV = "TUNNELSWARM_REQUIRE_PEERS"
INTEROP_MARKER = (
    "interop: runs a real peer (ocserv/openconnect) inside a network namespace; needs root"
)


def peers_required() -> bool:
    return os.environ.get(REQUIRE_PEERS_ENV, "") == "1"


def peer_unavailable(reason: str) -> NoReturn:
    """Skip (or, with TUNNELSWARM_REQUIRE_PEERS=1, fail) the current test."""
    if peers_required():
        pytest.fail(f"real peer required ({REQUIRE_PEERS_ENV}=1) but unavailable: {reason}")
    pytest.skip(f"real peer unavailable: {reason}")


@functools.cache
def _peer_reason() -> str | None:
    try:
        from tunnelswarm.testing.ocserv import peers_available
    except ImportError as exc:  # pragma: no cover - broken checkout / PYTHONPATH
        return f"cannot import tunnelswarm.testing.ocserv: {exc}"
    return peers_available()


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


_previous_sigterm: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global _previous_sigterm
    registered = config.getini("markers")
    if not any(str(line).split(":", 1)[0].strip() == "interop" for line in registered):
        config.addinivalue_line("markers", INTEROP_MARKER)
    # A run ended by SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so fixture teardown
    # still stops real peers and removes their network namespaces.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        _previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _previous_sigterm
    if _previous_sigterm is not None:
        signal.signal(signal.SIGTERM, _previous_sigterm)
        _previous_sigterm = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("interop") is None:
        return
    reason = _peer_reason()
    if reason is not None:
        peer_unavailable(reason)


@pytest.fixture(scope="session", name="peer_unavailable")
def peer_unavailable_fixture() -> Callable[[str], NoReturn]:
    """The skip-or-fail policy, for fixtures/tests that discover a missing peer late."""
    return peer_unavailable
