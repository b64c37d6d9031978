"""``tunnelswarm.client.flow.fetch`` against the real mock ASA over loopback.

Our client (openconnect 9.01 profile, DTLS AES256-SHA) logs in to the mock running
``examples/asa-9.1.cfg`` (``X-CSTP-MTU 1347``, ``X-DTLS-MTU 1418``) and fetches from the
inside "web server" 10.1.1.80 with an MSS of adapter MTU − 40 = 1378:

* DTLS up: the 1418-byte segments fit the DTLS tunnel — ``completed``;
* UDP blocked (the adapter keeps 1418, traffic goes over TLS, threshold 1347): the ASA
  drops the first window with 722036 and sends ICMP 3/4, the server shrinks its segments
  to 1307 bytes — ``slowed``;
* the same with ``icmp deny any unreachable inside``: no ICMP, the server retransmits the
  same sizes until it resets the flow — ``stalled``.

Every test is bounded by ``trio.fail_after`` in real seconds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.inside import FlowParams
from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.client.dtls import Impairments
from tunnelswarm.client.flow import fetch
from tunnelswarm.client.session import ClientOptions, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"
WEB = "10.1.1.80"
GUARD = 30.0


async def start_asa(
    nursery: trio.Nursery, tmp_path: Path, extra_config: str = "", **kw: Any
) -> MockAsaInfo:
    cfg = MockAsaConfig(
        asa=parse_config(EXAMPLE.read_text() + extra_config),
        port=0,
        state_dir=tmp_path / "state",
        **kw,
    )
    info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
    return info


def options(info: MockAsaInfo) -> ClientOptions:
    return ClientOptions(
        url=info.url,
        user="test",
        password="test",
        servercert=(info.pin,),
        profile=replace(OPENCONNECT_9_01, dtls_ciphers="AES256-SHA", dtls12_ciphers=""),
        reconnect_timeout=5.0,
        dtls_handshake_timeout=2.0,
        hostname="laptop",
    )


async def test_dtls_up_completes(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        async with open_client(options(info)) as session:
            with trio.fail_after(5):
                while not (session.dtls is not None and session.dtls.up):
                    await trio.sleep(0.02)
            assert session.adapter.mtu == 1418
            r = await fetch(session.adapter, WEB, 50_000, timeout=10.0)
        assert r.outcome == "completed", r.reasons
        assert r.intact
        assert r.mss == 1378
        assert r.stats["largest_payload"] == 1378
        assert r.adapter_drops == 0
        assert info.asa.inside.counters.pmtu_reductions == 0
        assert info.asa.drops["mp-svc-no-fragment"] == 0


async def test_udp_blocked_completes_slowed_by_pmtud(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        asa = info.asa
        async with open_client(options(info), impairments=Impairments(block_udp=True)) as session:
            p = session.params
            assert p is not None
            assert (p.cstp_mtu, p.dtls_mtu, session.adapter.mtu) == (1347, 1418, 1418)
            r = await fetch(session.adapter, WEB, 50_000, timeout=10.0)
            await trio.sleep(0.1)  # our ACK of the FIN reaches the server
        assert r.outcome == "slowed", r.reasons
        assert r.intact
        assert any(x.startswith("smaller-segments: ") for x in r.reasons), r.reasons
        assert r.stats["largest_payload"] == 1347 - 40
        assert r.stats["full_segment"] == 1378
        c = asa.inside.counters
        assert (c.flows_completed, c.pmtu_reductions, c.timeouts) == (1, 1, 0)
        assert asa.drops["mp-svc-no-fragment"] == 10
        assert asa.forwarding.icmp_unreachable_sent == 10


async def test_icmp_denied_on_inside_stalls(nursery: trio.Nursery, tmp_path: Path) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(
            nursery,
            tmp_path,
            "icmp deny any unreachable inside\n",
            inside_flows=FlowParams(rto=0.1, retries=3),
        )
        asa = info.asa
        async with open_client(options(info), impairments=Impairments(block_udp=True)) as session:
            assert session.adapter.mtu == 1418
            r = await fetch(session.adapter, WEB, 50_000, timeout=10.0)
        assert r.outcome == "stalled"
        assert r.reasons == ("reset by the server",)
        assert (r.state, r.received) == ("reset", 0)
        assert r.elapsed < 5.0  # the server's four short RTOs, not our timeout
        c = asa.inside.counters
        assert (c.flows_aborted, c.pmtu_reductions, c.timeouts) == (1, 0, 4)
        assert asa.forwarding.icmp_unreachable_blocked == 40  # first window + 3 rounds
        assert asa.forwarding.icmp_unreachable_sent == 0
