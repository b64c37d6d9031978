"""Mock ASA session database and ``show vpn-sessiondb`` renderers (asa/sessiondb.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

import pytest

from tunnelswarm.asa.sessiondb import (
    EndReason,
    NoAddressAvailable,
    SessionDb,
    SessionLimitReached,
    SessionLimits,
    SessionSummary,
    TunnelKind,
    asa_cipher_names,
    format_duration,
    render_vpn_sessiondb,
    render_vpn_sessiondb_anyconnect,
    render_vpn_sessiondb_summary,
)
from tunnelswarm.errors import LocalProtocolError

CDT = timezone(timedelta(hours=-5), "CDT")
LOGIN = datetime(2020, 3, 17, 14, 28, 9, tzinfo=CDT)


class Pool:
    def __init__(self, addrs: list[str]) -> None:
        self.free = list(addrs)
        self.released: list[str] = []

    def allocate(self, user: str) -> str | None:
        return self.free.pop(0) if self.free else None

    def release(self, ip: str) -> None:
        self.released.append(ip)
        self.free.append(ip)


def _db(**kw: Any) -> SessionDb:
    n = count()
    return SessionDb(random_bytes=lambda k: bytes([next(n) % 256]) * k, **kw)


# ------------------------------------------------------------------ §8.2 rendering
# protocol.md §8.2, first block. Only the last 8 hex digits of Audt Sess ID differ: ours
# are the login time (0x5e7124c9 = 14:28:09 CDT Mar 17 2020), as in the second real
# ntc-templates sample; the spec's value is copied from a sample where they are not.
SPEC_82_FULL = """\
Session Type: AnyConnect

