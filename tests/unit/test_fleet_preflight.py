"""The preflight's warning rules and report, on hand-made answers; the CLI's part."""

from __future__ import annotations

import socket

import pytest

from tunnelswarm.cli import main
from tunnelswarm.config.params import TunnelParams
from tunnelswarm.fleet.preflight import (
    PreflightReport,
    SecondLogin,
    looks_like_ocserv,
    pool_size,
    preflight_warnings,
)

ASA = TunnelParams(
    address="10.10.10.10",
    netmask="255.255.255.0",
    cstp_mtu=1347,
    dtls_mtu=1418,
    dpd=30,
    keepalive=20,
    idle_timeout=3600,
    disconnected_timeout=3600,
    dtls_session_id="ab" * 32,
    dtls_cipher_suite="AES128-SHA",
    dtls_port=443,
)
OCSERV = TunnelParams(
    address="192.168.99.5",
    netmask="255.255.255.0",
    cstp_mtu=1434,
    server_name="ocserv 1.1.6",
    dtls_app_id="cd" * 32,
    dtls_cipher_suite="PSK-NEGOTIATE",
)
BOTH = SecondLogin("both-up")


def warn(params: TunnelParams = ASA, **kw: object) -> list[str]:
    args: dict[str, object] = {
        "planned_sessions": 10,
        "planned_users": 10,
        "second": BOTH,
        "dtls_up": True,
    }
    args.update(kw)
    return preflight_warnings(params, **args)  # type: ignore[arg-type]


def test_a_quiet_headend_gives_no_warnings() -> None:
    assert warn() == []


@pytest.mark.parametrize(
    ("netmask", "size"),
    [("255.255.255.0", 253), ("255.255.0.0", 65533), ("255.255.255.252", 1), (None, None)],
)
def test_pool_size_from_the_netmask(netmask: str | None, size: int | None) -> None:
    assert pool_size(TunnelParams(address="10.0.0.1", netmask=netmask, cstp_mtu=1400)) == size
    assert pool_size(TunnelParams(address="10.0.0.1", netmask="255.255.255.255")) is None


def test_a_pool_smaller_than_the_plan_is_warned() -> None:
    (w,) = warn(planned_sessions=300, planned_users=300)
    assert w.startswith("address pool: the netmask /24 leaves room for at most 253 clients")
    assert "300 planned sessions" in w
    assert warn(planned_sessions=253, planned_users=253) == []


@pytest.mark.parametrize("outcome", ["preempted", "refused"])
def test_a_per_user_cap_below_the_plan_is_warned(outcome: str) -> None:
    second = SecondLogin(outcome, "why")  # type: ignore[arg-type]
    assert second.cap == 1
    (w,) = warn(second=second, planned_sessions=10, planned_users=4, user="test")
    assert w.startswith("per-user cap: a second login of user 'test'")
    assert "3 sessions on each user" in w
    # one session per user: the cap does not matter
    assert warn(second=second, planned_sessions=10, planned_users=10) == []


def test_a_cap_above_two_is_not_probed_and_says_so() -> None:
    (w,) = warn(second=BOTH, planned_sessions=30, planned_users=10)
    assert "only 2 sessions" in w
    assert warn(second=BOTH, planned_sessions=20, planned_users=10) == []
    assert warn(second=SecondLogin("not-tried"), planned_sessions=30, planned_users=1) == []


def test_ocserv_is_detected_and_its_ban_score_warned() -> None:
    assert looks_like_ocserv(OCSERV)
    assert not looks_like_ocserv(ASA)
    assert looks_like_ocserv(TunnelParams(address="1.2.3.4", extra=(("Server", "ocserv"),)))
    assert looks_like_ocserv(TunnelParams(address="1.2.3.4", dtls_cipher_suite="PSK-NEGOTIATE"))
    (w,) = warn(OCSERV)
    assert w.startswith("ocserv detected (ocserv 1.1.6)")
    assert "max-ban-score" in w
    assert "rate-limit-ms" in w
    assert "--source" in w


def test_dtls_offered_but_not_up_is_warned() -> None:
    (w,) = warn(dtls_up=False, dtls_detail="handshake timed out")
    assert w.startswith("DTLS: offered (AES128-SHA) but not up")
    assert "handshake timed out" in w
    assert "UDP port 443" in w
    # not offered, or --no-dtls: nothing to say
    assert warn(TunnelParams(address="1.2.3.4", cstp_mtu=1400), dtls_up=None) == []


def test_short_idle_and_session_timeouts_are_warned() -> None:
    short = TunnelParams(address="1.2.3.4", cstp_mtu=1400, idle_timeout=120)
    (w,) = warn(short)
    assert w.startswith("idle timeout 120 s")
    (w,) = warn(ASA, planned_duration=7200.0)
    assert "shorter than the run's 7200 s" in w
    limited = TunnelParams(address="1.2.3.4", cstp_mtu=1400, session_timeout=600)
    (w,) = warn(limited, planned_duration=3600.0)
    assert w.startswith("session timeout 600 s")
    assert warn(TunnelParams(address="1.2.3.4", cstp_mtu=1400, idle_timeout=None)) == []


def test_the_report_renders_a_table() -> None:
    report = PreflightReport(
        url="https://vpn.example.com/",
        params=ASA,
        tls_version="TLSv1_2",
        tls_cipher="ECDHE-RSA-AES256-GCM-SHA384",
        dtls_up=True,
        dtls_detail="legacy AES128-SHA",
        second=SecondLogin("preempted", "the first got: 401"),
        planned_sessions=20,
        planned_users=1,
        warnings=("a warning",),
    )
    text = report.render()
    assert text.splitlines()[0] == "headend preflight: https://vpn.example.com/"
    assert "X-CSTP-MTU 1347, X-DTLS-MTU 1418" in text
    assert "offered (AES128-SHA, port 443), up (legacy AES128-SHA)" in text
    assert "30 s / 20 s" in text
    assert "idle 3600 s, session none, disconnected 3600 s" in text
    assert "10.10.10.10 / 255.255.255.0 (pool /24: at most 253 clients)" in text
    assert "1: a second login of the same user ended the first" in text
    assert "20 sessions, 1 users (20 per user)" in text
    assert text.endswith("warnings (1):\n  ! a warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_cli_an_unreachable_headend_fails_the_preflight(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"https://127.0.0.1:{_free_port()}"
    assert main(["run", "-n", "2", "--headend", url, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"tunnelswarm: error: headend {url} unreachable: ")
    assert "Connection refused" in err


def test_cli_no_preflight_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://127.0.0.1:{_free_port()}"
    # the engine's own TCP check still refuses the run
    assert main(["run", "-n", "2", "--headend", url, "--no-preflight", "-q"]) == 2
    assert "unreachable" in capsys.readouterr().err
