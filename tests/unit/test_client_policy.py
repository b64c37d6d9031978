"""Unit tests for tunnelswarm.client.policy: the MTU policies and the DTLS retry decisions.

Pure policy, no Trio and no clock: time is the ``now`` argument. The numbers are the
tech note's (protocol.md §6.3, [TN116881]): X-CSTP-MTU 1347 and X-DTLS-MTU 1418 with the
ASA defaults, X-CSTP-MTU 1427 with ``sysopt connection tcpmss 1460``. Run with
``--cov=tunnelswarm.client.policy --cov-branch``: every branch is taken here.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tunnelswarm.client.policy import (
    MTU_REASON_CODE,
    AnyConnectMtuPolicy,
    ApplyMtu,
    DtlsRetryPolicy,
    MtuPolicy,
    OpenconnectMtuPolicy,
    Reconnect,
    agent_mtu_lines,
    make_mtu_policy,
)
from tunnelswarm.config.params import TunnelParams
from tunnelswarm.errors import ConfigError

ASA = TunnelParams(address="10.10.10.10", cstp_mtu=1347, dtls_mtu=1418)
ASA_MSS_1460 = TunnelParams(address="10.10.10.10", cstp_mtu=1427, dtls_mtu=1418)
NO_DTLS = TunnelParams(address="10.10.10.10", cstp_mtu=1347)
HEADEND = "10.1.1.2"
LINES = (
    "Reconfigure reason code 16: New MTU configuration.",
    "The entire VPN connection is being reconfigured.",
    "Reconnecting to 10.1.1.2...",
    "A new MTU needs to be applied to the VPN network interface. Disabling and re-enabling"
    " the Virtual Adapter. Applications utilizing the private network may need to be"
    " restarted.",
)


def anyconnect(give_up: float = 60.0) -> AnyConnectMtuPolicy:
    return AnyConnectMtuPolicy(give_up=give_up, headend=HEADEND)


# --- the agent's lines ---------------------------------------------------------------------
def test_agent_lines_are_the_tech_notes() -> None:
    assert MTU_REASON_CODE == 16
    assert agent_mtu_lines(HEADEND) == LINES
    assert agent_mtu_lines("vpn.example.com")[2] == "Reconnecting to vpn.example.com..."


# --- openconnect ---------------------------------------------------------------------------
def test_openconnect_keeps_max_of_both_mtus_and_never_reconnects() -> None:
    p = OpenconnectMtuPolicy()
    assert p.adapter_mtu == 0
    assert p.on_connect(ASA, 0.0, dtls_expected=True) == ApplyMtu(
        1418, "max(X-CSTP-MTU, X-DTLS-MTU)"
    )
    assert p.adapter_mtu == 1418
    assert p.next_deadline() is None
    # DTLS never comes up: nothing changes, however long we wait (§6.1, verified)
    p.on_dtls_down(61.0)
    assert p.next_deadline() is None
    assert p.on_timeout(3600.0) is None
    assert p.adapter_mtu == 1418


def test_openconnect_without_dtls_uses_cstp_mtu() -> None:
    p = OpenconnectMtuPolicy()
    assert p.on_connect(NO_DTLS, 0.0, dtls_expected=False).mtu == 1347


@pytest.mark.parametrize(
    ("data_mtu", "action", "after"),
    [
        (None, None, 1418),  # Cisco resumption: no client-side data MTU
        (1500, None, 1418),  # larger: no change
        (1418, None, 1418),  # equal: no change
        (0, None, 1418),  # nonsense: ignored
        (1340, ApplyMtu(1340, "DTLS MTU reduced to 1340"), 1340),  # PSK (§6.1)
    ],
)
def test_openconnect_psk_data_mtu_only_lowers(
    data_mtu: int | None, action: ApplyMtu | None, after: int
) -> None:
    p = OpenconnectMtuPolicy()
    p.on_connect(ASA, 0.0, dtls_expected=True)
    assert p.on_dtls_up(1.0, data_mtu=data_mtu) == action
    assert p.adapter_mtu == after


# --- AnyConnect ----------------------------------------------------------------------------
def test_anyconnect_sizes_for_dtls_then_reconnects_with_reason_code_16() -> None:
    p = anyconnect()
    first = p.on_connect(ASA, 100.0, dtls_expected=True)
    assert first == ApplyMtu(1418, "X-DTLS-MTU (DTLS expected)")
    assert p.adapter_mtu == 1418
    assert p.next_deadline() == 160.0
    assert p.on_timeout(159.999) is None  # early: nothing decided
    assert p.next_deadline() == 160.0
    decision = p.on_timeout(160.0)
    assert decision == Reconnect(cause="mtu", reason_code=16, lines=LINES, new_mtu=1347)
    assert p.next_deadline() is None
    assert p.on_timeout(1000.0) is None  # decided once


def test_anyconnect_repeats_every_give_up_while_udp_stays_blocked() -> None:
    """The bug being reproduced: every CONNECT restarts the cycle (tech note)."""
    p = anyconnect()
    now = 0.0
    reconnects = []
    for _ in range(5):
        assert p.on_connect(ASA, now, dtls_expected=True).mtu == 1418
        deadline = p.next_deadline()
        assert deadline is not None
        now = deadline
        decision = p.on_timeout(now)
        assert isinstance(decision, Reconnect)
        reconnects.append(now)
        now += 0.5  # the reconnect itself
    gaps = [b - a for a, b in itertools.pairwise(reconnects)]
    assert gaps == [60.5] * 4


def test_anyconnect_dtls_up_in_time_means_no_reconnect() -> None:
    p = anyconnect()
    p.on_connect(ASA, 0.0, dtls_expected=True)
    assert p.on_dtls_up(0.2) is None
    assert p.on_dtls_up(0.3, data_mtu=1000) is None  # no PSK in AnyConnect: ignored
    assert p.next_deadline() is None
    assert p.on_timeout(600.0) is None
    assert p.adapter_mtu == 1418


def test_anyconnect_lost_dtls_restarts_the_give_up_clock() -> None:
    p = anyconnect()
    p.on_connect(ASA, 0.0, dtls_expected=True)
    p.on_dtls_up(1.0)
    p.on_dtls_down(300.0)
    assert p.next_deadline() == 360.0
    assert p.on_timeout(359.0) is None
    p.on_dtls_up(350.0)  # back in time: no reconnect
    assert p.next_deadline() is None
    p.on_dtls_down(400.0)
    decision = p.on_timeout(460.0)
    assert isinstance(decision, Reconnect)
    assert decision.cause == "mtu"


def test_anyconnect_down_without_up_changes_nothing() -> None:
    p = anyconnect()
    p.on_connect(ASA, 0.0, dtls_expected=True)
    p.on_dtls_down(30.0)  # a channel that never came up cannot be "lost"
    assert p.next_deadline() == 60.0


def test_anyconnect_tls_mtu_not_smaller_keeps_mtu_without_reconnect() -> None:
    """tcpmss 1460: X-CSTP-MTU 1427 ≥ 1418 → no reconnect, MTU kept (tech note fix 3)."""
    p = anyconnect()
    assert p.on_connect(ASA_MSS_1460, 0.0, dtls_expected=True).mtu == 1418
    decision = p.on_timeout(60.0)
    assert decision == ApplyMtu(
        1418,
        "DTLS not up after 60 s: TLS only; X-CSTP-MTU 1427 >= adapter MTU 1418, MTU kept",
    )
    assert p.next_deadline() is None
    assert p.adapter_mtu == 1418


def test_anyconnect_equal_mtus_do_not_reconnect() -> None:
    p = anyconnect()
    p.on_connect(TunnelParams(address="x", cstp_mtu=1406, dtls_mtu=1406), 0.0, dtls_expected=True)
    assert isinstance(p.on_timeout(60.0), ApplyMtu)


@pytest.mark.parametrize(
    ("params", "expected"),
    [(NO_DTLS, True), (ASA, False), (NO_DTLS, False)],
    ids=["no-x-dtls-mtu", "dtls-not-expected", "neither"],
)
def test_anyconnect_without_dtls_uses_tls_mtu_from_the_start(
    params: TunnelParams, expected: bool
) -> None:
    p = anyconnect()
    assert p.on_connect(params, 0.0, dtls_expected=expected) == ApplyMtu(
        1347, "X-CSTP-MTU (no DTLS)"
    )
    assert p.next_deadline() is None
    assert p.on_timeout(1e9) is None


def test_anyconnect_give_up_zero_never_gives_up() -> None:
    p = anyconnect(give_up=0.0)
    assert p.on_connect(ASA, 0.0, dtls_expected=True).mtu == 1418
    assert p.next_deadline() is None
    p.on_dtls_up(1.0)
    p.on_dtls_down(2.0)
    assert p.next_deadline() is None
    assert p.on_timeout(1e9) is None


def test_anyconnect_reconnect_answer_without_dtls_ends_the_cycle() -> None:
    """After the reconnect the new answer decides: DTLS now off → TLS MTU, no deadline."""
    p = anyconnect()
    p.on_connect(ASA, 0.0, dtls_expected=True)
    assert isinstance(p.on_timeout(60.0), Reconnect)
    assert p.on_connect(NO_DTLS, 61.0, dtls_expected=False).mtu == 1347
    assert p.next_deadline() is None


@given(
    cstp=st.integers(min_value=576, max_value=9000),
    dtls=st.integers(min_value=576, max_value=9000),
    give_up=st.floats(min_value=0.001, max_value=3600.0),
    start=st.floats(min_value=0.0, max_value=1e6),
)
def test_anyconnect_reconnects_iff_tls_mtu_is_smaller(
    cstp: int, dtls: int, give_up: float, start: float
) -> None:
    p = anyconnect(give_up=give_up)
    params = TunnelParams(address="10.0.0.1", cstp_mtu=cstp, dtls_mtu=dtls)
    assert p.on_connect(params, start, dtls_expected=True).mtu == dtls
    deadline = p.next_deadline()
    assert deadline is not None
    assert deadline >= start
    decision = p.on_timeout(deadline)
    assert isinstance(decision, Reconnect) == (cstp < dtls)
    assert p.adapter_mtu == dtls


# --- factory -------------------------------------------------------------------------------
def test_make_mtu_policy_by_name() -> None:
    a: MtuPolicy = make_mtu_policy("anyconnect", give_up=42.0, headend=HEADEND)
    assert isinstance(a, AnyConnectMtuPolicy)
    assert (a.give_up, a.headend) == (42.0, HEADEND)
    o: MtuPolicy = make_mtu_policy("openconnect", give_up=42.0, headend=HEADEND)
    assert isinstance(o, OpenconnectMtuPolicy)
    with pytest.raises(ConfigError, match=r"^mtu_policy: unknown policy 'cisco'"):
        make_mtu_policy("cisco", give_up=0.0, headend=HEADEND)


# --- DTLS retries --------------------------------------------------------------------------
def test_dtls_retry_defaults_are_openconnect_9() -> None:
    r = DtlsRetryPolicy()
    assert (r.handshake_timeout, r.retry_period, r.dead_peer) == (12.0, 60.0, "rehandshake")


@pytest.mark.parametrize(
    ("dead_peer_action", "dead", "delay"),
    [
        ("rehandshake", True, 0.0),  # §5.5: a new handshake at once (verified)
        ("rehandshake", False, 60.0),  # failed handshake: the retry period
        ("retry-period", True, 60.0),
        ("retry-period", False, 60.0),
    ],
)
def test_dtls_retry_delay(dead_peer_action: str, dead: bool, delay: float) -> None:
    r = DtlsRetryPolicy(handshake_timeout=12.0, retry_period=60.0, dead_peer=dead_peer_action)
    assert r.delay_after(dead_peer=dead) == delay