Username     : jdoe                   Index        : 1018
Assigned IP  : 10.10.10.21            Public IP    : 198.51.100.7
Protocol     : AnyConnect-Parent SSL-Tunnel DTLS-Tunnel
License      : AnyConnect Premium
Encryption   : AnyConnect-Parent: (1)none  SSL-Tunnel: (1)AES-GCM-256  DTLS-Tunnel: (1)AES128
Hashing      : AnyConnect-Parent: (1)none  SSL-Tunnel: (1)SHA384  DTLS-Tunnel: (1)SHA1
Bytes Tx     : 15736                  Bytes Rx     : 12894
Group Policy : GP-VPN                 Tunnel Group : VPN
Login Time   : 14:28:09 CDT Tue Mar 17 2020
Duration     : 2h:21m:21s
Inactivity   : 0h:00m:00s
VLAN Mapping : N/A                    VLAN         : none
Audt Sess ID : ac1063fe003fa0005e7124c9
Security Grp : none
"""


def _spec_session(db: SessionDb, t0: float) -> None:
    s = db.create(
        "jdoe", "GP-VPN", "VPN", "10.10.10.21", "198.51.100.7", t0,
        SessionLimits(idle_timeout=None), wall=LOGIN,
    )  # fmt: skip
    db.attach_ssl(s, t0 + 1, *asa_cipher_names("ECDHE-RSA-AES256-GCM-SHA384"))
    db.attach_dtls(s, t0 + 2, *asa_cipher_names("AES128-SHA"))
    db.touch(s, t0 + 3, bytes_in=12894, bytes_out=15736, tunnel=TunnelKind.DTLS)


def test_render_anyconnect_equals_spec_block() -> None:
    db = _db(headend_ip="172.16.99.254", first_index=1018)
    t0 = 5000.0
    _spec_session(db, t0)
    elapsed = 2 * 3600 + 21 * 60 + 21
    text = render_vpn_sessiondb_anyconnect(db, t0 + elapsed, LOGIN + timedelta(seconds=elapsed))
    assert text == SPEC_82_FULL


def test_login_time_derived_from_wall_when_not_given_at_create() -> None:
    db = _db(headend_ip="172.16.99.254", first_index=1018)
    db.create("jdoe", "GP-VPN", "VPN", "10.10.10.21", "198.51.100.7", 100.0)
    text = render_vpn_sessiondb_anyconnect(db, 160.0, LOGIN + timedelta(seconds=60))
    assert "Login Time   : 14:28:09 CDT Tue Mar 17 2020\n" in text
    assert "Duration     : 0h:01m:00s\n" in text


def test_parent_only_block_and_inactivity() -> None:
    # protocol.md §8.2 second block: Protocol/Encryption/Hashing of a Parent-only session,
    # Duration 0h:37m:06s, Inactivity 0h:29m:58s
    db = _db(headend_ip="172.16.99.254")
    s = db.create("jdoe", "GP-VPN", "VPN", "10.10.10.21", "198.51.100.7", 0.0, wall=LOGIN)
    db.attach_ssl(s, 1.0, "AES256", "SHA1")
    db.attach_dtls(s, 2.0, "AES256", "SHA1")
    db.touch(s, 300.0, bytes_in=1, bytes_out=1)
    # the SSL-Tunnel exists, so even with no traffic the Inactivity counter stays 0
    mid = render_vpn_sessiondb_anyconnect(db, 400.0, LOGIN + timedelta(seconds=400))
    assert "Inactivity   : 0h:00m:00s\n" in mid
    ended = db.detach_ssl(s, 2226.0 - 1798.0, "DPD failure")
    assert [e.tunnel.kind for e in ended] == [TunnelKind.DTLS, TunnelKind.SSL]
    text = render_vpn_sessiondb_anyconnect(db, 2226.0, LOGIN + timedelta(seconds=2226))
    assert (
        "Protocol     : AnyConnect-Parent\n"
        "License      : AnyConnect Premium\n"
        "Encryption   : AnyConnect-Parent: (1)none\n"
        "Hashing      : AnyConnect-Parent: (1)none\n"
    ) in text
    assert "Duration     : 0h:37m:06s\nInactivity   : 0h:29m:58s\n" in text


def test_render_multiple_sessions_long_username_and_empty() -> None:
    db = _db()
    assert render_vpn_sessiondb_anyconnect(db, 0.0, LOGIN) == (
        "INFO: There are presently no active sessions\n"
    )
    db.create("a", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0)
    db.create("longfirstname.longlastname@example.com", "GP", "TG", "10.0.0.2", "1.2.3.5", 0.0)
    text = render_vpn_sessiondb_anyconnect(db, 0.0, LOGIN)
    assert "Security Grp : none\n\nUsername     : longfirstname" in text
    # ntc-templates long_usernames sample: Index moves to its own line
    assert "Username     : longfirstname.longlastname@example.com\nIndex        : 2\n" in text


def test_duration_and_cipher_formats() -> None:
    assert format_duration(0) == "0h:00m:00s"
    assert format_duration(86400 + 12 * 3600 + 33 * 60 + 7) == "1d 12h:33m:07s"
    assert asa_cipher_names("AES256-SHA") == ("AES256", "SHA1")
    assert asa_cipher_names("DHE-RSA-AES128-SHA") == ("AES128", "SHA1")
    assert asa_cipher_names("AES256-GCM-SHA384") == ("AES-GCM-256", "SHA384")
    assert asa_cipher_names("TLS_AES_256_GCM_SHA384") == ("AES-GCM-256", "SHA384")
    assert asa_cipher_names("RC4-SHA") == ("RC4", "SHA1")
    assert asa_cipher_names("DES-CBC3-SHA") == ("3DES", "SHA1")


# ------------------------------------------------------------------ lifecycle
def test_cookie_format_and_lookup() -> None:
    db = SessionDb()
    s = db.create("u", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0)
    assert re.fullmatch(r"[0-9A-F]{40}@1@[0-9A-F]{4}@[0-9A-F]{40}", s.cookie)
    assert db.lookup_cookie(s.cookie) is s
    old = s.cookie
    new = db.issue_cookie(s)
    assert new != old
    assert db.lookup_cookie(old) is None
    assert db.reconnect(new, 1.0) is s
    assert db.reconnect("bogus", 1.0) is None


def test_parent_survives_ssl_loss_and_reconnect_keeps_address() -> None:
    pool = Pool(["10.1.0.5", "10.1.0.6"])
    db = _db(allocator=pool)
    lim = SessionLimits(idle_timeout=600, disconnected_timeout=120)
    s = db.create("u", "GP", "TG", None, "1.2.3.4", 0.0, lim)
    assert s.assigned_ip == "10.1.0.5"
    db.attach_ssl(s, 1.0, "AES256", "SHA1")
    db.attach_dtls(s, 2.0, "AES256", "SHA1")
    assert s.protocol == "AnyConnect-Parent SSL-Tunnel DTLS-Tunnel"
    assert db.summary().active == 1
    assert db.summary().inactive == 0
    db.detach_ssl(s, 10.0, "DPD failure")
    assert s.protocol == "AnyConnect-Parent"
    assert db.get(s.index) is s
    assert db.summary().inactive == 1
    assert db.summary().ssl_active == 0
    assert db.expire(100.0) == []
    # reconnect within the disconnected timeout: same session, same address
    again = db.reconnect(s.cookie, 129.0)
    assert again is s
    assert again.assigned_ip == "10.1.0.5"
    db.attach_ssl(s, 129.5, "AES256", "SHA1")
    assert s.is_active
    assert s.inactivity(200.0) == 0.0
    assert [t.tunnel_id for t in s.tunnels] == ["1.1", "1.4"]
    # second loss; now wait past the disconnected timeout
    db.detach_ssl(s, 200.0, "Transport closing")
    assert db.reconnect(s.cookie, 320.0) is None  # → CONNECT 401
    ended = db.expire(320.0)
    assert [(e.session, e.reason) for e in ended] == [(s, EndReason.IDLE_TIMEOUT)]
    assert pool.released == ["10.1.0.5"]
    assert len(db) == 0
    assert db.summary().inactive == 0


def test_disconnected_timeout_via_expire_and_default_equals_idle() -> None:
    db = _db()
    s = db.create("u", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0, SessionLimits(idle_timeout=300))
    db.attach_ssl(s, 0.0, "AES256", "SHA1")
    db.touch(s, 50.0, bytes_in=10)
    db.detach_ssl(s, 100.0, "DPD failure")
    assert db.expire(349.0) == []  # idle deadline 350, disconnected deadline 400
    ended = db.expire(350.0)
    assert ended[0].reason is EndReason.IDLE_TIMEOUT
    assert ended[0].duration == 350.0
    assert [t.tunnel.kind for t in ended[0].tunnels] == [TunnelKind.PARENT]
    assert db.reconnect(s.cookie, 351.0) is None


def test_idle_timeout_with_tunnels_and_touch_extends() -> None:
    db = _db()
    s = db.create("u", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0, SessionLimits(idle_timeout=60))
    db.attach_ssl(s, 1.0, "AES256", "SHA1")
    db.attach_dtls(s, 1.0, "AES128", "SHA1")
    for t in range(10, 200, 10):
        db.touch(s, float(t), bytes_out=100, tunnel=TunnelKind.SSL)
        assert db.expire(float(t)) == []
    db.touch(s, 200.0)  # zero bytes (e.g. DPD): does not reset the idle timer
    assert db.expire(249.0) == []
    ended = db.expire(250.0)
    assert [e.reason for e in ended] == [EndReason.IDLE_TIMEOUT]
    kinds = [t.tunnel.kind for t in ended[0].tunnels]
    assert kinds == [TunnelKind.DTLS, TunnelKind.SSL, TunnelKind.PARENT]
    assert ended[0].session.bytes_tx == 1900
    assert ended[0].session.ssl is None


def test_session_timeout_max_time_exceeded_despite_traffic() -> None:
    db = _db()
    lim = SessionLimits(idle_timeout=60, session_timeout=300)
    s = db.create("u", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0, lim)
    db.attach_ssl(s, 0.0, "AES256", "SHA1")
    for t in range(0, 300, 20):
        db.touch(s, float(t), bytes_in=1)
        assert db.expire(float(t)) == []
    ended = db.expire(300.0)
    assert [e.reason.value for e in ended] == ["Max time exceeded"]


def test_logout_replacement_and_errors() -> None:
    db = _db(capacity=1)
    s = db.create("u", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0)
    with pytest.raises(LocalProtocolError):
        db.attach_dtls(s, 0.0, "AES256", "SHA1")  # DTLS needs the SSL-Tunnel
    db.attach_ssl(s, 0.0, "AES256", "SHA1")
    db.attach_dtls(s, 0.0, "AES256", "SHA1")
    replaced = db.attach_ssl(s, 5.0, "AES256", "SHA1")  # new-tunnel rekey / reconnect
    assert {t.tunnel.kind for t in replaced} == {TunnelKind.SSL, TunnelKind.DTLS}
    assert s.is_active
    assert s.dtls is None
    with pytest.raises(SessionLimitReached):
        db.create("v", "GP", "TG", "10.0.0.2", "1.2.3.5", 1.0)
    ended = db.logout(s, 10.0)
    assert ended.reason is EndReason.USER_REQUESTED
    assert ended.reason.value == "User Requested"
    assert db.reconnect(s.cookie, 11.0) is None
    with pytest.raises(LocalProtocolError):
        db.logout(s, 12.0)
    assert db.expire(10_000.0) == []
    with pytest.raises(NoAddressAvailable):
        _db(allocator=Pool([])).create("w", "GP", "TG", None, "1.2.3.6", 0.0)
    with pytest.raises(LocalProtocolError):
        db.create("w", "GP", "TG", None, "1.2.3.6", 0.0)  # no allocator


def test_ten_thousand_sessions_create_touch_expire() -> None:
    n = 10_000
    pool = Pool([f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(n)])
    db = _db(allocator=pool, capacity=n)
    lim = SessionLimits(idle_timeout=60)
    sessions = []
    for i in range(n):
        s = db.create(f"user{i}", "GP", "TG", None, "198.51.100.7", i * 0.001, lim)
        db.attach_ssl(s, i * 0.001, "AES256", "SHA1")
        sessions.append(s)
    summ = db.summary()
    assert (summ.active, summ.peak_concurrent, summ.ssl_active) == (n, n, n)
    for s in sessions[::2]:  # half keep sending traffic
        for t in (20.0, 40.0, 59.0):
            db.touch(s, t, bytes_in=64, bytes_out=64)
    first = db.expire(75.0)  # untouched: created by t=10, idle 60
    assert len(first) == n // 2
    assert {e.reason for e in first} == {EndReason.IDLE_TIMEOUT}
    assert len(db) == n // 2
    assert len(db._heap) <= 2 * n  # lazy heap stays bounded
    rest = db.expire(200.0)
    assert len(rest) == n // 2
    assert len(db) == 0
    assert len(pool.released) == n
    summ = db.summary()
    assert (summ.active, summ.inactive, summ.cumulative, summ.ssl_cumulative) == (0, 0, n, n)


# ------------------------------------------------------------------ summary rendering
# ntc-templates cisco_asa_show_vpn-sessiondb.raw with the Clientless rows removed (the
# mock has AnyConnect only) and the totals recomputed accordingly.
NTC_SUMMARY = """\
---------------------------------------------------------------------------
VPN Session Summary
---------------------------------------------------------------------------
                               Active : Cumulative : Peak Concur : Inactive
                             ----------------------------------------------
