"""Property tests of the load plans (``tunnelswarm.fleet.plan``).

* Driven by an engine that is slow, drops sessions and fails logins at random, the closed
  model never has more than ``concurrency`` live sessions, never starts a slot twice, and
  always comes to an end; with a prompt engine it holds exactly ``concurrency`` sessions
  between the ramp-up and the first retire.
* Poisson arrivals come at the asked mean rate (within 6 sigma over thousands of arrivals)
  with exponential gaps; constant arrivals are evenly spaced.
* Lateness is never negative and never hidden: ``late_starts`` is exactly the number of
  starts recorded later than the threshold, the schedule the engine saw is the plan's own
  (never shifted), and every planned arrival was either started or counted missed.
* Credentials cycle through CSV rows; templates number sessions from 1.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tunnelswarm.fleet import (
    ClosedModel,
    Credentials,
    Lifetime,
    OpenModel,
    Planner,
    Start,
    make_planner,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_STEPS = 50_000

lifetimes = st.one_of(
    st.just(Lifetime.until_end()),
    st.floats(0.2, 5.0).map(Lifetime.fixed),
    st.tuples(st.floats(0.2, 3.0), st.floats(0.0, 3.0)).map(
        lambda ab: Lifetime.uniform(ab[0], ab[0] + ab[1])
    ),
    st.floats(0.2, 5.0).map(Lifetime.exponential),
)
rates = st.floats(0.5, 20.0)


@dataclass
class Engine:
    """A test engine: wakes late at random, sessions drop or fail by themselves."""

    planner: Planner
    rng: random.Random
    busy: float  # the engine wakes up to this much late, half of the time
    drop_p: float  # chance that a session ends by itself (drop or failed login)
    sessions: dict[int, tuple[float, bool]] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    started: list[Start] = field(default_factory=list)

    def step(self, now: float) -> None:
        for slot, (ends, failed) in sorted(self.sessions.items()):
            if ends <= now:
                del self.sessions[slot]
                self.planner.session_ended(slot, now, failed=failed)
        for slot in self.planner.stops(now):
            assert slot in self.sessions
            del self.sessions[slot]
            self.planner.session_ended(slot, now)
        for start in self.planner.next_starts(now):
            assert start.slot not in self.sessions, "a slot was started twice"
            assert start.scheduled_at <= now
            self.lateness.append(self.planner.record_start(start, now))
            self.started.append(start)
            if self.rng.random() < self.drop_p:
                ends = now + self.rng.uniform(0.0, 2.0)
                self.sessions[start.slot] = (ends, self.rng.random() < 0.5)
            else:
                self.sessions[start.slot] = (math.inf, False)
        assert self.planner.live == len(self.sessions)

    def wake(self, now: float) -> float | None:
        times = [t for t, _ in self.sessions.values() if t != math.inf]
        deadline = self.planner.next_deadline()
        if deadline is not None:
            times.append(deadline)
        if not times:
            return None
        late = self.rng.uniform(0.0, self.busy) if self.rng.random() < 0.5 else 0.0
        return max(now, min(times)) + late

    def run(self, start: float, check: object = None) -> float:
        now = start
        for _ in range(MAX_STEPS):
            self.step(now)
            if callable(check):
                check(now)
            if self.planner.done(now):
                return now
            nxt = self.wake(now)
            assert nxt is not None, "the plan stalled before its end"
            now = nxt
        raise AssertionError("the plan never ended")


@SETTINGS
@given(
    concurrency=st.integers(1, 8),
    up=st.none() | rates,
    hold=st.floats(0.5, 20.0),
    down=st.none() | rates,
    lifetime=lifetimes,
    retry=st.floats(0.0, 2.0),
    busy=st.floats(0.0, 3.0),
    drop_p=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**32),
)
def test_closed_model_never_exceeds_concurrency(
    concurrency: int,
    up: float | None,
    hold: float,
    down: float | None,
    lifetime: Lifetime,
    retry: float,
    busy: float,
    drop_p: float,
    seed: int,
) -> None:
    model = ClosedModel(concurrency, up, hold, down, lifetime, retry)
    planner = make_planner(model, start=50.0, seed=seed)
    engine = Engine(planner, random.Random(seed), busy, drop_p)

    def check(now: float) -> None:
        assert planner.live <= concurrency
        assert all(0 <= slot < concurrency for slot in engine.sessions)

    end = engine.run(50.0, check)
    assert end >= planner.end_time
    assert not engine.sessions
    assert planner.recorded == planner.started == len(engine.started)
    assert [s.index for s in engine.started] == list(range(len(engine.started)))


@SETTINGS
@given(
    concurrency=st.integers(1, 8),
    up=st.none() | rates,
    hold=st.floats(0.5, 20.0),
    down=st.none() | rates,
    lifetime=lifetimes,
    seed=st.integers(0, 2**32),
)
def test_closed_model_holds_exactly_concurrency_with_a_prompt_engine(
    concurrency: int,
    up: float | None,
    hold: float,
    down: float | None,
    lifetime: Lifetime,
    seed: int,
) -> None:
    model = ClosedModel(concurrency, up, hold, down, lifetime)
    planner = make_planner(model, start=0.0, seed=seed)
    engine = Engine(planner, random.Random(seed), busy=0.0, drop_p=0.0)
    full_from, first_retire = model.ramp_up_span, model.retire_offset(concurrency - 1)
    seen_full = []

    def check(now: float) -> None:
        if full_from <= now < first_retire:
            assert planner.live == concurrency
            seen_full.append(now)

    engine.run(0.0, check)
    assert seen_full, "the engine never looked during the hold"
    assert planner.late_starts == planner.missed_starts == 0
    assert planner.max_lateness == 0.0


@SETTINGS
@given(rate=st.floats(0.5, 500.0), seed=st.integers(0, 2**32))
def test_poisson_arrivals_have_the_asked_mean_rate(rate: float, seed: int) -> None:
    expected = 4000.0
    duration = expected / rate
    planner = make_planner(OpenModel(rate, duration, arrivals="poisson"), start=0.0, seed=seed)
    times = [s.scheduled_at for s in planner.next_starts(math.nextafter(duration, 0.0))]
    assert len(planner.stops(duration)) == len(times)  # the end stops them all
    count = len(times) + planner.missed_starts
    assert abs(count - expected) <= 6 * math.sqrt(expected)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert mean * rate == pytest.approx(1.0, rel=0.1)
    assert sd / mean == pytest.approx(1.0, rel=0.15)  # exponential gaps: sd == mean


@SETTINGS
@given(rate=st.floats(0.5, 500.0), duration=st.floats(1.0, 30.0))
def test_constant_arrivals_are_evenly_spaced(rate: float, duration: float) -> None:
    planner = make_planner(OpenModel(rate, duration), start=7.0, seed=1)
    starts = planner.next_starts(math.nextafter(7.0 + duration, 0.0))
    assert len(planner.stops(7.0 + duration)) == len(starts)
    planned = [k for k in range(int(rate * duration) + 2) if 7.0 + k / rate < 7.0 + duration]
    assert len(starts) + planner.missed_starts == len(planned)
    for k, s in enumerate(starts):
        assert s.scheduled_at == 7.0 + k / rate
        assert s.slot == s.index == k


@SETTINGS
@given(
    rate=rates,
    duration=st.floats(1.0, 20.0),
    cap=st.none() | st.integers(1, 5),
    arrivals=st.sampled_from(["constant", "poisson"]),
    lifetime=lifetimes,
    busy=st.floats(0.0, 4.0),
    drop_p=st.floats(0.0, 0.6),
    late_threshold=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**32),
)
def test_lateness_is_never_negative_and_never_hidden(
    rate: float,
    duration: float,
    cap: int | None,
    arrivals: str,
    lifetime: Lifetime,
    busy: float,
    drop_p: float,
    late_threshold: float,
    seed: int,
) -> None:
    model = OpenModel(rate, duration, lifetime, cap, arrivals)  # type: ignore[arg-type]
    planner = make_planner(model, start=0.0, seed=seed, late_threshold=late_threshold)
    engine = Engine(planner, random.Random(seed), busy, drop_p)

    def check(now: float) -> None:
        assert cap is None or planner.live <= cap

    engine.run(0.0, check)
    assert all(lateness >= 0 for lateness in engine.lateness)
    assert planner.late_starts == sum(1 for x in engine.lateness if x > late_threshold)
    assert planner.max_lateness == max(engine.lateness, default=0.0)
    assert planner.metrics()["late_starts"] == planner.late_starts

    # the plan the engine saw is the plan itself: same times, same lifetimes, in order,
    # and whatever was not started is counted missed
    reference = make_planner(replace(model, max_concurrency=None), start=0.0, seed=seed)
    planned = reference.next_starts(math.nextafter(duration, 0.0))
    assert len(reference.stops(duration)) == len(planned)
    total = len(planned) + reference.missed_starts
    assert engine.started == planned[: len(engine.started)]
    assert planner.started + planner.missed_starts == total


row_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(row_text.filter(lambda u: bool(u.strip()) and not u.startswith("#")), row_text),
        min_size=1,
        max_size=8,
    ),
    header=st.booleans(),
    indices=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_csv_credentials_cycle(
    rows: list[tuple[str, str]], header: bool, indices: list[int]
) -> None:
    assume([f.strip().lower() for f in rows[0]] != ["user", "password"])
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    if header:
        writer.writerow(["user", "password"])
    writer.writerows(rows)
    creds = Credentials.parse_csv(out.getvalue(), "gen.csv")
    assert creds.rows == tuple(rows)
    for i in indices:
        assert creds.get(i) == rows[i % len(rows)]
        assert creds.get(i) == creds.get(i + len(rows))


@SETTINGS
@given(index=st.integers(0, 10**9), width=st.integers(1, 8))
def test_template_credentials_number_sessions_from_one(index: int, width: int) -> None:
    creds = Credentials.template(f"u{{n:0{width}d}}", "p{n}")
    user, password = creds.get(index)
    assert user == f"u{index + 1:0{width}d}"
    assert password == f"p{index + 1}"


@SETTINGS
@given(lifetime=lifetimes)
def test_lifetime_text_round_trips(lifetime: Lifetime) -> None:
    assert Lifetime.parse(str(lifetime)) == lifetime
