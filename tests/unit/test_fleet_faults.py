"""``--fault`` parsing and the outage bookkeeping of :mod:`tunnelswarm.fleet.faults`."""

from __future__ import annotations

import pytest

from tunnelswarm.errors import ConfigError
from tunnelswarm.fleet.faults import OUTAGE_CSV_HEADER, Fault, Outage, OutageTracker, parse_fault


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("udp-blackout at 30s for 20s", Fault("udp-blackout", 30.0, 20.0)),
        ("tcp-cut at 1m", Fault("tcp-cut", 60.0)),
        ("  headend-pause at 500ms for 2s ", Fault("headend-pause", 0.5, 2.0)),
        ("headend-restart at 45s down 10s", Fault("headend-restart", 45.0, 10.0)),
        ("headend-restart at 45s", Fault("headend-restart", 45.0, 0.0)),
        ("tcp-cut at 0", Fault("tcp-cut", 0.0)),
    ],
)
def test_parse_fault(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault
    assert parse_fault(fault.describe()) == fault


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("udp-blackout", "expected 'KIND at T"),
        ("udp-blackout at 30s", "needs 'for D'"),
        ("udp-blackout at 30s for 0s", "needs 'for D'"),
        ("udp-blackout at 30s down 5s", "takes 'for D', not 'down'"),
        ("tcp-cut at 5s for 5s", "takes no duration"),
        ("headend-restart at 5s for 5s", "takes 'down D', not 'for'"),
        ("power-cut at 5s", "unknown kind 'power-cut'"),
        ("tcp-cut at soon", "expected a duration"),
        ("tcp-cut at -5s", "zero or more"),
        ("headend-pause at 1s for 2s extra", "expected 'KIND at T"),
    ],
)
def test_bad_faults_are_one_line_errors_naming_the_fault(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_fault(text)
    msg = str(e.value)
    assert "\n" not in msg
    assert words in msg
    assert repr(text) in msg


def test_fault_times_and_needs() -> None:
    f = Fault("udp-blackout", 10.0, 5.0)
    assert f.end == 15.0
    assert not f.needs_mock
    assert Fault("headend-restart", 1.0).needs_mock
    with pytest.raises(ConfigError, match="unknown kind"):
        Fault("bogus", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at must be zero or more"):
        Fault("tcp-cut", float("nan"))


def test_a_reconnect_outage_begins_once_and_recovers_in_the_same_session() -> None:
    t = OutageTracker()
    assert t.lost_tunnel(3, 103, 10.0, "transport", "reset")
    assert not t.lost_tunnel(3, 103, 11.0, "dpd")  # already down: the first cause stands
    assert t.down == 1
    assert t.is_down(3)
    assert t.open_outages() == [(3, 103, 10.0, "transport")]
    o = t.tunnel_up(3, 12.5, new_session=False)
    assert o == Outage(3, 103, 10.0, 12.5, "transport", "reconnect", "reset")
    assert o.seconds == 2.5
    assert o.recovered
    assert t.down == 0
    assert t.tunnel_up(3, 13.0, new_session=False) is None  # nothing open


def test_outage_endings() -> None:
    t = OutageTracker()
    for slot in range(4):
        t.lost_tunnel(slot, slot, float(slot), "cookie-rejected")
    new = t.tunnel_up(0, 5.0, new_session=True)
    lost = t.lost(1, 6.0)
    gone = t.gone(2, 7.0)
    assert new is not None
    assert new.ended_by == "new session"
    assert new.recovered
    assert lost is not None
    assert lost.ended_by == "lost"
    assert not lost.recovered
    assert gone is not None
    assert gone.ended_by == "unrecovered"
    assert t.open_outages() == [(3, 3, 3.0, "cookie-rejected")]
    [last] = t.finish(9.0)
    assert (last.slot, last.end, last.ended_by, last.seconds) == (3, 9.0, "unrecovered", 6.0)
    assert t.finish(10.0) == []


def test_open_outages_are_listed_longest_first() -> None:
    t = OutageTracker()
    t.lost_tunnel(5, 5, 3.0, "dpd")
    t.lost_tunnel(1, 1, 4.0, "transport")
    t.lost_tunnel(9, 9, 1.0, "transport")
    assert [slot for slot, *_ in t.open_outages()] == [9, 5, 1]


def test_an_outage_never_ends_before_it_began() -> None:
    t = OutageTracker("dtls")
    t.lost_tunnel(0, 0, 10.0, "dtls-down")
    o = t.end(0, 9.0, "dtls up")
    assert o is not None
    assert (o.end, o.seconds, o.channel, o.recovered) == (10.0, 0.0, "dtls", True)


def test_outage_csv_row_matches_the_header() -> None:
    o = Outage(2, 7, 1.0, 3.25, "transport", "reconnect", 'said "bye", twice', "tunnel")
    row = o.csv_row()
    assert row == "2,7,tunnel,1.000,3.250,2.250,transport,reconnect,\"said 'bye', twice\""
    assert len(OUTAGE_CSV_HEADER.split(",")) == 9
    d = o.as_dict()
    assert d["seconds"] == 2.25
    assert d["channel"] == "tunnel"
