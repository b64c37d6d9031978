"""The load engine's pure parts: load plans and pass/fail thresholds.

* :mod:`tunnelswarm.fleet.plan` -- the closed and open load models and the
  :class:`~tunnelswarm.fleet.plan.Planner` the engine drives with ``now`` (what to start,
  what to stop, late starts counted), per-session credentials and source addresses, the
  per-client traffic profile, duration and rate parsing.
* :mod:`tunnelswarm.fleet.thresholds` -- ``--threshold 'setup_p99<500ms'`` parsing,
  evaluation against a run's metrics, the result table, and the exit codes for CI
  (0 all held, 1 a threshold failed or the run was interrupted, 2 the run could not be made).

Neither does IO or reads a clock; the engine (Trio) feeds them the time.
"""

from __future__ import annotations

from tunnelswarm.fleet.plan import (
    ClosedModel,
    ClosedPlanner,
    Credentials,
    FlowTraffic,
    Lifetime,
    OpenModel,
    OpenPlanner,
    PingTraffic,
    Planner,
    SourcePool,
    Start,
    TrafficProfile,
    UdpEchoTraffic,
    make_planner,
    parse_duration,
    parse_rate,
)
from tunnelswarm.fleet.thresholds import (
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

__all__ = [
    "EXIT_OK",
    "EXIT_RUN_ERROR",
    "EXIT_THRESHOLD_FAILED",
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
    "Threshold",
    "ThresholdResult",
    "TrafficProfile",
    "UdpEchoTraffic",
    "evaluate_all",
    "exit_code",
    "flatten_metrics",
    "format_results",
    "make_planner",
    "parse_duration",
    "parse_rate",
    "parse_threshold",
    "parse_thresholds",
    "required_percentiles",
]
