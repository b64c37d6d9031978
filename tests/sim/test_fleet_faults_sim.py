"""Faults during a load run against the mock ASA, and the outages they leave per client.

Each fault of ``--fault`` once in virtual time (minutes of run in seconds, replayable):
a TCP cut (every client reconnects with its cookie), a UDP blackout long enough for DTLS
to be declared dead (the tunnel stays, data over CSTP, DTLS back after the blackout), a
headend pause longer than the DPD limit (the clients reconnect after the pause), and a
headend restart (the sessions are forgotten: 401 to the old cookies, a new login per
client), in the closed and the open model. Then in real time: the embedded mock
restarted, a separate ``tunnelswarm mock-asa`` process killed with SIGKILL and started
again on the same port by the test (as an operator reloading a box would), and the
coordinator of ``--workers 2`` killing and restarting its mock process. Every run must
finish with every measurement kept and each client's outage and recovery recorded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from tunnelswarm.cli import main
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.errors import ConfigError
from tunnelswarm.fleet.engine import LoadEngine, LoadResult, LoadSpec, run_engine, run_load
from tunnelswarm.fleet.faults import Outage, parse_fault
from tunnelswarm.fleet.plan import (
    ClosedModel,
    Credentials,
    Lifetime,
    OpenModel,
    PingTraffic,
    TrafficProfile,
)
from tunnelswarm.fleet.workers import Coordinator
from tunnelswarm.scenario.run import TimelineEntry

#: reconnect retries 1 s apart (openconnect: 10 s), so real-time runs stay short
QUICK_RETRY = replace(OPENCONNECT_9_01, reconnect_interval=1.0, reconnect_max_interval=1.0)


def virtual(
    clients: int, hold: float, *faults: str, ping: bool = False, **kw: object
) -> tuple[LoadResult, list[TimelineEntry]]:
    spec = LoadSpec(
        model=ClosedModel(concurrency=clients, ramp_up_rate=10.0, hold=hold),
        traffic=TrafficProfile(ping=PingTraffic(1.0)) if ping else TrafficProfile(),
        virtual_time=True,
        faults=tuple(parse_fault(f) for f in faults),
        **kw,  # type: ignore[arg-type]
    )
    events: list[TimelineEntry] = []
    engine = LoadEngine(spec, on_event=events.append)
    return run_engine(engine, watch_signals=False), events


#: a second late in the hold of every run here
LAST = -3


def level(r: LoadResult, gauge: str, second: int) -> float:
    """A gauge's level at the end of ``second`` (negative: from the run's end)."""
    rows = r.stats.timeseries_rows()
    return float(rows[second][gauge])


def tunnel(r: LoadResult) -> list[Outage]:
    return [o for o in r.outages if o.channel == "tunnel"]


def dtls(r: LoadResult) -> list[Outage]:
    return [o for o in r.outages if o.channel == "dtls"]


def test_a_tcp_cut_makes_every_client_reconnect_with_its_cookie() -> None:
    r, events = virtual(20, 60.0, "tcp-cut at 20s")
    m = r.metrics()
    assert m["faults[tcp-cut]"] == 1
    assert m["reconnects[transport]"] == 20
    assert m["outages[transport]"] == 20
    assert m["outages_recovered"] == 20
    assert m["outages_unrecovered"] == 0
    assert m.get("errors", 0) == 0
    assert level(r, "sessions_up", LAST) == 20
    outs = tunnel(r)
    assert sorted(o.slot for o in outs) == list(range(20))
    for o in outs:
        assert o.ended_by == "reconnect"
        assert o.start == pytest.approx(20.0, abs=0.01)
        assert 0 < o.seconds < 0.1  # a few round trips of the in-memory LAN
    # DTLS went with the TCP connection and came back with the reconnect
    assert len(dtls(r)) == 20
    assert all(o.ended_by == "dtls up" for o in dtls(r))
    faults = [e for e in events if e.kind == "fault"]
    assert faults[0].text == "fault: tcp-cut at 20s"
    assert faults[0].t == pytest.approx(20.0)
    assert sum(e.kind == "outage" for e in events) == 40  # tunnel + DTLS, per client
    assert sum(e.kind == "recovered" for e in events) == 40


def test_a_udp_blackout_kills_dtls_but_not_the_tunnel() -> None:
    r, _ = virtual(10, 200.0, "udp-blackout at 20s for 100s", ping=True)
    m = r.metrics()
    assert not tunnel(r), "the CSTP tunnel must survive a UDP blackout"
    assert m.get("reconnects", 0) == 0
    outs = dtls(r)
    assert sorted(o.slot for o in outs) == list(range(10))
    for o in outs:
        assert o.cause == "dtls-down"
        assert 20 < o.start < 120  # declared dead by DPD during the blackout
        assert o.end >= 120  # DTLS cannot come back before UDP flows again
        assert o.ended_by == "dtls up"
    assert m["dtls_outages_recovered"] == 10
    assert m["dtls_ratio"] < 0.9
    assert level(r, "dtls_up", 190) == 10
    # pings were lost until DTLS was declared dead, then went over CSTP
    assert 0 < m["ping_lost"] < m["ping_sent"] / 2
    assert r.stats.gauge_peaks["dtls_down"] == 10


def test_a_headend_pause_beyond_dpd_ends_in_a_reconnect_after_the_pause() -> None:
    r, _ = virtual(10, 200.0, "headend-pause at 20s for 100s")
    outs = tunnel(r)
    assert len(outs) == 10
    for o in outs:
        assert o.cause == "dpd"
        assert 20 < o.start < 120
        assert o.ended_by == "reconnect"
        assert o.end == pytest.approx(120.0, abs=0.5)  # TCP bytes flow again after it
    assert level(r, "sessions_up", LAST) == 10


def test_a_headend_restart_forgets_the_sessions_and_every_client_logs_in_again() -> None:
    r, events = virtual(10, 60.0, "headend-restart at 20s down 5s")
    m = r.metrics()
    assert m["faults[headend-restart]"] == 1
    assert m["errors[cookie-rejected]"] == 10  # the restarted mock knows no cookie
    assert m["setups_completed"] == 20
    assert level(r, "sessions_up", LAST) == 10
    outs = tunnel(r)
    assert len(outs) == 10
    for o in outs:
        assert o.start == pytest.approx(20.0, abs=0.01)
        assert o.ended_by == "new session"
        assert o.seconds >= 5.0  # down 5 s, then the 10 s reconnect interval of openconnect
        assert o.cause == "transport"
    texts = [e.text for e in events if e.kind == "fault"]
    assert texts[0].startswith("fault: headend-restart at 20s down 5s")
    assert texts[1].startswith("fault over: mock ASA up again at")


def test_in_the_open_model_a_client_whose_session_failed_is_lost() -> None:
    spec = LoadSpec(
        model=OpenModel(arrival_rate=1.0, duration=60.0, lifetime=Lifetime.fixed(30.0)),
        virtual_time=True,
        faults=(parse_fault("headend-restart at 40s down 5s"),),
    )
    r = run_load(spec, watch_signals=False)
    m = r.metrics()
    outs = tunnel(r)
    assert outs
    assert all(o.ended_by in ("lost", "unrecovered") for o in outs)
    assert m["outages_lost"] == m["errors[cookie-rejected]"]
    assert m["outages_lost"] + m["outages_unrecovered"] == len(outs)
    assert m["outages_recovered"] == 0


def test_a_fault_after_the_plan_or_a_restart_of_a_real_headend_is_a_config_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["run", "-n", "2", "--hold", "10s", "--fault", "tcp-cut at 1h"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "the run's plan ends at 10 s, before the fault" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="restarts the in-process mock ASA"):
        LoadSpec(
            model=ClosedModel(concurrency=1, ramp_up_rate=None, hold=1.0),
            headend="https://127.0.0.1:1/",
            faults=(parse_fault("headend-restart at 1s"),),
        )


def test_the_report_shows_each_clients_outage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(
        [
            "run",
            "-n",
            "6",
            "--rate",
            "10/s",
            "--hold",
            "40s",
            "--virtual-time",
            "--fault",
            "headend-restart at 10s down 2s",
            "--threshold",
            "outages_unrecovered==0",
            "--threshold",
            "outage_p99<30s",
            "--report",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "faults: headend-restart at 10s down 2s" in out
    assert re.search(r"outages: 6 \(transport 6\) in 6 clients; 6 recovered", out), out
    with (tmp_path / "outages.csv").open() as f:
        rows = list(csv.DictReader(f))
    tunnel_rows = [r for r in rows if r["channel"] == "tunnel"]
    assert sorted(int(r["slot"]) for r in tunnel_rows) == list(range(6))
    assert {r["ended_by"] for r in tunnel_rows} == {"new session"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["state"] == "completed"
    assert summary["outages"] == len(rows)
    assert summary["run"]["faults"] == [
        {
            "kind": "headend-restart",
            "at": 10.0,
            "duration": 2.0,
            "text": "headend-restart at 10s down 2s",
        }
    ]
    page = (tmp_path / "report.html").read_text()
    assert "chart-outages" in page
    assert "client 5 (session" in page
    assert '"type": "rect"' in page or '"type":"rect"' in page  # the time down, shaded
    series = (tmp_path / "timeseries.csv").read_text().splitlines()
    header = series[0].split(",")
    down = [float(line.split(",")[header.index("sessions_down")] or 0) for line in series[1:]]
    assert max(down) == 6


# ------------------------------------------------------------------ real time
def test_the_embedded_mock_restarted_in_real_time() -> None:
    spec = LoadSpec(
        model=ClosedModel(concurrency=4, ramp_up_rate=None, hold=6.0),
        profile=QUICK_RETRY,
        faults=(parse_fault("headend-restart at 1s down 1s"),),
    )
    r = run_load(spec, watch_signals=False)
    outs = tunnel(r)
    assert len(outs) == 4, r.summary()
    assert all(o.ended_by == "new session" for o in outs)
    assert all(1.0 <= o.seconds < 4.5 for o in outs)
    assert level(r, "sessions_up", LAST) == 4


def _start_mock_process(tmp: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], str, str]:
    out = tmp / f"mock-{time.monotonic_ns()}.out"
    cmd = [sys.executable, "-m", "tunnelswarm", "mock-asa", "--port", str(port)]
    cmd += ["--state-dir", str(tmp)]
    with out.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (m := re.search(r"URL: (\S+)(?s:.*)(pin-sha256:\S+)", out.read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"mock ASA did not start:\n{out.read_text()}")
        time.sleep(0.05)
    return proc, m.group(1), m.group(2)


async def test_a_mock_asa_process_killed_and_started_again_mid_run(tmp_path: Path) -> None:
    proc, url, pin = _start_mock_process(tmp_path)
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    procs = [proc]
    try:
        spec = LoadSpec(
            model=ClosedModel(concurrency=4, ramp_up_rate=None, hold=8.0),
            profile=QUICK_RETRY,
            headend=url,
            servercert=(pin,),
            credentials=Credentials.template("test", "test"),
        )
        engine = LoadEngine(spec)

        async def operator() -> None:
            await trio.sleep(2.0)
            os.kill(proc.pid, signal.SIGKILL)  # a crash: no goodbye to anyone
            await trio.to_thread.run_sync(proc.wait)
            await trio.sleep(1.0)
            again, url2, pin2 = await trio.to_thread.run_sync(
                lambda: _start_mock_process(tmp_path, port)
            )
            procs.append(again)
            assert (url2, pin2) == (url, pin)  # same port, same certificate

        async with trio.open_nursery() as nursery:
            nursery.start_soon(operator)
            r = await engine.run()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    m = r.metrics()
    outs = tunnel(r)
    assert len(outs) == 4, r.summary()
    for o in outs:
        assert o.start == pytest.approx(2.0, abs=0.5)
        assert o.ended_by == "new session"
        assert o.seconds >= 1.0
    assert m["errors[cookie-rejected]"] == 4
    assert level(r, "sessions_up", LAST) == 4


def test_workers_coordinator_restarts_its_mock_process() -> None:
    spec = LoadSpec(
        model=ClosedModel(concurrency=6, ramp_up_rate=None, hold=8.0),
        profile=QUICK_RETRY,
        faults=(parse_fault("headend-restart at 2s down 1s"),),
    )
    lines: list[str] = []
    outages: list[Outage] = []
    coord = Coordinator(spec, 2, on_line=lines.append, on_outage=outages.append)
    r = coord.run(watch_signals=False)
    m = r.metrics()
    outs = tunnel(r)
    assert sorted(o.slot for o in outs) == list(range(6)), lines
    assert outages == r.outages
    assert all(o.ended_by == "new session" for o in outs)
    assert m["faults[headend-restart]"] == 1  # counted once, not once per worker
    assert any("killing the mock ASA's process" in line for line in lines), lines
    assert any("mock ASA up again" in line for line in lines), lines
    assert level(r, "sessions_up", LAST) == 6
