"""Fixtures for tests against real peers; every test in this directory is ``interop``.

``ocserv_server`` is one ocserv for the whole session (default :class:`OcservConfig`);
``ocserv_factory`` starts extra instances with custom configs, each in its own network
namespace, all stopped at the end of the test. Work directories are removed after the
server stops unless ``TUNNELSWARM_KEEP_PEER_DIRS=1``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, Protocol

import pytest

from tunnelswarm.testing.ocserv import (
    OcservConfig,
    OcservInstance,
    PeerUnavailable,
    start_ocserv,
)

_HERE = Path(__file__).parent


class OcservFactory(Protocol):
    def __call__(
        self, config: OcservConfig | None = None, *, wait: float = 15.0
    ) -> OcservInstance: ...


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.interop)


def _keep_dirs() -> bool:
    return os.environ.get("TUNNELSWARM_KEEP_PEER_DIRS", "") == "1"


def _start(
    tmp_path_factory: pytest.TempPathFactory,
    peer_unavailable: Callable[[str], NoReturn],
    config: OcservConfig | None,
    wait: float,
) -> OcservInstance:
    workdir = tmp_path_factory.mktemp("ocserv")
    try:
        return start_ocserv(workdir, config, wait=wait)
    except PeerUnavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        peer_unavailable(str(exc))
    except BaseException:
        if not _keep_dirs():
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def _stop(inst: OcservInstance) -> None:
    try:
        inst.stop()
    finally:
        if not _keep_dirs():
            shutil.rmtree(inst.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def ocserv_server(
    tmp_path_factory: pytest.TempPathFactory,
    peer_unavailable: Callable[[str], NoReturn],
) -> Iterator[OcservInstance]:
    """A running ocserv (default config) shared by the whole session."""
    inst = _start(tmp_path_factory, peer_unavailable, None, 15.0)
    try:
        yield inst
    finally:
        _stop(inst)


@pytest.fixture(scope="session")
def ocserv_udp_server(
    tmp_path_factory: pytest.TempPathFactory,
    peer_unavailable: Callable[[str], NoReturn],
) -> Iterator[OcservInstance]:
    """A running ocserv serving DTLS too (UDP on the TLS port), shared by the session."""
    inst = _start(tmp_path_factory, peer_unavailable, OcservConfig(port=4450, udp=True), 15.0)
    try:
        yield inst
    finally:
        _stop(inst)


@pytest.fixture
def ocserv_factory(
    tmp_path_factory: pytest.TempPathFactory,
    peer_unavailable: Callable[[str], NoReturn],
) -> Iterator[OcservFactory]:
    """``factory(OcservConfig(...))`` starts another ocserv; all are stopped after the test."""
    started: list[OcservInstance] = []

    def factory(config: OcservConfig | None = None, *, wait: float = 15.0) -> OcservInstance:
        inst = _start(tmp_path_factory, peer_unavailable, config, wait)
        started.append(inst)
        return inst

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for inst in reversed(started):
            try:
                _stop(inst)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
