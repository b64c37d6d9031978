"""Load plans (``tunnelswarm.fleet.plan``): durations and rates, lifetimes, the closed and
open models and their planners, credentials, source pools and traffic profiles."""

from __future__ import annotations

import ipaddress
import math
import random
from pathlib import Path

import pytest

from tunnelswarm.errors import ConfigError, LocalProtocolError
from tunnelswarm.fleet import (
    ClosedModel,
    ClosedPlanner,
    Credentials,
    FlowTraffic,
    Lifetime,
    OpenModel,
    OpenPlanner,
    PingTraffic,
    SourcePool,
    Start,
    TrafficProfile,
    UdpEchoTraffic,
    make_planner,
    parse_duration,
    parse_rate,
)


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------ durations and rates
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (" 1.5 ", 1.5), ("0", 0.0)],
)
def test_parse_duration_text(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_numbers() -> None:
    assert parse_duration(5) == 5.0
    assert isinstance(parse_duration(5), float)
    assert parse_duration(2.5) == 2.5


@pytest.mark.parametrize("bad", [True, "30k", "50%", "soon", "", None, [1]])
def test_parse_duration_refuses_non_durations(bad: object) -> None:
    with pytest.raises(ConfigError, match="--hold: expected a duration") as exc:
        parse_duration(bad, "--hold")  # type: ignore[arg-type]
    one_line(exc)


@pytest.mark.parametrize("bad", ["-1s", -2, math.inf, math.nan])
def test_parse_duration_refuses_negative_and_infinite(bad: str | float) -> None:
    with pytest.raises(ConfigError, match="zero or more"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("50/s", 50.0),
        ("3000/min", 50.0),
        ("120/m", 2.0),
        ("36/h", 0.01),
        ("7/hour", 7 / 3600),
        ("3/sec", 3.0),
        ("1.5k/s", 1500.0),
        (" 10 / s ", 10.0),
        ("5", 5.0),
        ("0.5/s", 0.5),
    ],
)
def test_parse_rate_text(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


def test_parse_rate_numbers() -> None:
    assert parse_rate(2) == 2.0
    assert parse_rate(0.25) == 0.25


@pytest.mark.parametrize("bad", ["fast", "5/d", "-1/s", "", None])
def test_parse_rate_refuses_non_rates(bad: object) -> None:
    with pytest.raises(ConfigError, match="--rate: expected a rate like") as exc:
        parse_rate(bad, "--rate")  # type: ignore[arg-type]
    one_line(exc)


def test_parse_rate_refuses_bool() -> None:
    with pytest.raises(ConfigError, match="expected a rate like '50/s', got True"):
        parse_rate(True)


@pytest.mark.parametrize("bad", ["0/s", 0, -3.0, math.inf, math.nan])
def test_parse_rate_must_be_positive(bad: str | float) -> None:
    with pytest.raises(ConfigError, match="more than zero per second"):
        parse_rate(bad)


# ------------------------------------------------------------------ lifetimes
def test_lifetime_draws() -> None:
    rng = random.Random(1)
    assert Lifetime.fixed(30).draw(rng) == 30
    assert Lifetime.until_end().draw(rng) is None
    assert Lifetime() == Lifetime.until_end()
    draws = [Lifetime.uniform(10, 20).draw(rng) for _ in range(200)]
    assert all(d is not None and 10 <= d <= 20 for d in draws)
    exp = [Lifetime.exponential(5).draw(rng) for _ in range(4000)]
    values = [d for d in exp if d is not None]
    assert len(values) == 4000
    assert min(values) >= 0
    assert sum(values) / len(values) == pytest.approx(5, rel=0.1)


def test_lifetime_draws_are_seeded() -> None:
    life = Lifetime.exponential(3)
    a = [life.draw(random.Random(9)) for _ in range(3)]
    b = [life.draw(random.Random(9)) for _ in range(3)]
    assert a == b


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("30s", Lifetime.fixed(30)),
        ("until-end", Lifetime.until_end()),
        (" until-end ", Lifetime.until_end()),
        ("uniform(10s, 1m)", Lifetime.uniform(10, 60)),
        ("uniform( 500ms ,2s )", Lifetime.uniform(0.5, 2)),
        ("exponential(5m)", Lifetime.exponential(300)),
    ],
)
def test_lifetime_parse(text: str, lifetime: Lifetime) -> None:
    assert Lifetime.parse(text) == lifetime


