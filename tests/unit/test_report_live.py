"""The live view of a load run (``tunnelswarm.report.live``): the console line and panel
show the numbers of the stats, JSON lines parse and carry the newest complete second."""

from __future__ import annotations

import io
import json
import math
import random
import re

import pytest

from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.report import JsonLinesSink, LiveConsole, second_row


def make_stats() -> RunStats:
    """Four seconds of a run: 30 setups (p50 120 ms, p99 480 ms), errors and reconnects
    by cause, late and missed starts, sessions and DTLS up."""
    s = RunStats()
    completed = [8, 10, 7, 5]
    up = [8, 18, 25, 29]
    dtls = [8, 16, 22, 27]
    n = 0
    for sec in range(4):
        s.count("sessions_started", 10, t=sec)
        s.count("setups_completed", completed[sec], t=sec + 0.5)
        for _ in range(completed[sec]):
            n += 1
            s.record("setup_total", 0.480 if n == 30 else 0.120, t=sec + 0.1)
        s.set_gauge("sessions_up", up[sec], t=sec + 0.9)
        s.set_gauge("dtls_up", dtls[sec], t=sec + 0.9)
    s.count("errors", 2, key="tls", t=2.2)
    s.count("errors", 1, key="auth", t=2.4)
    s.count("reconnects", 3, key="dpd", t=3.1)
    s.count("reconnects", 1, key="mtu", t=3.3)
    s.count("late_starts", 4, t=1.0)
    s.count("missed_starts", 1, t=1.0)
    return s


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_console_line_shows_the_numbers() -> None:
    out = io.StringIO()
    console = LiveConsole("open model, 10/s", 40, 10.0, stream=out)
    assert not console.terminal
    console.update(make_stats(), 4.25)
    console.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("[   4s/10s 42%] started 40/40  up 29  dtls 93.1%")
    assert "setups 5/s (avg 7.1/s)" in line  # second 3 completed 5; 30 / 4.25 s
    assert "setup p50 120ms p99 480ms" in line
    assert "reconnects 4 (dpd 3, mtu 1)" in line
    assert "errors 3 (tls 2, auth 1)" in line
    assert line.endswith("late 4 missed 1")


