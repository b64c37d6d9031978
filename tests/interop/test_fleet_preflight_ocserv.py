"""The headend preflight against a real ocserv 1.1.6 with ``max-same-clients = 1``.

The preflight must recognise ocserv (its ``X-CSTP-Server-Name``) and warn about its ban
score and ``rate-limit-ms``, and find the per-user cap: ocserv refuses the second login
of the same user while the first session is up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from tunnelswarm.client.session import ClientOptions
from tunnelswarm.fleet.preflight import preflight
from tunnelswarm.testing.ocserv import OcservConfig, OcservInstance

if TYPE_CHECKING:
    from collections.abc import Callable

    OcservFactory = Callable[..., OcservInstance]

pytestmark = pytest.mark.interop


async def test_preflight_detects_ocserv_and_its_user_cap(ocserv_factory: OcservFactory) -> None:
    server = await trio.to_thread.run_sync(
        lambda: ocserv_factory(OcservConfig(port=4454, udp=True, extra={"max-same-clients": "1"}))
    )
    options = ClientOptions(
        url=server.url,
        user=server.user,
        password=server.password,
        servercert=(server.pin,),
        reconnect_timeout=10.0,
    )
    with trio.fail_after(90):
        report = await preflight(options, planned_sessions=10, planned_users=1)
    text = report.render()
    assert report.ocserv, text
    assert report.server is not None
    assert report.server.startswith("ocserv"), text
    assert report.second.outcome == "refused", text
    assert report.second.cap == 1
    assert report.pool_size == 253, text  # ipv4-network 192.168.99.0/24
    warned = "\n".join(report.warnings)
    assert "ocserv detected" in warned
    assert "per-user cap" in warned
    assert "10 sessions on each user" in warned
    assert report.params.cstp_mtu is not None
    assert "X-CSTP-MTU" in text
    # both sessions were closed: ocserv lists nobody
    for _ in range(50):
        if not await trio.to_thread.run_sync(server.show_users):
            break
        await trio.sleep(0.1)
    assert not server.show_users()
