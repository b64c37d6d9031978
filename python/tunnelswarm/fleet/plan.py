"""Load plans: when sessions start and stop, who they log in as, where they come from.

Theory of operation
-------------------
A load run is driven by a :class:`Planner`, a pure object that never reads a clock, never
sleeps and never touches a socket. The engine feeds it the time (``now``, seconds on the
engine's monotonic timeline, non-decreasing across calls) and the fate of the sessions it
started; the planner answers what to start and what to stop. The loop is the sans-IO
contract of the rest of the project::

    planner = make_planner(model, start=trio.current_time(), seed=seed)
    while not planner.done(now):
        for slot in planner.stops(now):          # ramp-down, lifetime over, end of run
            cancel the session running in `slot`
        for start in planner.next_starts(now):   # every start whose time has come
            spawn a session; planner.record_start(start, now)
        sleep until planner.next_deadline() or a session ends (then session_ended)

**Closed model** (:class:`ClosedModel`): ``concurrency`` slots, each holding at most one
session at a time. Slot ``i`` first starts at ``start + i / ramp_up_rate`` (all at
``start`` when the rate is None). The hold counts from the first start of the last slot:
``hold_end = start + (concurrency - 1) / ramp_up_rate + hold``. Every slot has a *retire
time*: ``hold_end`` when ``ramp_down_rate`` is None, else slots retire one by one at that
rate after the hold, the highest slot first (slot ``i`` at ``hold_end + (concurrency - 1 -
i) / ramp_down_rate``), the mirror of the ramp-up. Until its retire time a slot churns:
when its session ends (lifetime over, or it failed) the engine calls
:meth:`Planner.session_ended` and the slot restarts at once with a new lifetime, or
``retry_delay`` later when the session failed (so a headend that refuses everyone is not
hammered in a tight loop). At its retire time a live slot is stopped
(:meth:`Planner.stops`) and never restarts. So the number of live sessions never exceeds
``concurrency``.

**Open model** (:class:`OpenModel`): sessions arrive at ``arrival_rate`` per second for
``duration`` seconds, either evenly spaced (``"constant"``: at ``start + k / rate``) or as
a Poisson process (``"poisson"``: exponential gaps of mean ``1 / rate``, first arrival one
gap after ``start``). Each arrival is its own slot (``slot == index``). With
``max_concurrency`` set, an arrival that finds the cap full waits until a session ends; it
keeps its scheduled time. At ``start + duration`` every live session is stopped and the run
is over.

**Lifetimes** (:class:`Lifetime`): fixed, ``uniform(a,b)``, ``exponential(mean)``, or
``until-end`` (the default: the session lives until its slot retires or the run ends). A
lifetime counts from :meth:`Planner.record_start` (the moment the engine began the
session, so it includes the login); when it is over the slot appears in
:meth:`Planner.stops`.

**Lateness is counted, never hidden.** A start carries ``scheduled_at``, the time the
plan wanted it; the planner never moves it. The engine measures setup latency from
``scheduled_at``, not from the moment it got round to the session, so a slow engine or a
full ``max_concurrency`` shows up as latency instead of silently thinning the load (no
coordinated omission). :meth:`Planner.record_start` returns the lateness (``now -
scheduled_at``, never negative) and counts a start later than ``late_threshold`` in
``late_starts``, with the worst in ``max_lateness``; a start whose time came but which was
never taken before its slot retired or the run ended is counted in ``missed_starts``.

**Determinism.** The planner draws from two ``random.Random`` streams derived from
``seed``: one for Poisson gaps and one for lifetimes. The same model, seed and sequence of
calls give the same plan, exactly.

The rest of the module is what the engine needs per session: :class:`Credentials` (a
``user{n}`` template with ``n`` the 1-based session number, or a CSV file),
:class:`SourcePool` (the local source address of session ``index``, round-robin, because
headends limit sessions per address), :class:`TrafficProfile` (what each client sends
through its tunnel), and :func:`parse_duration` / :func:`parse_rate` for the CLI.
"""

from __future__ import annotations

import codecs
import csv
import heapq
import io
import ipaddress
import itertools
import math
import random
import re
import string
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal

from tunnelswarm.errors import ConfigError, LocalProtocolError
from tunnelswarm.scenario.expect import format_number, parse_number

