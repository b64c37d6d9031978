"""Client behaviour profiles against the in-process mock ASA, over loopback, in real time.

The mock runs ``examples/asa-9.1.cfg`` (ASA 9.1, DTLS AES-CBC-SHA1: ``X-CSTP-MTU 1347``,
``X-DTLS-MTU 1418``, protocol.md §6.3). The profiles' timers are shortened with
overrides (DTLS give-up 1.5 s instead of the tech note's minute) so that the
"reconnects every minute" loop of Cisco tech note 116881 runs in a few seconds:

* ``anyconnect-3.1`` with UDP blocked: adapter MTU 1418, then the agent's four lines,
  a reconnect with cause ``mtu`` (same cookie, the mock resumes the session: same
  address), and again, for as long as UDP stays blocked;
* ``anyconnect-3.1`` with UDP open: DTLS comes up, no reconnect;
* ``anyconnect-3.1`` against ``sysopt connection tcpmss 1460`` (X-CSTP-MTU 1427 ≥ 1418):
  DTLS given up, MTU kept, no reconnect;
* ``openconnect-9`` with UDP blocked: MTU max(1347, 1418) = 1418 kept, DTLS retried
  every retry period, no reconnect (§6.1, verified against openconnect 9.01).

Every test is bounded by ``trio.fail_after`` in real seconds.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.server import MockAsaConfig, MockAsaInfo, serve_mock_asa
from tunnelswarm.client.dtls import Impairments
from tunnelswarm.client.policy import agent_mtu_lines
from tunnelswarm.client.session import ClientOptions, ClientSession, SessionEvent, open_client
from tunnelswarm.config.profile import ClientProfile, load_profile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"
GIVE_UP = 1.5
GUARD = 30.0


class Lines(logging.Handler):
    """Collects the INFO+ messages of one client's logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def info(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.INFO]


