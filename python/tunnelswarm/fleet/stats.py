"""A load run's measurements in one process, mergeable across processes.

Theory of operation
-------------------
The load engine owns one :class:`RunStats` per worker process and feeds it what
happened; the workers' stats cross to the coordinator as bytes (:meth:`RunStats.to_wire`
/ :meth:`RunStats.from_wire`) and are merged there (:meth:`RunStats.merge`) into the
run's totals, from which the thresholds read :meth:`RunStats.metrics`, the report
:meth:`RunStats.summary` and the time-series CSV :meth:`RunStats.timeseries_rows`. Pure
code: no IO, no clock. Every call that belongs to a moment takes ``t``, seconds since the
run's start on the engine's timeline (the engine passes ``now - start``; for setup
latency in the open model it passes the *scheduled* start, so a late engine shows up as
latency instead of thinning the load).

Four kinds of measurement:

* **Histograms** by name (:class:`tunnelswarm._core.Histogram`, integer microseconds,
  1 µs .. 1 h, 3 significant digits), created on first use: :meth:`RunStats.record`
  takes seconds. The standard names are :data:`HISTOGRAMS`: setup latency per phase
  (``setup_tcp``, ``setup_tls``, ``setup_auth``, ``setup_connect``, ``setup_dtls``) and in
  total (``setup_total``, from the scheduled start), DPD and inner ping round trips
  (``dpd_rtt``, ``ping_rtt``), and ``start_lateness`` (how late each start was taken).
* **Counters**, scalar (``count("sessions_started")``) or in keyed families
  (``count("errors", key="tls")``: :data:`FAMILIES` such as ``errors[cause]``,
  ``reconnects[cause]``, ``bytes_tx[cstp|dtls]``, ``packets_rx[cstp|dtls]``). A name is
  either a scalar or a family, never both. Counts are integers >= 0.
* **Gauges**, levels that go up and down (``set_gauge("sessions_up", 812)``,
  ``dtls_up``): the last level and the peak are kept.
* **One-second buckets** (:meth:`RunStats.bucket`) keyed by ``floor(t)``: every counter
  counted with a ``t`` (families by total and by key), the last level of every gauge set
  with a ``t`` in that second, and a per-second copy of the ``setup_total`` histogram
  (2 significant digits, enough for a chart) so latency percentiles over time can be
  drawn. A gauge keeps its level until set again: seconds without a sample read the
  previous level (0 before the first).

Merging (:meth:`RunStats.merge`) is what one process recording everything would have
given, for histograms (slot by slot, exact), counters and families (summed) and the
buckets' counters and histograms (per second). Gauges are *summed*, because each worker
holds its own sessions: the merged level is the sum of the workers' levels, per second
as well (each side's level filled forward to the seconds where the other has a sample),
and the merged peak is the highest per-second sum, or a worker's own peak if higher (a
lower bound of the true peak; exact when the gauges are set every second).

The flat metrics (:meth:`RunStats.metrics`) are named as :mod:`tunnelswarm.fleet.thresholds`
reads them (built as a scenario :class:`~tunnelswarm.scenario.expect.Metrics` and
flattened by :func:`~tunnelswarm.fleet.thresholds.flatten_metrics`), times in seconds:

* per histogram, with ``base`` its name except ``setup`` for ``setup_total``:
  ``{base}_pNN`` for :data:`DEFAULT_PERCENTILES` and any asked
  (``required_percentiles(thresholds)`` pairs, or plain numbers for every histogram;
  ``setup_p99``, ``setup_p99.9``), ``{base}_mean``, ``_stdev``, ``_min``, ``_max`` (NaN
  without samples: a threshold on them then fails with "no samples"), ``{base}_count``
  and ``{base}_clamped``. The standard histograms are always there.
* every counter, every family as ``name`` (its total) and ``name[key]`` (so ``errors``
  and ``errors[tls]``); the standard ones (:data:`COUNTERS`, :data:`FAMILIES`) always,
  at 0 when nothing happened, so ``errors==0`` and ``reconnects[dpd]==0`` read 0.
* every gauge as ``name`` (the **peak**: ``sessions_up`` is the concurrency reached) and
  ``name_last`` (the last level).
* ``dtls_ratio``: DTLS-up session-seconds over up session-seconds, from the buckets'
  ``dtls_up`` and ``sessions_up`` levels; without buckets, the last levels, or else the
  peaks; NaN when no session was ever up. ``ping_loss`` = ``ping_lost / ping_sent`` (NaN
  without pings); ``setup_success_ratio`` = ``setups_completed / sessions_started``
  (NaN before any start).

Wire format: UTF-8 JSON ``{"format": "tunnelswarm-runstats", "version": 1, ...}`` with
each histogram as base64 of :meth:`~tunnelswarm._core.Histogram.to_bytes`. A *delta*
(``"delta": true``; ``to_wire(seconds=stats.take_dirty())``) carries every total but only
the buckets that changed, so a worker's message each second does not grow with the run;
:class:`StatsMerger` applies deltas and keeps the merge of all parts up to date, also at
a cost that does not grow with the run (its buckets are re-merged only where they
changed). Bytes that are
not that (or a version this build does not read) raise a one-line
:class:`~tunnelswarm.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from tunnelswarm._core import Histogram
from tunnelswarm.errors import LocalProtocolError, RemoteProtocolError
from tunnelswarm.fleet.thresholds import flatten_metrics
from tunnelswarm.scenario.expect import Metrics

__all__ = [
    "COUNTERS",
    "DEFAULT_PERCENTILES",
    "FAMILIES",
    "GAUGES",
    "HISTOGRAMS",
    "SERIES_HISTOGRAMS",
    "WIRE_FORMAT",
    "WIRE_VERSION",
    "RunStats",
    "SecondBucket",
    "StatsMerger",
    "series_columns",
]

#: setup phases in order; ``setup_{phase}`` histograms
SETUP_PHASES: Final = ("tcp", "tls", "auth", "connect", "dtls")
#: histograms always present in the metrics (empty ones read NaN)
HISTOGRAMS: Final = (
    "setup_total",
    *(f"setup_{p}" for p in SETUP_PHASES),
    "dpd_rtt",
    "ping_rtt",
    "start_lateness",
)
#: scalar counters always present in the metrics (0 until counted)
COUNTERS: Final = (
    "sessions_started",
    "setups_completed",
    "late_starts",
    "missed_starts",
    "dtls_fallbacks",
    "ping_sent",
    "ping_lost",
)
#: keyed families always present in the metrics (total 0 until counted)
FAMILIES: Final = ("errors", "reconnects", "bytes_tx", "bytes_rx", "packets_tx", "packets_rx")
#: gauges always present in the metrics (0 until set)
GAUGES: Final = ("sessions_up", "dtls_up")
#: histograms that also get a per-second copy in the buckets
SERIES_HISTOGRAMS: Final = ("setup_total",)
#: percentiles every histogram reports in the metrics
DEFAULT_PERCENTILES: Final = (50.0, 90.0, 95.0, 99.0, 99.9)
#: the percentiles of the per-second histograms in the time-series rows
SERIES_PERCENTILES: Final = (50.0, 90.0, 99.0)

WIRE_FORMAT: Final = "tunnelswarm-runstats"
WIRE_VERSION: Final = 1

#: (lowest, highest, sigfig) of the run histograms: 1 µs .. 1 h, 3 digits
HISTOGRAM_LAYOUT: Final = (1, 3_600_000_000, 3)
#: (lowest, highest, sigfig) of the per-second histograms: 2 digits are enough for a chart
SERIES_LAYOUT: Final = (1, 3_600_000_000, 2)

_US: Final = 1_000_000
#: the per-second columns every time-series row starts with
_SERIES_COUNTERS: Final = ("sessions_started", "setups_completed", "errors", "reconnects")
_DERIVED: Final = frozenset({"dtls_ratio", "ping_loss", "setup_success_ratio"})


def _pct_name(p: float) -> str:
    """``99.0`` → ``99``, ``99.9`` → ``99.9``: as :mod:`~tunnelswarm.fleet.thresholds`
    normalises a metric's percentile."""
    return str(int(p)) if float(p).is_integer() else repr(float(p))


