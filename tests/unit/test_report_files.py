"""``--report DIR`` (``tunnelswarm.report.files``) and the HTML page
(``tunnelswarm.report.html``): every file written, a crash after two checkpoints leaves a
parseable report, the page opens offline with the chart data and escapes the run's text."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tunnelswarm.fleet.faults import Outage
from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.fleet.thresholds import ThresholdResult, evaluate_all, parse_thresholds
from tunnelswarm.report import ReportDir, render_html
from tunnelswarm.report.files import _Throttle
from tunnelswarm.report.html import HTML_HEAD, HTML_ROWS
from tunnelswarm.scenario.run import TimelineEntry

FILES = {
    "summary.json",
    "timeseries.csv",
    "timeline.jsonl",
    "syslog.log",
    "outages.csv",
    "report.html",
}


def make_stats(seconds: int = 4) -> RunStats:
    """``seconds`` seconds of a run: setups (p50 120 ms, p99 480 ms in the last second),
    errors and reconnects by cause, sessions and DTLS up."""
    s = RunStats()
    up = [8, 18, 25, 29, 31, 33]
    dtls = [8, 16, 22, 27, 30, 33]
    for sec in range(seconds):
        s.count("sessions_started", 10, t=sec)
        s.count("setups_completed", 8, t=sec + 0.5)
        for i in range(8):
            s.record("setup_total", 0.480 if i == 7 else 0.120, t=sec + 0.1)
        s.set_gauge("sessions_up", up[sec], t=sec + 0.9)
        s.set_gauge("dtls_up", dtls[sec], t=sec + 0.9)
    if seconds > 2:
        s.count("errors", 2, key="tls", t=2.2)
        s.count("errors", 1, key="auth", t=2.4)
    if seconds > 3:
        s.count("reconnects", 3, key="dpd", t=3.1)
    return s


def thresholds_for(stats: RunStats, *texts: str) -> list[ThresholdResult]:
    return evaluate_all(parse_thresholds(texts), stats.metrics())


def strict_json(text: str) -> object:
    def no_constants(name: str) -> object:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=no_constants)


def plot_data(page: str, div_id: str) -> list[dict[str, object]]:
    """The traces handed to ``Plotly.newPlot`` for ``div_id``."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', page)
    assert m is not None, f"no chart {div_id}"
    data, _end = json.JSONDecoder().raw_decode(page, m.end())
    assert isinstance(data, list)
    return data


def trace(page: str, div_id: str, name: str) -> dict[str, object]:
    for t in plot_data(page, div_id):
        if t["name"] == name:
            return t
    raise AssertionError(f"no trace {name!r} in {div_id}")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------- ReportDir