def test_lifetime_parse_number_is_fixed() -> None:
    assert Lifetime.parse(12) == Lifetime.fixed(12)


@pytest.mark.parametrize(
    "lifetime",
    [
        Lifetime.fixed(30),
        Lifetime.fixed(0.25),
        Lifetime.fixed(1e-05),
        Lifetime.uniform(1.5, 90),
        Lifetime.exponential(600),
        Lifetime.until_end(),
    ],
)
def test_lifetime_str_round_trips(lifetime: Lifetime) -> None:
    assert Lifetime.parse(str(lifetime)) == lifetime


def test_lifetime_str_forms() -> None:
    assert str(Lifetime.fixed(30)) == "30s"
    assert str(Lifetime.uniform(10, 60.5)) == "uniform(10s,60.5s)"
    assert str(Lifetime.exponential(300)) == "exponential(300s)"
    assert str(Lifetime()) == "until-end"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uniform(1s)", "uniform takes 2 duration"),
        ("exponential(1s, 2s)", "exponential takes 1 duration"),
        ("uniform(a, b)", "expected a duration"),
        ("forever", r"lifetime \(a duration, uniform\(a,b\)"),
        ("0s", "lifetime fixed: must be a finite number more than zero"),
        ("uniform(2s,1s)", "high is below low"),
        ("uniform(0s,1s)", "low: must be"),
        ("exponential(0s)", "lifetime exponential: must be"),
    ],
)
def test_lifetime_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        Lifetime.parse(text)
    one_line(exc)


def test_lifetime_validation() -> None:
    with pytest.raises(ConfigError, match="until-end takes no numbers"):
        Lifetime("until-end", 1.0)
    with pytest.raises(ConfigError, match="high: must be"):
        Lifetime("uniform", 1.0, math.inf)
    with pytest.raises(ConfigError, match="lifetime kind 'gamma'"):
        Lifetime("gamma", 1.0)  # type: ignore[arg-type]


# ------------------------------------------------------------------ models
def test_closed_model_geometry() -> None:
    m = ClosedModel(5, ramp_up_rate=2.0, hold=10.0, ramp_down_rate=4.0)
    assert m.ramp_up_span == 2.0
    assert [m.first_start_offset(s) for s in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert m.retire_offset(4) == 12.0
    assert m.retire_offset(0) == 13.0
    assert m.duration == 13.0
    all_at_once = ClosedModel(5, None, 10.0)
    assert all_at_once.ramp_up_span == 0.0
    assert all_at_once.first_start_offset(4) == 0.0
    assert all_at_once.retire_offset(0) == all_at_once.retire_offset(4) == 10.0
    assert all_at_once.lifetime == Lifetime.until_end()
    assert all_at_once.retry_delay == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency: must be at least 1"),
        ({"concurrency": 2.0}, "concurrency: expected a whole number"),
        ({"concurrency": True}, "concurrency: expected a whole number"),
        ({"ramp_up_rate": 0.0}, "ramp-up rate"),
        ({"ramp_down_rate": -1.0}, "ramp-down rate"),
        ({"hold": 0.0}, "hold"),
        ({"retry_delay": -1.0}, "retry delay"),
        ({"retry_delay": math.nan}, "retry delay"),
    ],
)
def test_closed_model_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"concurrency": 2, "ramp_up_rate": 1.0, "hold": 5.0}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message) as exc:
        ClosedModel(**args)  # type: ignore[arg-type]
    one_line(exc)


def test_closed_model_accepts_zero_retry_delay() -> None:
    assert ClosedModel(1, None, 1.0, retry_delay=0.0).retry_delay == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arrival_rate": 0.0}, "arrival rate"),
        ({"duration": -1.0}, "duration"),
        ({"max_concurrency": 0}, "max concurrency"),
        ({"max_concurrency": True}, "max concurrency"),
        ({"max_concurrency": 2.5}, "max concurrency"),
        ({"arrivals": "burst"}, "arrivals: expected 'constant' or 'poisson'"),
    ],
)
def test_open_model_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"arrival_rate": 1.0, "duration": 5.0}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        OpenModel(**args)  # type: ignore[arg-type]


