"""Thresholds (``tunnelswarm.fleet.thresholds``): parsing, evaluation, the result table
and the exit codes CI reads."""

from __future__ import annotations

import math

import pytest

from tunnelswarm.errors import ConfigError
from tunnelswarm.fleet import (
    EXIT_OK,
    EXIT_RUN_ERROR,
    EXIT_THRESHOLD_FAILED,
    Threshold,
    ThresholdResult,
    evaluate_all,
    exit_code,
    flatten_metrics,
    format_results,
    parse_threshold,
    parse_thresholds,
    required_percentiles,
)
from tunnelswarm.fleet import thresholds as thresholds_module
from tunnelswarm.scenario.expect import Metrics


def test_exit_codes_are_distinct_and_documented() -> None:
    assert (EXIT_OK, EXIT_THRESHOLD_FAILED, EXIT_RUN_ERROR) == (0, 1, 2)
    doc = thresholds_module.__doc__ or ""
    for name in ("EXIT_OK", "EXIT_THRESHOLD_FAILED", "EXIT_RUN_ERROR", "interrupted"):
        assert name in doc


@pytest.mark.parametrize(
    ("text", "metric", "key", "op", "limit", "unit", "base", "percentile"),
    [
        ("setup_p99<500ms", "setup_p99", None, "<", 0.5, "ms", "setup", 99.0),
        ("dpd_rtt_p50<=250us", "dpd_rtt_p50", None, "<=", 0.00025, "us", "dpd_rtt", 50.0),
        ("dtls_ratio>0.99", "dtls_ratio", None, ">", 0.99, None, "dtls_ratio", None),
        ("errors==0", "errors", None, "==", 0.0, None, "errors", None),
        ("reconnects[dpd]<=3", "reconnects", "dpd", "<=", 3.0, None, "reconnects", None),
        ("setup_p50 < 2s", "setup_p50", None, "<", 2.0, "s", "setup", 50.0),
        (" setup_p99.9 >= 1.5s ", "setup_p99.9", None, ">=", 1.5, "s", "setup", 99.9),
        ("setup_p99.0<1s", "setup_p99", None, "<", 1.0, "s", "setup", 99.0),
        ("setup_p100 != 3m", "setup_p100", None, "!=", 180.0, "m", "setup", 100.0),
        ("dtls_ratio > 99%", "dtls_ratio", None, ">", 0.99, "%", "dtls_ratio", None),
        ("sessions>=1.5k", "sessions", None, ">=", 1500.0, "k", "sessions", None),
        ("delta > -2", "delta", None, ">", -2.0, None, "delta", None),
        ("tcp_pkts<1M", "tcp_pkts", None, "<", 1e6, "M", "tcp_pkts", None),
        ("x_p5_total<1", "x_p5_total", None, "<", 1.0, None, "x_p5_total", None),
        ("setup_p90[asa-1]<1h", "setup_p90", "asa-1", "<", 3600.0, "h", "setup", 90.0),
    ],
)
def test_parse_threshold(
    text: str,
    metric: str,
    key: str | None,
    op: str,
    limit: float,
    unit: str | None,
    base: str,
    percentile: float | None,
) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.key, t.op, t.unit, t.base, t.percentile) == (
        metric,
        key,
        op,
        unit,
        base,
        percentile,
    )
    assert t.limit == pytest.approx(limit)
    assert t.text == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setup_p99", "expected 'metric OP number'"),
        ("setup_p99 << 5", "expected 'metric OP number'"),
        ("Setup<5", "expected 'metric OP number'"),
        ("5 < errors < 9", "expected 'metric OP number'"),
        ("errors==zero", "expected 'metric OP number'"),
        ("errors==3 parsecs", "expected 'metric OP number'"),
        ("setup_p0<1s", "a percentile must be above 0 and at most 100"),
        ("setup_p100.5<1s", "a percentile must be above 0 and at most 100"),
    ],
)
def test_parse_threshold_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        parse_threshold(text)
    assert "\n" not in str(exc.value)
    assert repr(text) in str(exc.value)


def test_ref_and_holds() -> None:
    t = parse_threshold("reconnects[dpd] <= 3")
    assert t.ref == "reconnects[dpd]"
    assert t.holds(3)
    assert not t.holds(4)
    assert not t.holds(math.nan)
    assert parse_threshold("errors == 0").ref == "errors"


def test_evaluate_pass_and_fail() -> None:
    metrics = {"setup_p99": 0.231, "dtls_ratio": 0.97, "errors": 0}
    ok = parse_threshold("setup_p99<500ms").evaluate(metrics)
    assert ok == ThresholdResult("setup_p99", "<", 0.5, 0.231, True, "setup_p99<500ms", "", "ms")
    bad = parse_threshold("dtls_ratio>0.99").evaluate(metrics)
    assert (bad.passed, bad.observed, bad.note) == (False, 0.97, "")
    zero = parse_threshold("errors==0").evaluate(metrics)
    assert zero.passed
    assert isinstance(zero.observed, float)


