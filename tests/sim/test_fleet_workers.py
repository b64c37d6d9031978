"""``tunnelswarm run --workers N``: a load run split over worker processes (one Trio loop
each) against the embedded mock ASA in a process of its own, on real loopback sockets;
merged into one view, one summary, one report.

Checks the split (global session numbers, the single plan's start times), a closed and
an open run with two workers (every session counted once in the merged stats, thresholds
on the merged metrics, the report), a worker killed mid-run (the run completes with the
others and reports the lost worker), an interrupt, and virtual time refusing workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from _fleet_sim import run_json

from tunnelswarm.cli import main
from tunnelswarm.fleet.engine import LoadSpec
from tunnelswarm.fleet.plan import ClosedModel, OpenModel
from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.fleet.workers import Coordinator, split_spec


# ------------------------------------------------------------------ the split
def test_a_closed_plan_splits_into_interleaved_slots_with_the_single_plans_times() -> None:
    spec = LoadSpec(model=ClosedModel(concurrency=5, ramp_up_rate=10.0, hold=2.0))
    shares = split_spec(spec, 2)
    assert [s.spec.model.concurrency for s in shares] == [3, 2]  # type: ignore[union-attr]
    assert [(s.index_base, s.index_stride) for s in shares] == [(0, 2), (1, 2)]
    first_starts = sorted(
        s.plan_offset + s.spec.model.first_start_offset(i)  # type: ignore[union-attr]
        for s in shares
        for i in range(s.spec.model.concurrency)  # type: ignore[union-attr]
    )
    assert first_starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    for s in shares:  # every worker's hold ends when the single plan's does
        assert s.plan_offset + s.spec.model.duration == pytest.approx(spec.model.duration)
    assert len({s.spec.seed for s in shares}) == 2
    # more workers than slots: only as many workers as slots
    assert len(split_spec(spec, 8)) == 5


def test_an_open_plan_splits_its_rate_and_shifts_constant_arrivals() -> None:
    spec = LoadSpec(model=OpenModel(arrival_rate=10.0, duration=2.0, max_concurrency=3))
    shares = split_spec(spec, 2)
    models = [s.spec.model for s in shares]
    assert all(isinstance(m, OpenModel) and m.arrival_rate == 5.0 for m in models)
    assert [m.max_concurrency for m in models] == [2, 1]  # type: ignore[union-attr]
    assert [s.plan_offset for s in shares] == pytest.approx([0.0, 0.1])
    for s in shares:
        assert s.plan_offset + s.spec.model.duration == pytest.approx(2.0)


# ------------------------------------------------------------------ runs
def test_two_workers_closed_run_merges_into_one_summary_and_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "rep"
    rc, progress, summary, err = run_json(
        capsys,
        "-n", "20", "--rate", "40/s", "--hold", "2s", "--workers", "2",
        "--threshold", "setups_completed==20", "--threshold", "setup_p99<5s",
        "--threshold", "workers_lost==0",
        "--report", str(report),
    )  # fmt: skip
    assert rc == 0, err
    m = summary["metrics"]
    assert m["sessions_started"] == 20
    assert m["setups_completed"] == 20
    assert m["setup_count"] == 20
    assert m["sessions_failed"] == 0
    assert m["sessions_up"] == 20
    assert m["workers"] == 2
    assert m["workers_lost"] == 0
    assert summary["workers"] == 2
    assert summary["lost_workers"] == []
    assert [t["metric"] for t in summary["thresholds"]] == [
        "setups_completed",
        "setup_p99",
        "workers_lost",
    ]
    assert all(t["passed"] for t in summary["thresholds"])
    assert progress
    assert progress[-1]["totals"]["setups_completed"] == 20
    doc = json.loads((report / "summary.json").read_text())
    assert doc["state"] == "completed"
    timeline = (report / "timeline.jsonl").read_text()
    clients = {json.loads(line)["source"] for line in timeline.splitlines()}
    assert {f"client {i}" for i in range(20)} <= clients  # global session numbers
    assert "%ASA-" in (report / "syslog.log").read_text()  # the mock's own process


def test_two_workers_open_run(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, summary, err = run_json(
        capsys, "--open", "10/s", "--duration", "2s", "--workers", "2",
        "--threshold", "sessions_started==20",
    )  # fmt: skip
    assert rc == 0, err
    m = summary["metrics"]
    assert m["sessions_started"] == 20
    assert m["setups_completed"] == 20
    assert m["setup_count"] == 20
    assert m["workers"] == 2


def test_a_killed_worker_is_reported_and_the_run_completes_with_the_others() -> None:
    spec = LoadSpec(model=ClosedModel(concurrency=20, ramp_up_rate=40.0, hold=3.0))
    lines: list[str] = []
    killed: list[int] = []
    coord: Coordinator

    def on_second(stats: RunStats, t: float) -> None:
        if t >= 2.0 and not killed:
            victim = coord.workers[1].proc
            assert victim.pid is not None
            killed.append(victim.pid)
            os.kill(victim.pid, signal.SIGKILL)

    coord = Coordinator(spec, 2, on_line=lines.append, on_second=on_second)
    result = coord.run(watch_signals=False)
    assert killed
    assert not result.interrupted
    assert len(result.lost_workers) == 1
    assert result.lost_workers[0].startswith("worker 1")
    m = result.metrics()
    assert m["workers_lost"] == 1
    # worker 0's ten sessions all the way, worker 1's up to its last report
    assert m["setups_completed"] == 20
    assert m["sessions_started"] == 20
    assert any("worker 1 lost" in line for line in lines)


def test_an_interrupt_stops_every_worker_and_keeps_their_results() -> None:
    spec = LoadSpec(model=ClosedModel(concurrency=10, ramp_up_rate=None, hold=30.0))
    coord: Coordinator

    def on_second(stats: RunStats, t: float) -> None:
        if t >= 2.0:
            coord.interrupt()

    coord = Coordinator(spec, 2, on_second=on_second)
    result = coord.run(watch_signals=False)
    assert result.interrupted
    assert result.run_seconds < 15
    assert result.lost_workers == []
    m = result.metrics()
    assert m["setups_completed"] == 10
    assert m["sessions_failed"] == 0


def test_virtual_time_refuses_more_than_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-n", "5", "--virtual-time", "--workers", "2", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--workers" in err[0]
    assert main(["run", "-n", "5", "--workers", "0", "-q"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_workers_default_to_one_per_core_but_not_more_than_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tunnelswarm.errors import ConfigError
    from tunnelswarm.fleet import cli, workers

    monkeypatch.setattr(workers, "default_workers", lambda: 4)
    monkeypatch.setattr(cli, "default_workers", lambda: 4)
    many = LoadSpec(model=ClosedModel(concurrency=100, ramp_up_rate=None, hold=1.0))
    few = LoadSpec(model=ClosedModel(concurrency=3, ramp_up_rate=None, hold=1.0))
    virtual = LoadSpec(
        model=ClosedModel(concurrency=100, ramp_up_rate=None, hold=1.0), virtual_time=True
    )
    arrivals = LoadSpec(model=OpenModel(arrival_rate=5.0, duration=10.0))
    assert cli.parse_workers(None, many) == 4
    assert cli.parse_workers("auto", many) == 4
    assert cli.parse_workers(None, few) == 3
    assert cli.parse_workers(None, virtual) == 1
    assert cli.parse_workers(None, arrivals) == 4
    assert cli.parse_workers("1", many) == 1
    assert cli.parse_workers("7", many) == 7
    with pytest.raises(ConfigError, match="does not go with --workers > 1"):
        cli.parse_workers("2", virtual)
    with pytest.raises(ConfigError, match="--workers: expected a whole number"):
        cli.parse_workers("lots", many)


def test_a_hung_worker_is_stopped_then_killed_after_the_plan_and_the_run_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that stops answering (SIGSTOP: alive, silent) must not hang the run: past
    the plan's end + the setup timeout + OVERDUE it is told to stop, and killed (lost)
    when no final stats come within stop_grace + STOP_EXTRA."""
    from tunnelswarm.fleet import workers

    monkeypatch.setattr(workers, "OVERDUE", 1.0)
    monkeypatch.setattr(workers, "STOP_EXTRA", 1.0)
    spec = LoadSpec(
        model=ClosedModel(concurrency=4, ramp_up_rate=None, hold=2.0),
        setup_timeout=1.0,
        stop_grace=1.0,
    )
    lines: list[str] = []
    frozen: list[int] = []
    coord: Coordinator

    def on_second(stats: RunStats, t: float) -> None:
        if t >= 1.0 and not frozen:
            victim = coord.workers[1].proc
            assert victim.pid is not None
            frozen.append(victim.pid)
            os.kill(victim.pid, signal.SIGSTOP)

    coord = Coordinator(spec, 2, on_line=lines.append, on_second=on_second)
    try:
        result = coord.run(watch_signals=False)
    finally:
        for pid in frozen:  # never leave a stopped process behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert frozen
    assert result.run_seconds < 20
    assert [w.split(":")[0] for w in result.lost_workers] == ["worker 1"]
    assert "killed" in result.lost_workers[0]
    assert any("after the plan's end: stopping them" in line for line in lines), lines
    assert result.metrics()["setups_completed"] >= 2  # worker 0's, at least
