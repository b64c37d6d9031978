"""DTLS interop matrix: our client against a real ocserv 1.1.6 (protocol.md §5, §10.9).

For every DTLS mode ocserv speaks — legacy DTLS 0.9 (AES128-SHA, AES256-SHA), the
openconnect DTLS 1.2 names (OC-DTLS1_2-AES128/256-GCM), Cisco's X-DTLS12-CipherSuite
(AES128-GCM-SHA256, AES256-GCM-SHA384) and PSK-NEGOTIATE over TLS 1.2 and TLS 1.3 —
the test connects, waits for DTLS, checks the cipher ocserv itself reports (occtl),
pings through the tunnel and proves from the counters that the pings went over DTLS
(not CSTP), and checks a DTLS DPD is answered.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest
import trio
from _support import dtls_options

from tunnelswarm.client.dtls import Impairments
from tunnelswarm.client.session import ClientSession, open_client
from tunnelswarm.testing.ocserv import OcservConfig, OcservInstance

pytestmark = pytest.mark.interop

OcservFactory = Callable[..., OcservInstance]
TLS13 = '"NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"'

# (id, X-DTLS-CipherSuite offer, X-DTLS12-CipherSuite offer, what occtl must report)
MATRIX = [
    ("dtls09-aes128", "AES128-SHA", "", "(DTLS0.9)-(RSA)-(AES-128-CBC)-(SHA1)"),
    ("dtls09-aes256", "AES256-SHA", "", "(DTLS0.9)-(RSA)-(AES-256-CBC)-(SHA1)"),
    ("oc12-aes128gcm", "OC-DTLS1_2-AES128-GCM", "", "(DTLS1.2)-(RSA)-(AES-128-GCM)"),
    ("oc12-aes256gcm", "OC-DTLS1_2-AES256-GCM", "", "(DTLS1.2)-(RSA)-(AES-256-GCM)"),
    ("dtls12-aes128gcm", "", "AES128-GCM-SHA256", "(DTLS1.2)-(RSA)-(AES-128-GCM)"),
    ("dtls12-aes256gcm", "", "AES256-GCM-SHA384", "(DTLS1.2)-(RSA)-(AES-256-GCM)"),
    ("psk", "PSK-NEGOTIATE", "", "(DTLS1.2)-(PSK)-(AES-256-GCM)"),
]


async def _wait_dtls(session: ClientSession, timeout: float = 15.0, *, first: bool = True) -> None:
    """Wait until DTLS is up; with ``first``, a failed attempt fails the test at once."""
    with trio.fail_after(timeout):
        while session.dtls is None or not session.dtls.up:
            if first and session.dtls is not None and session.dtls.last_failure:
                pytest.fail(f"DTLS failed: {session.dtls.last_failure}")
            await trio.sleep(0.02)


def _occtl_dtls_cipher(server: OcservInstance, address: str) -> str | None:
    for u in server.show_users():
        if u.get("IPv4") == address:
            for key in ("DTLS cipher", "DTLS ciphersuite"):
                if key in u:
                    return str(u[key])
    return None


async def _check_mode(server: OcservInstance, dtls: str, dtls12: str, expect: str) -> None:
    with trio.fail_after(60):
        async with open_client(dtls_options(server, dtls, dtls12)) as session:
            await _wait_dtls(session)
            p = session.params
            assert p is not None
            assert p.address is not None
            reported = await trio.to_thread.run_sync(_occtl_dtls_cipher, server, p.address)
            assert reported == expect, server.show_users()
            assert session.dtls is not None
            before_cstp = (session.tx_cstp_packets, session.rx_cstp_packets)
            report = await session.adapter.ping(server.gateway, count=5, interval=0.05)
            assert report.received == 5, report.stats
            c = session.dtls.counters
            assert c.tx_packets == 5
            assert c.rx_packets >= 5
            assert (session.tx_cstp_packets, session.rx_cstp_packets)[0] == before_cstp[0]
            assert await session.dtls.dpd_round_trip(timeout=5)
            assert await session.dtls.dpd_round_trip(timeout=5, payload=b"tunnelswarm-dpd")


@pytest.mark.parametrize(
    ("dtls", "dtls12", "expect"), [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX]
)
async def test_dtls_mode_against_ocserv(
    ocserv_udp_server: OcservInstance, dtls: str, dtls12: str, expect: str
) -> None:
    await _check_mode(ocserv_udp_server, dtls, dtls12, expect)


async def test_psk_over_tls13(ocserv_factory: OcservFactory) -> None:
    server = await trio.to_thread.run_sync(
        lambda: ocserv_factory(OcservConfig(port=4451, udp=True, extra={"tls-priorities": TLS13}))
    )
    with trio.fail_after(60):
        async with open_client(dtls_options(server, "PSK-NEGOTIATE", "")) as session:
            assert session.tls_version == "TLSv1_3"
    await _check_mode(server, "PSK-NEGOTIATE", "", "(DTLS1.2)-(PSK)-(AES-256-GCM)")


def _nft(ns: str, *args: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args], check=True, capture_output=True, timeout=10
    )


async def test_fallback_to_cstp_and_back_with_nftables(ocserv_udp_server: OcservInstance) -> None:
    """UDP dropped inside the headend's namespace: tunnel up over TLS, DTLS returns later."""
    ns, port = ocserv_udp_server.namespace, ocserv_udp_server.port
    await trio.to_thread.run_sync(_nft, ns, "add", "table", "inet", "tsw")
    try:
        await trio.to_thread.run_sync(
            _nft, ns, "add", "chain", "inet", "tsw", "input",
            "{ type filter hook input priority 0 ; }",
        )  # fmt: skip
        await trio.to_thread.run_sync(
            _nft, ns, "add", "rule", "inet", "tsw", "input", "udp", "dport", str(port), "drop"
        )
        opts = dtls_options(
            ocserv_udp_server, "AES128-SHA", "", dtls_handshake_timeout=3.0, dtls_attempt_period=4.0
        )
        with trio.fail_after(90):
            async with open_client(opts) as session:
                assert session.dtls is not None
                while session.dtls.last_failure is None:
                    await trio.sleep(0.05)
                assert "timeout" in session.dtls.last_failure
                report = await session.adapter.ping(
                    ocserv_udp_server.gateway, count=3, interval=0.05
                )
                assert report.received == 3
                assert session.tx_cstp_packets == 3
                await trio.to_thread.run_sync(_nft, ns, "delete", "table", "inet", "tsw")
                await _wait_dtls(session, timeout=20, first=False)
                report = await session.adapter.ping(
                    ocserv_udp_server.gateway, count=3, interval=0.05
                )
                assert report.received == 3
                assert session.dtls.counters.tx_packets == 3
                assert session.reconnects == 0
    finally:
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "tsw"],
            capture_output=True, check=False, timeout=10,
        )  # fmt: skip