def test_make_planner_dispatches() -> None:
    closed = make_planner(ClosedModel(1, None, 1.0), start=0.0, seed=1)
    opened = make_planner(OpenModel(1.0, 1.0), start=0.0, seed=1)
    assert isinstance(closed, ClosedPlanner)
    assert isinstance(opened, OpenPlanner)


def test_late_threshold_validated() -> None:
    with pytest.raises(ConfigError, match="late threshold"):
        make_planner(OpenModel(1.0, 1.0), start=0.0, seed=1, late_threshold=-1)


# ------------------------------------------------------------------ closed planner
def test_closed_ramp_up_hands_out_slots_in_order() -> None:
    p = make_planner(ClosedModel(3, 2.0, 10.0), start=100.0, seed=1)
    assert p.next_deadline() == 100.0
    first = p.next_starts(100.0)
    assert first == [Start(100.0, 0, 0, None)]
    assert p.next_deadline() == 100.5
    assert p.next_starts(100.4) == []
    # a late engine call gets every due start, each with its own scheduled time
    late = p.next_starts(101.2)
    assert [(s.scheduled_at, s.slot, s.index) for s in late] == [(100.5, 1, 1), (101.0, 2, 2)]
    assert p.live == 3
    assert p.started == 3
    assert p.end_time == 111.0
    # everything live and no lifetime: the next event is the retire time
    assert p.next_deadline() == 111.0


def test_closed_all_at_once() -> None:
    p = make_planner(ClosedModel(4, None, 5.0), start=0.0, seed=1)
    starts = p.next_starts(0.0)
    assert [s.slot for s in starts] == [0, 1, 2, 3]
    assert all(s.scheduled_at == 0.0 for s in starts)


def test_closed_churn_restarts_slot_at_once_with_new_lifetime() -> None:
    model = ClosedModel(2, None, 100.0, lifetime=Lifetime.uniform(5, 10))
    p = make_planner(model, start=0.0, seed=3)
    starts = p.next_starts(0.0)
    for s in starts:
        assert s.lifetime is not None
        assert 5 <= s.lifetime <= 10
        p.record_start(s, 0.0)
    first = starts[0]
    assert first.lifetime is not None
    # the engine sees the lifetime run out through stops()
    end = first.lifetime
    assert p.next_deadline() == pytest.approx(min(s.lifetime or 0 for s in starts))
    assert 0 in p.stops(end)
    assert p.stops(end) == []  # named once
    p.session_ended(0, end)
    again = p.next_starts(end)
    assert [(s.slot, s.index, s.scheduled_at) for s in again] == [(0, 2, end)]
    assert again[0].lifetime != first.lifetime


def test_closed_session_ending_early_restarts_and_stale_expiry_is_ignored() -> None:
    p = make_planner(ClosedModel(1, None, 100.0, lifetime=Lifetime.fixed(10)), start=0.0, seed=1)
    (s,) = p.next_starts(0.0)
    p.record_start(s, 0.0)
    p.session_ended(0, 3.0)  # dropped by the headend after 3 s
    (s2,) = p.next_starts(3.0)
    p.record_start(s2, 3.0)
    # the first session's expiry at t=10 is stale: only the new one's at 13 counts
    assert p.stops(10.0) == []
    assert p.next_deadline() == 13.0
    assert p.stops(13.0) == [0]


def test_stale_expiry_is_skipped_by_deadline() -> None:
    p = make_planner(ClosedModel(1, None, 100.0, lifetime=Lifetime.fixed(10)), start=0.0, seed=1)
    (s,) = p.next_starts(0.0)
    p.record_start(s, 0.0)
    p.session_ended(0, 3.0)
    assert p.next_deadline() == 3.0  # the restart; the expiry at 10 is gone
    (s2,) = p.next_starts(3.0)
    p.record_start(s2, 3.0)
    assert p.next_deadline() == 13.0


def test_a_stop_is_named_once_when_two_reasons_meet() -> None:
    p = make_planner(ClosedModel(1, None, 10.0, lifetime=Lifetime.fixed(5)), start=0.0, seed=1)
    (s,) = p.next_starts(0.0)
    p.record_start(s, 0.0)
    assert p.stops(5.0) == [0]  # lifetime over; the engine is slow to end it
    assert p.stops(10.0) == []  # the slot retires meanwhile: not named again
    p.session_ended(0, 11.0)
    assert p.next_starts(11.0) == []
    assert p.done(11.0)


