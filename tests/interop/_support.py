"""Helpers shared by the interop test modules (imported as ``_support``)."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import replace
from typing import Any

import trio

from tunnelswarm.client.session import ClientOptions
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.testing.ocserv import OcservInstance


def dtls_options(server: OcservInstance, dtls: str, dtls12: str, **kw: Any) -> ClientOptions:
    """Client options for ``server`` offering exactly these DTLS cipher lists
    (like openconnect's ``--dtls-ciphers`` / ``--dtls12-ciphers``)."""
    base: dict[str, Any] = {
        "url": server.url,
        "user": server.user,
        "password": server.password,
        "servercert": (server.pin,),
        "profile": replace(OPENCONNECT_9_01, dtls_ciphers=dtls, dtls12_ciphers=dtls12),
        "reconnect_timeout": 30.0,
    }
    base.update(kw)
    return ClientOptions(**base)


async def reap_process_group(proc: trio.Process, wait: float = 5.0) -> None:
    """Kill ``proc``'s process group if it still runs, then wait for it (shielded).

    openconnect runs its ``--script`` in its own group; a test must leave nothing behind.
    """
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with trio.move_on_after(wait):
            await proc.wait()