AnyConnect Client            :     38 :     330351 :         442 :        0
  SSL/TLS/DTLS               :     38 :     330351 :         442 :        0
---------------------------------------------------------------------------
Total Active and Inactive    :     38             Total Cumulative : 330351
Device Total VPN Capacity    :   5000
Device Load                  :     1%
---------------------------------------------------------------------------
"""
NTC_TUNNELS = """\
---------------------------------------------------------------------------
Tunnels Summary
---------------------------------------------------------------------------
                               Active : Cumulative : Peak Concurrent
                             ----------------------------------------------
AnyConnect-Parent            :     38 :     330351 :             442
SSL-Tunnel                   :     38 :     985244 :             392
DTLS-Tunnel                  :     37 :    2227003 :             386
---------------------------------------------------------------------------
Totals                       :    113 :    3542598
---------------------------------------------------------------------------
"""


def test_summary_renderers_match_real_layout() -> None:
    summ = SessionSummary(
        active=38, inactive=0, cumulative=330351, peak_concurrent=442, capacity=5000,
        parent_active=38, parent_cumulative=330351, parent_peak=442,
        ssl_active=38, ssl_cumulative=985244, ssl_peak=392,
        dtls_active=37, dtls_cumulative=2227003, dtls_peak=386,
    )  # fmt: skip
    assert render_vpn_sessiondb_summary(summ) == NTC_SUMMARY
    assert render_vpn_sessiondb(summ) == NTC_SUMMARY + NTC_TUNNELS


def test_summary_counts_inactive_parent_only_sessions() -> None:
    db = _db(capacity=250)
    a = db.create("a", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0)
    b = db.create("b", "GP", "TG", "10.0.0.2", "1.2.3.5", 0.0)
    db.attach_ssl(a, 1.0, "AES256", "SHA1")
    db.attach_ssl(b, 1.0, "AES256", "SHA1")
    db.detach_ssl(b, 2.0, "DPD failure")
    text = render_vpn_sessiondb_summary(db.summary())
    assert "AnyConnect Client            :      1 :          2 :           2 :        1\n" in text
    assert "Total Active and Inactive    :      2             Total Cumulative :      2\n" in text
    assert "Device Load                  :     1%\n" in text


# ------------------------------------------------------------------ vpn-simultaneous-logins
def test_make_room_ends_the_oldest_when_all_equally_idle() -> None:
    pool = Pool(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
    db = _db(allocator=pool)
    a1, a2 = (db.create("alice", "GP", "TG", None, "1.2.3.4", t) for t in (0.0, 0.0))
    bob = db.create("bob", "GP", "TG", None, "1.2.3.5", 0.0)
    db.attach_ssl(a1, 1.0, "AES256", "SHA1")
    assert db.count_user("alice") == 2
    assert db.make_room("alice", 3, 5.0) == []  # below the limit: nothing ends
    ended = db.make_room("alice", 2, 5.0)
    assert [(e.session, e.reason) for e in ended] == [(a1, EndReason.PORT_PREEMPTED)]
    assert ended[0].reason.value == "Port Preempted"
    assert [t.tunnel.kind for t in ended[0].tunnels] == [TunnelKind.SSL, TunnelKind.PARENT]
    assert db.user_sessions("alice") == [a2]
    assert db.user_sessions("bob") == [bob]
    assert db.reconnect(a1.cookie, 6.0) is None  # its cookie is dead: CONNECT 401
    assert pool.released == ["10.0.0.1"]
    assert db.summary().ssl_active == 0


def test_make_room_ends_the_longest_idle_session_first() -> None:
    db = _db()
    s1 = db.create("alice", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0)
    s2 = db.create("alice", "GP", "TG", "10.0.0.2", "1.2.3.4", 10.0)
    s3 = db.create("alice", "GP", "TG", "10.0.0.3", "1.2.3.4", 20.0)
    db.attach_ssl(s1, 0.0, "AES256", "SHA1")
    db.touch(s1, 30.0, bytes_in=100)  # the oldest is the busiest: s2 is idle longest
    ended = db.make_room("alice", 3, 40.0)
    assert [e.session for e in ended] == [s2]
    # limit lowered to 1: every session goes, longest idle first
    ended = db.make_room("alice", 1, 50.0)
    assert [e.session for e in ended] == [s3, s1]
    assert db.count_user("alice") == 0
    assert db.user_sessions("alice") == []
    assert len(db) == 0


def test_make_room_refuses_zero_and_per_user_index_follows_every_end() -> None:
    db = _db()
    with pytest.raises(LocalProtocolError):
        db.make_room("alice", 0, 0.0)
    assert db.make_room("nobody", 1, 0.0) == []
    lim = SessionLimits(idle_timeout=60)
    s1 = db.create("alice", "GP", "TG", "10.0.0.1", "1.2.3.4", 0.0, lim)
    s2 = db.create("alice", "GP", "TG", "10.0.0.2", "1.2.3.4", 0.0, SessionLimits(None))
    db.logout(s2, 1.0)
    assert db.user_sessions("alice") == [s1]
    assert [e.session for e in db.expire(60.0)] == [s1]
    assert db.count_user("alice") == 0
    s3 = db.create("alice", "GP", "TG", "10.0.0.3", "1.2.3.4", 70.0)
    assert db.user_sessions("alice") == [s3]