def test_closed_failed_session_retries_after_delay() -> None:
    p = make_planner(ClosedModel(1, None, 10.0, retry_delay=2.0), start=0.0, seed=1)
    (s,) = p.next_starts(0.0)
    p.record_start(s, 0.0)
    p.session_ended(0, 1.0, failed=True)
    assert p.next_starts(2.9) == []
    assert p.next_deadline() == 3.0
    (s2,) = p.next_starts(3.0)
    assert s2.scheduled_at == 3.0
    # a retry that would come after the slot retires never comes
    p.record_start(s2, 3.0)
    p.session_ended(0, 9.0, failed=True)
    assert p.next_deadline() == 10.0
    assert p.next_starts(10.0) == []
    assert p.missed_starts == 0
    assert p.done(10.0)


def test_closed_ramp_down_retires_highest_slot_first_at_rate() -> None:
    model = ClosedModel(3, None, 10.0, ramp_down_rate=2.0)
    p = make_planner(model, start=0.0, seed=1)
    for s in p.next_starts(0.0):
        p.record_start(s, 0.0)
    assert p.stops(9.9) == []
    assert p.stops(10.0) == [2]
    p.session_ended(2, 10.0)
    assert p.next_deadline() == 10.5
    assert p.stops(10.5) == [1]
    assert not p.done(10.5)
    p.session_ended(1, 10.6)
    # a slot that ends on its own before its retire time still churns
    p.session_ended(0, 10.7)
    (s,) = p.next_starts(10.7)
    assert s.slot == 0
    assert p.stops(11.0) == [0]
    p.session_ended(0, 11.0)
    assert p.next_starts(11.0) == []
    assert p.done(11.0)
    assert p.next_deadline() is None


def test_closed_retire_all_at_once_stops_every_live_slot() -> None:
    p = make_planner(ClosedModel(3, None, 5.0), start=0.0, seed=1)
    for s in p.next_starts(0.0):
        p.record_start(s, 0.0)
    assert p.next_deadline() == 5.0
    assert p.stops(6.0) == [2, 1, 0]
    assert not p.done(6.0)
    for slot in (0, 1, 2):
        p.session_ended(slot, 6.0)
    assert p.done(6.0)


def test_closed_starts_never_taken_are_missed() -> None:
    p = make_planner(ClosedModel(3, 1.0, 1.0), start=0.0, seed=1)
    # the engine never came round before the slots retired (at t=3)
    assert p.done(3.0)
    assert p.missed_starts == 3
    assert p.next_starts(3.0) == []  # the dropped starts are not handed out later
    assert p.next_deadline() is None
    assert p.metrics()["missed_starts"] == 3.0


def test_closed_stale_pending_entries_are_skipped_by_deadline() -> None:
    p = make_planner(ClosedModel(2, 1.0, 1.0, ramp_down_rate=1.0), start=0.0, seed=1)
    (s,) = p.next_starts(0.0)
    p.record_start(s, 0.0)
    # slot 1 (first start at t=1) retires at t=2 without the engine taking it
    assert p.stops(2.0) == []
    assert p.missed_starts == 1
    assert p.next_deadline() == 3.0


def test_closed_stop_of_a_session_that_already_ended_is_dropped() -> None:
    p = make_planner(ClosedModel(1, None, 100.0, lifetime=Lifetime.fixed(5)), start=0.0, seed=1)
    (s,) = p.next_starts(0.0)
    p.record_start(s, 0.0)
    assert p.next_starts(5.0) == []  # brings the plan to t=5: the stop is queued
    assert p.next_deadline() == 5.0  # due now
    p.session_ended(0, 5.0)  # it ended by itself before the engine read stops()
    assert p.next_deadline() == 5.0  # the restart is due
    (s2,) = p.next_starts(5.0)
    assert s2.index == 1
    assert p.stops(5.0) == []  # the old stop must not kill the new session


