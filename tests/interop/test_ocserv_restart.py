"""``OcservInstance.restart()``: ocserv crashes and comes back in place.

What a client whose session was up experiences (ocserv 1.1.6, observed):

1. The SIGKILL closes ocserv's end of the TCP connection (the kernel closes the dead
   worker's socket; ocserv sends no DISCONNECT): the client sees "TLS connection closed by
   peer without close_notify" and starts a reconnect (cause ``transport``).
2. While ocserv is down (``down`` seconds) each reconnect attempt's TCP connect is refused;
   the client retries on its reconnect schedule.
3. The restarted ocserv knows no session: the CONNECT with the old cookie is answered
   ``401 Cookie is not acceptable`` (ocserv logs "failed cookie authentication attempt"),
   so the session ends with :class:`~tunnelswarm.errors.CookieRejected` — it does not
   log in again by itself.

A new client logs in afterwards at the same URL with the same pin, DTLS included.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
import trio

from tunnelswarm.client.session import ClientOptions, SessionEvent, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.errors import CookieRejected
from tunnelswarm.testing.ocserv import OcservConfig, OcservInstance

if TYPE_CHECKING:
    from collections.abc import Callable

    OcservFactory = Callable[..., OcservInstance]

pytestmark = pytest.mark.interop

DOWN = 2.0  # seconds without ocserv


def _options(server: OcservInstance) -> ClientOptions:
    return ClientOptions(
        url=server.url,
        user=server.user,
        password=server.password,
        servercert=(server.pin,),
        # retry after 1 s, 2 s, ... (openconnect: 10 s, 20 s, ...) to keep the test short
        profile=replace(OPENCONNECT_9_01, reconnect_interval=1.0),
        reconnect_timeout=60.0,
    )


async def _users(server: OcservInstance) -> int:
    return len(await trio.to_thread.run_sync(server.show_users))


async def test_restart_ends_old_sessions_and_serves_new_ones(
    ocserv_factory: OcservFactory,
) -> None:
    server = await trio.to_thread.run_sync(
        lambda: ocserv_factory(OcservConfig(port=4471, udp=True))
    )
    url, pin, namespace, old_pid = server.url, server.pin, server.namespace, server.pid
    events: list[SessionEvent] = []
    dtls_up = trio.Event()

    def on_event(event: SessionEvent) -> None:
        events.append(event)
        if event.kind == "dtls-up":
            dtls_up.set()

    times: dict[str, float] = {}

    async def through_restart() -> None:
        async with open_client(_options(server), on_event=on_event):
            await dtls_up.wait()
            assert await _users(server) == 1
            times["restart"] = trio.current_time()
            await trio.to_thread.run_sync(lambda: server.restart(DOWN))
            times["back"] = trio.current_time()
            await trio.sleep_forever()  # until the session fails

    with trio.fail_after(60):
        with pytest.raises(CookieRejected) as info:
            await through_restart()
        ended = trio.current_time()
    assert "401" in str(info.value)
    assert times["back"] - times["restart"] >= DOWN
    assert ended >= times["back"]  # refused only once ocserv was back
    kinds = [e.kind for e in events]
    assert kinds.count("connect") == 1, kinds  # the reconnect never got a tunnel
    reconnects = [e for e in events if e.kind == "reconnect"]
    assert [e.cause for e in reconnects] == ["transport"], events
    assert re.search(r"closed|reset", reconnects[0].detail), reconnects[0].detail

    assert server.running()
    assert (server.url, server.pin, server.namespace) == (url, pin, namespace)
    assert server.pid != old_pid
    log = server.log_text()
    assert "=== tunnelswarm restart" in log
    assert "failed cookie authentication attempt" in log.rpartition("=== tunnelswarm restart")[2]

    # a fresh login works, DTLS included, and leaves nobody behind
    dtls_up = trio.Event()
    events.clear()
    with trio.fail_after(30):
        async with open_client(_options(server), on_event=on_event) as session:
            await dtls_up.wait()
            assert session.params is not None
            assert await _users(server) == 1
        while await _users(server):
            await trio.sleep(0.1)


def test_restart_after_stop_is_an_error(ocserv_factory: OcservFactory) -> None:
    server = ocserv_factory(OcservConfig(port=4472))
    server.stop()
    with pytest.raises(RuntimeError, match="after stop"):
        server.restart()