__all__ = [
    "ClosedModel",
    "ClosedPlanner",
    "Credentials",
    "FlowTraffic",
    "Lifetime",
    "OpenModel",
    "OpenPlanner",
    "PingTraffic",
    "Planner",
    "SourcePool",
    "Start",
    "TrafficProfile",
    "UdpEchoTraffic",
    "make_planner",
    "parse_duration",
    "parse_rate",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ------------------------------------------------------------------ durations and rates
_DURATION_RE: Final = re.compile(r"\s*[-+]?[0-9]+(?:\.[0-9]+)?\s*(?:us|ms|s|m|h)?\s*")
_RATE_RE: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?\s*[kM]?)\s*(?:/\s*(s|sec|m|min|h|hour))?\s*")
_PER: Final[dict[str, float]] = {
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


def parse_duration(value: str | float, what: str = "duration") -> float:
    """Seconds from ``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number of seconds.

    Must be finite and not negative; anything else is a one-line ConfigError naming ``what``.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.fullmatch(value):
        seconds = parse_number(value)
    else:
        raise ConfigError(f"{what}: expected a duration like '30s', '500ms' or '2m', got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{what}: must be a finite duration of zero or more, got {value!r}")
    return seconds


def parse_rate(value: str | float, what: str = "rate") -> float:
    """Events per second from ``"50/s"``, ``"3000/min"``, ``"2/m"``, ``"10/h"``, ``"1.5k/s"``
    or a bare number (per second). Must be finite and more than zero."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a rate like '50/s', got {value!r}")
    if isinstance(value, int | float):
        rate = float(value)
    else:
        m = _RATE_RE.fullmatch(value) if isinstance(value, str) else None
        if m is None:
            raise ConfigError(f"{what}: expected a rate like '50/s' or '3000/min', got {value!r}")
        rate = parse_number(m.group(1)) / _PER[m.group(2) or "s"]
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"{what}: must be more than zero per second, got {value!r}")
    return rate


def _exact(seconds: float) -> str:
    """A number of seconds, without exponent, that parses back to the same float."""
    text = format(Decimal(repr(seconds)), "f")
    return text.removesuffix(".0")


def _positive(value: float, what: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what}: must be a finite number more than zero, got {value!r}")


# ------------------------------------------------------------------ lifetimes
LifetimeKind = Literal["fixed", "uniform", "exponential", "until-end"]
_LIFETIME_CALL: Final = re.compile(r"\s*(uniform|exponential)\s*\(([^()]*)\)\s*")


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a session lives once started: see the module docstring.

    ``fixed``: ``a`` seconds; ``uniform``: uniformly in [``a``, ``b``]; ``exponential``:
    exponentially with mean ``a``; ``until-end``: until its slot retires or the run ends.
    Text forms (:meth:`parse`, and ``str()`` gives them back): ``30s``,
    ``uniform(10s,60s)``, ``exponential(5m)``, ``until-end``.
    """

    kind: LifetimeKind = "until-end"
    a: float = 0.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "until-end":
            if self.a or self.b:
                raise ConfigError("lifetime until-end takes no numbers")
        elif self.kind == "uniform":
            _positive(self.a, "lifetime uniform(low, high): low")
            _positive(self.b, "lifetime uniform(low, high): high")
            if self.b < self.a:
                raise ConfigError(
                    f"lifetime uniform({_exact(self.a)}s,{_exact(self.b)}s): high is below low"
                )
        elif self.kind in ("fixed", "exponential"):
            _positive(self.a, f"lifetime {self.kind}")
        else:
            raise ConfigError(
                f"lifetime kind {self.kind!r}: expected fixed, uniform, exponential or until-end"
            )

    @classmethod
    def fixed(cls, seconds: float) -> Lifetime:
        return cls("fixed", seconds)

    @classmethod
    def uniform(cls, low: float, high: float) -> Lifetime:
        return cls("uniform", low, high)

    @classmethod
    def exponential(cls, mean: float) -> Lifetime:
        return cls("exponential", mean)

    @classmethod
    def until_end(cls) -> Lifetime:
        return cls()

    @classmethod
    def parse(cls, value: str | float, what: str = "lifetime") -> Lifetime:
        """A lifetime from its text form (see the class docstring) or a number of seconds."""
        if isinstance(value, str):
            if value.strip() == "until-end":
                return cls()
            m = _LIFETIME_CALL.fullmatch(value)
            if m is not None:
                args = [a.strip() for a in m.group(2).split(",")]
                want = 2 if m.group(1) == "uniform" else 1
                if len(args) != want:
                    raise ConfigError(
                        f"{what} {value!r}: {m.group(1)} takes {want} duration(s), got {len(args)}"
                    )
                nums = [parse_duration(a, what) for a in args]
                if m.group(1) == "uniform":
                    return cls("uniform", nums[0], nums[1])
                return cls("exponential", nums[0])
        seconds = parse_duration(
            value, f"{what} (a duration, uniform(a,b), exponential(mean) or until-end)"
        )
        return cls("fixed", seconds)

    def draw(self, rng: random.Random) -> float | None:
        """One lifetime in seconds (None for until-end); draws from ``rng`` when random."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.a)
        return None

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{_exact(self.a)}s"
        if self.kind == "uniform":
            return f"uniform({_exact(self.a)}s,{_exact(self.b)}s)"
        if self.kind == "exponential":
            return f"exponential({_exact(self.a)}s)"
        return "until-end"