def test_record_start_counts_lateness() -> None:
    p = make_planner(ClosedModel(3, None, 10.0), start=0.0, seed=1, late_threshold=1.0)
    a, b, c = p.next_starts(0.0)
    assert p.record_start(a, 0.25) == 0.25
    assert p.record_start(b, 1.0) == 1.0  # at the threshold: not late
    assert p.late_starts == 0
    assert p.record_start(c, 2.5) == 2.5
    assert p.late_starts == 1
    assert p.max_lateness == 2.5
    assert p.recorded == 3
    assert p.metrics() == {
        "starts": 3.0,
        "late_starts": 1.0,
        "missed_starts": 0.0,
        "max_start_lateness": 2.5,
    }


def test_record_start_misuse() -> None:
    p = make_planner(ClosedModel(1, None, 10.0), start=0.0, seed=1)
    with pytest.raises(LocalProtocolError, match="not handed out"):
        p.record_start(Start(0.0, 0, 0, None), 0.0)
    (s,) = p.next_starts(0.0)
    with pytest.raises(LocalProtocolError, match="not handed out"):
        p.record_start(Start(0.0, 0, 7, None), 0.0)
    p.record_start(s, 0.0)
    with pytest.raises(LocalProtocolError, match="recorded twice"):
        p.record_start(s, 0.0)
    p.session_ended(0, 1.0)
    with pytest.raises(LocalProtocolError, match="has already ended"):
        p.record_start(s, 1.0)


def test_session_ended_unknown_slot() -> None:
    p = make_planner(ClosedModel(1, None, 10.0), start=0.0, seed=1)
    with pytest.raises(LocalProtocolError, match="slot 5 has no live session"):
        p.session_ended(5, 0.0)


def test_time_must_not_go_backwards() -> None:
    p = make_planner(ClosedModel(1, None, 10.0), start=0.0, seed=1)
    p.next_starts(2.0)
    with pytest.raises(LocalProtocolError, match="time went backwards"):
        p.stops(1.0)


def test_closed_plan_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[Start]:
        model = ClosedModel(2, None, 30.0, lifetime=Lifetime.exponential(4))
        p = make_planner(model, start=0.0, seed=seed)
        out: list[Start] = []
        now = 0.0
        while not p.done(now):
            for slot in p.stops(now):
                p.session_ended(slot, now)
            for s in p.next_starts(now):
                p.record_start(s, now)
                out.append(s)
            deadline = p.next_deadline()
            if deadline is None:
                break
            now = max(now, deadline)
        assert p.done(now)
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


# ------------------------------------------------------------------ open planner
def test_open_constant_arrivals() -> None:
    p = make_planner(OpenModel(2.0, 2.0, Lifetime.fixed(10)), start=10.0, seed=1)
    assert p.next_deadline() == 10.0
    starts = p.next_starts(11.0)
    assert [(s.scheduled_at, s.slot, s.index, s.lifetime) for s in starts] == [
        (10.0, 0, 0, 10),
        (10.5, 1, 1, 10),
        (11.0, 2, 2, 10),
    ]
    assert p.next_deadline() == 11.5
    assert p.end_time == 12.0


def test_open_poisson_arrivals_are_seeded() -> None:
    def times(seed: int) -> list[float]:
        p = make_planner(OpenModel(5.0, 4.0, arrivals="poisson"), start=0.0, seed=seed)
        return [s.scheduled_at for s in p.next_starts(3.999)]

    a = times(1)
    assert a == times(1)
    assert a != times(2)
    assert a[0] > 0.0
    assert a == sorted(a)
    assert 5 <= len(a) <= 40


def test_open_cap_holds_arrivals_without_moving_them() -> None:
    model = OpenModel(1.0, 10.0, max_concurrency=1)
    p = make_planner(model, start=0.0, seed=1, late_threshold=1.0)
    (a,) = p.next_starts(0.0)
    p.record_start(a, 0.0)
    assert p.next_starts(3.0) == []  # arrivals at 1, 2, 3 wait for the cap
    assert p.next_deadline() == 10.0  # nothing but the end until a session ends
    p.session_ended(0, 3.5)
    assert p.next_deadline() == 1.0  # the held arrival is due
    (b,) = p.next_starts(3.5)
    assert (b.scheduled_at, b.index) == (1.0, 1)
    assert p.record_start(b, 3.5) == 2.5
    assert p.late_starts == 1
    assert p.max_lateness == 2.5


