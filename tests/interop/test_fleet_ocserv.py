"""``tunnelswarm run`` against a real ocserv 1.1.6: 500 sessions, report and thresholds.

The "done when" of the load engine: ``tunnelswarm run --headend https://IP:PORT -n 500``
brings 500 sessions up on ocserv (DTLS included) from one source address, writes the
whole ``--report`` directory and exits with the code its thresholds decide.

ocserv needs these settings for 500 sessions from one address (``_CONFIG``):

* ``max-clients`` above 500 (the fixture's default is 64);
* ``max-same-clients = 0``: every session logs in as the same user;
* ``rate-limit-ms = 0``: ocserv's main process otherwise spaces out new connections
  from one address (a 50/s ramp-up at the default 100 ms is refused);
* ``max-ban-score = 0``: no ban scoring, so a hiccup cannot ban our one address;
* ``ipv4-network`` a /22 (1021 leases): the default /24 has only 253;
* ``udp-port`` (DTLS) on, so ``dtls_ratio`` means something.

With these ocserv 1.1.6 takes the 50/s ramp-up on a 2-core machine (client and server
sharing it) with setup p99 around 30 ms and no refusals. Faster ramp-ups are not refused
either, they queue: at 100/s and 250/s all 500 came up, but ocserv (TLS handshakes in its
workers, logins through sec-mod) saturated at ~70-100 setups/s and setup p99 grew to
1.3-2.5 s, too close to a loaded CI machine's limits for a test.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from tunnelswarm.fleet.thresholds import EXIT_OK, EXIT_THRESHOLD_FAILED
from tunnelswarm.testing.ocserv import (
    OcservConfig,
    OcservInstance,
    PeerUnavailable,
    start_ocserv,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import NoReturn

pytestmark = pytest.mark.interop

SESSIONS = 500
#: cookie refusals by ocserv a run of SESSIONS may see (see the 500-session test)
REFUSALS = 2
RATE = "50/s"
RUN_TIMEOUT = 120.0  # the 500-session run takes ~25 s

_CONFIG = OcservConfig(
    port=4470,
    udp=True,
    pool="192.168.96.0/22",
    max_clients=SESSIONS + 100,
    extra={
        "max-same-clients": "0",
        "rate-limit-ms": "0",
        "max-ban-score": "0",
    },
)

_REPORT_FILES = ("summary.json", "timeseries.csv", "timeline.jsonl", "report.html")


@pytest.fixture(scope="module")
def fleet_ocserv(
    tmp_path_factory: pytest.TempPathFactory,
    peer_unavailable: Callable[[str], NoReturn],
) -> Iterator[OcservInstance]:
    """One ocserv sized for 500 sessions, shared by this module's runs."""
    workdir = tmp_path_factory.mktemp("ocserv-fleet")
    try:
        inst = start_ocserv(workdir, _CONFIG)
    except PeerUnavailable as exc:
        peer_unavailable(str(exc))
    try:
        yield inst
    finally:
        try:
            inst.stop()
        finally:
            if os.environ.get("TUNNELSWARM_KEEP_PEER_DIRS", "") != "1":
                shutil.rmtree(workdir, ignore_errors=True)


def _argv(server: OcservInstance, report: Path, n: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tunnelswarm", "run",
        "-n", str(n), "--rate", RATE,
        "--headend", server.url, "--servercert", server.pin,
        "--user", server.user, "--password", server.password,
        "--report", str(report), "-q", *extra,
    ]  # fmt: skip


def _connected(server: OcservInstance) -> int:
    return sum(1 for u in server.show_users() if u.get("State") == "connected")


def _run_watching(server: OcservInstance, argv: list[str], log: Path) -> tuple[int, int, str]:
    """Run the CLI; meanwhile count ocserv's connected users. (exit code, peak, output)."""
    peak = 0
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"tunnelswarm run still running after {RUN_TIMEOUT} s")
                peak = max(peak, _connected(server))
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return proc.returncode, peak, log.read_text(errors="replace")


def _explain(output: str, report: Path, server: OcservInstance) -> str:
    """The CLI's output, the summary's errors and ocserv's log tail, for a failure message."""
    parts = [output[-4000:]]
    try:
        summary = json.loads((report / "summary.json").read_text())
        counters = summary["stats"].get("counters", {})
        parts.append(f"errors: {json.dumps(summary['run'].get('error_examples'))}")
        parts.append(f"counters: {json.dumps(counters)[:2000]}")
    except (OSError, ValueError, KeyError) as exc:
        parts.append(f"(no summary: {exc})")
    errors = [e for e in _timeline(report) if e["kind"] in ("error", "reconnect")]
    parts.append("timeline errors: " + json.dumps(errors[:10]))
    parts.append("ocserv log:\n" + server.log_tail(60))
    return "\n".join(parts)