# ------------------------------------------------------------------ load models
def _check_rate(rate: float | None, what: str) -> None:
    if rate is not None:
        _positive(rate, what)


@dataclass(frozen=True, slots=True)
class ClosedModel:
    """``concurrency`` slots ramped up at ``ramp_up_rate`` slots/s (None: all at once), held
    ``hold`` seconds, retired at ``ramp_down_rate`` slots/s (None: all at once); sessions
    churn with ``lifetime``; a failed session's slot restarts ``retry_delay`` s later."""

    concurrency: int
    ramp_up_rate: float | None
    hold: float
    ramp_down_rate: float | None = None
    lifetime: Lifetime = Lifetime()
    retry_delay: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise ConfigError(f"concurrency: expected a whole number, got {self.concurrency!r}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency: must be at least 1, got {self.concurrency}")
        _check_rate(self.ramp_up_rate, "ramp-up rate")
        _check_rate(self.ramp_down_rate, "ramp-down rate")
        _positive(self.hold, "hold")
        if not math.isfinite(self.retry_delay) or self.retry_delay < 0:
            raise ConfigError(f"retry delay: must be zero or more, got {self.retry_delay!r}")

    @property
    def ramp_up_span(self) -> float:
        """Seconds from the first slot's start to the last slot's first start."""
        if self.ramp_up_rate is None:
            return 0.0
        return (self.concurrency - 1) / self.ramp_up_rate

    def first_start_offset(self, slot: int) -> float:
        return 0.0 if self.ramp_up_rate is None else slot / self.ramp_up_rate

    def retire_offset(self, slot: int) -> float:
        """Seconds after the run's start at which ``slot`` stops for good."""
        hold_end = self.ramp_up_span + self.hold
        if self.ramp_down_rate is None:
            return hold_end
        return hold_end + (self.concurrency - 1 - slot) / self.ramp_down_rate

    @property
    def duration(self) -> float:
        """Seconds from the run's start to the last retire time."""
        return self.retire_offset(0)


Arrivals = Literal["constant", "poisson"]


@dataclass(frozen=True, slots=True)
class OpenModel:
    """Sessions arrive at ``arrival_rate``/s for ``duration`` s (``arrivals``: evenly
    spaced or Poisson), each living ``lifetime``; at most ``max_concurrency`` live at once
    (None: no cap) -- an arrival held by the cap keeps its scheduled time."""

    arrival_rate: float
    duration: float
    lifetime: Lifetime = Lifetime()
    max_concurrency: int | None = None
    arrivals: Arrivals = "constant"

    def __post_init__(self) -> None:
        _positive(self.arrival_rate, "arrival rate")
        _positive(self.duration, "duration")
        cap = self.max_concurrency
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"max concurrency: expected a whole number >= 1, got {cap!r}")
        if self.arrivals not in ("constant", "poisson"):
            raise ConfigError(f"arrivals: expected 'constant' or 'poisson', got {self.arrivals!r}")


# ------------------------------------------------------------------ the planner
@dataclass(frozen=True, slots=True)
class Start:
    """Start a session now. ``scheduled_at``: when the plan wanted it (measure setup
    latency from here); ``slot``: pass it back to :meth:`Planner.session_ended`;
    ``index``: 0-based global session number (credentials and source address);
    ``lifetime``: seconds, or None (until its slot retires or the run ends)."""

    scheduled_at: float
    slot: int
    index: int
    lifetime: float | None


@dataclass(slots=True)
class _Live:
    start: Start
    recorded: bool = False
    stopping: bool = False


