"""The headend preflight against the in-process mock ASA over loopback.

The mock runs ``examples/asa-9.1.cfg`` with ``vpn-simultaneous-logins 1``: the
preflight's second login of user ``test`` preempts the first (113019), which the report
shows as a per-user cap of 1, warned about for a plan of several sessions per user. The
answers of that configuration: X-CSTP-MTU 1347, X-DTLS-MTU 1418, DTLS up, the pool's
netmask /24 (at most 253 clients).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from _asa_sim import EXAMPLE, GUARD, options, start_asa

from tunnelswarm.fleet.preflight import PreflightError, preflight


def _config(logins: int) -> str:
    text = EXAMPLE.read_text()
    assert " vpn-simultaneous-logins 100\n" in text
    return text.replace(" vpn-simultaneous-logins 100\n", f" vpn-simultaneous-logins {logins}\n")


async def test_preflight_detects_cap_pool_and_mtus(tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            info = await start_asa(nursery, tmp_path, _config(1))
            report = await preflight(options(info), planned_sessions=300, planned_users=10)
            nursery.cancel_scope.cancel()
    p = report.params
    assert (p.cstp_mtu, p.dtls_mtu) == (1347, 1418)
    assert report.dtls_up is True
    assert report.pool_size == 253
    assert report.second.outcome == "preempted"
    assert report.second.cap == 1
    assert not report.ocserv
    text = report.render()
    assert "X-CSTP-MTU 1347, X-DTLS-MTU 1418" in text
    assert "at most 253 clients" in text
    warned = "\n".join(report.warnings)
    assert "per-user cap" in warned
    assert "30 sessions on each user" in warned
    assert "address pool" in warned
    assert "300 planned sessions" in warned
    assert "ocserv detected" not in warned
    assert "DTLS" not in warned


async def test_preflight_without_cap_no_warnings(tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            info = await start_asa(nursery, tmp_path)  # vpn-simultaneous-logins 100
            report = await preflight(options(info), planned_sessions=20, planned_users=20)
            nursery.cancel_scope.cancel()
    assert report.second.outcome == "both-up"
    assert report.second.cap is None
    assert report.warnings == ()
    assert "warnings: none" in report.render()


async def test_preflight_login_failure_is_one_line(tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            info = await start_asa(nursery, tmp_path)
            with pytest.raises(PreflightError) as e:
                await preflight(
                    options(info, password="wrong"), planned_sessions=1, planned_users=1
                )
            nursery.cancel_scope.cancel()
    assert "preflight login" in str(e.value)
    assert "\n" not in str(e.value)