def client_log(name: str) -> tuple[logging.Logger, Lines]:
    log = logging.getLogger(f"tunnelswarm.test.policy.{name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    lines = Lines()
    log.addHandler(lines)
    return log, lines


async def start_asa(nursery: trio.Nursery, tmp_path: Path, extra_config: str = "") -> MockAsaInfo:
    cfg = MockAsaConfig(
        asa=parse_config(EXAMPLE.read_text() + extra_config),
        port=0,
        state_dir=tmp_path / "state",
        admin=("127.0.0.1", 0),
    )
    info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
    return info


def fast(name: str, **overrides: Any) -> ClientProfile:
    """A built-in profile with real-time-friendly timers."""
    values: dict[str, object] = {"dtls_handshake_timeout": 1.0, "dtls_retry_period": 1.0}
    if name.startswith("anyconnect"):
        values["dtls_give_up"] = GIVE_UP
    values.update(overrides)
    return load_profile(name).with_overrides(values, source="test")


def options(info: MockAsaInfo, profile: ClientProfile) -> ClientOptions:
    return ClientOptions(
        url=info.url,
        user="test",
        password="test",
        servercert=(info.pin,),
        profile=profile,
        reconnect_timeout=5.0,
        hostname="laptop",
    )


async def until(cond: Callable[[], bool], step: float = 0.02) -> None:
    while not cond():
        await trio.sleep(step)


def kinds(events: list[SessionEvent], kind: str) -> list[SessionEvent]:
    return [e for e in events if e.kind == kind]


async def test_anyconnect_3_1_udp_blocked_reconnects_for_mtu_again_and_again(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        log, lines = client_log("ac-blocked")
        events: list[SessionEvent] = []
        async with open_client(
            options(info, fast("anyconnect-3.1")),
            log=log,
            impairments=Impairments(block_udp=True),
            on_event=events.append,
        ) as s:
            p = s.params
            assert p is not None
            assert (p.cstp_mtu, p.dtls_mtu) == (1347, 1418)
            assert s.adapter.mtu == 1418  # sized for DTLS while DTLS is expected
            first_address = p.address
            start = events[0].time
            await until(lambda: s.reconnects_by_cause.get("mtu", 0) >= 2 and s.connected.is_set())
            assert s.reconnects_by_cause == {"mtu": s.reconnects}
            # each reconnect came a give-up time after its CONNECT, not earlier
            connects = kinds(events, "connect")
            reconnects = kinds(events, "reconnect")
            assert len(reconnects) >= 2
            for conn, rec in zip(connects, reconnects, strict=False):
                assert GIVE_UP - 0.05 <= rec.time - conn.time < GIVE_UP + 2.0
                assert rec.cause == "mtu"
            assert reconnects[1].time - start >= 2 * GIVE_UP - 0.1
            # the cycle restarts after every reconnect: the adapter is sized for DTLS again
            assert s.adapter.mtu == 1418
            assert [e.cause for e in connects] == [None] + ["mtu"] * (len(connects) - 1)
            assert {e.detail.split(",")[0] for e in connects} == {f"address {first_address}"}
            mtus = [e.mtu for e in kinds(events, "mtu")]
            assert mtus
            assert set(mtus) == {1418}
            assert kinds(events, "dtls-up") == []
            assert kinds(events, "dtls-fail")
            # the mock ASA resumed the one session: same address, one Parent
            now = s.params
            assert now is not None
            assert now.address == first_address
            assert len(info.asa.sessiondb) == 1
        msgs = lines.info()
        agent = list(agent_mtu_lines("127.0.0.1"))
        assert agent[2] == "Reconnecting to 127.0.0.1..."
        at = [i for i, m in enumerate(msgs) if m == agent[0]]
        assert len(at) >= 2
        for i in at:
            assert msgs[i : i + 4] == agent  # the four lines, in order, at INFO
        warnings = [r.getMessage() for r in lines.records if r.levelno == logging.WARNING]
        assert any(w.startswith("reconnecting (mtu): reason code 16") for w in warnings)


async def test_anyconnect_3_1_udp_open_dtls_up_no_reconnect(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        log, lines = client_log("ac-open")
        events: list[SessionEvent] = []
        async with open_client(
            options(info, fast("anyconnect-3.1")), log=log, on_event=events.append
        ) as s:
            assert s.adapter.mtu == 1418
            await until(lambda: s.dtls is not None and s.dtls.up)
            assert s.dtls is not None
            assert s.dtls.plan.mode == "legacy"  # DTLS 0.9: 3.1 offers legacy suites only
            await trio.sleep(2 * GIVE_UP + 0.5)
            assert s.reconnects == 0
            assert s.reconnects_by_cause == {}
            assert s.adapter.mtu == 1418
            assert s.dtls.up
            assert len(kinds(events, "dtls-up")) == 1
            assert kinds(events, "reconnect") == []
        assert agent_mtu_lines("127.0.0.1")[0] not in lines.info()


async def test_anyconnect_3_1_tls_mtu_not_smaller_keeps_mtu(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path, "sysopt connection tcpmss 1460\n")
        log, lines = client_log("ac-mss1460")
        events: list[SessionEvent] = []
        async with open_client(
            options(info, fast("anyconnect-3.1")),
            log=log,
            impairments=Impairments(block_udp=True),
            on_event=events.append,
        ) as s:
            p = s.params
            assert p is not None
            assert (p.cstp_mtu, p.dtls_mtu) == (1427, 1418)  # tech note fix 3
            assert s.adapter.mtu == 1418
            await until(lambda: len(kinds(events, "mtu")) >= 2)
            kept = kinds(events, "mtu")[1]
            assert kept.mtu == 1418
            assert "MTU kept" in kept.detail
            await trio.sleep(1.0)
            assert s.reconnects == 0
            assert s.adapter.mtu == 1418
        assert agent_mtu_lines("127.0.0.1")[0] not in lines.info()


async def test_openconnect_9_udp_blocked_keeps_max_mtu_and_retries_dtls(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(GUARD):
        info = await start_asa(nursery, tmp_path)
        log, lines = client_log("oc-blocked")
        events: list[SessionEvent] = []
        async with open_client(
            options(info, fast("openconnect-9")),
            log=log,
            impairments=Impairments(block_udp=True),
            on_event=events.append,
        ) as s:
            p = s.params
            assert p is not None
            assert (p.cstp_mtu, p.dtls_mtu) == (1347, 1418)
            assert s.adapter.mtu == 1418  # max(1347, 1418), §6.1
            await until(lambda: len(kinds(events, "dtls-fail")) >= 3)
            fails = kinds(events, "dtls-fail")
            # an attempt gives up after 1 s, the next starts 1 s later: ~2 s apart
            for a, b in itertools.pairwise(fails):
                assert 1.9 <= b.time - a.time < 4.0
            assert s.reconnects == 0
            assert s.adapter.mtu == 1418
            assert isinstance(s, ClientSession)
            assert [e.mtu for e in kinds(events, "mtu")] == [1418]
        assert agent_mtu_lines("127.0.0.1")[0] not in lines.info()