class Planner(ABC):
    """The common machinery of :class:`ClosedPlanner` and :class:`OpenPlanner`: live
    sessions, lifetime expiry, stops and lateness (see the module docstring).

    Every method that takes ``now`` first brings the plan up to ``now``; ``now`` must not
    go backwards (LocalProtocolError). Counters: ``started`` (starts handed out),
    ``recorded``, ``late_starts``, ``max_lateness``, ``missed_starts``.
    """

    def __init__(self, *, start: float, seed: int, late_threshold: float = 1.0) -> None:
        if not math.isfinite(late_threshold) or late_threshold < 0:
            raise ConfigError(f"late threshold: must be zero or more, got {late_threshold!r}")
        self.start = start
        self.seed = seed
        self.late_threshold = late_threshold
        self.started = 0
        self.recorded = 0
        self.late_starts = 0
        self.missed_starts = 0
        self.max_lateness = 0.0
        self._now = -math.inf
        self._life_rng = random.Random(f"tunnelswarm.fleet.lifetime:{seed}")
        self._arrival_rng = random.Random(f"tunnelswarm.fleet.arrivals:{seed}")
        self._live: dict[int, _Live] = {}
        self._expiries: list[tuple[float, int, int]] = []  # (ends at, index, slot)
        self._stop_queue: list[tuple[int, int]] = []  # (slot, index)

    # ---------------------------------------------------------------- public
    @property
    def live(self) -> int:
        """Sessions handed out and not yet ended (whether recorded or being stopped)."""
        return len(self._live)

    @property
    @abstractmethod
    def end_time(self) -> float:
        """When the plan ends: the last retire time, or the end of the arrival window."""

    def next_starts(self, now: float) -> list[Start]:
        """Every start whose time is ``<= now`` and that may start now, in schedule order."""
        self._advance(now)
        starts = self._take_due(now)
        for s in starts:
            self._live[s.slot] = _Live(s)
        self.started += len(starts)
        return starts

    def record_start(self, start: Start, now: float) -> float:
        """The engine began ``start`` at ``now``: returns its lateness (seconds, >= 0) and
        counts it in ``late_starts`` when above ``late_threshold``. The lifetime counts
        from here."""
        self._advance(now)
        entry = self._live.get(start.slot)
        if entry is None or entry.start != start:
            raise LocalProtocolError(
                f"record_start: session {start.index} was not handed out by next_starts"
                " or has already ended"
            )
        if entry.recorded:
            raise LocalProtocolError(f"record_start: session {start.index} recorded twice")
        entry.recorded = True
        lateness = now - start.scheduled_at
        self.recorded += 1
        self.max_lateness = max(self.max_lateness, lateness)
        if lateness > self.late_threshold:
            self.late_starts += 1
        if start.lifetime is not None:
            heapq.heappush(self._expiries, (now + start.lifetime, start.index, start.slot))
        return lateness

    def session_ended(self, slot: int, now: float, *, failed: bool = False) -> None:
        """The session in ``slot`` ended at ``now`` (told to stop, lifetime over, or failed:
        ``failed=True``). The closed model re-arms the slot; the open model frees a place."""
        self._advance(now)
        if self._live.pop(slot, None) is None:
            raise LocalProtocolError(f"session_ended: slot {slot} has no live session")
        self._on_ended(slot, now, failed)

    def stops(self, now: float) -> list[int]:
        """Slots whose session must end now: lifetime over, slot retired, end of run.
        Each live session is named once; call :meth:`session_ended` when it has ended."""
        self._advance(now)
        out = [slot for slot, _ in self._valid_stops()]
        self._stop_queue.clear()
        return out

    def next_deadline(self) -> float | None:
        """When the plan next changes by itself (a start, a stop, a retire, the end); a time
        already past when something is due. None: nothing until a session ends, or done."""
        if self._valid_stops():
            return self._now
        while self._expiries and not self._expiry_valid(self._expiries[0]):
            heapq.heappop(self._expiries)
        times = [self._expiries[0][0]] if self._expiries else []
        model_time = self._model_deadline()
        if model_time is not None:
            times.append(model_time)
        return min(times, default=None)

    def done(self, now: float) -> bool:
        """True when nothing will start again and no session is live."""
        self._advance(now)
        return not self._live and self._plan_finished()

    def metrics(self) -> dict[str, float]:
        """The planner's counters, named as thresholds refer to them."""
        return {
            "starts": float(self.started),
            "late_starts": float(self.late_starts),
            "missed_starts": float(self.missed_starts),
            "max_start_lateness": self.max_lateness,
        }

    # ---------------------------------------------------------------- machinery
    def _advance(self, now: float) -> None:
        if now < self._now:
            raise LocalProtocolError(f"planner: time went backwards ({now!r} < {self._now!r})")
        self._now = now
        while self._expiries and self._expiries[0][0] <= now:
            item = heapq.heappop(self._expiries)
            if self._expiry_valid(item):
                self._queue_stop(item[2])
        self._advance_model(now)

    def _expiry_valid(self, item: tuple[float, int, int]) -> bool:
        _, index, slot = item
        entry = self._live.get(slot)
        return entry is not None and entry.start.index == index and not entry.stopping

    def _queue_stop(self, slot: int) -> None:
        entry = self._live[slot]
        if not entry.stopping:
            entry.stopping = True
            self._stop_queue.append((slot, entry.start.index))

    def _valid_stops(self) -> list[tuple[int, int]]:
        """Drop queued stops of sessions that already ended; returns the rest."""
        self._stop_queue[:] = [
            (slot, index)
            for slot, index in self._stop_queue
            if slot in self._live and self._live[slot].start.index == index
        ]
        return self._stop_queue

    @abstractmethod
    def _advance_model(self, now: float) -> None:
        """Model-specific progress up to ``now`` (retire slots, end the run)."""

    @abstractmethod
    def _take_due(self, now: float) -> list[Start]:
        """The starts to hand out at ``now``."""

    @abstractmethod
    def _on_ended(self, slot: int, now: float, failed: bool) -> None:
        """A session ended (already removed from the live set)."""

    @abstractmethod
    def _model_deadline(self) -> float | None:
        """The model's next own event time."""

    @abstractmethod
    def _plan_finished(self) -> bool:
        """Nothing will ever start again."""


