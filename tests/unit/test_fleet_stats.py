"""A load run's measurements (``tunnelswarm.fleet.stats``): recording, the metric names
thresholds read, merging processes, the wire format, the summary and the time series."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from dataclasses import dataclass

import pytest

from tunnelswarm._core import Histogram
from tunnelswarm.errors import LocalProtocolError, RemoteProtocolError
from tunnelswarm.fleet import evaluate_all, parse_thresholds, required_percentiles
from tunnelswarm.fleet.stats import (
    COUNTERS,
    FAMILIES,
    HISTOGRAMS,
    WIRE_VERSION,
    RunStats,
    metric_base,
)


@dataclass(frozen=True)
class Event:
    kind: str  # record / count / family
    name: str
    value: float
    t: float | None
    key: str | None = None


def random_events(seed: int, n: int = 400) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    for _ in range(n):
        t = rng.uniform(0, 30) if rng.random() < 0.9 else None
        roll = rng.random()
        if roll < 0.4:
            name = rng.choice(HISTOGRAMS)
            events.append(Event("record", name, rng.lognormvariate(-2, 1.5), t))
        elif roll < 0.7:
            events.append(Event("count", rng.choice(COUNTERS), rng.randrange(1, 4), t))
        else:
            family = rng.choice(FAMILIES)
            key = rng.choice(["tls", "auth-failed", "dpd", "cstp", "dtls"])
            events.append(Event("family", family, rng.randrange(1, 2000), t, key))
    return events


def apply(stats: RunStats, e: Event) -> None:
    if e.kind == "record":
        stats.record(e.name, e.value, t=e.t)
    elif e.kind == "count":
        stats.count(e.name, int(e.value), t=e.t)
    else:
        stats.count(e.name, int(e.value), key=e.key, t=e.t)


def additive_view(s: RunStats) -> dict[str, object]:
    """Everything that merging must reproduce exactly (gauges are summed, not replayed)."""
    return {
        "histograms": {k: h.to_bytes() for k, h in s.histograms.items()},
        "counters": s.counters,
        "families": s.families,
        "series": {
            sec: (b.counters, {k: h.to_bytes() for k, h in b.histograms.items()})
            for sec, b in s.series.items()
        },
    }


def test_record_converts_seconds_to_microseconds_and_creates_on_first_use() -> None:
    s = RunStats()
    assert s.histograms == {}
    s.record("setup_tls", 0.25)
    s.record("setup_tls", 0.000_001_4)
    s.record_us("dpd_rtt", 1500)
    h = s.histograms["setup_tls"]
    assert (h.count, h.min) == (2, 1)
    low, high, _ = h.buckets()[-1]
    assert low <= 250_000 <= high
    assert s.histograms["dpd_rtt"].max == 1500
    s.record("ping_rtt", -0.5)  # a clock that stepped back: clamped, not fatal
    s.record("ping_rtt", 1e300)
    s.record_us("ping_rtt", -(2**200))
    assert s.histograms["ping_rtt"].clamped == 3
    with pytest.raises(LocalProtocolError):
        s.record("setup_total", math.nan)
    with pytest.raises(LocalProtocolError):
        s.record("setup_total", math.inf)


def test_only_setup_total_is_kept_per_second() -> None:
    s = RunStats()
    s.record("setup_total", 0.2, t=3.7)
    s.record("setup_tls", 0.1, t=3.7)
    s.record("setup_total", 0.3)
    b = s.bucket(3.2)
    assert b.second == 3
    assert b.setup is not None
    assert b.setup.count == 1
    assert list(b.histograms) == ["setup_total"]
    assert s.histograms["setup_total"].count == 2
    assert s.bucket(-4).second == 0


def test_counters_families_and_their_rules() -> None:
    s = RunStats()
    s.count("sessions_started", t=0.5)
    s.count("sessions_started", 2, t=1.5)
    s.count("errors", key="tls", t=1.9)
    s.count("errors", 2, key="cookie-rejected")
    s.count("reconnects", key="dpd", t=1.1)
    s.count("bytes_tx", 1400, key="dtls")
    assert s.counters == {"sessions_started": 3}
    assert s.families["errors"] == {"tls": 1, "cookie-rejected": 2}
    b1 = s.bucket(1)
    assert (b1.sessions_started, b1.errors, b1.reconnects, b1.setups_completed) == (2, 1, 1, 0)
    assert b1.counters["errors[tls]"] == 1
    with pytest.raises(LocalProtocolError, match="keyed family"):
        s.count("errors")
    with pytest.raises(LocalProtocolError, match="scalar counter"):
        s.count("sessions_started", key="x")
    with pytest.raises(LocalProtocolError, match="only grows"):
        s.count("late_starts", -1)
    with pytest.raises(LocalProtocolError, match="derived"):
        s.count("dtls_ratio")


def test_gauges_keep_last_and_peak() -> None:
    s = RunStats()
    for t, v in [(0, 5), (1, 50), (2, 20)]:
        s.set_gauge("sessions_up", v, t=t)
    assert s.gauges["sessions_up"] == 20
    assert s.gauge_peaks["sessions_up"] == 50
    m = s.metrics()
    assert (m["sessions_up"], m["sessions_up_last"]) == (50, 20)
    with pytest.raises(LocalProtocolError):
        s.set_gauge("sessions_up", math.nan)


def test_metric_names_are_what_thresholds_read() -> None:
    s = RunStats()
    for i in range(1, 1001):
        s.record("setup_total", i / 1000, t=i / 100)
        s.count("sessions_started", t=i / 100)
        s.count("setups_completed", t=i / 100)
    s.record("dpd_rtt", 0.02)
    s.set_gauge("sessions_up", 1000, t=10)
    s.set_gauge("dtls_up", 1000, t=10)
    texts = [
        "setup_p50 < 600ms",
        "setup_p99 <= 1s",
        "setup_p99.9 < 1.1s",
        "setup_p75.5 < 800ms",
        "setup_total_p90 < 1s",
        "setup_mean < 600ms",
        "dpd_rtt_p99 < 50ms",
        "dtls_ratio >= 0.99",
        "errors == 0",
        "errors[tls] == 0",
        "reconnects[dpd] == 0",
        "sessions_up >= 1000",
        "late_starts == 0",
        "missed_starts == 0",
        "setup_success_ratio == 1",
    ]
    thresholds = parse_thresholds(texts)
    m = s.metrics(required_percentiles(thresholds))
    results = evaluate_all(thresholds, m)
    assert all(r.passed for r in results), [(r.text, r.observed, r.note) for r in results]
    assert m["setup_p50"] == pytest.approx(0.5, rel=1e-3)
    assert m["setup_p99.9"] == pytest.approx(0.999, rel=1e-3)
    assert m["setup_p75.5"] == pytest.approx(0.755, rel=1e-3)
    assert m["setup_count"] == 1000
    assert m["setup_min"] == pytest.approx(0.001)
    assert "setup_total_p99" not in m  # defaults are reported under the base "setup"
    for name in HISTOGRAMS:
        assert f"{metric_base(name)}_p99" in m
    assert math.isnan(m["setup_tls_p99"])  # a standard histogram without samples
    assert m["setup_tls_count"] == 0
    assert math.isnan(m["ping_loss"])
    assert m["errors"] == 0
    assert "errors[tls]" not in m


def test_missing_samples_fail_thresholds_with_a_note() -> None:
    s = RunStats()
    thresholds = parse_thresholds(["setup_p99<1s", "dtls_ratio>0.9", "bogus_p99<1s"])
    results = evaluate_all(thresholds, s.metrics(required_percentiles(thresholds)))
    assert [r.passed for r in results] == [False, False, False]
    assert "no samples" in results[0].note
    assert "no samples" in results[1].note
    assert "no metric" in results[2].note


def test_percentile_arguments() -> None:
    s = RunStats()
    s.record("ping_rtt", 0.01)
    m = s.metrics([75, ("ping_rtt", 99.99)])
    assert {"setup_p75", "ping_rtt_p75", "ping_rtt_p99.99"} <= m.keys()
    assert "setup_p99.99" not in m
    with pytest.raises(LocalProtocolError):
        s.metrics([101])


def test_derived_ratios() -> None:
    s = RunStats()
    assert math.isnan(s.dtls_ratio())
    # no buckets: the last levels, else the peaks
    s.set_gauge("sessions_up", 10)
    s.set_gauge("dtls_up", 9)
    assert s.dtls_ratio() == pytest.approx(0.9)
    s.set_gauge("sessions_up", 0)
    s.set_gauge("dtls_up", 0)
    assert s.dtls_ratio() == pytest.approx(0.9)
    # buckets: DTLS-up session-seconds over up session-seconds, levels filled forward
    s = RunStats()
    s.set_gauge("sessions_up", 10, t=0)
    s.set_gauge("dtls_up", 0, t=0)
    s.set_gauge("dtls_up", 10, t=1)
    s.set_gauge("sessions_up", 10, t=3)
    assert s.dtls_ratio() == pytest.approx(30 / 40)
    s.count("ping_sent", 200)
    s.count("ping_lost", 3)
    s.count("sessions_started", 4)
    s.count("setups_completed", 3)
    m = s.metrics()
    assert m["ping_loss"] == pytest.approx(0.015)
    assert m["setup_success_ratio"] == pytest.approx(0.75)
    assert m["dtls_ratio"] == pytest.approx(0.75)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merge_of_two_processes_equals_one_recording_everything(seed: int) -> None:
    events = random_events(seed)
    rng = random.Random(seed * 31)
    one, a, b = RunStats(), RunStats(), RunStats()
    for e in events:
        apply(one, e)
        apply(a if rng.random() < 0.5 else b, e)
    merged = RunStats.from_wire(a.to_wire())
    merged.merge(RunStats.from_wire(b.to_wire()))
    assert additive_view(merged) == additive_view(one), seed
    assert merged.metrics() == pytest.approx(one.metrics(), nan_ok=True)
    assert RunStats.merged([a, b]).to_wire() == merged.to_wire()


def test_merge_with_nothing_and_with_itself() -> None:
    s = RunStats()
    for e in random_events(9, 100):
        apply(s, e)
    s.set_gauge("sessions_up", 7, t=2)
    before = s.to_wire()
    s.merge(RunStats())
    assert s.to_wire() == before
    empty = RunStats()
    empty.merge(s)
    assert empty.to_wire() == before
    orig = RunStats.from_wire(before)
    s.merge(s)
    assert s.histograms.keys() == orig.histograms.keys()
    for name, h in orig.histograms.items():
        assert s.histograms[name].count == 2 * h.count
    assert s.counters == {k: 2 * v for k, v in orig.counters.items()}
    assert s.gauges["sessions_up"] == 14


def test_gauges_are_summed_per_second_with_levels_filled_forward() -> None:
    a, b = RunStats(), RunStats()
    a.set_gauge("sessions_up", 10, t=0)
    a.set_gauge("sessions_up", 20, t=5)
    b.set_gauge("sessions_up", 5, t=2)
    b.set_gauge("sessions_up", 1, t=3)
    a.merge(b)
    levels = {s: bk.gauges["sessions_up"] for s, bk in a.series.items() if bk.gauges}
    assert levels == {0: 10, 2: 15, 3: 11, 5: 21}
    assert a.gauges["sessions_up"] == 21
    assert a.gauge_peaks["sessions_up"] == 21
    rows = a.timeseries_rows()
    assert [r["sessions_up"] for r in rows] == [10, 10, 15, 11, 11, 21]


def test_wire_round_trip() -> None:
    s = RunStats()
    for e in random_events(4, 200):
        apply(s, e)
    s.set_gauge("sessions_up", 3, t=1)
    s.set_gauge("sessions_up", 2, t=2)
    data = s.to_wire()
    doc = json.loads(data)
    assert (doc["format"], doc["version"]) == ("tunnelswarm-runstats", WIRE_VERSION)
    back = RunStats.from_wire(data)
    assert back.to_wire() == data
    assert additive_view(back) == additive_view(s)
    assert back.gauge_peaks == {"sessions_up": 3.0}
    assert back.metrics() == pytest.approx(s.metrics(), nan_ok=True)


def _wire(**changes: object) -> bytes:
    s = RunStats()
    s.record("setup_total", 0.1, t=1)
    s.count("errors", key="tls")
    s.set_gauge("sessions_up", 1)
    doc = json.loads(s.to_wire())
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "not an object"),
        (_wire(format="other"), "format"),
        (_wire(version=2), "version 2"),
        (_wire(version=True), "version True"),
        (_wire(counters={"x": -1}), "not a count"),
        (_wire(counters={"x": 1.5}), "not a count"),
        (_wire(counters={"errors": 1}), "both a counter and a family"),
        (_wire(counters={"dtls_ratio": 1}), "derived metric"),
        (_wire(families={"errors": {"tls": "1"}}), "not a count"),
        (_wire(histograms={"setup_total": "!!"}), "not base64"),
        (_wire(histograms={"setup_total": 5}), "not base64 text"),
        (_wire(histograms={"setup_total": "AAAA"}), "bad magic"),
        (_wire(gauges={"sessions_up": 1}), "not \\[last, peak\\]"),
        (_wire(gauges={"sessions_up": [1, "x"]}), "finite level"),
        (b'{"format":"tunnelswarm-runstats","version":1,"gauges":{"g":[NaN,1]}}', "finite"),
        (_wire(series={"x": {}}), "whole number"),
        (_wire(series={"1": []}), "not an object"),
        (_wire(series={"1": {"histograms": {"setup_total": "VFNIAQ=="}}}), "truncated"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_bad_wire_bytes_are_remote_protocol_errors(data: bytes, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words) as info:
        RunStats.from_wire(data)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("run stats from another process: ")


def test_summary_is_json() -> None:
    s = RunStats()
    for e in random_events(5, 150):
        apply(s, e)
    s.set_gauge("dtls_up", 2, t=4)
    summary = s.summary([("setup", 99.99)])
    text = json.dumps(summary, allow_nan=False)
    back = json.loads(text)
    assert back["version"] == WIRE_VERSION
    assert back["seconds"] == max(s.series) + 1
    assert back["gauges"] == {"dtls_up": {"last": 2.0, "peak": 2.0}}
    assert "setup_p99.99" in back["metrics"]
    total = s.histograms.get("setup_total")
    if total is not None and total.count:
        assert back["histograms"]["setup_total"]["count"] == total.count
        assert set(back["histograms"]["setup_total"]["percentiles"]) == {
            "50",
            "90",
            "95",
            "99",
            "99.9",
        }
    assert RunStats().summary()["seconds"] == 0


def test_timeseries_rows_and_csv() -> None:
    s = RunStats()
    assert s.timeseries_rows() == []
    assert s.timeseries_csv() == ""
    s.count("sessions_started", t=0.1)
    s.record("setup_total", 0.2, t=0.1)
    s.record("setup_total", 0.4, t=0.9)
    s.count("errors", key="tls", t=2.5)
    s.set_gauge("sessions_up", 4, t=0.5)
    s.set_gauge("dtls_up", 3, t=0.5)
    s.count("late_starts", t=2)
    rows = s.timeseries_rows()
    assert [r["second"] for r in rows] == [0, 1, 2]
    assert len({tuple(r) for r in rows}) == 1  # same columns in every row
    assert list(rows[0])[:5] == [
        "second",
        "sessions_started",
        "setups_completed",
        "errors",
        "reconnects",
    ]
    r0, r1, r2 = rows
    assert (r0["sessions_started"], r0["setup_count"], r0["sessions_up"]) == (1, 2, 4)
    assert r0["setup_p50"] == pytest.approx(0.2, rel=0.01)
    assert r0["setup_max"] == pytest.approx(0.4, rel=0.01)
    assert r0["dtls_ratio"] == pytest.approx(0.75)
    assert (r1["sessions_up"], r1["setup_count"]) == (4, 0)
    assert math.isnan(r1["setup_p99"])
    assert (r2["errors"], r2["errors[tls]"], r2["late_starts"]) == (1, 1, 1)
    parsed = list(csv.DictReader(io.StringIO(s.timeseries_csv())))
    assert [p["second"] for p in parsed] == ["0", "1", "2"]
    assert parsed[1]["setup_p99"] == ""
    assert float(parsed[0]["setup_p50"]) == pytest.approx(0.2, rel=0.01)


def test_histogram_type_is_the_core_one() -> None:
    s = RunStats()
    assert isinstance(s.histogram("setup_total"), Histogram)
    assert s.histogram("setup_total") is s.histograms["setup_total"]
