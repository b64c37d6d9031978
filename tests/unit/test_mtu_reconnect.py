"""Unit tests for tunnelswarm.client.mtu (protocol.md §6.1, §10.7) and
tunnelswarm.client.reconnect (§7.4, openconnect ``ssl_reconnect``)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
import trio

from tunnelswarm.client.mtu import (
    DEFAULT_BASE_MTU,
    DTLS_OVERHEAD,
    MIN_BASE_MTU,
    TcpInfo,
    choose_base_mtu,
    read_tcp_info,
    request_mtu,
)
from tunnelswarm.client.reconnect import ReconnectPolicy

linux_only = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TCP_INFO is Linux-only")

# --- MTU arithmetic ------------------------------------------------------------------------


def test_constants() -> None:
    assert DTLS_OVERHEAD == 1 + 13 + 20 + 32 + 16 == 82
    assert DEFAULT_BASE_MTU == 1406
    assert MIN_BASE_MTU == 1280


@pytest.mark.parametrize(
    ("user", "info", "base"),
    [
        (None, TcpInfo(pmtu=1500, snd_mss=1448, rcv_mss=1448), 1500),
        (None, None, 1406),
        (None, TcpInfo(pmtu=0, snd_mss=1460, rcv_mss=1460), 1447),
        (None, TcpInfo(pmtu=0, snd_mss=1460, rcv_mss=1400), 1387),
        (None, TcpInfo(pmtu=0, snd_mss=1460, rcv_mss=0), 1406),  # needs both MSS values
        (None, TcpInfo(pmtu=0, snd_mss=0, rcv_mss=0), 1406),
        (None, TcpInfo(pmtu=1200, snd_mss=1160, rcv_mss=1160), 1280),
        (None, TcpInfo(pmtu=0, snd_mss=536, rcv_mss=536), 1280),
        (1500, TcpInfo(pmtu=9000, snd_mss=8948, rcv_mss=8948), 1500),
        (1300, None, 1300),
        (1279, None, 1280),
        (0, TcpInfo(pmtu=1492, snd_mss=1440, rcv_mss=1440), 1492),  # 0 = not given
        (None, TcpInfo(pmtu=65535, snd_mss=32768, rcv_mss=536), 65535),
    ],
)
def test_choose_base_mtu(user: int | None, info: TcpInfo | None, base: int) -> None:
    assert choose_base_mtu(user, info) == base


@pytest.mark.parametrize(
    ("base", "ipv6", "user", "mtu"),
    [
        (1500, False, None, 1390),
        (1500, True, None, 1370),
        (1406, False, None, 1296),
        (1447, False, None, 1337),
        (1280, False, None, 1170),
        (1280, True, None, 1150),
        (1500, False, 1200, 1200),
        (1500, True, 0, 1370),  # 0 = not given
    ],
)
def test_request_mtu(base: int, ipv6: bool, user: int | None, mtu: int) -> None:
    assert request_mtu(base, ipv6=ipv6, user_mtu=user) == mtu


def test_request_mtu_is_keyword_only_for_family() -> None:
    with pytest.raises(TypeError):
        request_mtu(1500, False)  # type: ignore[misc]


# --- TCP_INFO -------------------------------------------------------------------------------


@pytest.fixture
def loopback_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        accepted, _ = server.accept()
        try:
            yield client, accepted
        finally:
            client.close()
            accepted.close()


def _sane(info: TcpInfo) -> None:
    assert 536 <= info.snd_mss <= 65535
    assert 536 <= info.rcv_mss <= 65535


@linux_only
def test_read_tcp_info_on_loopback(loopback_pair: tuple[socket.socket, socket.socket]) -> None:
    client, accepted = loopback_pair
    for sock in (client, accepted):
        info = read_tcp_info(sock)
        assert info is not None
        assert info.pmtu == 65535  # lo has MTU 65536; IPv4 path MTU caps at 65535
        _sane(info)
    client.sendall(b"x" * 10000)
    assert accepted.recv(65536)
    info = read_tcp_info(client)
    assert info is not None
    assert info.pmtu == 65535
    _sane(info)
    # what the session does with it: pmtu wins, and the request follows
    base = choose_base_mtu(None, info)
    assert base == 65535
    assert request_mtu(base, ipv6=False) == 65535 - 110


@linux_only
def test_read_tcp_info_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    with server, socket.create_connection(server.getsockname()[:2], timeout=5) as client:
        info = read_tcp_info(client)
        assert info is not None
        assert 1280 <= info.pmtu <= 65536
        _sane(info)
        server.accept()[0].close()


@linux_only
async def test_read_tcp_info_on_a_trio_socket() -> None:
    with trio.fail_after(5):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream, listeners[0]:
            server_side = await listeners[0].accept()
            async with server_side:
                info = read_tcp_info(stream.socket)
                assert info is not None
                assert info.pmtu == 65535
                _sane(info)


def test_read_tcp_info_on_udp_socket_is_none() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert read_tcp_info(s) is None


class FakeSock:
    def __init__(self, raw: bytes | None) -> None:
        self.raw = raw
        self.asked: tuple[int, int, int] | None = None

    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes:
        self.asked = (level, optname, buflen)
        if self.raw is None:
            raise OSError(95, "Operation not supported")
        return self.raw


@linux_only
def test_read_tcp_info_decodes_the_linux_layout() -> None:
    # 8 u8 fields, then u32: rto ato snd_mss rcv_mss unacked sacked lost retrans fackets
    # last_data_sent last_ack_sent last_data_recv last_ack_recv pmtu ...
    u32 = [200000, 40000, 1448, 1424, 0, 0, 0, 0, 0, 1, 2, 3, 4, 1500, 64000, 900]
    raw = bytes(8) + struct.pack(f"={len(u32)}I", *u32) + bytes(104 - 8 - 4 * len(u32))
    fake = FakeSock(raw)
    assert read_tcp_info(fake) == TcpInfo(pmtu=1500, snd_mss=1448, rcv_mss=1424)
    assert fake.asked == (socket.IPPROTO_TCP, socket.TCP_INFO, 104)


@linux_only
@pytest.mark.parametrize("raw", [None, b"", bytes(63)])
def test_read_tcp_info_unavailable(raw: bytes | None) -> None:
    assert read_tcp_info(FakeSock(raw)) is None


def test_read_tcp_info_without_tcp_info_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "TCP_INFO", raising=False)
    assert read_tcp_info(FakeSock(bytes(104))) is None


# --- reconnect schedule ---------------------------------------------------------------------


def openconnect_sleeps(timeout: int, interval: int = 10, max_interval: int = 100) -> list[int]:
    """A transcription of openconnect 9 ``ssl_reconnect``: the sleeps before each retry,
    when every attempt fails (§7.4)::

        while (1) {
            ret = tcp_connect(); if (!ret) break;
            if (timeout <= 0) return ret;
            ... sleep(interval);
            timeout -= interval;
            interval += reconnect_interval;
            if (interval > RECONNECT_INTERVAL_MAX) interval = RECONNECT_INTERVAL_MAX;
        }
    """
    sleeps = []
    step = interval
    while True:
        if timeout <= 0:
            return sleeps
        sleeps.append(interval)
        timeout -= interval
        interval = min(interval + step, max_interval)


def run_schedule(policy: ReconnectPolicy, limit: int = 1000) -> list[float]:
    sched = policy.schedule()
    sleeps: list[float] = []
    for _ in range(limit):
        delay = sched.after_failure()
        if delay is None:
            return sleeps
        sleeps.append(delay)
    raise AssertionError("schedule never gives up")


def test_default_policy_is_openconnects() -> None:
    p = ReconnectPolicy()
    assert (p.timeout, p.interval, p.max_interval) == (300.0, 10.0, 100.0)


def test_default_schedule_10_to_80_then_give_up() -> None:
    sched = ReconnectPolicy().schedule()
    delays = []
    while (d := sched.after_failure()) is not None:
        delays.append(d)
    assert delays == [10, 20, 30, 40, 50, 60, 70, 80]
    # the 9th failure gives up: 8 sleeps (360 s) after a 300 s budget
    assert sched.attempts == 9
    assert sched.remaining == 300 - 360
    assert delays == openconnect_sleeps(300)


def test_give_up_is_final() -> None:
    sched = ReconnectPolicy(timeout=0).schedule()
    assert sched.after_failure() is None
    assert sched.after_failure() is None
    assert sched.attempts == 2


def test_timeout_zero_gives_up_after_the_first_failure() -> None:
    assert run_schedule(ReconnectPolicy(timeout=0)) == []


@pytest.mark.parametrize(("timeout", "n"), [(1, 1), (10, 1), (11, 2), (30, 2), (31, 3)])
def test_short_budgets(timeout: float, n: int) -> None:
    sleeps = run_schedule(ReconnectPolicy(timeout=timeout))
    assert len(sleeps) == n
    assert sleeps == [10 * (i + 1) for i in range(n)]


def test_interval_caps_at_100_with_a_long_timeout() -> None:
    sleeps = run_schedule(ReconnectPolicy(timeout=3600))
    assert sleeps[:10] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert set(sleeps[10:]) == {100}
    assert max(sleeps) == 100
    # 550 s in the ramp, then 100 s steps until the budget is spent (or overspent once)
    assert sum(sleeps[:-1]) < 3600 <= sum(sleeps)
    assert len(sleeps) == 10 + 31
    assert sleeps == openconnect_sleeps(3600)


@pytest.mark.parametrize("timeout", [*range(0, 200, 7), 299, 300, 301, 359, 360, 361, 1000, 86400])
def test_matches_openconnect_for_any_budget(timeout: int) -> None:
    assert run_schedule(ReconnectPolicy(timeout=float(timeout)), limit=2000) == openconnect_sleeps(
        timeout
    )


def test_custom_interval_and_cap() -> None:
    assert run_schedule(ReconnectPolicy(timeout=100, interval=5, max_interval=15)) == (
        openconnect_sleeps(100, 5, 15)
    )
    assert run_schedule(ReconnectPolicy(timeout=100, interval=5, max_interval=15))[:4] == [
        5,
        10,
        15,
        15,
    ]


def test_each_episode_starts_afresh() -> None:
    policy = ReconnectPolicy()
    first = policy.schedule()
    first.after_failure()
    first.after_failure()
    second = policy.schedule()
    assert second.after_failure() == 10
    assert second.remaining == 290
    assert first.interval == 30