def test_open_end_stops_everyone_and_counts_missed_arrivals() -> None:
    model = OpenModel(1.0, 3.0, max_concurrency=1)
    p = make_planner(model, start=0.0, seed=1)
    (a,) = p.next_starts(0.0)
    p.record_start(a, 0.0)
    assert not p.done(2.9)
    assert p.stops(3.0) == [0]
    assert p.missed_starts == 2  # arrivals at 1 and 2 never found a place
    assert p.next_starts(3.0) == []
    assert p.next_deadline() is None
    assert not p.done(3.0)
    p.session_ended(0, 3.1)
    assert p.done(3.1)
    assert p.stops(4.0) == []


def test_open_arrival_on_the_end_is_not_an_arrival() -> None:
    p = make_planner(OpenModel(1.0, 2.0), start=0.0, seed=1)
    assert [s.scheduled_at for s in p.next_starts(1.0)] == [0.0, 1.0]
    assert p.next_deadline() == 2.0  # the end, not an arrival at 2
    assert p.next_starts(2.0) == []
    assert p.missed_starts == 0
    assert p.stops(2.0) == [0, 1]  # handed out, never recorded: still live, still stopped


def test_open_end_stops_in_start_order() -> None:
    p = make_planner(OpenModel(1.0, 2.0), start=0.0, seed=1)
    for s in p.next_starts(1.0):
        p.record_start(s, 1.0)
    assert p.stops(2.0) == [0, 1]


def test_open_lifetime_expiry_frees_the_cap() -> None:
    model = OpenModel(1.0, 10.0, Lifetime.fixed(1.5), max_concurrency=1)
    p = make_planner(model, start=0.0, seed=1)
    (a,) = p.next_starts(0.0)
    p.record_start(a, 0.0)
    assert p.next_deadline() == 1.5
    assert p.stops(1.5) == [0]
    p.session_ended(0, 1.5)
    (b,) = p.next_starts(1.5)
    assert b.scheduled_at == 1.0


# ------------------------------------------------------------------ credentials
def test_credentials_template() -> None:
    assert Credentials().get(0) == ("user1", "test")
    c = Credentials.template("user{n:04d}", "pass{n}")
    assert c.get(0) == ("user0001", "pass1")
    assert c.get(41) == ("user0042", "pass42")
    assert Credentials.template("shared", "pw").get(7) == ("shared", "pw")
    assert c.describe() == "user 'user{n:04d}'"


@pytest.mark.parametrize(
    ("user", "password", "message"),
    [
        ("", "pw", "user template: must not be empty"),
        ("user{x}", "pw", r"only \{n\} may be used"),
        ("user{}", "pw", r"only \{n\} may be used"),
        ("user{n.real}", "pw", r"only \{n\} may be used"),
        ("user{n", "pw", "user template 'user{n'"),
        ("user{n:q}", "pw", "Unknown format code"),
        ("u", "pw{n:{w}}", "password template"),
    ],
)
def test_credentials_template_errors(user: str, password: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        Credentials.template(user, password)
    one_line(exc)


def test_credentials_negative_index() -> None:
    with pytest.raises(LocalProtocolError, match="negative"):
        Credentials().get(-1)


def test_credentials_csv_with_header_comments_and_quotes() -> None:
    text = 'user,password\n\n# staff\nalice,"se,cret"\nbob, two\n"carol",\n'
    c = Credentials.parse_csv(text, "users.csv")
    assert c.rows == (("alice", "se,cret"), ("bob", "two"), ("carol", ""))
    assert [c.get(i) for i in range(4)] == [
        ("alice", "se,cret"),
        ("bob", "two"),
        ("carol", ""),
        ("alice", "se,cret"),
    ]
    assert c.describe() == "users.csv (3 users)"


def test_credentials_csv_without_header() -> None:
    c = Credentials.parse_csv("alice,a\nUser,Password\n", "f.csv")
    # only a first row is a header; later it is a user called "User"
    assert c.rows == (("alice", "a"), ("User", "Password"))
    assert Credentials.parse_csv(" USER , Password\nx,y\n", "f.csv").rows == (("x", "y"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice,a\nbob\n", "users.csv line 2: expected 'user,password', got 1 field"),
        ("alice,a,b\n", "users.csv line 1: expected 'user,password', got 3 field"),
        ("alice,a\n,b\n", "users.csv line 2: empty user name"),
        ('alice,a\nbob,"x"y\n', "users.csv line 2: "),
        ("", "users.csv: no 'user,password' rows"),
        ("user,password\n# nobody\n", "users.csv: no 'user,password' rows"),
    ],
)
def test_credentials_csv_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        Credentials.parse_csv(text, "users.csv")
    one_line(exc)


def test_credentials_from_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(b"\xef\xbb\xbfuser,password\nal\xc3\xafce,pw\n")
    c = Credentials.from_csv(path)
    assert c.rows == (("alïce", "pw"),)
    assert c.source == str(path)


def test_credentials_from_csv_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.csv: cannot read credentials") as exc:
        Credentials.from_csv(tmp_path / "missing.csv")
    one_line(exc)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"alice,a\nbob,\xe9t\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1.csv line 2: not UTF-8 text"):
        Credentials.from_csv(str(bad))
    broken = tmp_path / "broken.csv"
    broken.write_text("alice\n")
    with pytest.raises(ConfigError, match=r"broken.csv line 1: expected"):
        Credentials.from_csv(broken)