def metric_base(histogram: str) -> str:
    """The metric prefix of a histogram: ``setup`` for ``setup_total``, else its name."""
    return "setup" if histogram == "setup_total" else histogram


def _histogram_of(base: str) -> str:
    return "setup_total" if base == "setup" else base


def _seconds(us: float) -> float:
    return us / _US


@dataclass(slots=True)
class SecondBucket:
    """One second of the run: counters counted in it (families by total and as
    ``name[key]``), the last level of each gauge set in it, per-second histograms."""

    second: int
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)

    @property
    def sessions_started(self) -> int:
        return self.counters.get("sessions_started", 0)

    @property
    def setups_completed(self) -> int:
        return self.counters.get("setups_completed", 0)

    @property
    def errors(self) -> int:
        return self.counters.get("errors", 0)

    @property
    def reconnects(self) -> int:
        return self.counters.get("reconnects", 0)

    @property
    def setup(self) -> Histogram | None:
        """The setups (``setup_total``) attributed to this second, or None."""
        return self.histograms.get("setup_total")

    def _add(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class RunStats:
    """The measurements of one process; see the module docstring."""

    def __init__(self) -> None:
        self.histograms: dict[str, Histogram] = {}
        self.counters: dict[str, int] = {}
        self.families: dict[str, dict[str, int]] = {}
        #: the last level of each gauge
        self.gauges: dict[str, float] = {}
        #: the highest level of each gauge
        self.gauge_peaks: dict[str, float] = {}
        #: one-second buckets by ``floor(t)``
        self.series: dict[int, SecondBucket] = {}
        #: seconds whose bucket changed since :meth:`take_dirty`
        self._dirty: set[int] = set()
        #: from :meth:`from_wire` of a delta: ``series`` holds only the seconds that changed
        self.partial = False

    # ------------------------------------------------------------------ recording
    def histogram(self, name: str) -> Histogram:
        """The histogram ``name`` (microseconds), created empty on first use."""
        h = self.histograms.get(name)
        if h is None:
            h = self.histograms[name] = Histogram(*HISTOGRAM_LAYOUT)
        return h

    def bucket(self, t: float) -> SecondBucket:
        """The bucket of second ``floor(t)`` (``t`` in seconds since the run's start;
        before the start counts as second 0), created empty on first use."""
        second = max(0, math.floor(t))
        b = self.series.get(second)
        if b is None:
            b = self.series[second] = SecondBucket(second)
        return b

    def take_dirty(self) -> list[int]:
        """The seconds whose bucket changed since the last call (for a delta
        :meth:`to_wire`), in order."""
        out = sorted(self._dirty)
        self._dirty.clear()
        return out

    def _touch(self, t: float) -> SecondBucket:
        b = self.bucket(t)
        self._dirty.add(b.second)
        return b

    def record(self, name: str, seconds: float, *, t: float | None = None) -> None:
        """Record a duration in seconds (as whole microseconds) in histogram ``name``, and
        in the bucket of ``t`` for the :data:`SERIES_HISTOGRAMS`. Out-of-range values are
        clamped and counted (never raise); a NaN or infinite duration is a caller bug:
        :class:`LocalProtocolError`."""
        if not math.isfinite(seconds):
            raise LocalProtocolError(f"{name}: a duration must be a finite number of seconds")
        self.record_us(name, round(seconds * _US), t=t)

    def record_us(self, name: str, us: int, *, t: float | None = None) -> None:
        """:meth:`record` of a value already in integer microseconds."""
        us = min(max(us, -1), 2**64)  # beyond the range either way: clamped all the same
        self.histogram(name).record(us)
        if t is not None and name in SERIES_HISTOGRAMS:
            b = self._touch(t)
            h = b.histograms.get(name)
            if h is None:
                h = b.histograms[name] = Histogram(*SERIES_LAYOUT)
            h.record(us)

    def count(
        self, name: str, n: int = 1, *, key: str | None = None, t: float | None = None
    ) -> None:
        """Add ``n`` (>= 0) to counter ``name``, or to ``name[key]`` of a family; also to the
        bucket of ``t`` when given."""
        if n < 0:
            raise LocalProtocolError(f"{name}: a counter only grows (got {n})")
        if name in _DERIVED:
            raise LocalProtocolError(f"{name!r} is a derived metric, not a counter")
        if key is None:
            if name in self.families:
                raise LocalProtocolError(f"{name!r} is a keyed family: count it with a key")
            self.counters[name] = self.counters.get(name, 0) + n
        else:
            if name in self.counters:
                raise LocalProtocolError(f"{name!r} is a scalar counter: count it without a key")
            family = self.families.setdefault(name, {})
            family[key] = family.get(key, 0) + n
        if t is not None:
            b = self._touch(t)
            b._add(name, n)
            if key is not None:
                b._add(f"{name}[{key}]", n)

    def set_gauge(self, name: str, value: float, *, t: float | None = None) -> None:
        """Set gauge ``name`` to ``value`` (finite): its level from now on, also the level
        of the bucket of ``t`` when given."""
        if not math.isfinite(value):
            raise LocalProtocolError(f"gauge {name}: the level must be finite")
        value = float(value)
        self.gauges[name] = value
        self.gauge_peaks[name] = max(self.gauge_peaks.get(name, value), value)
        if t is not None:
            self._touch(t).gauges[name] = value

    # ------------------------------------------------------------------ merging
    def _gauge_samples(self, name: str) -> tuple[list[int], list[float]]:
        seconds = sorted(s for s, b in self.series.items() if name in b.gauges)
        return seconds, [self.series[s].gauges[name] for s in seconds]

    @staticmethod
    def _level(samples: tuple[list[int], list[float]], second: int) -> float:
        i = bisect_right(samples[0], second)
        return samples[1][i - 1] if i else 0.0

    def merge(self, other: RunStats) -> None:
        """Add ``other``'s measurements to these (see the module docstring)."""
        if other is self:
            other = RunStats.from_wire(self.to_wire())
        _add_histograms(self.histograms, other.histograms)
        for name, n in other.counters.items():
            self.count(name, n)
        for name, family in other.families.items():
            for key, n in family.items():
                self.count(name, n, key=key)
        # gauges: per-second levels summed over the union of sample seconds, each side
        # filled forward; computed before the buckets change
        names = {g for b in [*self.series.values(), *other.series.values()] for g in b.gauges}
        merged_levels: dict[str, dict[int, float]] = {}
        for name in names:
            a, b = self._gauge_samples(name), other._gauge_samples(name)
            merged_levels[name] = {s: self._level(a, s) + self._level(b, s) for s in {*a[0], *b[0]}}
        for second, ob in other.series.items():
            mb = self.bucket(second)
            for name, n in ob.counters.items():
                mb._add(name, n)
            _add_histograms(mb.histograms, ob.histograms)
        for name, levels in merged_levels.items():
            for second, level in levels.items():
                self.bucket(second).gauges[name] = level
        for name in {*self.gauges, *other.gauges}:
            self.gauges[name] = self.gauges.get(name, 0.0) + other.gauges.get(name, 0.0)
            peaks = [
                self.gauge_peaks.get(name, 0.0),
                other.gauge_peaks.get(name, 0.0),
                self.gauges[name],
                *merged_levels.get(name, {}).values(),
            ]
            self.gauge_peaks[name] = max(peaks)

    @classmethod
    def merged(cls, parts: Iterable[RunStats]) -> RunStats:
        """A new :class:`RunStats` with every one of ``parts`` merged in."""
        total = cls()
        for p in parts:
            total.merge(p)
        return total

    # ------------------------------------------------------------------ the wire
    def to_wire(self, seconds: Iterable[int] | None = None) -> bytes:
        """These stats as bytes for another process (:meth:`from_wire`). With
        ``seconds`` (e.g. :meth:`take_dirty`) a *delta*: every total, but only those
        seconds' buckets (:class:`StatsMerger` applies it to what it had)."""

        def b64(h: Histogram) -> str:
            return base64.b64encode(h.to_bytes()).decode("ascii")

        doc = {
            "format": WIRE_FORMAT,
            "version": WIRE_VERSION,
            "histograms": {k: b64(h) for k, h in self.histograms.items()},
            "counters": self.counters,
            "families": self.families,
            "gauges": {k: [v, self.gauge_peaks.get(k, v)] for k, v in self.gauges.items()},
            "series": {
                str(s): {
                    "counters": b.counters,
                    "gauges": b.gauges,
                    "histograms": {k: b64(h) for k, h in b.histograms.items()},
                }
                for s, b in (
                    self.series.items()
                    if seconds is None
                    else ((s, self.series[s]) for s in seconds if s in self.series)
                )
            },
        }
        if seconds is not None:
            doc["delta"] = True
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_wire(cls, data: bytes) -> RunStats:
        """Stats from :meth:`to_wire`'s bytes; anything else → one-line
        :class:`RemoteProtocolError`."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise _wire_error(f"not JSON ({e})") from None
        doc = _obj(doc, "the document")
        if doc.get("format") != WIRE_FORMAT:
            raise _wire_error(f"format is {doc.get('format')!r}, not {WIRE_FORMAT!r}")
        version = doc.get("version")
        if version != WIRE_VERSION or isinstance(version, bool):
            raise _wire_error(f"version {version!r} is not supported (this build reads 1)")
        stats = cls()
        stats.partial = doc.get("delta", False) is True
        for name, text in _obj(doc.get("histograms", {}), "histograms").items():
            stats.histograms[name] = _histogram(text, name)
        for name, n in _obj(doc.get("counters", {}), "counters").items():
            if name in _DERIVED:
                raise _wire_error(f"{name!r} is a derived metric, not a counter")
            stats.counters[name] = _count(n, name)
        for name, family in _obj(doc.get("families", {}), "families").items():
            if name in stats.counters or name in _DERIVED:
                raise _wire_error(f"{name!r} is both a counter and a family")
            stats.families[name] = {
                k: _count(n, f"{name}[{k}]") for k, n in _obj(family, name).items()
            }
        for name, pair in _obj(doc.get("gauges", {}), "gauges").items():
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _wire_error(f"gauge {name!r} is not [last, peak]")
            stats.gauges[name] = _level(pair[0], name)
            stats.gauge_peaks[name] = _level(pair[1], name)
        for key, raw in _obj(doc.get("series", {}), "series").items():
            if not (key.isascii() and key.isdigit()):
                raise _wire_error(f"series second {key!r} is not a whole number")
            where = f"second {key}"
            body = _obj(raw, where)
            bucket = SecondBucket(
                int(key),
                {
                    k: _count(n, f"{where} {k}")
                    for k, n in _obj(body.get("counters", {}), where).items()
                },
                {
                    k: _level(v, f"{where} {k}")
                    for k, v in _obj(body.get("gauges", {}), where).items()
                },
                {
                    k: _histogram(v, f"{where} {k}")
                    for k, v in _obj(body.get("histograms", {}), where).items()
                },
            )
            stats.series[bucket.second] = bucket
        return stats

    # ------------------------------------------------------------------ reading
    def _percentiles(
        self, percentiles: Iterable[float | tuple[str, float]]
    ) -> tuple[list[float], dict[str, set[float]]]:
        common = set(DEFAULT_PERCENTILES)
        by_base: dict[str, set[float]] = {}
        for item in percentiles:
            p = float(item[1] if isinstance(item, tuple) else item)
            if not 0.0 <= p <= 100.0:
                raise LocalProtocolError(f"percentile {p} is not between 0 and 100")
            if isinstance(item, tuple):
                by_base.setdefault(item[0], set()).add(p)
            else:
                common.add(p)
        return sorted(common), by_base

    def expect_metrics(self, percentiles: Iterable[float | tuple[str, float]] = ()) -> Metrics:
        """The run's metrics as a scenario :class:`~tunnelswarm.scenario.expect.Metrics`
        (scalars and keyed families); :meth:`metrics` is its flat view."""
        common, by_base = self._percentiles(percentiles)
        m = Metrics()
        for name in sorted({*HISTOGRAMS, *self.histograms}):
            h = self.histograms.get(name)
            if h is not None and h.count == 0:
                h = None
            base = metric_base(name)
            # a (base, p) pair may name the histogram itself (``setup_total``) or its base
            for b in sorted({base, *(b for b in by_base if _histogram_of(b) == name)}):
                for p in sorted({*(common if b == base else ()), *by_base.get(b, ())}):
                    value = math.nan if h is None else _seconds(h.value_at_percentile(p))
                    m.set(f"{b}_p{_pct_name(p)}", value)
            full = self.histograms.get(name)
            m.set(f"{base}_count", 0 if full is None else full.count)
            m.set(f"{base}_clamped", 0 if full is None else full.clamped)
            for stat in ("mean", "stdev", "min", "max"):
                value = math.nan if h is None else _seconds(getattr(h, stat))
                m.set(f"{base}_{stat}", value)
        for name in sorted({*COUNTERS, *self.counters}):
            m.set(name, self.counters.get(name, 0))
        for name in sorted({*FAMILIES, *self.families}):
            m.family(name, self.families.get(name, {}))
        for name in sorted({*GAUGES, *self.gauges}):
            m.set(name, self.gauge_peaks.get(name, 0.0))
            m.set(f"{name}_last", self.gauges.get(name, 0.0))
        m.set("dtls_ratio", self.dtls_ratio())
        sent = self.counters.get("ping_sent", 0)
        m.set("ping_loss", self.counters.get("ping_lost", 0) / sent if sent else math.nan)
        started = self.counters.get("sessions_started", 0)
        completed = self.counters.get("setups_completed", 0)
        m.set("setup_success_ratio", completed / started if started else math.nan)
        return m

    def metrics(self, percentiles: Iterable[float | tuple[str, float]] = ()) -> dict[str, float]:
        """The flat metrics thresholds read (see the module docstring). ``percentiles``:
        ``(base, p)`` pairs as :func:`~tunnelswarm.fleet.thresholds.required_percentiles`
        gives them, or plain percentiles for every histogram, on top of
        :data:`DEFAULT_PERCENTILES`."""
        return flatten_metrics(self.expect_metrics(percentiles))

    def dtls_ratio(self) -> float:
        """DTLS-up over up session-seconds (see the module docstring); NaN when no session
        was ever up."""
        up, dtls = self._gauge_samples("sessions_up"), self._gauge_samples("dtls_up")
        if up[0]:
            last = max(self.series)
            up_sum = dtls_sum = 0.0
            for s in range(min(up[0]), last + 1):
                up_sum += self._level(up, s)
                dtls_sum += self._level(dtls, s)
            if up_sum > 0:
                return min(dtls_sum / up_sum, 1.0)
        for source in (self.gauges, self.gauge_peaks):
            sessions = source.get("sessions_up", 0.0)
            if sessions > 0:
                return min(source.get("dtls_up", 0.0) / sessions, 1.0)
        return math.nan

    def summary(self, percentiles: Iterable[float | tuple[str, float]] = ()) -> dict[str, object]:
        """A JSON-able summary (NaN as None): the flat metrics, and per histogram its
        count, clamped, min/max/mean/stdev and percentiles in seconds; counters, families,
        gauges (last and peak) and the seconds the buckets cover."""
        common, _ = self._percentiles(percentiles)
        hists: dict[str, object] = {}
        for name in sorted(self.histograms):
            h = self.histograms[name]
            if not h.count:
                hists[name] = {"count": 0, "clamped": h.clamped}
                continue
            hists[name] = {
                "count": h.count,
                "clamped": h.clamped,
                "min": _seconds(h.min),
                "max": _seconds(h.max),
                "mean": _seconds(h.mean),
                "stdev": _seconds(h.stdev),
                "percentiles": {
                    _pct_name(p): _seconds(v)
                    for p, v in zip(common, h.percentiles(common), strict=True)
                },
            }
        return {
            "format": WIRE_FORMAT,
            "version": WIRE_VERSION,
            "metrics": {k: _json_number(v) for k, v in self.metrics(percentiles).items()},
            "histograms": hists,
            "counters": dict(sorted(self.counters.items())),
            "families": {k: dict(sorted(v.items())) for k, v in sorted(self.families.items())},
            "gauges": {
                k: {"last": v, "peak": self.gauge_peaks.get(k, v)}
                for k, v in sorted(self.gauges.items())
            },
            "seconds": max(self.series) + 1 if self.series else 0,
        }

    def timeseries_rows(
        self, percentiles: Iterable[float] = SERIES_PERCENTILES
    ) -> list[dict[str, float]]:
        """One row per second from 0 to the last bucket, every row with the same columns:
        ``second``; the counters of the second (``sessions_started``,
        ``setups_completed``, ``errors``, ``reconnects`` first, then every other counter
        counted with a ``t``, by name); each gauge's level (filled forward) and
        ``dtls_ratio`` (NaN without sessions up); per series histogram ``{base}_count``,
        ``{base}_pNN`` and ``{base}_max`` in seconds (NaN without samples)."""
        if not self.series:
            return []
        ps = sorted({float(p) for p in percentiles})
        last = max(self.series)
        seen = {c for b in self.series.values() for c in b.counters}
        counters = [*_SERIES_COUNTERS, *sorted(seen - set(_SERIES_COUNTERS))]
        gauge_names = sorted({*GAUGES, *(g for b in self.series.values() for g in b.gauges)})
        samples = {g: self._gauge_samples(g) for g in gauge_names}
        rows: list[dict[str, float]] = []
        for s in range(last + 1):
            b = self.series.get(s)
            row: dict[str, float] = {"second": s}
            for c in counters:
                row[c] = 0 if b is None else b.counters.get(c, 0)
            row.update(series_columns(b, {g: self._level(samples[g], s) for g in gauge_names}, ps))
            rows.append(row)
        return rows

    def level_at(self, name: str, second: int) -> float:
        """Gauge ``name``'s level at the end of ``second``: its last sample at or before
        it (0 before the first), as :meth:`timeseries_rows` fills gauges forward. The few
        seconds before are looked at first (a gauge is usually set every second)."""
        for s in range(second, max(-1, second - 8), -1):
            b = self.series.get(s)
            if b is not None and name in b.gauges:
                return b.gauges[name]
        if second - 8 < 0:
            return 0.0
        return self._level(self._gauge_samples(name), second)

    def timeseries_csv(self, percentiles: Iterable[float] = SERIES_PERCENTILES) -> str:
        """:meth:`timeseries_rows` as CSV text with a header line (NaN as an empty cell)."""
        rows = self.timeseries_rows(percentiles)
        if not rows:
            return ""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        return out.getvalue()


def series_columns(
    bucket: SecondBucket | None, levels: dict[str, float], percentiles: Iterable[float]
) -> dict[str, float]:
    """The columns of one time-series row after its counters (:meth:`RunStats.
    timeseries_rows`, the live view's rows, the engine's ``on_bucket``): each gauge's
    level as given in ``levels``, ``dtls_ratio`` (NaN without sessions up), and per
    series histogram of ``bucket`` ``{base}_count``, ``{base}_pNN`` for ``percentiles``
    and ``{base}_max``, in seconds (NaN without samples)."""
    ps = list(percentiles)
    row: dict[str, float] = dict(levels)
    up = row.get("sessions_up", 0.0)
    row["dtls_ratio"] = row.get("dtls_up", 0.0) / up if up > 0 else math.nan
    for name in SERIES_HISTOGRAMS:
        h = None if bucket is None else bucket.histograms.get(name)
        base = metric_base(name)
        n = 0 if h is None else h.count
        row[f"{base}_count"] = n
        values = h.percentiles(ps) if h is not None and n else [None] * len(ps)
        for p, v in zip(ps, values, strict=True):
            row[f"{base}_p{_pct_name(p)}"] = math.nan if v is None else _seconds(v)
        row[f"{base}_max"] = _seconds(h.max) if h is not None and n else math.nan
    return row


def _csv_cell(v: float) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(v)
    return str(v)


def _json_number(v: float) -> float | None:
    return None if math.isnan(v) else v


def _wire_error(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"run stats from another process: {reason}")


def _obj(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _wire_error(f"{what} is not an object")
    return value


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _wire_error(f"{what} is not a count")
    return value


def _level(value: object, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _wire_error(f"{what} is not a finite level")
    return float(value)


def _histogram(value: object, what: str) -> Histogram:
    if not isinstance(value, str):
        raise _wire_error(f"histogram {what!r} is not base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _wire_error(f"histogram {what!r} is not base64") from None
    try:
        return Histogram.from_bytes(raw)
    except RemoteProtocolError as e:
        raise _wire_error(f"histogram {what!r}: {e.reason}") from None


# ------------------------------------------------------------------ incremental merge
class StatsMerger:
    """The merged stats of several processes, kept up to date from their wire messages at
    a cost that does not grow with the run's length.

    Each part (a worker) sends, once a second, a delta (:meth:`RunStats.to_wire` with the
    seconds :meth:`RunStats.take_dirty` names) and at the end its full stats;
    :meth:`update` applies either to what it had of that part. :meth:`merged` then equals
    ``RunStats.merged(parts)`` -- the totals are merged afresh (a few dozen histograms and
    counters), the buckets only for the seconds that changed since the last call. This
    relies on what the engine does: a part sets its gauges for each second once, in time
    order, so a changed second never changes a later second's filled-forward level.
    """

    def __init__(self) -> None:
        self.parts: dict[object, RunStats] = {}
        self._merged = RunStats()
        self._dirty: set[int] = set()

    def update(self, key: object, data: bytes) -> RunStats:
        """Apply one wire message of part ``key`` (:class:`RemoteProtocolError` when it is
        not one; a delta for a part not seen yet starts it); returns the part's stats as
        they are now."""
        got = RunStats.from_wire(data)
        changed = set(got.series)
        mine = self.parts.get(key)
        if got.partial:
            if mine is not None:
                got.series = {**mine.series, **got.series}
            got.partial = False
        elif mine is not None:
            changed.update(mine.series)  # a whole message may drop seconds it had
        self._dirty.update(changed)
        self.parts[key] = got
        return got

    def set(self, key: object, stats: RunStats) -> None:
        """Replace part ``key`` by ``stats`` whole."""
        old = self.parts.get(key)
        if old is not None:
            self._dirty.update(old.series)
        self._dirty.update(stats.series)
        self.parts[key] = stats

    def merged(self) -> RunStats:
        """The merge of every part (the same object each time, updated)."""
        m = self._merged
        parts = list(self.parts.values())
        m.histograms, m.counters, m.families, m.gauges = {}, {}, {}, {}
        for p in parts:
            _add_histograms(m.histograms, p.histograms)
            for name, n in p.counters.items():
                m.counters[name] = m.counters.get(name, 0) + n
            for name, family in p.families.items():
                into = m.families.setdefault(name, {})
                for key, n in family.items():
                    into[key] = into.get(key, 0) + n
            for name, v in p.gauges.items():
                m.gauges[name] = m.gauges.get(name, 0.0) + v
        for name, v in m.gauges.items():
            peaks = [p.gauge_peaks.get(name, 0.0) for p in parts]
            m.gauge_peaks[name] = max(m.gauge_peaks.get(name, v), v, *peaks)
        for second in sorted(self._dirty):
            b = self._bucket(parts, second)
            if b is None:
                m.series.pop(second, None)
                continue
            m.series[second] = b
            for name, level in b.gauges.items():
                m.gauge_peaks[name] = max(m.gauge_peaks.get(name, level), level)
        self._dirty.clear()
        return m

    @staticmethod
    def _bucket(parts: list[RunStats], second: int) -> SecondBucket | None:
        here = [b for p in parts if (b := p.series.get(second)) is not None]
        if not here:
            return None
        out = SecondBucket(second)
        names: set[str] = set()
        for b in here:
            for name, n in b.counters.items():
                out.counters[name] = out.counters.get(name, 0) + n
            _add_histograms(out.histograms, b.histograms)
            names.update(b.gauges)
        for name in names:
            out.gauges[name] = sum(p.level_at(name, second) for p in parts)
        return out


def _add_histograms(into: dict[str, Histogram], other: dict[str, Histogram]) -> None:
    """Merge each of ``other``'s histograms into ``into``'s of the same name (a copy
    when ``into`` has none)."""
    for name, h in other.items():
        mine = into.get(name)
        if mine is None:
            into[name] = h.copy()
        else:
            mine.merge(h)
