"""Faults during a load run against a real ocserv 1.1.6.

* ocserv killed (SIGKILL, as a crash) and started again mid-run
  (:meth:`OcservInstance.restart`): every client's tunnel goes, its reconnects are
  refused while ocserv is down, the restarted ocserv refuses the old cookies (401), and
  the closed model's next session of each slot logs in again. The run finishes with every
  measurement and each client's outage recorded as recovered by a new session.
* A TCP cut and a UDP blackout injected by the engine on its own sockets
  (``--fault``): after the cut every client reconnects at once with its cookie. Observed:
  ocserv accepts the cookie but, still holding the old connection's address lease, gives
  another address, which ends the session as it ends openconnect's (``address-changed``);
  the slot's next session logs in. Either way each client is back within seconds. The
  blackout takes DTLS away from the clients while the CSTP tunnel stays up.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
import trio

from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.fleet.engine import LoadEngine, LoadResult, LoadSpec
from tunnelswarm.fleet.faults import parse_fault
from tunnelswarm.fleet.plan import ClosedModel, Credentials
from tunnelswarm.testing.ocserv import OcservConfig, OcservInstance

if TYPE_CHECKING:
    from collections.abc import Callable

    OcservFactory = Callable[..., OcservInstance]

pytestmark = pytest.mark.interop

CLIENTS = 40
#: reconnect retries 1 s apart (openconnect: 10 s) so the run stays short
QUICK_RETRY = replace(OPENCONNECT_9_01, reconnect_interval=1.0, reconnect_max_interval=1.0)


def _config(port: int) -> OcservConfig:
    return OcservConfig(
        port=port,
        udp=True,
        dpd=5,  # DTLS is declared dead ~2 x DPD into a UDP blackout
        max_clients=CLIENTS + 20,
        extra={"max-same-clients": "0", "rate-limit-ms": "0", "max-ban-score": "0"},
    )


def _spec(server: OcservInstance, hold: float, *faults: str) -> LoadSpec:
    return LoadSpec(
        model=ClosedModel(concurrency=CLIENTS, ramp_up_rate=40.0, hold=hold),
        profile=QUICK_RETRY,
        headend=server.url,
        servercert=(server.pin,),
        credentials=Credentials.template(server.user, server.password),
        faults=tuple(parse_fault(f) for f in faults),
    )


def _level(r: LoadResult, gauge: str, second: int) -> float:
    return float(r.stats.timeseries_rows()[second][gauge])


async def test_ocserv_killed_and_restarted_mid_run(ocserv_factory: OcservFactory) -> None:
    server = await trio.to_thread.run_sync(lambda: ocserv_factory(_config(4480)))
    engine = LoadEngine(_spec(server, 20.0))
    restarted_at: list[float] = []

    async def operator() -> None:
        await trio.sleep(6.0)  # every client is up by then (40 at 40/s)
        restarted_at.append(engine._t())
        await trio.to_thread.run_sync(lambda: server.restart(2.0))

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(operator)
            r = await engine.run()
    m = r.metrics()
    tunnel = [o for o in r.outages if o.channel == "tunnel"]
    assert sorted(o.slot for o in tunnel) == list(range(CLIENTS)), r.summary()
    [t_kill] = restarted_at
    for o in tunnel:
        assert o.start == pytest.approx(t_kill, abs=1.0)
        assert o.cause == "transport"
        assert o.ended_by == "new session"
        assert o.seconds >= 2.0  # ocserv was down for 2 s
    assert m["errors[cookie-rejected]"] == CLIENTS
    assert m["outages_recovered"] == CLIENTS
    assert m["outages_unrecovered"] == 0
    assert _level(r, "sessions_up", -3) == CLIENTS
    assert r.stats.gauge_peaks["sessions_down"] == CLIENTS


async def test_a_tcp_cut_and_a_udp_blackout_against_ocserv(
    ocserv_factory: OcservFactory,
) -> None:
    server = await trio.to_thread.run_sync(lambda: ocserv_factory(_config(4481)))
    engine = LoadEngine(_spec(server, 45.0, "tcp-cut at 5s", "udp-blackout at 12s for 30s"))
    with trio.fail_after(150):
        r = await engine.run()
    m = r.metrics()
    tunnel = [o for o in r.outages if o.channel == "tunnel"]
    listing = [(o.slot, round(o.start, 2), round(o.seconds, 2), o.ended_by) for o in tunnel]
    cut = [o for o in tunnel if o.start < 10.0]
    assert sorted(o.slot for o in cut) == list(range(CLIENTS)), listing
    for o in cut:  # the cut: every client back within seconds
        assert o.start == pytest.approx(5.0, abs=0.5)
        assert o.ended_by in ("reconnect", "new session")
        assert o.seconds < 5.0
    # On a loaded machine ocserv 1.1.6 sometimes closes the TLS connection of a few of the
    # sessions that logged in again after the cut (without close_notify, ~15 s later; seen
    # with the client code before and after the direct sockets): each such client has a
    # second outage, which must end like the first. Cause on ocserv's side not found yet.
    later = [o for o in tunnel if o.start >= 10.0]
    assert len(later) <= CLIENTS // 4, listing
    for o in later:
        assert o.ended_by in ("reconnect", "new session"), listing
        assert o.seconds < 5.0, listing
    # ocserv 1.1.6 still holds the old lease when the cookie comes back at once and
    # gives another address; the client then ends the session as openconnect does
    # ("Reconnect gave different Legacy IP address"), and the slot logs in again
    new = sum(o.ended_by == "new session" for o in tunnel)
    assert m.get("errors", 0) == m.get("errors[address-changed]", 0) == new
    # the blackout: DTLS declared dead while UDP is blocked; the tunnel itself stays
    dtls_down = [o for o in r.outages if o.channel == "dtls" and o.cause == "dtls-down"]
    assert {o.slot for o in dtls_down} == set(range(CLIENTS)), r.summary()
    for o in dtls_down:
        assert 12.0 <= o.start <= 42.0
    assert _level(r, "sessions_up", -3) == CLIENTS