class ClosedPlanner(Planner):
    """The closed model's planner (see the module docstring)."""

    def __init__(
        self, model: ClosedModel, *, start: float, seed: int, late_threshold: float = 1.0
    ) -> None:
        super().__init__(start=start, seed=seed, late_threshold=late_threshold)
        self.model = model
        self._pending: list[tuple[float, int, int]] = []  # (at, seq, slot)
        self._pending_seq: dict[int, int] = {}  # slot -> seq of its one valid pending start
        self._seq = 0
        self._retired = 0  # slots retired so far, highest slot first
        self._next_index = 0
        for slot in range(model.concurrency):
            self._schedule(slot, start + model.first_start_offset(slot))

    @property
    def end_time(self) -> float:
        return self.start + self.model.duration

    def retire_at(self, slot: int) -> float:
        """When ``slot`` stops for good."""
        return self.start + self.model.retire_offset(slot)

    def _schedule(self, slot: int, at: float) -> None:
        self._seq += 1
        self._pending_seq[slot] = self._seq
        heapq.heappush(self._pending, (at, self._seq, slot))

    def _advance_model(self, now: float) -> None:
        n = self.model.concurrency
        while self._retired < n and self.retire_at(n - 1 - self._retired) <= now:
            slot = n - 1 - self._retired
            self._retired += 1
            if self._pending_seq.pop(slot, None) is not None:
                self.missed_starts += 1  # its time came and went without the engine
            if slot in self._live:
                self._queue_stop(slot)

    def _take_due(self, now: float) -> list[Start]:
        out = []
        while self._pending and self._pending[0][0] <= now:
            at, seq, slot = heapq.heappop(self._pending)
            if self._pending_seq.get(slot) != seq:
                continue  # dropped when the slot retired
            del self._pending_seq[slot]
            lifetime = self.model.lifetime.draw(self._life_rng)
            out.append(Start(at, slot, self._next_index, lifetime))
            self._next_index += 1
        return out

    def _on_ended(self, slot: int, now: float, failed: bool) -> None:
        at = now + (self.model.retry_delay if failed else 0.0)
        if at < self.retire_at(slot):
            self._schedule(slot, at)

    def _model_deadline(self) -> float | None:
        while self._pending and self._pending_seq.get(self._pending[0][2]) != self._pending[0][1]:
            heapq.heappop(self._pending)
        times = [self._pending[0][0]] if self._pending else []
        n = self.model.concurrency
        if self._retired < n:
            times.append(self.retire_at(n - 1 - self._retired))
        return min(times, default=None)

    def _plan_finished(self) -> bool:
        return self._retired == self.model.concurrency and not self._pending_seq


class OpenPlanner(Planner):
    """The open model's planner (see the module docstring)."""

    def __init__(
        self, model: OpenModel, *, start: float, seed: int, late_threshold: float = 1.0
    ) -> None:
        super().__init__(start=start, seed=seed, late_threshold=late_threshold)
        self.model = model
        self._end = start + model.duration
        self._arrival_no = 0
        self._next_at = start
        if model.arrivals == "poisson":
            self._next_at += self._arrival_rng.expovariate(model.arrival_rate)
        self._over = False

    @property
    def end_time(self) -> float:
        return self._end

    def _step(self) -> None:
        """Move to the next arrival."""
        self._arrival_no += 1
        if self.model.arrivals == "poisson":
            self._next_at += self._arrival_rng.expovariate(self.model.arrival_rate)
        else:
            self._next_at = self.start + self._arrival_no / self.model.arrival_rate

    def _cap_full(self, extra: int = 0) -> bool:
        cap = self.model.max_concurrency
        return cap is not None and len(self._live) + extra >= cap

    def _advance_model(self, now: float) -> None:
        if self._over or now < self._end:
            return
        self._over = True
        while self._next_at < self._end:
            self.missed_starts += 1  # arrived but never started: the run is over
            self._step()
        for slot in list(self._live):
            self._queue_stop(slot)

    def _take_due(self, now: float) -> list[Start]:
        out: list[Start] = []
        while self._next_at <= now and self._next_at < self._end and not self._cap_full(len(out)):
            index = self._arrival_no
            lifetime = self.model.lifetime.draw(self._life_rng)
            out.append(Start(self._next_at, index, index, lifetime))
            self._step()
        return out

    def _on_ended(self, slot: int, now: float, failed: bool) -> None:
        """Nothing to re-arm: the place under ``max_concurrency`` is free again."""

    def _model_deadline(self) -> float | None:
        if self._over:
            return None
        if self._next_at < self._end and not self._cap_full():
            return self._next_at
        return self._end

    def _plan_finished(self) -> bool:
        return self._over