def test_console_line_per_update_and_nothing_after_close() -> None:
    out = io.StringIO()
    console = LiveConsole("plan", None, None, stream=out)
    stats = RunStats()
    console.update(stats, 0.2)
    stats.count("sessions_started", 3, t=0.5)
    console.update(stats, 1.1)
    console.close()
    console.update(stats, 2.1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    # nothing measured yet: dashes, not zeros or NaN
    assert lines[0] == (
        "[   0s] started 0  up 0  dtls -  setups -/s (avg 0.0/s)  setup p50 - p99 -"
        "  reconnects 0  errors 0  late 0"
    )
    assert "started 3 " in lines[1]
    assert "nan" not in out.getvalue().lower()


def test_console_disabled_prints_nothing() -> None:
    out = Tty()
    console = LiveConsole("plan", 40, 10.0, stream=out, enabled=False)
    console.update(make_stats(), 4.2)
    console.close()
    assert out.getvalue() == ""


def test_console_panel_on_a_terminal() -> None:
    out = Tty()
    with LiveConsole("closed model: 40 sessions", 40, 10.0, stream=out) as console:
        assert console.terminal
        console.update(make_stats(), 4.25)
        console.update(make_stats(), 5.25)
    text = strip_ansi(out.getvalue())
    assert "closed model: 40 sessions" in text
    assert "40 of 40 planned" in text
    assert "29 (peak 29)" in text
    assert "p50 120ms  p90 120ms  p99 480ms" in text
    assert "93.1% now (27 of 29)" in text
    assert "4 (dpd 3, mtu 1)" in text
    assert "3 (tls 2, auth 1)" in text
    assert "4 late, 1 missed" in text
    assert "5s/10s" in text
    console.close()  # idempotent


def _strict_loads(line: str) -> dict[str, object]:
    def no_constants(name: str) -> object:
        raise ValueError(f"not strict JSON: {name}")

    doc = json.loads(line, parse_constant=no_constants)
    assert isinstance(doc, dict)
    return doc


def test_json_lines_parse_and_carry_the_newest_complete_second() -> None:
    stats = make_stats()
    out = io.StringIO()
    sink = JsonLinesSink(out)
    sink.update(RunStats(), 0.4)
    sink.update(stats, 4.25)
    sink.close()
    first, second = (_strict_loads(line) for line in out.getvalue().splitlines())
    assert first["type"] == "progress"
    assert first["second"] is None
    assert first["bucket"] is None
    totals0 = first["totals"]
    assert isinstance(totals0, dict)
    assert totals0["setup_p50"] is None  # no samples: null, not NaN
    assert totals0["dtls_ratio"] is None

    assert second["t"] == 4.25
    assert second["second"] == 3
    bucket = second["bucket"]
    assert isinstance(bucket, dict)
    assert bucket["setups_completed"] == 5
    assert bucket["reconnects"] == 4
    assert bucket["reconnects[dpd]"] == 3
    assert bucket["sessions_up"] == 29
    totals = second["totals"]
    assert isinstance(totals, dict)
    assert totals["sessions_started"] == 40
    assert totals["setups_completed"] == 30
    assert totals["sessions_up"] == 29
    assert totals["errors"] == 3
    assert totals["errors_by_cause"] == {"auth": 1, "tls": 2}
    assert totals["reconnects_by_cause"] == {"dpd": 3, "mtu": 1}
    assert totals["late_starts"] == 4
    assert totals["missed_starts"] == 1
    assert totals["dtls_ratio_now"] == pytest.approx(27 / 29)
    assert totals["setup_p50"] == pytest.approx(0.120, rel=1e-2)
    assert totals["setup_p99"] == pytest.approx(0.480, rel=1e-2)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_second_row_is_the_timeseries_row(seed: int) -> None:
    rng = random.Random(seed)
    stats = make_stats()
    for _ in range(200):
        t = rng.uniform(0, 20)
        roll = rng.random()
        if roll < 0.3:
            stats.record("setup_total", rng.lognormvariate(-2, 1), t=t)
        elif roll < 0.5:
            stats.count("errors", key=rng.choice(["tls", "dns", "auth"]), t=t)
        elif roll < 0.6 and t < 12:  # seconds 12.. carry the gauges forward
            stats.set_gauge(rng.choice(["sessions_up", "dtls_up"]), rng.randrange(50), t=t)
        else:
            stats.count("setups_completed", t=t)
    rows = stats.timeseries_rows()
    assert len(rows) > 12
    for s, row in enumerate(rows):
        mine = second_row(stats, s)
        assert set(mine) <= set(row)
        for k, v in mine.items():
            assert _same(v, row[k]), (s, k, v, row[k])
        # the columns it leaves out are counters that did not count in that second
        assert all(row[k] == 0 for k in set(row) - set(mine))


def _outage_stats() -> RunStats:
    stats = make_stats()
    stats.count("outages", 3, key="transport", t=2.0)
    stats.count("outages", 1, key="dpd", t=2.0)
    stats.count("outages_recovered", 2, t=3.0)
    stats.record("outage", 1.5, t=3.0)
    stats.record("outage", 4.0, t=3.0)
    stats.set_gauge("sessions_down", 2, t=3)
    return stats


def test_console_shows_clients_down_and_outages() -> None:
    out = io.StringIO()
    console = LiveConsole("plan", 40, 10.0, stream=out)
    console.update(_outage_stats(), 4.25)
    line = out.getvalue()
    assert "down 2  outages 4 (transport 3, dpd 1) recovered 2 (p50 1.50s p99 4.00s)" in line
    # no outages: the line stays as it was
    out2 = io.StringIO()
    LiveConsole("plan", 40, 10.0, stream=out2).update(make_stats(), 4.25)
    assert "outages" not in out2.getvalue()


def test_console_panel_names_the_clients_down_longest() -> None:
    out = Tty()
    down = [(7, 107, 1.0, "transport"), (2, 102, 2.5, "dpd")]
    with LiveConsole("plan", 40, 10.0, stream=out, down_clients=lambda: down) as console:
        console.update(_outage_stats(), 4.25)
    text = strip_ansi(out.getvalue())
    assert "2 now (peak 2)" in text
    assert "client 7 3.2s (transport), client 2 1.8s (dpd)" in text
    assert "4 (transport 3, dpd 1); 2 recovered (p50 1.50s, p99 4.00s)" in text


def test_json_lines_carry_the_outages() -> None:
    totals = JsonLinesSink.totals(_outage_stats(), 4.25)
    assert totals["sessions_down"] == 2
    assert totals["outages"] == 4
    assert totals["outages_by_cause"] == {"dpd": 1, "transport": 3}
    assert totals["outages_recovered"] == 2
    assert totals["outage_p99"] == pytest.approx(4.0, rel=0.01)