def test_evaluate_missing_metric_fails_with_a_note() -> None:
    r = parse_threshold("errors==0").evaluate({"setup_p99": 0.1})
    assert (r.passed, r.observed) == (False, None)
    assert r.note == "the run has no metric 'errors'"
    near = parse_threshold("setup_p95<1s").evaluate({"setup_p99": 0.1, "dtls_ratio": 1.0})
    assert near.note == "the run has no metric 'setup_p95' (did you mean 'setup_p99'?)"


def test_evaluate_keyed_metric() -> None:
    t = parse_threshold("reconnects[dpd]<=3")
    # the family exists but never had cause "dpd": that is zero, and it passes
    zero = t.evaluate({"reconnects": 2.0, "reconnects[mtu]": 2.0})
    assert (zero.passed, zero.observed) == (True, 0.0)
    assert t.evaluate({"reconnects": 9.0, "reconnects[dpd]": 9.0}).observed == 9.0
    missing = t.evaluate({"errors": 0.0})
    assert not missing.passed
    assert missing.note == "the run has no metric 'reconnects[dpd]'"


def test_evaluate_nan_is_no_samples() -> None:
    r = parse_threshold("setup_p99<1s").evaluate({"setup_p99": math.nan})
    assert (r.passed, r.observed, r.note) == (False, None, "setup_p99 has no samples")


def test_evaluate_all_and_exit_code() -> None:
    ts = parse_thresholds(["errors==0", "dtls_ratio>0.99"])
    good = evaluate_all(ts, {"errors": 0, "dtls_ratio": 1.0})
    assert [r.passed for r in good] == [True, True]
    assert exit_code(good) == EXIT_OK
    assert exit_code(good, interrupted=True) == EXIT_THRESHOLD_FAILED
    bad = evaluate_all(ts, {"errors": 1, "dtls_ratio": 1.0})
    assert [r.name for r in bad] == ["errors", "dtls_ratio"]
    assert exit_code(bad) == EXIT_THRESHOLD_FAILED
    assert exit_code([]) == EXIT_OK


def test_required_percentiles() -> None:
    ts = parse_thresholds(["setup_p99<1s", "setup_p99.0<2s", "dtls_p50<1s", "errors==0"])
    assert required_percentiles(ts) == [("dtls", 50.0), ("setup", 99.0)]
    assert required_percentiles([]) == []


def test_flatten_metrics() -> None:
    m = Metrics()
    m.set("errors", 0)
    m.family("reconnects", {"mtu": 2, "dpd": 1})
    m.family("asp_drop")
    assert flatten_metrics(m) == {
        "errors": 0.0,
        "reconnects": 3.0,
        "reconnects[mtu]": 2.0,
        "reconnects[dpd]": 1.0,
        "asp_drop": 0.0,
    }
    ts = parse_thresholds(["reconnects[dpd]<=1", "asp_drop[x]==0", "reconnects<3"])
    assert [r.passed for r in evaluate_all(ts, flatten_metrics(m))] == [True, True, False]


def test_result_texts() -> None:
    r = parse_threshold("setup_p99 < 500ms").evaluate({"setup_p99": 0.2314})
    assert r.condition == "setup_p99 < 500ms"
    assert r.observed_text == "231ms"
    ratio = parse_threshold("dtls_ratio>99.5%").evaluate({"dtls_ratio": 0.97})
    assert (ratio.condition, ratio.observed_text) == ("dtls_ratio > 99.5%", "97%")
    plain = parse_threshold("errors==0").evaluate({})
    assert (plain.condition, plain.observed_text) == ("errors == 0", "-")
    assert r.as_dict() == {
        "threshold": "setup_p99 < 500ms",
        "metric": "setup_p99",
        "op": "<",
        "limit": 0.5,
        "observed": 0.2314,
        "passed": True,
        "note": "",
    }


def test_format_results_table() -> None:
    ts = parse_thresholds(["setup_p99<500ms", "dtls_ratio > 0.99", "errors==0"])
    text = format_results(evaluate_all(ts, {"setup_p99": 0.231, "dtls_ratio": 0.97}))
    assert text.splitlines() == [
        "threshold          observed  result",
        "setup_p99 < 500ms  231ms     ok",
        "dtls_ratio > 0.99  0.97      FAILED",
        "errors == 0        -         FAILED  the run has no metric 'errors'",
        "1 of 3 threshold(s) held",
    ]


def test_format_results_all_held_and_empty() -> None:
    ok = evaluate_all(parse_thresholds(["errors==0"]), {"errors": 0})
    assert format_results(ok).splitlines()[-1] == "all 1 threshold(s) held"
    assert format_results([]) == "no thresholds"


def test_threshold_built_directly_has_no_unit() -> None:
    t = Threshold("e==0", "e", None, "==", 0.0)
    r = t.evaluate({"e": 0.0})
    assert (r.passed, r.unit, r.condition, r.observed_text) == (True, None, "e == 0", "0")
