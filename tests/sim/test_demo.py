"""``make demo``'s job: a short closed-model load run against the built-in mock ASA."""

from __future__ import annotations

import re

import pytest

from tunnelswarm.cli import build_parser
from tunnelswarm.demo import THRESHOLDS, demo_argv, main
from tunnelswarm.fleet.cli import build_spec
from tunnelswarm.fleet.plan import ClosedModel


def test_demo_runs_a_load_and_its_thresholds_hold(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--clients", "10", "--rate", "20/s", "--hold", "2s", "--ping", "2/s"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "demo: $ tunnelswarm run -n 10 --rate 20/s --hold 2s --ping 2/s --threshold" in out
    where = r"mock ASA 9\.1\(4\) in (its own process|-process) at https://127\.0\.0\.1:"
    assert re.search(where, out), out
    assert "sessions: 10 planned, 10 started, 10 up, 0 failed" in out
    assert "came up in 10 of 10 sessions" in out
    assert "pings: " in out
    assert ", 0.0% lost" in out
    for phase in ("tcp", "tls", "auth", "connect", "dtls", "total"):
        assert any(line.split()[:2] == [phase, "10"] for line in out.splitlines()), phase
    assert f"all {len(THRESHOLDS)} threshold(s) held" in out


def test_the_default_demo_is_200_clients_ramped_at_50_per_second_held_30_s() -> None:
    argv = demo_argv("200", "50/s", "30s", "1/s:56")
    spec, thresholds = build_spec(build_parser().parse_args(argv))
    assert spec.model == ClosedModel(concurrency=200, ramp_up_rate=50.0, hold=30.0)
    assert spec.traffic.ping is not None
    assert (spec.traffic.ping.rate, spec.traffic.ping.size) == (1.0, 56)
    assert spec.headend is None  # the built-in mock ASA
    assert [t.text for t in thresholds] == list(THRESHOLDS)


def test_demo_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--clients", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "tunnelswarm: error: -n/--clients: must be at least 1, got '0'\n"
