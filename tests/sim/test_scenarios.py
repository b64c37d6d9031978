"""The built-in scenarios, run for real: every one in virtual time, three in real time.

Virtual time: the mock ASA and the clients share one Trio run over the in-memory network
with a MockClock, so each ten-minute scenario takes a fraction of a second. Real time
(``--quick``): the scenario's shortened ``[realtime]`` variant over loopback sockets.
A failure prints the scenario's verdict table.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunnelswarm.scenario.catalog import SEED_MATRIX, builtin_names, find_scenario
from tunnelswarm.scenario.model import scenario_from_dict
from tunnelswarm.scenario.report import matrix_table, verdict_table
from tunnelswarm.scenario.run import RunOptions, run_scenario


def test_seed_matrix_names_are_builtin() -> None:
    assert set(SEED_MATRIX) <= set(builtin_names())


@pytest.mark.parametrize("name", SEED_MATRIX)
def test_seed_scenario_in_virtual_time(name: str) -> None:
    result = run_scenario(find_scenario(name), RunOptions(virtual_time=True))
    assert result.verdicts, "a scenario without expectations proves nothing"
    assert result.passed, verdict_table(result)
    # ten minutes of protocol time, not of the machine's
    assert result.scenario.duration == 600


def test_virtual_time_replays_identically_with_a_seed() -> None:
    sc = find_scenario("dtls-blocked")
    runs = [run_scenario(sc, RunOptions(virtual_time=True, seed=3)) for _ in range(2)]
    a, b = ([(e.t, e.source, e.text) for e in r.timeline] for r in runs)
    assert a == b
    assert runs[0].metrics.as_dict() == runs[1].metrics.as_dict()


def test_timeline_has_the_agent_lines_and_the_asa_lines() -> None:
    result = run_scenario(find_scenario("dtls-blocked"), RunOptions(virtual_time=True))
    texts = [e.text for e in result.timeline]
    assert "Reconfigure reason code 16: New MTU configuration." in texts
    assert "The entire VPN connection is being reconfigured." in texts
    assert any(t.startswith("Reconnecting to 172.16.11.1") for t in texts)
    assert any("722036" in t and "threshold 1347" in t for t in texts)
    reconnects = [e.t for e in result.timeline if e.kind == "reconnect" and e.source == "client 0"]
    # about a minute apart, as in the tech note
    gaps = [b - a for a, b in itertools.pairwise(reconnects)]
    assert gaps
    assert all(55 <= g <= 75 for g in gaps), gaps


def test_a_failing_expectation_fails_the_run() -> None:
    sc = scenario_from_dict(
        {
            "name": "wrong",
            "duration": "3m",
            "clients": {"profile": "openconnect-9"},
            "actions": [{"at": 0, "impair": {"block_udp": True}}],
            "expect": [
                {"check": "reconnects[mtu] >= 1", "why": "openconnect never does this"},
                {"check": "dtls_up_ratio == 0"},
            ],
        }
    )
    result = run_scenario(sc, RunOptions(virtual_time=True))
    assert [v.passed for v in result.verdicts] == [False, True]
    assert not result.passed
    assert "FAIL" in verdict_table(result)
    assert "FAIL (1 of 2)" in matrix_table([result])


@pytest.mark.parametrize("name", ["dtls-blocked", "dtls-port-9x-bug", "fix-mtu-below-tls"])
def test_seed_scenario_in_real_time(name: str, tmp_path: Path) -> None:
    result = run_scenario(find_scenario(name), RunOptions(quick=True, state_dir=tmp_path))
    assert not result.virtual_time
    assert result.passed, verdict_table(result)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunnelswarm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_scenarios_lists_every_builtin(tmp_path: Path) -> None:
    p = _cli("scenarios", cwd=tmp_path)
    assert p.returncode == 0
    for name in (*builtin_names(), "seed-matrix"):
        assert name in p.stdout


def test_cli_run_writes_the_report_and_exit_codes(tmp_path: Path) -> None:
    out = tmp_path / "report"
    p = _cli("run", "dtls-port-8.4", "--virtual-time", "--report", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASSED" in p.stdout
    lines = (out / "timeline.jsonl").read_text().splitlines()
    assert any(json.loads(ln)["source"] == "asa-cli" for ln in lines)
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert all(v["passed"] for v in verdicts)
    assert "%ASA-" in (out / "syslog.log").read_text()
    assert json.loads((out / "summary.json").read_text())["passed"] is True
    # a user's file that expects the wrong thing: exit 1
    mine = tmp_path / "mine.toml"
    mine.write_text(
        'name = "mine"\nduration = "2m"\n[clients]\nprofile = "openconnect-9"\n'
        '[[expect]]\ncheck = "dtls_up_ratio == 0"\nwhy = "wrong on purpose"\n'
    )
    p = _cli("run", str(mine), "--virtual-time", "-q", cwd=tmp_path)
    assert p.returncode == 1
    assert "FAIL  dtls_up_ratio == 0" in p.stdout
    # a broken file: exit 2, one line naming the problem
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[clients]\nprofile = "anyconnect-9.9"\n')
    p = _cli("run", str(bad), "--virtual-time", cwd=tmp_path)
    assert p.returncode == 2
    err = p.stderr.strip()
    assert err.startswith("tunnelswarm: error:")
    assert "anyconnect-9.9" in err
    assert "\n" not in err


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def test_scripted_python_scenario_runs_its_script() -> None:
    sc = find_scenario(str(EXAMPLES / "headend-pause.py"))
    assert sc.script is not None
    result = run_scenario(sc, RunOptions(virtual_time=True))
    assert result.passed, verdict_table(result)
    said = [e.text for e in result.timeline if e.source == "script"]
    assert "every session resumed with its address" in said
    dead = [e.t for e in result.timeline if e.kind == "reconnect" and e.source == "client 0"]
    assert dead == [75.0]  # DPD 30: requests at +30/+45/+60 s, dead at +75 s (protocol.md §7.1)


def test_a_script_that_raises_is_reported_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "boom.py"
    p.write_text(
        "from tunnelswarm.scenario.model import Scenario\n"
        "from tunnelswarm.scenario.expect import parse_check\n"
        "scenario = Scenario(name='boom', duration=20, expect=(parse_check('clients == 1'),))\n"
        "async def script(ctx):\n"
        "    await ctx.sleep_until(5)\n"
        "    raise RuntimeError('the script broke')\n"
    )
    result = run_scenario(find_scenario(str(p)), RunOptions(virtual_time=True))
    assert result.passed  # its expectations hold; the failure is in the timeline and metric
    assert result.metrics.lookup("script_failed", None) == 1
    assert any("RuntimeError: the script broke" in e.text for e in result.timeline)
