"""Property tests of the run statistics (``tunnelswarm.fleet.stats``) and of the HDR
histogram binding under them.

* A histogram's percentiles are the sorted samples' within the layout's precision:
  never below the sample of rank ``ceil(p/100 * n)``, above it by less than ``1 /
  10^sigfig`` of it (or the unit near zero); min/max/count agree with the samples.
* However the events of a run are split over worker processes, and in whatever order the
  workers' stats are merged after crossing the wire, the merge equals one process having
  recorded everything (histograms, counters, families, per-second buckets); the merged
  gauge levels are the sum of the workers' last levels.
* Neither decoder (histogram bytes, run-stats wire bytes) raises anything but a one-line
  ``RemoteProtocolError`` on bytes that are not theirs.
"""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tunnelswarm._core import Histogram
from tunnelswarm.errors import RemoteProtocolError
from tunnelswarm.fleet.stats import COUNTERS, FAMILIES, HISTOGRAMS, RunStats

layouts = st.tuples(
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=2, max_value=2**40),
    st.integers(min_value=1, max_value=5),
).map(lambda t: (t[0], t[0] * t[1], t[2]))


@settings(max_examples=150, deadline=None)
@given(
    layout=layouts,
    data=st.data(),
    per_100k=st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=10),
)
def test_percentiles_within_precision_of_sorted_samples(
    layout: tuple[int, int, int], data: st.DataObject, per_100k: list[int]
) -> None:
    lowest, highest, sigfig = layout
    values = data.draw(
        st.lists(
            st.one_of(
                st.integers(min_value=0, max_value=highest),
                st.integers(min_value=0, max_value=2000),
                st.integers(min_value=-5, max_value=2 * highest),
            ),
            min_size=1,
            max_size=300,
        )
    )
    h = Histogram(lowest, highest, sigfig)
    for v in values:
        h.record(v)
    clipped = sorted(min(max(v, 0), highest) for v in values)
    n = len(clipped)
    assert h.count == n
    assert h.clamped == sum(v < 0 or v > highest for v in values)
    unit = 1 << (lowest.bit_length() - 1)

    def slack(v: int) -> float:
        return max(v / 10.0**sigfig, unit)

    assert clipped[0] - slack(clipped[0]) <= h.min <= clipped[0]
    assert clipped[-1] <= h.max <= clipped[-1] + slack(clipped[-1])
    for p in per_100k:
        got = h.value_at_percentile(p / 1000)
        if p == 0:
            assert got == h.min
            continue
        rank = (p * n + 99_999) // 100_000  # ceil(p/100_000 * n), in integers
        want = clipped[rank - 1]
        assert want <= got <= want + slack(want), (p, want, got)


Event = tuple[str, str, int, str | None, float | None]


@st.composite
def event(draw: st.DrawFn) -> Event:
    t = draw(st.one_of(st.none(), st.floats(min_value=-1, max_value=120, allow_nan=False)))
    kind = draw(st.sampled_from(["record", "count", "family"]))
    if kind == "record":
        value = draw(st.integers(min_value=-10, max_value=4_000_000_000))
        return ("record", draw(st.sampled_from(HISTOGRAMS)), value, None, t)
    if kind == "count":
        return ("count", draw(st.sampled_from(COUNTERS)), draw(st.integers(0, 5)), None, t)
    key = draw(st.sampled_from(["tls", "dpd", "cstp", "dtls", "401"]))
    return ("count", draw(st.sampled_from(FAMILIES)), draw(st.integers(0, 10**6)), key, t)


def apply(s: RunStats, e: Event) -> None:
    kind, name, value, key, t = e
    if kind == "record":
        s.record_us(name, value, t=t)
    else:
        s.count(name, value, key=key, t=t)


def view(s: RunStats) -> object:
    return (
        {k: h.to_bytes() for k, h in s.histograms.items()},
        s.counters,
        s.families,
        {
            sec: (b.counters, {k: h.to_bytes() for k, h in b.histograms.items()})
            for sec, b in s.series.items()
            if b.counters or b.histograms  # the workers' gauge samples are not replayed
        },
    )


@settings(max_examples=100, deadline=None)
@given(
    evs=st.lists(event(), max_size=60),
    workers=st.integers(min_value=1, max_value=4),
    data=st.data(),
)
def test_merged_workers_equal_one_process(
    evs: list[Event],
    workers: int,
    data: st.DataObject,
) -> None:
    one = RunStats()
    parts = [RunStats() for _ in range(workers)]
    levels = data.draw(st.lists(st.integers(0, 1000), min_size=workers, max_size=workers))
    for e in evs:
        apply(one, e)
        apply(parts[data.draw(st.integers(0, workers - 1))], e)
    for part, level in zip(parts, levels, strict=True):
        part.set_gauge("sessions_up", level, t=data.draw(st.integers(0, 100)))
    order = data.draw(st.permutations(range(workers)))
    merged = RunStats.merged(RunStats.from_wire(parts[i].to_wire()) for i in order)
    assert view(merged) == view(one)
    assert merged.gauges["sessions_up"] == sum(levels)
    assert merged.gauge_peaks["sessions_up"] >= max(levels)
    metrics = merged.metrics()
    expected = one.metrics()
    for name, value in expected.items():
        if name.startswith("sessions_up") or name == "dtls_ratio":
            continue
        assert math.isnan(value) == math.isnan(metrics[name]), name
        if not math.isnan(value):
            assert metrics[name] == value, name
    assert RunStats.from_wire(merged.to_wire()).to_wire() == merged.to_wire()
    json.dumps(merged.summary(), allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=80), st.binary(max_size=60).map(lambda b: b"TSH\x01" + b)))
