"""The live view of a load run: a console screen for people, JSON lines for machines.

Theory of operation
-------------------
The engine calls ``update(stats, now_t)`` once a second with the run's
:class:`~tunnelswarm.fleet.stats.RunStats` (the totals, merged across workers) and
``now_t``, seconds since the run's start on the engine's timeline, then ``close()`` at the
end (in a ``finally``). Both sinks only read the stats; neither keeps a clock or a task of
its own.

* :class:`LiveConsole` (``--quiet`` gives ``enabled=False``: it prints nothing). On a
  terminal it draws one rich ``Live`` panel, redrawn on every update: progress through
  the plan (elapsed of the duration with a bar, sessions started of those planned),
  sessions up (and the peak), the setup rate (setups completed in the newest complete
  second, and the average since the start), setup time p50/p99 over the run and over the
  last 10 s, the DTLS ratio (DTLS up over sessions up now, and over the run's
  session-seconds), reconnects and errors with their causes (most frequent first) and
  late/missed starts; once a client lost its tunnel, the clients down now (and, in one
  process, the ones down longest by name) and the outages by cause with their recovery
  times (:mod:`tunnelswarm.fleet.faults`). When the stream is not a terminal (a CI log,
  a pipe) each update is one compact line instead::

      [  12s/60s 20%] started 120/600  up 118  dtls 99.2%  setups 10/s (avg 9.8/s)
      setup p50 123ms p99 456ms  reconnects 2 (dpd 2)  errors 3 (tls 2, auth 1)  late 0

  (on one line). The panel goes to ``stream`` (default ``sys.stderr``) so stdout stays
  free for ``--json-lines``; while it is shown, other writes to ``sys.stderr`` are
  printed above it (rich's redirect) when ``stream`` is ``sys.stderr``.
* :class:`JsonLinesSink` (``--json-lines``): one JSON object per update on ``stream``
  (default ``sys.stdout``), flushed::

      {"type": "progress", "t": 12.0, "second": 11, "bucket": {...}, "totals": {...}}

  ``second`` is the newest complete second (``floor(t) - 1``; null before the first one
  is complete) and ``bucket`` its row as :func:`second_row` gives it (the columns of
  ``timeseries.csv`` for that second, for the counters counted in it); ``totals`` are
  the running totals (see :meth:`JsonLinesSink.totals`). Times are in seconds, ratios
  between 0 and 1, NaN as null: strict JSON.

:func:`second_row` reads one second's time-series row without building the whole series
(:meth:`RunStats.timeseries_rows` is linear in the run's length, too dear each second).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tunnelswarm._core import Histogram
from tunnelswarm.fleet.stats import (
    GAUGES,
    SERIES_LAYOUT,
    SERIES_PERCENTILES,
    RunStats,
    series_columns,
)
from tunnelswarm.report._json import dumps

__all__ = ["RECENT_SECONDS", "JsonLinesSink", "LiveConsole", "second_row"]

#: the window of the "recent" setup percentiles, in seconds
RECENT_SECONDS = 10
#: causes shown by name before "+N more"
_MAX_CAUSES = 6
#: clients down shown by name in the panel
_MAX_DOWN = 5
_US = 1_000_000
#: the counters every time-series row starts with (as in :mod:`tunnelswarm.fleet.stats`)
_ROW_COUNTERS = ("sessions_started", "setups_completed", "errors", "reconnects")


def second_row(stats: RunStats, second: int) -> dict[str, float]:
    """The time-series row of ``second`` with the columns and values of
    :meth:`RunStats.timeseries_rows`, except that it lists only the counters counted in that
    second (the four standard ones always): ``second``, the counters, each gauge's level
    (filled forward), ``dtls_ratio`` (NaN without sessions up), and ``setup_count``,
    ``setup_p50``/``_p90``/``_p99`` and ``setup_max`` in seconds (NaN without samples)."""
    b = stats.series.get(second)
    row: dict[str, float] = {"second": second}
    counters = {} if b is None else b.counters
    for c in _ROW_COUNTERS:
        row[c] = counters.get(c, 0)
    for c in sorted(set(counters) - set(_ROW_COUNTERS)):
        row[c] = counters[c]
    levels = {g: stats.level_at(g, second) for g in sorted({*GAUGES, *stats.gauges})}
    row.update(series_columns(b, levels, SERIES_PERCENTILES))
    return row


def _percentiles(h: Histogram | None, ps: tuple[float, ...]) -> list[float]:
    """Percentiles in seconds, NaN for an empty or missing histogram."""
    if h is None or h.count == 0:
        return [math.nan] * len(ps)
    return [v / _US for v in h.percentiles(ps)]


@dataclass(slots=True)
class _Snapshot:
    """What both sinks show of the stats at ``t``."""

    t: float
    started: int
    completed: int
    up: float
    up_peak: float
    dtls_up: float
    #: the run's DTLS ratio (session-seconds), NaN before any session was up
    dtls_ratio_run: float
    #: setups completed in the newest complete second (None before it exists)
    rate_last: int | None
    #: setups completed per second since the start (NaN at t = 0)
    rate_avg: float
    #: setup_total p50, p90, p99 over the run (seconds, NaN without samples)
    setup: list[float]
    #: p50, p99 of the setups attributed to the last :data:`RECENT_SECONDS` seconds
    recent: list[float]
    late: int
    missed: int
    reconnects: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    #: clients in an outage now (the ``sessions_down`` gauge) and at most
    down: float = 0.0
    down_peak: float = 0.0
    #: outages begun, by cause; how many ended recovered / lost / unrecovered
    outages: dict[str, int] = field(default_factory=dict)
    recovered: int = 0
    lost: int = 0
    #: recovered outages' duration p50, p99 (seconds; NaN without any)
    outage: list[float] = field(default_factory=lambda: [math.nan, math.nan])

    @property
    def had_outages(self) -> bool:
        return bool(sum(self.outages.values())) or self.down > 0

    @classmethod
    def take(cls, stats: RunStats, now_t: float) -> _Snapshot:
        current = max(0, math.floor(now_t))
        completed = stats.counters.get("setups_completed", 0)
        last = stats.series.get(current - 1)
        rate_last = None if current < 1 else (0 if last is None else last.setups_completed)
        window = Histogram(*SERIES_LAYOUT)
        for s in range(max(0, current - RECENT_SECONDS + 1), current + 1):
            b = stats.series.get(s)
            h = None if b is None else b.setup
            if h is not None:
                window.merge(h)
        return cls(
            t=now_t,
            started=stats.counters.get("sessions_started", 0),
            completed=completed,
            up=stats.gauges.get("sessions_up", 0.0),
            up_peak=stats.gauge_peaks.get("sessions_up", 0.0),
            dtls_up=stats.gauges.get("dtls_up", 0.0),
            dtls_ratio_run=stats.dtls_ratio(),
            rate_last=rate_last,
            rate_avg=completed / now_t if now_t > 0 else math.nan,
            setup=_percentiles(stats.histograms.get("setup_total"), (50.0, 90.0, 99.0)),
            recent=_percentiles(window, (50.0, 99.0)),
            late=stats.counters.get("late_starts", 0),
            missed=stats.counters.get("missed_starts", 0),
            reconnects=dict(stats.families.get("reconnects", {})),
            errors=dict(stats.families.get("errors", {})),
            down=stats.gauges.get("sessions_down", 0.0),
            down_peak=stats.gauge_peaks.get("sessions_down", 0.0),
            outages=dict(stats.families.get("outages", {})),
            recovered=stats.counters.get("outages_recovered", 0),
            lost=stats.counters.get("outages_lost", 0),
            outage=_percentiles(stats.histograms.get("outage"), (50.0, 99.0)),
        )

    @property
    def dtls_ratio_now(self) -> float:
        return self.dtls_up / self.up if self.up > 0 else math.nan


# ---------------------------------------------------------------------- formatting
def _dur(seconds: float) -> str:
    """``0.1234`` → ``123ms``, ``0.0045`` → ``4.5ms``, ``2.5`` → ``2.50s``; NaN → ``-``."""
    if math.isnan(seconds):
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{seconds:.2f}s"


def _pct(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio * 100:.1f}%"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def _causes(family: Mapping[str, int]) -> str:
    """``tls 2, auth 1``: most frequent first, at most :data:`_MAX_CAUSES` by name."""
    items = sorted(((k, n) for k, n in family.items() if n), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} {n}" for k, n in items[:_MAX_CAUSES])
    if len(items) > _MAX_CAUSES:
        text += f", +{len(items) - _MAX_CAUSES} more"
    return text


def _total_with_causes(family: Mapping[str, int]) -> str:
    total = sum(family.values())
    causes = _causes(family)
    return f"{total} ({causes})" if causes else str(total)


class LiveConsole:
    """The live screen of a load run; see the module docstring.

    ``plan_description``: one line saying what the run does (shown in the panel's title);
    ``total_planned``: sessions the plan starts in all (None: open-ended);
    ``duration``: the run's planned length in seconds (None: until the plan is done).
    """

    def __init__(
        self,
        plan_description: str,
        total_planned: int | None,
        duration: float | None,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        down_clients: Callable[[], list[tuple[int, int, float, str]]] | None = None,
    ) -> None:
        self.plan_description = plan_description
        #: the clients in an outage now, longest first: ``(slot, session, start, cause)``
        #: (:meth:`~tunnelswarm.fleet.faults.OutageTracker.open_outages`; one process only)
        self.down_clients = down_clients
        self.total_planned = total_planned
        self.duration = duration
        self.stream: TextIO = sys.stderr if stream is None else stream
        self.enabled = enabled
        try:
            self.terminal = enabled and self.stream.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            self.terminal = False
        self._live: Live | None = None
        self._closed = False

    # ------------------------------------------------------------------ the API
    def update(self, stats: RunStats, now_t: float) -> None:
        """Show the stats at ``now_t`` (seconds since the start): redraw the panel on a
        terminal, else print one line. Nothing when disabled or closed."""
        if not self.enabled or self._closed:
            return
        snap = _Snapshot.take(stats, now_t)
        if not self.terminal:
            self.stream.write(self.line(snap) + "\n")
            self.stream.flush()
            return
        panel = self.panel(snap)
        if self._live is None:
            console = Console(file=self.stream)
            self._live = Live(
                panel,
                console=console,
                auto_refresh=False,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=self.stream is sys.stderr,
            )
            self._live.start(refresh=True)
        else:
            self._live.update(panel, refresh=True)

    def close(self) -> None:
        """Stop the live display (the last panel stays on the screen). Idempotent."""
        self._closed = True
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def __enter__(self) -> LiveConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ rendering
    def _progress(self, snap: _Snapshot) -> str:
        if self.duration:
            share = min(snap.t / self.duration, 1.0)
            return f"{snap.t:4.0f}s/{self.duration:.0f}s {share * 100:.0f}%"
        return f"{snap.t:4.0f}s"

    def _started(self, snap: _Snapshot) -> str:
        if self.total_planned is None:
            return str(snap.started)
        return f"{snap.started}/{self.total_planned}"

    @staticmethod
    def _rate(snap: _Snapshot) -> str:
        last = "-" if snap.rate_last is None else str(snap.rate_last)
        avg = "-" if math.isnan(snap.rate_avg) else f"{snap.rate_avg:.1f}"
        return f"{last}/s (avg {avg}/s)"

    def line(self, snap: _Snapshot) -> str:
        """The one-line form of an update (non-terminal streams)."""
        return (
            f"[{self._progress(snap)}] started {self._started(snap)}"
            f"  up {_num(snap.up)}  dtls {_pct(snap.dtls_ratio_now)}"
            f"  setups {self._rate(snap)}"
            f"  setup p50 {_dur(snap.setup[0])} p99 {_dur(snap.setup[2])}"
            f"  reconnects {_total_with_causes(snap.reconnects)}"
            f"  errors {_total_with_causes(snap.errors)}"
            f"  late {snap.late}" + (f" missed {snap.missed}" if snap.missed else "")
        ) + (f"  {self._outage_text(snap)}" if snap.had_outages else "")

    @staticmethod
    def _outage_text(snap: _Snapshot) -> str:
        text = f"down {_num(snap.down)}  outages {_total_with_causes(snap.outages)}"
        text += f" recovered {snap.recovered}"
        if snap.recovered:
            text += f" (p50 {_dur(snap.outage[0])} p99 {_dur(snap.outage[1])})"
        return text + (f" lost {snap.lost}" if snap.lost else "")

    def _down_text(self, snap: _Snapshot) -> str:
        """The clients down longest now: ``client 3 12.0s (transport), ...``."""
        if self.down_clients is None:
            return ""
        items = self.down_clients()
        shown = ", ".join(
            f"client {slot} {max(0.0, snap.t - start):.1f}s ({cause})"
            for slot, _session, start, cause in items[:_MAX_DOWN]
        )
        more = f", +{len(items) - _MAX_DOWN} more" if len(items) > _MAX_DOWN else ""
        return shown + more

    def panel(self, snap: _Snapshot) -> Panel:
        """The terminal form of an update: one panel."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        progress = Table.grid(padding=(0, 1))
        if self.duration:
            progress.add_row(
                ProgressBar(total=self.duration, completed=min(snap.t, self.duration), width=30),
                Text(self._progress(snap)),
            )
        else:
            progress.add_row(Text(self._progress(snap)))
        grid.add_row("elapsed", progress)
        planned = "" if self.total_planned is None else f" of {self.total_planned} planned"
        grid.add_row("sessions started", f"{snap.started}{planned}")
        grid.add_row(
            "sessions up", f"{_num(snap.up)} (peak {_num(snap.up_peak)}), {snap.completed} setups"
        )
        grid.add_row("setup rate", self._rate(snap))
        grid.add_row(
            "setup time",
            f"p50 {_dur(snap.setup[0])}  p90 {_dur(snap.setup[1])}  p99 {_dur(snap.setup[2])}",
        )
        grid.add_row(
            f"  last {RECENT_SECONDS} s", f"p50 {_dur(snap.recent[0])}  p99 {_dur(snap.recent[1])}"
        )
        grid.add_row(
            "DTLS ratio",
            f"{_pct(snap.dtls_ratio_now)} now ({_num(snap.dtls_up)} of {_num(snap.up)}),"
            f" {_pct(snap.dtls_ratio_run)} over the run",
        )
        errors = Text(_total_with_causes(snap.errors))
        if snap.errors and sum(snap.errors.values()):
            errors.stylize("red")
        grid.add_row("reconnects", _total_with_causes(snap.reconnects))
        grid.add_row("errors", errors)
        grid.add_row("late starts", f"{snap.late} late, {snap.missed} missed")
        if snap.had_outages:
            down = Text(f"{_num(snap.down)} now (peak {_num(snap.down_peak)})")
            if snap.down:
                down.stylize("yellow")
            grid.add_row("clients down", down)
            if snap.down and (longest := self._down_text(snap)):
                grid.add_row("  longest", longest)
            grid.add_row(
                "outages",
                f"{_total_with_causes(snap.outages)}; {snap.recovered} recovered"
                + (
                    f" (p50 {_dur(snap.outage[0])}, p99 {_dur(snap.outage[1])})"
                    if snap.recovered
                    else ""
                )
                + (f", {snap.lost} lost" if snap.lost else ""),
            )
        return Panel(
            Group(grid),
            title=f"tunnelswarm — {self.plan_description}",
            title_align="left",
            expand=False,
        )


class JsonLinesSink:
    """``--json-lines``: one JSON object per :meth:`update`; see the module docstring."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = sys.stdout if stream is None else stream

    @staticmethod
    def totals(stats: RunStats, now_t: float) -> dict[str, object]:
        """The running totals of an update: ``elapsed``; ``sessions_started``,
        ``setups_completed``, ``setup_rate_avg`` (per second since the start);
        ``sessions_up`` (last level), ``sessions_up_peak``, ``dtls_up``, ``dtls_ratio_now``
        (DTLS up over sessions up), ``dtls_ratio`` (over the run's session-seconds);
        ``setup_p50``/``_p90``/``_p99`` over the run and ``recent_setup_p50``/``_p99``
        over the last :data:`RECENT_SECONDS` s (seconds); ``errors`` and ``reconnects``
        (totals) with ``errors_by_cause`` and ``reconnects_by_cause``; ``late_starts``,
        ``missed_starts``; ``sessions_down`` (clients in an outage now), ``outages``
        with ``outages_by_cause``, ``outages_recovered``, ``outages_lost`` and the
        recovered outages' ``outage_p50``/``_p99`` (seconds)."""
        snap = _Snapshot.take(stats, now_t)
        return {
            "elapsed": now_t,
            "sessions_started": snap.started,
            "setups_completed": snap.completed,
            "setup_rate_avg": snap.rate_avg,
            "sessions_up": snap.up,
            "sessions_up_peak": snap.up_peak,
            "dtls_up": snap.dtls_up,
            "dtls_ratio_now": snap.dtls_ratio_now,
            "dtls_ratio": snap.dtls_ratio_run,
            "setup_p50": snap.setup[0],
            "setup_p90": snap.setup[1],
            "setup_p99": snap.setup[2],
            "recent_setup_p50": snap.recent[0],
            "recent_setup_p99": snap.recent[1],
            "errors": sum(snap.errors.values()),
            "errors_by_cause": dict(sorted(snap.errors.items())),
            "reconnects": sum(snap.reconnects.values()),
            "reconnects_by_cause": dict(sorted(snap.reconnects.items())),
            "late_starts": snap.late,
            "missed_starts": snap.missed,
            "sessions_down": snap.down,
            "outages": sum(snap.outages.values()),
            "outages_by_cause": dict(sorted(snap.outages.items())),
            "outages_recovered": snap.recovered,
            "outages_lost": snap.lost,
            "outage_p50": snap.outage[0],
            "outage_p99": snap.outage[1],
        }

    def update(self, stats: RunStats, now_t: float) -> None:
        """Write one JSON line for the stats at ``now_t`` and flush."""
        second = math.floor(now_t) - 1
        doc = {
            "type": "progress",
            "t": round(now_t, 6),
            "second": second if second >= 0 else None,
            "bucket": second_row(stats, second) if second >= 0 else None,
            "totals": self.totals(stats, now_t),
        }
        self.stream.write(dumps(doc) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Flush the stream (it stays open: it belongs to the caller)."""
        self.stream.flush()
