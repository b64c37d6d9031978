"""Load runs for real (``tunnelswarm run -n …`` / ``--open …``): the in-process mock ASA
over real loopback sockets, and in virtual time over the in-memory network.

Each run is short (a few seconds) and checks what the run promises: every session up,
setup latency per phase, thresholds → exit status, late starts counted when the open
model's cap holds arrivals back, wrong passwords counted by cause without ending the run,
source addresses, interruption keeping the measurements, and minutes of virtual time in
seconds.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from _fleet_sim import run_json as run_json_objects

from tunnelswarm.cli import main
from tunnelswarm.client.session import PHASES, ClientOptions, open_client
from tunnelswarm.drive.datagram import bound_udp_opener
from tunnelswarm.drive.stream import bound_tcp_opener
from tunnelswarm.fleet.engine import LoadEngine, LoadSpec, run_load
from tunnelswarm.fleet.plan import (
    ClosedModel,
    Credentials,
    Lifetime,
    OpenModel,
    PingTraffic,
    SourcePool,
    TrafficProfile,
)

REPO = Path(__file__).resolve().parents[2]


def run_json(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, Any]], dict[str, Any], str]:
    """``tunnelswarm run … --json-lines``: (status, per-second rows, summary, stderr).
    Every stdout line is one JSON object: a ``progress`` object per second (its
    ``bucket`` is the row returned), the last one the ``summary``."""
    rc, progress, summary, err = run_json_objects(capsys, *argv)
    for p in progress:
        assert p["second"] == p["bucket"]["second"] == p["t"] - 1
        assert p["totals"]["elapsed"] == p["t"]
    return rc, [p["bucket"] for p in progress], summary, err


# ------------------------------------------------------------------ closed model
def test_closed_run_brings_every_session_up_and_its_thresholds_hold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, rows, summary, err = run_json(
        capsys,
        "-n", "20", "--rate", "50/s", "--hold", "3s", "--ping", "2/s",
        "--threshold", "setup_p99<10s", "--threshold", "errors==0",
        "--threshold", "sessions_up==20", "--threshold", "setup_success_ratio==1",
        "--threshold", "ping_loss<10%",
    )  # fmt: skip
    assert rc == 0, err
    m = summary["metrics"]
    assert m["sessions_started"] == 20
    assert m["setups_completed"] == 20
    assert m["dtls_established"] == 20
    assert m["errors"] == 0
    assert m["sessions_failed"] == 0
    assert m["sessions_up"] == 20  # the peak of the gauge
    for base in ("setup", *(f"setup_{p}" for p in PHASES)):
        assert m[f"{base}_count"] == 20, base
        for p in ("p50", "p90", "p99", "max"):
            value = m[f"{base}_{p}"]
            assert value is not None, (base, p)
            assert value > 0, (base, p)
    # the total (scheduled start to CONNECT) includes the first phase
    assert m["setup_p50"] >= m["setup_tcp_p50"]
    assert m["ping_sent"] >= 20 * 2 * 2
    assert [t["passed"] for t in summary["thresholds"]] == [True] * 5
    assert summary["exit_code"] == 0
    assert not summary["interrupted"]
    # one row per second, in order, the last after every session closed
    assert [r["second"] for r in rows] == list(range(len(rows)))
    assert len(rows) >= 4  # 0.38 s of ramp-up, 3 s of hold, the close
    assert sum(r.get("sessions_started", 0) for r in rows) == 20
    assert max(r["sessions_up"] for r in rows) == 20
    assert rows[-1]["sessions_up"] == 0
    # setups belong to the second they were scheduled in (all in the first here)
    assert rows[0]["setup_count"] >= 1
    assert rows[0]["setup_p99"] > 0
    assert all(r["setup_count"] == 0 for r in rows[1:])
    # the human summary went to stderr
    assert "sessions: 20 planned, 20 started, 20 up, 0 failed" in err
    for phase in (*PHASES, "total"):
        assert any(line.split()[:2] == [phase, "20"] for line in err.splitlines()), phase
    assert "all 5 threshold(s) held" in err


def test_an_impossible_threshold_fails_the_run_with_status_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["run", "-n", "5", "--hold", "1s", "-q",
               "--threshold", "sessions_up>5", "--threshold", "errors==0"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "sessions_up > 5" in out
    assert "FAILED" in out
    assert "1 of 2 threshold(s) held" in out
    assert "5 up" in out


def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-n", "20", "--rate", "fast"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.count("\n") == 1
    assert cap.err.startswith("tunnelswarm: error: --rate: expected a rate like '50/s'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_headend_means_the_run_cannot_be_made(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"https://127.0.0.1:{free_port()}/"
    assert main(["run", "-n", "5", "--headend", url, "-q"]) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1
    assert cap.err.startswith(f"tunnelswarm: error: headend {url.rstrip('/')} unreachable: ")
    assert "Connection refused" in cap.err


# ------------------------------------------------------------------ credentials
def test_half_the_passwords_wrong_are_counted_by_cause_and_the_run_completes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    creds = tmp_path / "users.csv"
    creds.write_text("user,password\ntest,test\ntest,wrong\n", encoding="utf-8")
    rc, _, summary, err = run_json(
        capsys,
        "-n", "10", "--hold", "2s", "--credentials", str(creds),
        "--threshold", "errors[auth-failed]>=5", "--threshold", "errors==0",
    )  # fmt: skip
    m = summary["metrics"]
    assert not summary["interrupted"]
    # sessions 0, 2, 4, ... log in; 1, 3, 5, ... are refused (their slots retry after
    # 1 s as the next session number, i.e. the other row)
    assert m["errors[auth-failed]"] >= 5
    assert m["errors"] == m["errors[auth-failed]"] == m["sessions_failed"]
    assert m["setups_completed"] >= 5
    assert m["setups_completed"] + m["sessions_failed"] == m["sessions_started"]
    assert summary["error_examples"]["auth-failed"] == "login failed: Login failed."
    assert [t["passed"] for t in summary["thresholds"]] == [True, False]
    assert rc == 1
    assert "errors: auth-failed " in err


def test_not_one_session_up_means_the_run_cannot_be_made(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["run", "-n", "3", "--hold", "1s", "--password", "wrong", "-q"])
    cap = capsys.readouterr()
    assert rc == 2
    assert "errors: auth-failed " in cap.out  # the report is still printed
    assert cap.err.startswith("tunnelswarm: error: no session came up: all ")
    assert cap.err.count("\n") == 1


# ------------------------------------------------------------------ open model
def test_open_model_counts_late_starts_when_the_cap_holds_arrivals_back() -> None:
    # 10 arrivals/s, at most 5 live, each living 1 s: capacity 5/s, so the backlog grows
    # and an arrival starts ever later after its scheduled time -- counted, and its
    # setup latency (from the schedule) shows the wait: no coordinated omission
    spec = LoadSpec(OpenModel(10.0, 4.0, lifetime=Lifetime.fixed(1.0), max_concurrency=5))
    result = run_load(spec, watch_signals=False)
    m = result.metrics()
    assert not result.interrupted
    assert m["sessions_up"] <= 5
    assert m["late_starts"] >= 1
    assert m["max_start_lateness"] > 1.0
    assert m["start_lateness_max"] > 1.0
    assert m["setup_tcp_max"] >= 1.0
    assert m["setup_max"] >= m["setup_tcp_max"]
    assert m["missed_starts"] >= 1  # still waiting when the arrival window closed
    assert m["sessions_planned"] == 40 == m["sessions_started"] + m["missed_starts"]
    assert m["errors"] == 0


# ------------------------------------------------------------------ source addresses
async def test_bound_openers_send_from_the_given_address() -> None:
    with trio.fail_after(10):
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        stream = await bound_tcp_opener("127.0.0.7")("127.0.0.1", port)
        server = await listener.accept()
        assert server.socket.getpeername()[0] == "127.0.0.7"
        await stream.aclose()
        await server.aclose()
        await listener.aclose()
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", 0))
        chan = await bound_udp_opener("127.0.0.8")("127.0.0.1", udp.getsockname()[1])
        await chan.send(b"hello")
        data, addr = await udp.recvfrom(100)
        assert (data, addr[0]) == (b"hello", "127.0.0.8")
        chan.close()
        udp.close()


async def test_sessions_come_from_the_source_pool_and_an_interrupt_keeps_the_results() -> None:
    spec = LoadSpec(
        ClosedModel(4, None, hold=60.0),
        sources=SourcePool.parse("127.0.0.2-127.0.0.3"),
        traffic=TrafficProfile(ping=PingTraffic(rate=5.0)),
    )
    engine = LoadEngine(spec)
    seen: list[tuple[str, str]] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def run() -> None:
                results.append(await engine.run())

            nursery.start_soon(run)
            while engine.stats is None or engine.stats.gauges.get("dtls_up", 0) < 4:
                await trio.sleep(0.05)
            assert engine.asa is not None
            for s in engine.asa.sessiondb:
                assert s.dtls is not None
                seen.append((s.public_ip, s.dtls.public_ip))
            engine.interrupt()
    (result,) = results
    assert sorted(seen) == [("127.0.0.2", "127.0.0.2")] * 2 + [("127.0.0.3", "127.0.0.3")] * 2
    assert result.interrupted
    m = result.metrics()
    assert m["setups_completed"] == 4
    assert m["errors"] == 0
    assert m["setups_aborted"] == 0
    assert m["setup_count"] == 4
    assert m["ping_sent"] > 0
    assert result.run_seconds < 60


async def test_a_headend_url_is_driven_like_the_embedded_mock() -> None:
    """``--headend URL --servercert PIN``: a mock ASA started apart (as a real one would
    be), its default configuration (user ``test``, 100 logins), traffic to ``--target``."""
    from tunnelswarm.asa.server import MockAsaConfig, serve_mock_asa

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            info = await nursery.start(serve_mock_asa, MockAsaConfig(port=0))
            spec = LoadSpec(
                ClosedModel(6, 20.0, hold=1.5),
                headend=info.url,
                servercert=(info.pin,),
                credentials=Credentials.template("test", "test"),
                traffic=TrafficProfile(ping=PingTraffic(rate=4.0)),
                target="10.1.1.1",
            )
            result = await LoadEngine(spec).run()
            summary = info.asa.show("vpn-sessiondb summary")
            nursery.cancel_scope.cancel()
    m = result.metrics()
    assert result.headend == info.url
    assert m["setups_completed"] == 6, result.error_examples
    assert m["errors"] == 0
    assert m["ping_sent"] > 0
    assert m["ping_loss"] == 0
    assert m["setup_auth_count"] == 6
    # the headend saw all six, six at once, and none is left
    assert "AnyConnect Client            :      0 :          6 :           6 :" in summary


async def test_on_phase_reports_each_boundary_in_order() -> None:
    from tunnelswarm.asa.server import MockAsaConfig, serve_mock_asa

    phases: list[tuple[str, float]] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            info = await nursery.start(serve_mock_asa, MockAsaConfig(port=0))
            opts = ClientOptions(url=info.url, user="test", password="test", servercert=(info.pin,))
            async with open_client(opts, on_phase=lambda n, t: phases.append((n, t))) as s:
                while s.dtls is None or not s.dtls.up:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert [n for n, _ in phases] == list(PHASES)
    times = [t for _, t in phases]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("workers", "says"),
    [("1", "interrupted: closing 5 live session(s)"), ("2", "interrupted: stopping 2 worker(s)")],
)
def test_sigint_interrupts_a_run_and_the_report_keeps_its_numbers(
    tmp_path: Path, workers: str, says: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunnelswarm", "run", "-n", "5", "--hold", "60s",
         "--report", str(report), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        live: list[str] = []
        for line in proc.stderr:  # the live view (one line a second): everyone is up
            live.append(line)
            if "  up 5  " in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, "".join(live) + err
    assert live[-1].startswith("[")
    assert "started 5/5" in live[-1]
    assert "load run INTERRUPTED" in out
    assert "sessions: 5 planned, 5 started, 5 up, 0 failed" in out
    assert says in out
    assert "errors: none" in out
    assert f"report: {report}" in out
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert summary["state"] == "interrupted"
    assert summary["passed"] is False
    assert summary["run"]["interrupted"] is True
    assert summary["run"]["error"] is None
    assert summary["stats"]["counters"]["setups_completed"] == 5
    timeline = [json.loads(x) for x in (report / "timeline.jsonl").read_text().splitlines()]
    assert sum(1 for e in timeline if e["kind"] == "up") == 5
    assert sum(1 for e in timeline if e["kind"] == "end") == 5
    assert (report / "report.html").stat().st_size > 0


def test_report_dir_of_a_load_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "r"
    rc = main(["run", "-n", "10", "--rate", "50/s", "--hold", "2s", "--ping", "2/s",
               "--threshold", "errors==0", "--threshold", "setup_p95<10s",
               "--report", str(report), "--seed", "7"])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 0, cap.out + cap.err
    # the live view went to stderr, a line a second (not a terminal), none on stdout
    live = [line for line in cap.err.splitlines() if line.startswith("[")]
    assert len(live) >= 2, cap.err
    assert "started 10/10" in live[-1]
    assert not any(line.startswith("[") for line in cap.out.splitlines())
    assert f"report: {report}" in cap.out
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert summary["format"] == "tunnelswarm-load-report"
    assert summary["state"] == "completed"
    assert summary["passed"] is True
    assert [t["passed"] for t in summary["thresholds"]] == [True, True]
    run = summary["run"]
    assert run["seed"] == 7
    assert run["mock"] is True
    assert run["headend"].startswith("https://127.0.0.1:")
    assert run["profile"]
    assert "closed model: 10 clients" in run["plan"]
    assert run["exit_code"] == 0
    assert run["error"] is None
    assert summary["stats"]["counters"]["setups_completed"] == 10
    assert summary["events"] > 0
    assert summary["syslog_lines"] > 0
    # the time series: a header and a row per second
    rows = (report / "timeseries.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("second,")
    assert len(rows) - 1 == summary["seconds"] >= 3
    timeline = [json.loads(x) for x in (report / "timeline.jsonl").read_text().splitlines()]
    assert len(timeline) == summary["events"]
    kinds = {e["kind"] for e in timeline}
    assert {"start", "up", "connect", "dtls-up", "end"} <= kinds
    assert {e["source"] for e in timeline if e["kind"] == "up"} == {
        f"client {i}" for i in range(10)
    }
    syslog = (report / "syslog.log").read_text(encoding="utf-8").splitlines()
    assert len(syslog) == summary["syslog_lines"]
    assert all("%ASA-" in line for line in syslog)
    assert any("%ASA-4-722051" in line or "722022" in line for line in syslog)
    page = (report / "report.html").read_text(encoding="utf-8")
    assert page.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)  # opens offline
    assert "function(root, factory)" in page  # plotly.js itself is inlined
    m = re.search(r'Plotly\.newPlot\(\s*"chart-sessions",\s*', page)
    assert m is not None
    traces, _ = json.JSONDecoder().raw_decode(page, m.end())
    up = next(t for t in traces if t["name"] == "sessions up")
    assert max(up["y"]) == 10
    assert len(up["y"]) == summary["seconds"]


# ------------------------------------------------------------------ virtual time
def virtual_spec(n: int, hold: float, seed: int = 1) -> LoadSpec:
    return LoadSpec(
        ClosedModel(n, 10.0, hold=hold),
        traffic=TrafficProfile(ping=PingTraffic(rate=0.1)),
        virtual_time=True,
        seed=seed,
    )


def test_virtual_time_runs_100_clients_for_minutes_in_seconds() -> None:
    result = run_load(virtual_spec(100, 300.0), watch_signals=False)
    m = result.metrics()
    assert not result.interrupted
    assert result.run_seconds == pytest.approx(9.9 + 300, abs=0.5)
    assert m["setups_completed"] == 100
    assert m["sessions_up"] == 100
    assert m["dtls_established"] == 100
    assert m["dtls_ratio"] > 0.99
    assert m["errors"] == 0
    assert m["reconnects"] == 0
    # a ping every 10 s for about 300 s per client, every one answered
    assert 2900 <= m["ping_sent"] <= 3200
    assert m["ping_loss"] == 0
    # the in-memory LAN's 1 ms one way: TCP takes one round trip, the total a few
    assert m["setup_tcp_p50"] == pytest.approx(0.002, rel=0.01)
    assert 0.004 < m["setup_p99"] < 0.1
    assert m["late_starts"] == 0
    # several virtual minutes; the wall clock is not asserted (machines differ)
    print(f"virtual {result.run_seconds:.0f} s in {result.wall_seconds:.1f} s wall")


def test_virtual_time_replays_with_the_seed() -> None:
    def numbers(seed: int) -> dict[str, float]:
        m = run_load(virtual_spec(20, 60.0, seed), watch_signals=False).metrics()
        return {k: v for k, v in m.items() if not (isinstance(v, float) and math.isnan(v))}

    assert numbers(3) == numbers(3)


def test_credentials_rows_are_used_in_order() -> None:
    rows = Credentials.parse_csv("test,test\nnobody,x\n", "inline")
    spec = LoadSpec(ClosedModel(2, None, hold=1.0), credentials=rows, virtual_time=True)
    m = run_load(spec, watch_signals=False).metrics()
    assert m["errors[auth-failed]"] >= 1
    assert m["setups_completed"] >= 1


@pytest.mark.parametrize("no_dtls", [False, True])
def test_traffic_is_counted_per_channel_and_dpd_round_trips_are_measured(no_dtls: bool) -> None:
    """5 clients ping once a second for 100 s of virtual time: every echo request and
    reply is one inner packet of 84 bytes on the channel that carried it (DTLS, or CSTP
    with ``no_dtls``), counted second by second; with DTLS carrying the data, the idle
    CSTP channel sends its DPD (30 s) and each round trip is two one-way latencies."""
    spec = LoadSpec(
        model=ClosedModel(concurrency=5, ramp_up_rate=None, hold=100.0),
        traffic=TrafficProfile(ping=PingTraffic(1.0)),
        virtual_time=True,
        no_dtls=no_dtls,
    )
    r = run_load(spec, watch_signals=False)
    m = r.metrics()
    used, unused = ("cstp", "dtls") if no_dtls else ("dtls", "cstp")
    assert m["ping_sent"] == m[f"packets_tx[{used}]"] == m[f"packets_rx[{used}]"] == 500
    assert m[f"bytes_tx[{used}]"] == m[f"bytes_rx[{used}]"] == 500 * 84
    assert m.get(f"packets_tx[{unused}]", 0) == 0
    per_second = [row.get(f"packets_tx[{used}]", 0) for row in r.stats.timeseries_rows()]
    assert sum(per_second) == 500
    assert max(per_second) <= 10  # spread over the run, not counted at the end
    if not no_dtls:
        assert m["dpd_rtt_count"] == m["dpd_rtt_cstp_count"] == 15  # 5 clients x 3 DPDs
        assert m["dpd_rtt_p50"] == pytest.approx(2 * spec.virtual_latency, abs=1e-4)