def _wait_nobody(server: OcservInstance, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    users = server.show_users()
    while users and time.monotonic() < deadline:
        time.sleep(0.2)
        users = server.show_users()
    return users


def _check_report_dir(report: Path) -> tuple[dict[str, Any], str]:
    """The files of ``--report``, each well-formed; returns (summary, report.html)."""
    for name in _REPORT_FILES:
        assert (report / name).is_file(), f"{name} missing in {sorted(report.iterdir())}"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["format"] == "tunnelswarm-load-report"
    assert summary["state"] == "completed"
    csv = (report / "timeseries.csv").read_text().splitlines()
    assert csv[0].startswith("second,")
    assert len(csv) > 2
    timeline = [json.loads(line) for line in (report / "timeline.jsonl").read_text().splitlines()]
    assert timeline
    page = (report / "report.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    # self-contained: nothing fetched from the network when the page opens
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*['\"]?(https?:)?//", page, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*['\"]?(https?:)?//", page, re.I)
    assert "plotly" in page.lower()
    return summary, page


def test_500_sessions_report_and_thresholds(fleet_ocserv: OcservInstance, tmp_path: Path) -> None:
    server = fleet_ocserv
    report = tmp_path / "report"
    argv = _argv(
        server, report, SESSIONS,
        "--hold", "10s",
        "--threshold", f"errors<={REFUSALS}", "--threshold", "dtls_ratio>0.9",
    )  # fmt: skip
    code, peak, output = _run_watching(server, argv, tmp_path / "run.log")
    assert code == EXIT_OK, _explain(output, report, server)
    assert peak == SESSIONS, f"ocserv showed at most {peak} connected users"

    summary, page = _check_report_dir(report)
    assert summary["passed"] is True
    metrics = summary["stats"]["metrics"]
    # ocserv 1.1.6 now and then answers a fresh cookie's CONNECT with "401 Cookie is not
    # acceptable" (about once in a few thousand set-ups here; seen before and after the
    # client's direct sockets): the slot counts the error and logs in again
    refused = metrics.get("errors[cookie-rejected]", 0)
    assert metrics["errors"] == refused <= REFUSALS, _explain(output, report, server)
    assert metrics["sessions_started"] == SESSIONS + refused
    assert metrics["setups_completed"] == SESSIONS
    assert metrics["setup_count"] == SESSIONS
    assert metrics["sessions_up"] == SESSIONS
    assert metrics["dtls_ratio"] > 0.9
    assert [(t["threshold"], t["passed"]) for t in summary["thresholds"]] == [
        (f"errors<={REFUSALS}", True),
        ("dtls_ratio>0.9", True),
    ]
    ups = sum(1 for e in _timeline(report) if e["kind"] == "connect")
    assert ups == SESSIONS
    for cond in (f"errors <= {REFUSALS}", "dtls_ratio > 0.9"):
        row = re.escape(html.escape(cond))
        assert re.search(rf"<tr>(?:(?!</tr>).)*{row}(?:(?!</tr>).)*>ok<", page, re.S), cond
    assert "2 of 2 threshold(s) held" in page

    assert _wait_nobody(server) == [], "ocserv still lists users after the run"


def test_failed_threshold_exits_1_and_is_reported(
    fleet_ocserv: OcservInstance, tmp_path: Path
) -> None:
    server = fleet_ocserv
    report = tmp_path / "report"
    argv = _argv(
        server, report, 50,
        "--hold", "2s",
        "--threshold", "errors==0", "--threshold", "setup_p99<0.001ms",
    )  # fmt: skip
    code, peak, output = _run_watching(server, argv, tmp_path / "run.log")
    assert code == EXIT_THRESHOLD_FAILED, _explain(output, report, server)
    assert "setup_p99" in output
    assert 0 < peak <= 50

    summary, page = _check_report_dir(report)
    assert summary["passed"] is False
    assert summary["stats"]["metrics"]["setups_completed"] == 50
    results = {t["threshold"]: t for t in summary["thresholds"]}
    assert results["errors==0"]["passed"] is True
    failed = results["setup_p99<0.001ms"]
    assert failed["passed"] is False
    assert failed["observed"] > 1e-6
    assert "1 of 2 threshold(s) held" in page
    row = re.escape(html.escape("setup_p99 < 0.001ms"))
    assert re.search(rf"<tr>(?:(?!</tr>).)*{row}(?:(?!</tr>).)*FAILED", page, re.S), (
        "no FAILED row for setup_p99 < 0.001ms in report.html"
    )

    assert _wait_nobody(server) == [], "ocserv still lists users after the run"


def _timeline(report: Path) -> Iterator[dict[str, Any]]:
    if not (report / "timeline.jsonl").exists():
        return
    with open(report / "timeline.jsonl") as f:
        for line in f:
            yield json.loads(line)
