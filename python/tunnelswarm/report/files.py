"""``--report DIR`` of a load run: files written as the run goes, so that an interrupt or a
crash still leaves a complete report of what was measured.

Theory of operation
-------------------
The engine makes a :class:`ReportDir` before the run starts, feeds it while the run goes
and finishes it in a ``finally``::

    report = ReportDir(args.report)
    try:
        ...                                   # the run
        report.event(entry)                   # each timeline entry, as it happens
        report.syslog(line)                   # each headend syslog line (in-process mock)
        report.outage(outage)                 # each client outage, as it ends
        report.checkpoint(stats, extra)       # once a second
    finally:
        report.finish(stats, results, extra, interrupted=...)

The directory then holds:

==================  ===================================================================
``timeline.jsonl``  one JSON object per event (:meth:`TimelineEntry.as_dict`), appended
                    and flushed line by line
``syslog.log``      the headend's syslog, one line each, appended and flushed
``outages.csv``     one row per client outage as it ends (:class:`~tunnelswarm.fleet.
                    faults.Outage`: slot, client, start, end, seconds, cause, ended_by,
                    detail), appended and flushed; the header only when none ended
``summary.json``    ``{"format": "tunnelswarm-load-report", "version": 1, "state", "passed",
                    "written_at", "seconds", "run": extra, "thresholds": [...],
                    "stats": RunStats.summary()}`` — ``state`` is ``running`` (written at
                    the start and at each checkpoint), ``completed`` or ``interrupted``
                    (by :meth:`ReportDir.finish`); ``passed`` is null while running, else
                    true when the run completed and every threshold held
``timeseries.csv``  :meth:`RunStats.timeseries_csv`: one row per second (empty before the
                    first bucket)
``report.html``     :func:`~tunnelswarm.report.html.render_html`: the page, opens offline
==================  ===================================================================

**Crash safety.** The appended files are flushed per line, so they hold every line
written before the process died. The others are replaced whole — written to a temporary
file in the same directory, then renamed over the old one (atomic on POSIX) — so each is
always a complete version: the last checkpoint's, or :meth:`~ReportDir.finish`'s. A run
killed between checkpoints therefore leaves a report of everything measured up to the
last checkpoint, ``summary.json`` saying ``"state": "running"``. (There is no fsync: the
files survive the process, not a power cut.)

**Cost.** :meth:`~ReportDir.checkpoint` is synchronous and meant to be cheap, since the
engine calls it from its event loop each second. ``summary.json`` is rewritten every time
(~3 ms). ``timeseries.csv`` (linear in the run's length: ~40 ms for an hour of buckets)
and ``report.html`` (~5 MB; ~70 ms for an hour) are rewritten at most every
``csv_every`` / ``html_every`` seconds of wall time, and further apart when writing them
would take more than ``budget`` (2 %) of the time in between; the first checkpoint
writes both, and :meth:`~ReportDir.finish` always writes everything. ``clock`` (wall
seconds, default :func:`time.monotonic`) only spaces these out. The constructor loads
plotly.js and plotly's encoder (~0.1 s, once), so the first checkpoint does not pay it.

For the HTML page the directory keeps the first :data:`~tunnelswarm.report.html.HTML_HEAD`
events and syslog lines and the newest ones up to :data:`~tunnelswarm.report.html.HTML_ROWS`
(the files keep them all). After :meth:`~ReportDir.finish` (or :meth:`~ReportDir.close`)
the directory is final: further calls do nothing. Write errors (a full disk) raise
:class:`OSError` to the caller.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final, Generic, TypeVar

from tunnelswarm.fleet.faults import OUTAGE_CSV_HEADER, Outage
from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.fleet.thresholds import ThresholdResult
from tunnelswarm.report._json import dumps
from tunnelswarm.report.html import HTML_HEAD, HTML_ROWS, render_html, warm_up
from tunnelswarm.scenario.run import TimelineEntry

__all__ = ["REPORT_FORMAT", "REPORT_VERSION", "ReportDir"]

REPORT_FORMAT: Final = "tunnelswarm-load-report"
REPORT_VERSION: Final = 1
#: outages kept for the page (its chart draws the clients with the most time down)
OUTAGE_ROWS: Final = 20_000

T = TypeVar("T")


class _HeadTail(Generic[T]):
    """The first ``head`` items and the newest up to ``limit`` in all, and how many fell
    out in between."""

    def __init__(self, head: int, limit: int) -> None:
        self.head: list[T] = []
        self._head_size = head
        self.tail: deque[T] = deque(maxlen=limit - head)
        self.total = 0

    def append(self, item: T) -> None:
        self.total += 1
        if len(self.head) < self._head_size:
            self.head.append(item)
        else:
            self.tail.append(item)

    @property
    def items(self) -> list[T]:
        return [*self.head, *self.tail]

    @property
    def omitted(self) -> int:
        return self.total - len(self.head) - len(self.tail)


class _Throttle:
    """Due at most every ``every`` seconds, and no more than ``budget`` of the time busy."""

    def __init__(self, every: float, budget: float) -> None:
        self.every = every
        self.budget = budget
        self.next: float | None = None

    def due(self, now: float) -> bool:
        return self.next is None or now >= self.next

    def done(self, started: float, ended: float) -> None:
        self.next = ended + max(self.every, (ended - started) / self.budget)


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: a temporary file beside it, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


class ReportDir:
    """``--report DIR``; see the module docstring. The directory is made (with its
    parents) and ``timeline.jsonl``, ``syslog.log`` and a first ``summary.json`` are
    written at once; files of an earlier run there are replaced."""

    SUMMARY: Final = "summary.json"
    TIMESERIES: Final = "timeseries.csv"
    TIMELINE: Final = "timeline.jsonl"
    SYSLOG: Final = "syslog.log"
    OUTAGES: Final = "outages.csv"
    HTML: Final = "report.html"

    def __init__(
        self,
        path: Path | str,
        *,
        html_every: float = 10.0,
        csv_every: float = 1.0,
        budget: float = 0.02,
        percentiles: Iterable[float | tuple[str, float]] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.percentiles = list(percentiles)
        self._clock = clock
        self._csv = _Throttle(csv_every, budget)
        self._html = _Throttle(html_every, budget)
        self._events: _HeadTail[TimelineEntry] = _HeadTail(HTML_HEAD, HTML_ROWS)
        self._syslog: _HeadTail[str] = _HeadTail(HTML_HEAD, HTML_ROWS)
        self._outages: _HeadTail[Outage] = _HeadTail(HTML_HEAD, OUTAGE_ROWS)
        self._finished = False
        self._timeline: IO[str] = (self.path / self.TIMELINE).open("w", encoding="utf-8")
        self._syslog_file: IO[str] = (self.path / self.SYSLOG).open("w", encoding="utf-8")
        self._outage_file: IO[str] = (self.path / self.OUTAGES).open("w", encoding="utf-8")
        self._outage_file.write(OUTAGE_CSV_HEADER + "\n")
        self._outage_file.flush()
        for stale in (self.TIMESERIES, self.HTML):
            (self.path / stale).unlink(missing_ok=True)
        self._write_summary(RunStats(), {}, [], "running")
        warm_up()

    # ------------------------------------------------------------------ appended
    def event(self, entry: TimelineEntry) -> None:
        """Append one timeline entry to ``timeline.jsonl`` (flushed)."""
        if self._finished:
            return
        self._timeline.write(dumps(entry.as_dict()) + "\n")
        self._timeline.flush()
        self._events.append(entry)

    def syslog(self, line: str) -> None:
        """Append one headend syslog line to ``syslog.log`` (flushed)."""
        if self._finished:
            return
        line = line.rstrip("\r\n")
        self._syslog_file.write(line + "\n")
        self._syslog_file.flush()
        self._syslog.append(line)

    def outage(self, outage: Outage) -> None:
        """Append one client outage to ``outages.csv`` (flushed)."""
        if self._finished:
            return
        self._outage_file.write(outage.csv_row() + "\n")
        self._outage_file.flush()
        self._outages.append(outage)

    # ------------------------------------------------------------------ replaced
    def checkpoint(self, stats: RunStats, extra: Mapping[str, object] | None = None) -> None:
        """Rewrite ``summary.json`` (state ``running``), and ``timeseries.csv`` and
        ``report.html`` when they are due (see the module docstring)."""
        if self._finished:
            return
        extra = {} if extra is None else extra
        if self._csv.due(self._clock()):
            started = self._clock()
            self._write_csv(stats)
            self._csv.done(started, self._clock())
        if self._html.due(self._clock()):
            started = self._clock()
            self._write_html(stats, [], extra, "running")
            self._html.done(started, self._clock())
        self._write_summary(stats, extra, [], "running")

    def finish(
        self,
        stats: RunStats,
        thresholds: Sequence[ThresholdResult],
        extra: Mapping[str, object] | None = None,
        interrupted: bool = False,
    ) -> None:
        """Write the final ``timeseries.csv``, ``report.html`` and — last, so that a
        final state means every file is final — ``summary.json`` (state ``completed``, or
        ``interrupted``), then close the appended files. Once only; later calls do
        nothing."""
        if self._finished:
            return
        extra = {} if extra is None else extra
        state = "interrupted" if interrupted else "completed"
        try:
            self._write_csv(stats)
            self._write_html(stats, thresholds, extra, state)
            self._write_summary(stats, extra, thresholds, state)
        finally:
            self.close()

    def close(self) -> None:
        """Close the appended files without writing anything else (for a caller that
        gives up on the report); :meth:`finish` calls it. Idempotent."""
        self._finished = True
        for f in (self._timeline, self._syslog_file, self._outage_file):
            if not f.closed:
                f.close()

    def __enter__(self) -> ReportDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writers
    def _write_csv(self, stats: RunStats) -> None:
        _replace(self.path / self.TIMESERIES, stats.timeseries_csv())

    def _write_html(
        self,
        stats: RunStats,
        thresholds: Sequence[ThresholdResult],
        extra: Mapping[str, object],
        state: str,
    ) -> None:
        page = render_html(
            stats,
            self._events.items,
            self._syslog.items,
            thresholds,
            extra,
            state=state,
            events_omitted=self._events.omitted,
            syslog_omitted=self._syslog.omitted,
            percentiles=self.percentiles,
            outages=self._outages.items,
            outages_omitted=self._outages.omitted,
        )
        _replace(self.path / self.HTML, page)

    def _write_summary(
        self,
        stats: RunStats,
        extra: Mapping[str, object],
        thresholds: Sequence[ThresholdResult],
        state: str,
    ) -> None:
        passed = None
        if state != "running":
            passed = state == "completed" and all(t.passed for t in thresholds)
        doc = {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "state": state,
            "passed": passed,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": max(stats.series) + 1 if stats.series else 0,
            "run": dict(extra),
            "thresholds": [t.as_dict() for t in thresholds],
            "events": self._events.total,
            "syslog_lines": self._syslog.total,
            "outages": self._outages.total,
            "stats": stats.summary(self.percentiles),
        }
        _replace(self.path / self.SUMMARY, dumps(doc, indent=2) + "\n")