async def test_fallback_with_client_impairment_hook(ocserv_udp_server: OcservInstance) -> None:
    """The client-side hook: UDP blocked from the start, lifted later, no session loss."""
    opts = dtls_options(
        ocserv_udp_server,
        "OC-DTLS1_2-AES128-GCM",
        "",
        dtls_handshake_timeout=3.0,
        dtls_attempt_period=4.0,
    )
    blocked = Impairments(block_udp=True)
    with trio.fail_after(90):
        async with open_client(opts, impairments=blocked) as session:
            assert session.dtls is not None
            while session.dtls.last_failure is None:
                await trio.sleep(0.05)
            assert "timeout" in session.dtls.last_failure
            assert not session.dtls.up
            report = await session.adapter.ping(ocserv_udp_server.gateway, count=3, interval=0.05)
            assert report.received == 3
            assert session.tx_cstp_packets == 3
            assert session.dtls.counters.dropped_impaired > 0
            blocked.block_udp = False
            await _wait_dtls(session, timeout=30, first=False)
            report = await session.adapter.ping(ocserv_udp_server.gateway, count=3, interval=0.05)
            assert report.received == 3
            assert session.dtls.counters.tx_packets == 3
            assert session.reconnects == 0


def test_cli_dtls_ciphers_aes128_sha_reports_dtls_and_pings_over_it(
    ocserv_udp_server: OcservInstance,
) -> None:
    import os
    import sys

    env = dict(os.environ, TS_TEST_PASSWORD=ocserv_udp_server.password)
    proc = subprocess.run(
        [
            sys.executable, "-m", "tunnelswarm", "connect", ocserv_udp_server.url,
            "-u", ocserv_udp_server.user, "--password-env", "TS_TEST_PASSWORD",
            "--servercert", ocserv_udp_server.pin, "--dtls-ciphers", "AES128-SHA",
            "--ping", ocserv_udp_server.gateway, "--ping-count", "5", "--ping-interval", "0.1",
        ],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "DTLS                up (DTLS0.9, TLS_RSA_WITH_AES_128_CBC_SHA)" in proc.stdout
    assert "5 packets transmitted, 5 received" in proc.stdout
    # ocserv also forwards unsolicited packets of its own (IPv6 from its tun, §10.9):
    # every probe went out over DTLS, at least the five replies came back over it
    m = re.search(
        r"(\d+) sent / (\d+) received over CSTP, (\d+) sent / (\d+) received over DTLS", proc.stdout
    )
    assert m is not None, proc.stdout
    tx_cstp, _rx_cstp, tx_dtls, rx_dtls = map(int, m.groups())
    assert (tx_cstp, tx_dtls) == (0, 5)
    assert rx_dtls >= 5