def make_planner(
    model: ClosedModel | OpenModel, *, start: float, seed: int, late_threshold: float = 1.0
) -> Planner:
    """The planner for ``model``, its plan starting at ``start`` (engine time)."""
    if isinstance(model, ClosedModel):
        return ClosedPlanner(model, start=start, seed=seed, late_threshold=late_threshold)
    return OpenPlanner(model, start=start, seed=seed, late_threshold=late_threshold)


# ------------------------------------------------------------------ credentials
def _check_template(template: str, what: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"{what} template {template!r}: {exc}") from None
    for f in fields:
        if f != "n":
            raise ConfigError(
                f"{what} template {template!r}: only {{n}} may be used (the 1-based session"
                f" number, with a format spec such as {{n:04d}}), got {{{f}}}"
            )
    try:
        template.format(n=1)
    except (ValueError, KeyError, IndexError) as exc:
        raise ConfigError(f"{what} template {template!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Credentials:
    """User name and password of each session.

    From templates (:meth:`template`): ``{n}`` is the 1-based session number (``index +
    1``) and takes a format spec, e.g. ``user{n:04d}`` → ``user0001``; a password without
    ``{n}`` is the same for everyone. From a CSV file (:meth:`from_csv`): one ``user,password``
    row per line, an optional ``user,password`` header, blank lines and lines starting with
    ``#`` skipped; session ``index`` takes row ``index % rows`` (rows are reused when there
    are more sessions than rows). ``rows`` is empty for templates.
    """

    user: str = "user{n}"
    password: str = "test"
    rows: tuple[tuple[str, str], ...] = ()
    source: str = "template"

    def __post_init__(self) -> None:
        if not self.rows:
            if not self.user:
                raise ConfigError("user template: must not be empty")
            _check_template(self.user, "user")
            _check_template(self.password, "password")

    @classmethod
    def template(cls, user: str = "user{n}", password: str = "test") -> Credentials:
        return cls(user=user, password=password)

    @classmethod
    def parse_csv(cls, text: str, source: str) -> Credentials:
        """Rows from CSV ``text``; ``source`` names it in errors (``FILE line N: ...``)."""
        rows: list[tuple[str, str]] = []
        first_row = True
        reader = csv.reader(io.StringIO(text), strict=True, skipinitialspace=True)
        try:
            for fields in reader:
                line = reader.line_num
                if not "".join(fields).strip() or fields[0].startswith("#"):
                    continue
                header = [f.strip().lower() for f in fields] == ["user", "password"]
                if first_row and header:
                    first_row = False
                    continue
                first_row = False
                if len(fields) != 2:
                    raise ConfigError(
                        f"{source} line {line}: expected 'user,password', got"
                        f" {len(fields)} field(s)"
                    )
                if not fields[0]:
                    raise ConfigError(f"{source} line {line}: empty user name")
                rows.append((fields[0], fields[1]))
        except csv.Error as exc:
            raise ConfigError(f"{source} line {reader.line_num}: {exc}") from None
        if not rows:
            raise ConfigError(f"{source}: no 'user,password' rows")
        return cls(rows=tuple(rows), source=source)

    @classmethod
    def from_csv(cls, path: str | Path) -> Credentials:
        """Rows from a UTF-8 CSV file (a byte-order mark is allowed)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read credentials: {exc.strerror or exc}") from None
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{p} line {line}: not UTF-8 text") from None
        return cls.parse_csv(text, str(p))

    def get(self, index: int) -> tuple[str, str]:
        """``(user, password)`` of the session with 0-based ``index``."""
        if index < 0:
            raise LocalProtocolError(f"credentials: session index {index} is negative")
        if self.rows:
            return self.rows[index % len(self.rows)]
        return self.user.format(n=index + 1), self.password.format(n=index + 1)

    def describe(self) -> str:
        """For reports; never shows a password."""
        if self.rows:
            return f"{self.source} ({len(self.rows)} users)"
        return f"user {self.user!r}"


# ------------------------------------------------------------------ source addresses
_LOOPBACK: Final[dict[int, tuple[int, int]]] = {
    4: (int(ipaddress.IPv4Address("127.0.0.0")), int(ipaddress.IPv4Address("127.255.255.255"))),
    6: (1, 1),  # ::1
}


def _item_range(item: str, what: str) -> tuple[IPAddress, int]:
    """(first address, count) of one ``--source`` item."""
    try:
        if "/" in item:
            net = ipaddress.ip_network(item)
            first, count = net.network_address, net.num_addresses
            if net.version == 4 and net.prefixlen < 31:  # as ipaddress .hosts()
                first, count = first + 1, count - 2
            elif net.version == 6 and net.prefixlen < 127:
                first, count = first + 1, count - 1
            return first, count
        if "-" in item:
            lo_text, hi_text = item.split("-", 1)
            lo, hi = ipaddress.ip_address(lo_text.strip()), ipaddress.ip_address(hi_text.strip())
            if lo.version != hi.version:
                raise ConfigError(f"{what} {item!r}: the range mixes IPv4 and IPv6")
            if int(hi) < int(lo):
                raise ConfigError(f"{what} {item!r}: the range ends before it starts")
            return lo, int(hi) - int(lo) + 1
        return ipaddress.ip_address(item), 1
    except ValueError as exc:
        raise ConfigError(f"{what} {item!r}: {exc}") from None


def _check_local(first: IPAddress, count: int, local: set[IPAddress], what: str) -> None:
    """Every address of the range is loopback or in ``local``.

    Loopback is one block per family, so the rest of the range is at most two segments; a
    segment longer than ``local`` cannot be all local, so looking at ``len(local) + 1``
    addresses of each segment finds any offender without walking a huge range.
    """
    lo, hi = int(first), int(first) + count - 1
    loop_lo, loop_hi = _LOOPBACK[first.version]
    segments = []
    if lo < loop_lo:
        segments.append((lo, min(hi, loop_lo - 1)))
    if hi > loop_hi:
        segments.append((max(lo, loop_hi + 1), hi))
    for seg_lo, seg_hi in segments:
        for value in range(seg_lo, min(seg_hi, seg_lo + len(local)) + 1):
            address = first + (value - int(first))
            if address not in local:
                raise ConfigError(
                    f"{what} {address}: not a loopback address nor an address of this"
                    " machine (replies to it would never come back)"
                )


class SourcePool:
    """Local source addresses handed out round-robin: session ``index`` gets address
    ``index % len(pool)``.

    :meth:`parse` takes ``127.0.0.2-127.0.0.250`` (a range), ``10.0.0.0/24`` (a network:
    its host addresses, as :meth:`ipaddress.IPv4Network.hosts`), a single address, or a
    comma list of these, IPv4 or IPv6. Every address must be loopback (always allowed) or
    one of ``local``, the addresses of this machine that the caller collected; no address
    may appear twice. Ranges are kept as ranges, so ``127.0.0.0/8`` costs nothing.
    """

    __slots__ = ("_ends", "_ranges", "text")

    def __init__(self, ranges: Sequence[tuple[IPAddress, int]], text: str = "") -> None:
        if not ranges:
            raise ConfigError("source pool: no addresses")
        self._ranges = tuple(ranges)
        ends, total = [], 0
        for _, count in self._ranges:
            total += count
            ends.append(total)
        self._ends = tuple(ends)
        self.text = text or ",".join(
            str(a) if n == 1 else f"{a}-{a + (n - 1)}" for a, n in self._ranges
        )

    @classmethod
    def parse(
        cls, text: str, *, local: Iterable[str | IPAddress] = (), what: str = "--source"
    ) -> SourcePool:
        """The pool from ``--source`` text (see the class docstring); one-line ConfigError."""
        try:
            local_set = {ipaddress.ip_address(a) for a in local}
        except ValueError as exc:
            raise LocalProtocolError(f"source pool: bad local address: {exc}") from None
        ranges = []
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                raise ConfigError(f"{what} {text!r}: empty item in the list")
            ranges.append(_item_range(item, what))
        ordered = sorted(ranges, key=lambda r: (r[0].version, int(r[0])))
        for (a, n), (b, _) in itertools.pairwise(ordered):
            if a.version == b.version and int(b) < int(a) + n:
                raise ConfigError(f"{what}: {b} is listed more than once")
        for first, count in ranges:
            _check_local(first, count, local_set, what)
        return cls(ranges, text.strip())

    def __len__(self) -> int:
        return self._ends[-1]

    def get(self, index: int) -> str:
        """The source address of the session with 0-based ``index``."""
        if index < 0:
            raise LocalProtocolError(f"source pool: session index {index} is negative")
        i = index % self._ends[-1]
        r = bisect_right(self._ends, i)
        first, _ = self._ranges[r]
        return str(first + (i - (self._ends[r - 1] if r else 0)))


# ------------------------------------------------------------------ traffic profile
_SIZE_RE: Final = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*[kM]?\s*")


def _whole(text: str, what: str, low: int, high: int) -> int:
    value = parse_number(text) if _SIZE_RE.fullmatch(text) else None
    if value is None or not value.is_integer():
        raise ConfigError(f"{what}: expected a whole number like 1400 or 200k, got {text!r}")
    if not low <= value <= high:
        raise ConfigError(f"{what}: must be {low}..{high}, got {text!r}")
    return int(value)


def _spec_fields(text: str, what: str, names: tuple[str, ...]) -> dict[str, str]:
    """``A:B`` (positional, in ``names`` order, trailing ones optional) or ``k=v,k=v``."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{what}: empty (expected {':'.join(n.upper() for n in names)})")
    if "=" not in text:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) > len(names) or not all(parts):
            raise ConfigError(
                f"{what} {text!r}: expected {':'.join(n.upper() for n in names)}"
                f" or {','.join(f'{n}=...' for n in names)}"
            )
        return dict(zip(names, parts, strict=False))
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in names or not value:
            raise ConfigError(
                f"{what} {text!r}: bad item {item.strip()!r} (keys: {', '.join(names)})"
            )
        if key in out:
            raise ConfigError(f"{what} {text!r}: {key} given twice")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class PingTraffic:
    """ICMP echo through the tunnel: ``rate`` requests/s, ``size`` payload bytes (as
    ``ping -s``; the scenario file's ``traffic.ping.size``)."""

    rate: float = 1.0
    size: int = 56

    def __post_init__(self) -> None:
        _positive(self.rate, "ping rate")
        if not 0 <= self.size <= 65507:
            raise ConfigError(f"ping size: must be 0..65507, got {self.size}")

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @classmethod
    def parse(cls, text: str, what: str = "--ping") -> PingTraffic:
        """``RATE[:SIZE]`` (``1/s:56``) or ``rate=1/s,size=56``; defaults 1/s, 56 bytes."""
        f = _spec_fields(text, what, ("rate", "size"))
        rate = parse_rate(f["rate"], f"{what} rate") if "rate" in f else 1.0
        size = _whole(f["size"], f"{what} size", 0, 65507) if "size" in f else 56
        return cls(rate, size)


