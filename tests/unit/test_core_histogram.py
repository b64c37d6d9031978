"""The HDR histogram binding (``tunnelswarm._core.Histogram``): layout, recording and
clamping, percentiles against a sorted oracle, merging, the byte encoding and its errors."""

from __future__ import annotations

import copy
import math
import pickle
import random

import pytest

from tunnelswarm._core import Histogram
from tunnelswarm.errors import ConfigError, RemoteProtocolError

HOUR_US = 3_600_000_000


def oracle(values: list[int], p: float) -> int:
    """The sample of rank ceil(p/100 * n) (1-based), the smallest for p == 0."""
    s = sorted(values)
    if p == 0:
        return s[0]
    rank = max(1, math.ceil(round(p * len(s) / 100, 9)))
    return s[rank - 1]


def test_defaults_and_layout() -> None:
    h = Histogram()
    assert (h.lowest, h.highest, h.sigfig) == (1, HOUR_US, 3)
    assert (h.count, h.clamped, h.min, h.max, h.mean, h.stdev) == (0, 0, 0, 0, 0.0, 0.0)
    assert h.value_at_percentile(99) == 0
    assert h.buckets() == []
    assert repr(h) == "Histogram(lowest=1, highest=3600000000, sigfig=3, count=0, clamped=0)"
    h2 = Histogram(lowest=1000, highest=60_000_000, sigfig=2)
    assert (h2.lowest, h2.highest, h2.sigfig) == (1000, 60_000_000, 2)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, 100, 3), "at least 1"),
        ((10, 19, 3), "twice the lowest"),
        ((1, 100, 0), "1 to 5"),
        ((1, 100, 6), "1 to 5"),
        ((1 << 50, 2**64 - 1, 5), "64 bits"),
    ],
)
def test_bad_layouts_are_config_errors(args: tuple[int, int, int], words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        Histogram(*args)
    assert "\n" not in str(info.value)


def test_exact_values_below_the_sub_bucket_count() -> None:
    h = Histogram()
    for v in (3, 1, 2, 2, 1000):
        h.record(v)
    assert h.count == 5
    assert (h.min, h.max) == (1, 1000)
    assert h.mean == pytest.approx(201.6)
    assert h.percentiles([0, 20, 40, 60, 80, 100]) == [1, 1, 2, 2, 3, 1000]
    assert h.buckets() == [(1, 1, 1), (2, 2, 2), (3, 3, 1), (1000, 1000, 1)]


def test_precision_and_the_classic_stall() -> None:
    h = Histogram()
    h.record(1000, 10_000)
    h.record(100_000_000)
    assert h.count == 10_001
    assert h.value_at_percentile(50) == 1000
    assert h.value_at_percentile(99.99) == 1000
    top = h.value_at_percentile(99.999)
    assert 100_000_000 <= top <= 100_000_000 * 1.001
    assert h.max == top
    assert h.value_at_percentile(100) == top
    # 3 significant digits: 10007 shares a slot with 10000..10007
    g = Histogram()
    g.record(10007)
    assert (g.min, g.max) == (10000, 10007)


def test_percentile_arguments_are_checked() -> None:
    h = Histogram()
    h.record(5)
    for bad in (-0.1, 100.5, math.nan, math.inf):
        with pytest.raises(ConfigError, match="between 0 and 100"):
            h.value_at_percentile(bad)
        with pytest.raises(ConfigError):
            h.percentiles([50, bad])
    assert h.percentiles(()) == []
    assert h.percentiles((0, 100)) == [5, 5]


def test_out_of_range_values_clamp_and_are_counted() -> None:
    h = Histogram(1, 1000, 3)
    h.record(999)
    h.record(1001)
    h.record(10**30)
    h.record(-5, count=2)
    h.record(0)
    assert h.count == 6
    assert h.clamped == 4
    assert h.min == 0
    assert h.max == 1000
    assert h.percentiles([25, 50, 100]) == [0, 0, 1000]
    h.record(7, count=0)
    assert h.count == 6
    h.reset()
    assert (h.count, h.clamped, h.max, h.lowest) == (0, 0, 0, 1)


def test_record_refuses_non_integers() -> None:
    h = Histogram()
    with pytest.raises(TypeError):
        h.record(1.5)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        h.record(1, count=-1)


def test_percentiles_match_a_sorted_oracle() -> None:
    seed = 20261130
    rng = random.Random(seed)
    for sigfig in (1, 2, 3, 4, 5):
        h = Histogram(1, HOUR_US, sigfig)
        values = [int(rng.lognormvariate(11, 2)) for _ in range(2000)]
        for v in values:
            h.record(v)
        ps = [0, 1, 7, 25, 50, 75, 90, 99, 99.9, 99.99, 100]
        for p, got in zip(ps, h.percentiles(ps), strict=True):
            want = min(oracle(values, p), HOUR_US)
            assert got >= want if p else got <= want, (seed, sigfig, p)
            assert abs(got - want) <= max(want / 10**sigfig, 1), (seed, sigfig, p, got, want)
        exact = sum(min(v, HOUR_US) for v in values) / len(values)
        assert h.mean == pytest.approx(exact, rel=10**-sigfig)


def test_merge_equals_recording_both_and_self_merge_doubles() -> None:
    rng = random.Random(7)
    a_vals = [rng.randrange(0, 10**7) for _ in range(500)]
    b_vals = [rng.randrange(0, 10**10) for _ in range(500)]
    a, b, both = Histogram(), Histogram(), Histogram()
    for v in a_vals:
        a.record(v)
        both.record(v)
    for v in b_vals:
        b.record(v)
        both.record(v)
    a.merge(b)
    assert a == both
    assert a.to_bytes() == both.to_bytes()
    assert a.clamped == sum(v > HOUR_US for v in b_vals)
    c = b.copy()
    c.merge(c)
    assert c.count == 2 * b.count
    assert c.percentiles([50]) == b.percentiles([50])
    assert b.count == 500  # copy() is independent


def test_merge_across_layouts_re_records() -> None:
    fine = Histogram(1, HOUR_US, 3)
    coarse = Histogram(1000, 10_000_000, 2)
    for v in (5, 1500, 250_000, 9_999_999, HOUR_US):
        fine.record(v)
    coarse.merge(fine)
    assert coarse.count == 5
    assert coarse.clamped == 1
    assert coarse.max == coarse.value_at_percentile(100)
    assert coarse != fine


def test_bytes_round_trip_pickle_and_copy() -> None:
    h = Histogram(10, 10**9, 4)
    for v in (0, 9, 10, 12345, 10**9 + 1):
        h.record(v, count=3)
    data = h.to_bytes()
    assert data[:4] == b"TSH\x01"
    back = Histogram.from_bytes(data)
    assert back == h
    assert (back.lowest, back.highest, back.sigfig, back.clamped) == (10, 10**9, 4, 3)
    assert back.to_bytes() == data
    assert pickle.loads(pickle.dumps(h)) == h
    assert copy.deepcopy(h) == h
    assert len(Histogram().to_bytes()) < 16
    with pytest.raises(TypeError):
        hash(h)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "truncated"),
        (b"TS", "truncated"),
        (b"nope", "bad magic"),
        (b"TSH\x02", "version 2"),
        (b"TSH\x01\x00\x10\x02\x00", "lowest value"),
        (b"TSH\x01" + b"\xff" * 10 + b"\x00", "longer than 64 bits"),
        (b"TSH\x01\x01\x10\x01\x00\x80\x80\x80\x80\x04\x01", "beyond the layout"),
        (b"TSH\x01\x01\x10\x01\x00\x00\x00", "zero count"),
        (b"TSH\x01\x01\x10\x01\x02\x00\x01", "more clamped"),
    ],
)
def test_bad_bytes_are_remote_protocol_errors(data: bytes, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words) as info:
        Histogram.from_bytes(data)
    assert "\n" not in str(info.value)


def test_every_prefix_and_flip_of_an_encoding_is_handled() -> None:
    h = Histogram()
    for v in (1, 50, 5000, 5_000_000, 4 * HOUR_US):
        h.record(v, count=300)
    data = h.to_bytes()
    rng = random.Random(3)
    candidates = [data[:i] for i in range(len(data))]
    for _ in range(300):
        b = bytearray(data)
        b[rng.randrange(len(b))] = rng.randrange(256)
        candidates.append(bytes(b))
    for c in candidates:
        try:
            back = Histogram.from_bytes(c)
        except RemoteProtocolError:
            continue
        assert back.clamped <= back.count
        assert Histogram.from_bytes(back.to_bytes()) == back