def test_report_dir_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "a" / "report"
    stats = make_stats()
    report = ReportDir(out)
    assert {p.name for p in out.iterdir()} == {
        "summary.json",
        "timeline.jsonl",
        "syslog.log",
        "outages.csv",
    }
    assert strict_json((out / "summary.json").read_text())["state"] == "running"  # type: ignore[index]
    report.event(TimelineEntry(0.25, "client 1", "connect", "connect"))
    report.event(TimelineEntry(2.2, "client 7", "error (tls)", "error"))
    report.syslog("%ASA-4-722036: Group <g> User <u> IP <1.2.3.4> Transmitting large packet\n")
    report.checkpoint(stats, {"name": "smoke"})
    results = thresholds_for(stats, "errors==3", "setup_p99<1s")
    report.finish(stats, results, {"name": "smoke", "seed": 7}, interrupted=False)
    assert {p.name for p in out.iterdir()} == FILES

    summary = strict_json((out / "summary.json").read_text())
    assert isinstance(summary, dict)
    assert summary["format"] == "tunnelswarm-load-report"
    assert summary["state"] == "completed"
    assert summary["passed"] is True
    assert summary["run"] == {"name": "smoke", "seed": 7}
    assert summary["seconds"] == 4
    assert summary["events"] == 2
    assert [t["passed"] for t in summary["thresholds"]] == [True, True]
    metrics = summary["stats"]["metrics"]
    assert metrics["setups_completed"] == 32
    assert metrics["errors[tls]"] == 2
    assert metrics["ping_loss"] is None  # NaN is written as null

    rows = list(csv.DictReader(io.StringIO((out / "timeseries.csv").read_text())))
    assert [r["second"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["sessions_up"] for r in rows] == ["8.0", "18.0", "25.0", "29.0"]
    assert rows[3]["reconnects[dpd]"] == "3"

    timeline = [strict_json(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    assert timeline == [
        {"t": 0.25, "source": "client 1", "kind": "connect", "text": "connect"},
        {"t": 2.2, "source": "client 7", "kind": "error", "text": "error (tls)"},
    ]
    assert (out / "syslog.log").read_text() == (
        "%ASA-4-722036: Group <g> User <u> IP <1.2.3.4> Transmitting large packet\n"
    )
    page = (out / "report.html").read_text()
    assert "completed" in page
    assert "smoke" in page
    assert not list(out.glob(".*.tmp"))


def test_finish_interrupted_or_failed_does_not_pass(tmp_path: Path) -> None:
    stats = make_stats()
    a = ReportDir(tmp_path / "a")
    a.finish(stats, thresholds_for(stats, "errors==0"), {}, interrupted=False)
    doc = strict_json((tmp_path / "a" / "summary.json").read_text())
    assert isinstance(doc, dict)
    assert (doc["state"], doc["passed"]) == ("completed", False)
    assert doc["thresholds"][0]["observed"] == 3
    page = (tmp_path / "a" / "report.html").read_text()
    assert "FAILED" in page
    assert "errors == 0" in page

    b = ReportDir(tmp_path / "b")
    b.finish(stats, thresholds_for(stats, "errors==3"), {}, interrupted=True)
    doc = strict_json((tmp_path / "b" / "summary.json").read_text())
    assert isinstance(doc, dict)
    assert (doc["state"], doc["passed"]) == ("interrupted", False)


def test_after_finish_nothing_changes(tmp_path: Path) -> None:
    report = ReportDir(tmp_path)
    report.event(TimelineEntry(0.1, "client 1", "connect"))
    report.finish(make_stats(), [], {}, interrupted=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    report.event(TimelineEntry(9.0, "client 2", "late"))
    report.syslog("late line")
    report.checkpoint(make_stats(6), {"name": "later"})
    report.finish(make_stats(6), [], {}, interrupted=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_stale_files_of_an_earlier_run_go(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("<html>old run</html>")
    (tmp_path / "timeseries.csv").write_text("second\n0\n1\n")
    (tmp_path / "timeline.jsonl").write_text('{"old": 1}\n')
    report = ReportDir(tmp_path)
    assert not (tmp_path / "report.html").exists()
    assert not (tmp_path / "timeseries.csv").exists()
    assert (tmp_path / "timeline.jsonl").read_text() == ""
    report.close()


def test_checkpoints_space_out_the_page(tmp_path: Path) -> None:
    clock = FakeClock()
    report = ReportDir(tmp_path, html_every=10.0, csv_every=1.0, clock=clock)
    report.checkpoint(make_stats(2), {})
    page1 = (tmp_path / "report.html").read_text()
    clock.now = 1.0
    report.checkpoint(make_stats(3), {})
    # the page waits for html_every; the CSV and the summary do not
    assert (tmp_path / "report.html").read_text() == page1
    assert len((tmp_path / "timeseries.csv").read_text().splitlines()) == 1 + 3
    assert strict_json((tmp_path / "summary.json").read_text())["seconds"] == 3  # type: ignore[index]
    clock.now = 10.5
    report.checkpoint(make_stats(4), {})
    page3 = (tmp_path / "report.html").read_text()
    assert page3 != page1
    assert trace(page3, "chart-sessions", "sessions up")["x"] == [0, 1, 2, 3]
    report.close()


def test_throttle_keeps_to_its_budget() -> None:
    t = _Throttle(every=1.0, budget=0.02)
    assert t.due(0.0)
    t.done(0.0, 0.01)  # cheap: every second
    assert not t.due(0.9)
    assert t.due(1.01)
    t.done(2.0, 2.5)  # 0.5 s of work: 25 s apart at 2 %
    assert not t.due(20.0)
    assert t.due(27.5)


CRASH = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from test_report_files import make_stats
    from tunnelswarm.report import ReportDir
    from tunnelswarm.scenario.run import TimelineEntry

    clock = [0.0]
    report = ReportDir({out!r}, clock=lambda: clock[0])
    report.event(TimelineEntry(0.5, "client 1", "connect", "connect"))
    report.syslog("%ASA-6-722022: TCP SVC connection established")
    report.checkpoint(make_stats(2), {{"name": "crash"}})
    clock[0] = 1.0
    report.event(TimelineEntry(2.2, "client 7", "error (tls)", "error"))
    report.checkpoint(make_stats(4), {{"name": "crash"}})
    report.event(TimelineEntry(4.5, "client 9", "reconnect (dpd)", "reconnect"))
    os._exit(3)  # dies without finish, close or any flush at exit
    """
)


def test_a_crash_after_two_checkpoints_leaves_a_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    script = CRASH.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert {p.name for p in out.iterdir()} == FILES

    summary = strict_json((out / "summary.json").read_text())
    assert isinstance(summary, dict)
    assert summary["state"] == "running"
    assert summary["passed"] is None
    assert summary["seconds"] == 4  # the second checkpoint's
    assert summary["stats"]["metrics"]["sessions_started"] == 40

    rows = list(csv.DictReader(io.StringIO((out / "timeseries.csv").read_text())))
    assert len(rows) == 4  # the CSV was due again at the second checkpoint
    assert rows[2]["errors[tls]"] == "2"

    timeline = [strict_json(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    assert [e["text"] for e in timeline] == ["connect", "error (tls)", "reconnect (dpd)"]  # type: ignore[index]
    assert (out / "syslog.log").read_text() == "%ASA-6-722022: TCP SVC connection established\n"

    page = (out / "report.html").read_text()  # the first checkpoint's
    assert page.rstrip().endswith("</html>")
    assert "running" in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert '<script src="http' not in page
    assert trace(page, "chart-sessions", "sessions up")["y"] == [8.0, 18.0]
    assert trace(page, "chart-sessions", "DTLS up")["y"] == [8.0, 16.0]
    assert "function(root, factory)" in page  # plotly.js itself is inlined
    assert not list(out.glob(".*.tmp"))


# ---------------------------------------------------------------------- the page
def test_page_has_the_chart_data() -> None:
    stats = make_stats()
    events = [
        TimelineEntry(2.2, "client 7", "error (tls)", "error"),
        TimelineEntry(3.1, "client 2", "reconnect (dpd)", "reconnect"),
        TimelineEntry(3.2, "client 3", "reconnect (dpd)", "reconnect"),
    ]
    page = render_html(stats, events, [], thresholds_for(stats, "setup_p99<100ms"), {})
    assert trace(page, "chart-sessions", "sessions up")["y"] == [8, 18, 25, 29]
    assert trace(page, "chart-rate", "setups completed/s")["y"] == [8, 8, 8, 8]
    assert trace(page, "chart-rate", "sessions started/s")["y"] == [10, 10, 10, 10]
    p50 = trace(page, "chart-latency", "p50")["y"]
    p99 = trace(page, "chart-latency", "p99")["y"]
    assert isinstance(p50, list)
    assert isinstance(p99, list)
    assert p50 == pytest.approx([120] * 4, rel=1e-2)  # ms
    assert p99 == pytest.approx([480] * 4, rel=1e-2)
    assert trace(page, "chart-errors", "error: tls")["y"] == [0, 0, 2, 0]
    assert trace(page, "chart-errors", "error: auth")["y"] == [0, 0, 1, 0]
    assert trace(page, "chart-errors", "reconnect: dpd")["y"] == [0, 0, 0, 3]
    assert trace(page, "chart-events", "reconnect")["x"] == [3.1, 3.2]
    assert trace(page, "chart-events", "error")["text"] == ["client 7: error (tls)"]
    assert "FAILED" in page
    assert "no syslog" in page


def test_page_escapes_the_runs_text() -> None:
    stats = make_stats()
    evil = '<script>alert("x")</script>'
    page = render_html(
        stats,
        [TimelineEntry(1.0, "client <1>", f"error {evil}", "error")],
        [f"%ASA-6-113005: AAA user authentication Rejected : user = {evil}"],
        [],
        {"name": f"run {evil}", "target": evil},
    )
    assert "alert(" in page
    assert '<script>alert("x")' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "client &lt;1&gt;" in page
    # the only script elements are plotly.js, its config and one per chart
    charts = re.findall(r"<div id=\"(chart-[a-z]+)\"", page)
    assert charts == [
        "chart-sessions",
        "chart-rate",
        "chart-latency",
        "chart-errors",
        "chart-events",
    ]
    assert len(re.findall(r"<script\b", page)) == 2 + len(charts)
    # the event's text inside the chart data cannot close its script element
    assert "error \\u003cscript\\u003e" in page


def test_page_caps_the_syslog_and_the_timeline() -> None:
    n = HTML_ROWS + 2000
    syslog = [f"line {i:05d}" for i in range(n)]
    events = [TimelineEntry(i / 10, f"client {i}", f"event {i:05d}", "connect") for i in range(n)]
    page = render_html(RunStats(), events, syslog, [], {})
    assert "line 00000" in page
    assert f"line {HTML_HEAD - 1:05d}" in page
    assert f"line {HTML_HEAD:05d}" not in page  # in the cut
    assert f"line {n - 1:05d}" in page
    assert "2,000 lines left out here; syslog.log has them all" in page
    assert "2,000 events left out here; timeline.jsonl has them all" in page
    assert f"event {HTML_HEAD + 5:05d}" not in page
    assert f"event {n - 1:05d}" in page


def test_report_dir_keeps_what_the_page_shows(tmp_path: Path) -> None:
    report = ReportDir(tmp_path)
    n = HTML_ROWS + 500
    for i in range(n):
        report.syslog(f"line {i:05d}")
    report.finish(make_stats(), [], {}, interrupted=False)
    assert len((tmp_path / "syslog.log").read_text().splitlines()) == n
    page = (tmp_path / "report.html").read_text()
    assert "500 lines left out here" in page
    assert f"line {HTML_HEAD - 1:05d}\nline" not in page  # the note sits in the cut
    assert f"line {HTML_HEAD + 499:05d}" not in page
    assert f"line {HTML_HEAD + 500:05d}" in page
    assert f"line {n - 1:05d}" in page
    summary = strict_json((tmp_path / "summary.json").read_text())
    assert isinstance(summary, dict)
    assert summary["syslog_lines"] == n


def test_page_size_is_plotly_js_plus_the_data() -> None:
    page = render_html(make_stats(), [], [], [], {})
    size = len(page.encode())
    assert 4_000_000 < size < 6_000_000, size


@pytest.mark.skipif(os.name != "posix", reason="atomic rename semantics")
def test_replace_leaves_no_partial_file(tmp_path: Path) -> None:
    from tunnelswarm.report.files import _replace

    target = tmp_path / "summary.json"
    target.write_text("old")
    _replace(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_outages_are_appended_as_they_end_and_drawn_per_client(tmp_path: Path) -> None:
    stats = make_stats()
    stats.record("outage", 2.5, t=3)
    report = ReportDir(tmp_path)
    tunnel = Outage(4, 104, 1.0, 3.5, "transport", "reconnect", "reset <by> peer")
    dtls = Outage(4, 104, 1.0, 9.0, "dtls-down", "dtls up", "", "dtls")
    report.outage(tunnel)
    # appended and flushed at once: a crash now still leaves the row
    with (tmp_path / "outages.csv").open() as f:
        assert list(csv.DictReader(f)) == [
            {
                "slot": "4",
                "client": "104",
                "channel": "tunnel",
                "start": "1.000",
                "end": "3.500",
                "seconds": "2.500",
                "cause": "transport",
                "ended_by": "reconnect",
                "detail": "reset <by> peer",
            }
        ]
    report.outage(dtls)
    report.finish(stats, [], {"faults": [{"kind": "tcp-cut", "at": 1.0, "duration": 0.0}]})
    assert len((tmp_path / "outages.csv").read_text().splitlines()) == 3
    summary = strict_json((tmp_path / "summary.json").read_text())
    assert isinstance(summary, dict)
    assert summary["outages"] == 2
    page = (tmp_path / "report.html").read_text()
    bars = trace(page, "chart-outages", "reconnect")
    assert bars["base"] == [1.0]
    assert bars["x"] == [2.5]
    assert bars["y"] == ["client 4"]
    assert "reset &lt;by&gt; peer" in page or "reset \\u003cby\\u003e peer" in page
    assert trace(page, "chart-outages", "DTLS down (data over CSTP)")["x"] == [8.0]
    assert "tunnel: recovered in, p50" in page
    # the fault is marked on the time charts
    assert '"x0": 1.0' in page or '"x0":1.0' in page
    report.outage(tunnel)  # after finish: nothing
    assert len((tmp_path / "outages.csv").read_text().splitlines()) == 3


def test_a_page_without_outages_says_so(tmp_path: Path) -> None:
    page = render_html(make_stats(), [], [], [], {})
    assert "no client lost its tunnel or its DTLS channel" in page
    assert "chart-outages" not in page