@dataclass(frozen=True, slots=True)
class UdpEchoTraffic:
    """UDP echo through the tunnel: ``rate`` datagrams/s of ``size`` bytes, IP length (as
    the scenario file's ``traffic.udp.size``, so at least 28)."""

    rate: float = 0.2
    size: int = 1400

    def __post_init__(self) -> None:
        _positive(self.rate, "udp rate")
        if not 28 <= self.size <= 65535:
            raise ConfigError(f"udp size: must be 28..65535, got {self.size}")

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @classmethod
    def parse(cls, text: str, what: str = "--udp") -> UdpEchoTraffic:
        """``RATE[:SIZE]`` (``10/s:1400``) or ``rate=10/s,size=1400``; defaults 0.2/s, 1400."""
        f = _spec_fields(text, what, ("rate", "size"))
        rate = parse_rate(f["rate"], f"{what} rate") if "rate" in f else 0.2
        size = _whole(f["size"], f"{what} size", 28, 65535) if "size" in f else 1400
        return cls(rate, size)


@dataclass(frozen=True, slots=True)
class FlowTraffic:
    """A bulk download of ``bytes`` from the inside web server every ``every`` seconds
    (the scenario file's ``traffic.flows``)."""

    bytes: int = 200_000
    every: float = 20.0

    def __post_init__(self) -> None:
        if self.bytes < 1:
            raise ConfigError(f"flow bytes: must be at least 1, got {self.bytes}")
        _positive(self.every, "flow interval")

    @classmethod
    def parse(cls, text: str, what: str = "--flows") -> FlowTraffic:
        """``BYTES[:EVERY]`` (``200k:20s``) or ``bytes=200k,every=20s``; defaults 200k, 20s."""
        f = _spec_fields(text, what, ("bytes", "every"))
        size = _whole(f["bytes"], f"{what} bytes", 1, 2**62) if "bytes" in f else 200_000
        every = parse_duration(f["every"], f"{what} every") if "every" in f else 20.0
        return cls(size, every)


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """What every client sends through its tunnel; None = none of that kind.

    The targets (inside host, UDP port, web server) are the run's, not the profile's. CLI
    and scenario file use the same strings, positional or keyword (see each ``parse``).
    """

    ping: PingTraffic | None = None
    udp: UdpEchoTraffic | None = None
    flows: FlowTraffic | None = None

    @classmethod
    def parse(
        cls, *, ping: str | None = None, udp: str | None = None, flows: str | None = None
    ) -> TrafficProfile:
        return cls(
            ping=None if ping is None else PingTraffic.parse(ping),
            udp=None if udp is None else UdpEchoTraffic.parse(udp),
            flows=None if flows is None else FlowTraffic.parse(flows),
        )

    def describe(self) -> str:
        parts = []
        if self.ping is not None:
            parts.append(f"ping {format_number(self.ping.rate)}/s x {self.ping.size} B")
        if self.udp is not None:
            parts.append(f"udp {format_number(self.udp.rate)}/s x {self.udp.size} B")
        if self.flows is not None:
            parts.append(f"flow {self.flows.bytes} B every {_exact(self.flows.every)}s")
        return ", ".join(parts) or "no traffic"