def test_histogram_decoder_refuses_cleanly(data: bytes) -> None:
    result: Histogram | RemoteProtocolError
    try:
        result = Histogram.from_bytes(data)
    except RemoteProtocolError as e:
        result = e
    if isinstance(result, RemoteProtocolError):
        assert "\n" not in str(result)
        return
    h = result
    assert h.clamped <= h.count
    assert Histogram.from_bytes(h.to_bytes()) == h


def _json_values() -> st.SearchStrategy[object]:
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-3, max_value=2**70),
            st.floats(allow_nan=True),
            st.text(max_size=8),
        ),
        lambda kids: st.one_of(
            st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)
        ),
        max_leaves=12,
    )


@settings(max_examples=300, deadline=None)
@given(
    section=st.sampled_from(["histograms", "counters", "families", "gauges", "series", "version"]),
    value=_json_values(),
    junk=st.binary(max_size=40),
)
def test_wire_decoder_refuses_cleanly(section: str, value: object, junk: bytes) -> None:
    s = RunStats()
    s.record("setup_total", 0.1, t=1)
    s.count("errors", key="tls", t=1)
    s.set_gauge("sessions_up", 1, t=1)
    doc = json.loads(s.to_wire())
    doc[section] = value
    for data in (json.dumps(doc).encode(), junk, s.to_wire()[: len(junk)]):
        result: RunStats | RemoteProtocolError
        try:
            result = RunStats.from_wire(data)
        except RemoteProtocolError as e:
            result = e
        if isinstance(result, RemoteProtocolError):
            assert "\n" not in str(result)
            continue
        back = result
        assert RunStats.from_wire(back.to_wire()).to_wire() == back.to_wire()


# ------------------------------------------------------------------ delta wire + merger
Step = tuple[int, str, int, int]  # (worker, op, second offset back, value)


@settings(max_examples=120, deadline=None)
@given(
    workers=st.integers(min_value=1, max_value=3),
    seconds=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_deltas_through_the_merger_equal_merging_the_whole_stats(
    workers: int, seconds: int, data: st.DataObject
) -> None:
    """Workers record as the engine does -- counters and histograms at any second so far
    (a setup belongs to the second it was scheduled in), gauges once per second in time
    order -- and send a delta of what changed at random moments, the whole stats at the
    end; the merger's stats equal ``RunStats.merged`` of the workers' own at every
    step."""
    from tunnelswarm.fleet.stats import StatsMerger

    parts = [RunStats() for _ in range(workers)]
    merger = StatsMerger()
    ops = st.tuples(
        st.integers(min_value=0, max_value=workers - 1),
        st.sampled_from(["count", "family", "record", "send"]),
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=0, max_value=5_000_000),
    )
    for now in range(seconds):
        for w, op, back, value in data.draw(st.lists(ops, max_size=8)):
            t = max(0, now - back) + 0.5
            p = parts[w]
            if op == "count":
                p.count("sessions_started", value % 5, t=t)
            elif op == "family":
                p.count("errors", 1, key=f"c{value % 3}", t=t)
            elif op == "record":
                p.record("setup_total", value / 1e6, t=t)
                p.record("ping_rtt", value / 1e7)
            else:
                merger.update(w, p.to_wire(seconds=p.take_dirty()))
        for w, p in enumerate(parts):
            if data.draw(st.booleans()):  # a worker may skip a second's sample
                p.set_gauge("sessions_up", float((now * 7 + w) % 11), t=now)
            merger.update(w, p.to_wire(seconds=p.take_dirty()))
        want = RunStats.merged(parts)
        got = merger.merged()
        assert got.summary() == want.summary()
        assert got.timeseries_rows() == want.timeseries_rows()
    for w, p in enumerate(parts):
        merger.update(w, p.to_wire())  # the final, whole message
    assert merger.merged().summary() == RunStats.merged(parts).summary()
    assert merger.merged().timeseries_csv() == RunStats.merged(parts).timeseries_csv()


def test_a_delta_carries_only_the_changed_seconds() -> None:
    s = RunStats()
    for t in range(100):
        s.count("sessions_started", t=t)
    first = s.take_dirty()
    assert first == list(range(100))
    assert s.take_dirty() == []
    s.count("sessions_started", t=100.5)
    s.record("setup_total", 0.2, t=3)  # a late setup, attributed to its scheduled second
    delta = json.loads(s.to_wire(seconds=s.take_dirty()))
    assert delta["delta"] is True
    assert sorted(delta["series"]) == ["100", "3"]
    assert delta["counters"]["sessions_started"] == 101
    assert len(s.to_wire(seconds=[])) < len(s.to_wire()) / 10
    assert RunStats.from_wire(s.to_wire(seconds=[3])).partial
    assert not RunStats.from_wire(s.to_wire()).partial