# ------------------------------------------------------------------ source pool
def test_source_pool_range_round_robin() -> None:
    pool = SourcePool.parse("127.0.0.2-127.0.0.250")
    assert len(pool) == 249
    assert pool.get(0) == "127.0.0.2"
    assert pool.get(248) == "127.0.0.250"
    assert pool.get(249) == "127.0.0.2"
    assert pool.text == "127.0.0.2-127.0.0.250"


def test_source_pool_list_networks_and_ipv6() -> None:
    pool = SourcePool.parse("127.0.0.0/30, ::1, 127.0.1.0/31,127.0.2.7/32,127.0.3.9")
    assert [pool.get(i) for i in range(len(pool))] == [
        "127.0.0.1",
        "127.0.0.2",
        "::1",
        "127.0.1.0",
        "127.0.1.1",
        "127.0.2.7",
        "127.0.3.9",
    ]


def test_source_pool_huge_loopback_network_is_cheap() -> None:
    pool = SourcePool.parse("127.0.0.0/8")
    assert len(pool) == 2**24 - 2
    assert pool.get(2**24 - 3) == "127.255.255.254"


def test_source_pool_local_addresses() -> None:
    local = ["192.0.2.10", ipaddress.ip_address("192.0.2.11"), "2001:db8::1", "2001:db8::2"]
    pool = SourcePool.parse("192.0.2.10-192.0.2.11,2001:db8::/126", local=[*local, "2001:db8::3"])
    assert [pool.get(i) for i in range(len(pool))] == [
        "192.0.2.10",
        "192.0.2.11",
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::3",
    ]
    # a range that straddles the end of loopback is fine when the rest is local
    pool = SourcePool.parse("127.255.255.254-128.0.0.0", local=["128.0.0.0"])
    assert len(pool) == 3


@pytest.mark.parametrize(
    ("text", "local", "message"),
    [
        ("127.0.0.1,", (), "empty item"),
        ("127.0.0.300", (), "'127.0.0.300': '127.0.0.300' does not appear"),
        ("127.0.0.1-::1", (), "mixes IPv4 and IPv6"),
        ("127.0.0.9-127.0.0.2", (), "ends before it starts"),
        ("127.0.0.1/24", (), "has host bits set"),
        ("127.0.0.1-127.0.0.5,127.0.0.5", (), "127.0.0.5 is listed more than once"),
        ("127.0.0.0/30,127.0.0.2", (), "127.0.0.2 is listed more than once"),
        ("10.0.0.5", (), "--source 10.0.0.5: not a loopback address"),
        ("0.0.0.0", (), "0.0.0.0: not a loopback"),
        ("126.255.255.255-127.0.0.1", (), "126.255.255.255: not a loopback"),
        ("127.255.255.255-128.0.0.1", ("128.0.0.0",), "128.0.0.1: not a loopback"),
        ("10.0.0.0/8", ("10.0.0.1",), "10.0.0.2: not a loopback"),
        ("::1-::2", (), "--source ::2: not a loopback"),
        ("::-::1", (), "--source ::: not a loopback"),
    ],
)
def test_source_pool_errors(text: str, local: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        SourcePool.parse(text, local=local)
    one_line(exc)


def test_source_pool_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="bad local address"):
        SourcePool.parse("127.0.0.1", local=["eth0"])
    with pytest.raises(LocalProtocolError, match="negative"):
        SourcePool.parse("127.0.0.1").get(-1)
    with pytest.raises(ConfigError, match="no addresses"):
        SourcePool([])


