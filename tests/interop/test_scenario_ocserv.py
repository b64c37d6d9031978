"""A scenario against a real headend (ocserv in a namespace), impairments in our socket layer.

The scenario names the headend by URL and pin; the UDP block is applied by the client's
own socket layer (no root, no firewall), so the same file works against any headend.
"""

from __future__ import annotations

import pytest

from tunnelswarm.scenario.model import scenario_from_dict
from tunnelswarm.scenario.report import verdict_table
from tunnelswarm.scenario.run import RunOptions, run_scenario
from tunnelswarm.testing.ocserv import OcservInstance


def _scenario(ocserv: OcservInstance, *, block_udp: bool) -> dict[str, object]:
    expect = (
        [
            {"check": "dtls_ever_up_ratio == 0", "why": "UDP blocked in our socket layer"},
            {"check": "udp_blocked > 0", "why": "the ClientHellos were dropped"},
        ]
        if block_udp
        else [{"check": "dtls_up_ratio == 1", "why": "UDP open: PSK-NEGOTIATE DTLS"}]
    )
    return {
        "name": "ocserv-udp",
        "duration": "8s",
        "headend": {"url": ocserv.url, "servercert": ocserv.pin},
        "clients": {
            "profile": "openconnect-9",
            "user": ocserv.user,
            "password": ocserv.password,
            "overrides": {"dtls_handshake_timeout": 2, "dtls_retry_period": 2},
        },
        "traffic": {"ping": {"target": ocserv.gateway, "interval": "1s"}},
        "actions": [{"at": 0, "impair": {"block_udp": block_udp}}],
        "expect": [
            *expect,
            {"check": "reconnects[mtu] == 0", "why": "openconnect never reconnects for MTU"},
            {"check": "clients_failed == 0", "why": "the CSTP session is fine"},
            {"check": "ping_sent >= 5", "why": "a ping a second"},
            {"check": "ping_loss < 0.3", "why": "over DTLS or CSTP, replies come back"},
        ],
    }


@pytest.mark.parametrize("block_udp", [False, True], ids=["udp-open", "udp-blocked"])
def test_scenario_against_ocserv(ocserv_udp_server: OcservInstance, block_udp: bool) -> None:
    sc = scenario_from_dict(_scenario(ocserv_udp_server, block_udp=block_udp), "<test>")
    result = run_scenario(sc, RunOptions())
    assert result.passed, verdict_table(result)
    assert not result.clients[0].error