def test_source_pool_from_ranges_names_itself() -> None:
    a = ipaddress.IPv4Address("127.0.0.1")
    pool = SourcePool([(a, 1), (a + 4, 3)])
    assert pool.text == "127.0.0.1,127.0.0.5-127.0.0.7"
    assert pool.get(3) == "127.0.0.7"


# ------------------------------------------------------------------ traffic
def test_ping_parse_forms() -> None:
    assert PingTraffic.parse("1/s:56") == PingTraffic(1.0, 56)
    assert PingTraffic.parse("2/s") == PingTraffic(2.0, 56)
    assert PingTraffic.parse("rate=30/min, size=1k") == PingTraffic(0.5, 1000)
    assert PingTraffic.parse("size=100") == PingTraffic(1.0, 100)
    assert PingTraffic(4.0).interval == 0.25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--ping: empty"),
        ("1/s:56:7", "expected RATE:SIZE or rate=...,size=..."),
        ("1/s:", "expected RATE:SIZE"),
        ("rate=1/s,bogus=1", "bad item 'bogus=1'"),
        ("rate=", "bad item 'rate='"),
        ("rate=1/s,size", "bad item 'size'"),
        ("rate=1/s,rate=2/s", "rate given twice"),
        ("1/s:big", "--ping size: expected a whole number"),
        ("1/s:1.5", "--ping size: expected a whole number"),
        ("1/s:70000", r"--ping size: must be 0\.\.65507"),
        ("often:56", "--ping rate: expected a rate"),
    ],
)
def test_ping_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        PingTraffic.parse(text)
    one_line(exc)


def test_udp_and_flow_parse_forms() -> None:
    assert UdpEchoTraffic.parse("10/s:1400") == UdpEchoTraffic(10.0, 1400)
    assert UdpEchoTraffic.parse("10/s") == UdpEchoTraffic(10.0, 1400)
    assert UdpEchoTraffic.parse("size=28") == UdpEchoTraffic(0.2, 28)
    assert UdpEchoTraffic(0.5).interval == 2.0
    assert FlowTraffic.parse("200k:20s") == FlowTraffic(200_000, 20.0)
    assert FlowTraffic.parse("1.5M") == FlowTraffic(1_500_000, 20.0)
    assert FlowTraffic.parse("every=1m") == FlowTraffic(200_000, 60.0)
    assert FlowTraffic.parse("bytes=10k,every=500ms") == FlowTraffic(10_000, 0.5)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: UdpEchoTraffic.parse("1/s:27"), r"--udp size: must be 28\.\.65535"),
        (lambda: UdpEchoTraffic(1.0, 70000), r"udp size: must be 28\.\.65535"),
        (lambda: UdpEchoTraffic(0.0), "udp rate"),
        (lambda: PingTraffic(-1.0), "ping rate"),
        (lambda: PingTraffic(1.0, -1), r"ping size: must be 0\.\.65507"),
        (lambda: FlowTraffic(0), "flow bytes: must be at least 1"),
        (lambda: FlowTraffic(1, 0.0), "flow interval"),
        (lambda: FlowTraffic.parse("0:1s"), r"--flows bytes: must be 1\.\."),
        (lambda: FlowTraffic.parse("1k:never"), "--flows every: expected a duration"),
    ],
)
def test_traffic_validation(factory: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        factory()  # type: ignore[operator]


def test_traffic_profile() -> None:
    assert TrafficProfile.parse() == TrafficProfile()
    assert TrafficProfile().describe() == "no traffic"
    p = TrafficProfile.parse(ping="1/s:56", udp="rate=0.5/s", flows="200k:20s")
    assert p.ping == PingTraffic(1.0, 56)
    assert p.udp == UdpEchoTraffic(0.5, 1400)
    assert p.flows == FlowTraffic(200_000, 20.0)
    assert p.describe() == "ping 1/s x 56 B, udp 0.5/s x 1400 B, flow 200000 B every 20s"
