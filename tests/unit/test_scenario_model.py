"""The scenario model: TOML loading, bad input, expectations and verdicts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tunnelswarm.errors import ConfigError
from tunnelswarm.scenario.expect import Metrics, evaluate, format_number, parse_check, parse_number
from tunnelswarm.scenario.model import Scenario, load_scenario, scenario_from_dict

FULL = """
name = "dtls-blocked"
description = "UDP blocked"
duration = "10m"
seed = 7
[headend]
asa_version = "8.4(6)"
config = "sysopt connection tcpmss 1460"
[clients]
profile = "openconnect-9"
count = 3
stagger = "500ms"
[clients.overrides]
dtls_give_up = 60
[traffic]
ping = { target = "10.1.1.1", interval = "2s" }
udp = { target = "10.1.1.1", size = 1418 }
flows = { server = "10.1.1.1", bytes = 100000, every = "30s" }
[[actions]]
at = "30s"
admin = ["configure terminal", "webvpn", "dtls port 444"]
[[actions]]
at = 0
impair = { block_udp = true, path_mtu = 1400, latency = "20ms", loss = 0.01 }
[[expect]]
check = "6 <= reconnects_per_10min[mtu] <= 11"
why = "about one a minute"
[realtime]
duration = "150s"
[realtime.overrides]
dtls_give_up = 10
[[realtime.expect]]
check = "reconnects[mtu] >= 3"
"""


def test_full_file_loads(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(FULL)
    s = load_scenario(p)
    assert (s.name, s.duration, s.seed) == ("dtls-blocked", 600.0, 7)
    assert s.headend.is_mock
    assert s.headend.asa_version == "8.4(6)"
    assert s.clients.count == 3
    assert s.clients.stagger == 0.5
    assert s.traffic.ping is not None
    assert s.traffic.ping.interval == 2.0
    assert s.traffic.udp is not None
    assert s.traffic.udp.size == 1418
    assert s.traffic.flows is not None
    assert s.traffic.flows.every == 30.0
    assert [a.at for a in s.actions] == [0.0, 30.0]  # sorted by time
    assert s.actions[0].impair == {
        "block_udp": True,
        "path_mtu": 1400,
        "latency": 0.02,
        "loss": 0.01,
    }
    assert s.expect[0].ref == "reconnects_per_10min[mtu]"
    rt = s.for_real_time()
    assert rt.duration == 150.0
    assert rt.clients.overrides == {"dtls_give_up": 10}
    assert [e.text for e in rt.expect] == ["reconnects[mtu] >= 3"]


def test_real_time_without_section_is_the_same() -> None:
    s = scenario_from_dict({"name": "x"})
    assert s.for_real_time() is s


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "missing 'name'"),
        ({"name": "x", "durashun": 3}, "durashun: unknown key"),
        ({"name": "x", "duration": "soon"}, "duration: expected a duration"),
        ({"name": "x", "clients": {"count": 0}}, "clients.count: must be at least 1"),
        ({"name": "x", "clients": {"count": True}}, "clients.count: expected a whole number"),
        ({"name": "x", "headend": {"base": "asa-7"}}, "unknown base 'asa-7'"),
        ({"name": "x", "headend": {"url": "http://x/"}}, "expected https://"),
        ({"name": "x", "actions": [{"impair": {"block_udp": True}}]}, "missing 'at'"),
        ({"name": "x", "actions": [{"at": 1}]}, "needs 'impair' or 'admin'"),
        ({"name": "x", "actions": [{"at": 1, "impair": {"snow": 1}}]}, "unknown impairment"),
        ({"name": "x", "actions": [{"at": 1, "impair": {"loss": 2}}]}, "probability"),
        ({"name": "x", "actions": [{"at": 1, "impair": {"path_mtu": 40}}]}, "at least 68"),
        ({"name": "x", "actions": [{"at": 1, "impair": {"cut_tcp": 1}}]}, "true or false"),
        ({"name": "x", "expect": [{"check": "reconnects ~ 3"}]}, "expect[0]: expectation"),
        ({"name": "x", "expect": [{"why": "w"}]}, "missing 'check'"),
        (
            {"name": "x", "headend": {"url": "https://h/"}, "actions": [{"at": 1, "admin": "x"}]},
            "need the mock ASA",
        ),
    ],
)
def test_bad_input_is_one_line_error(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as ei:
        scenario_from_dict(data, "my.toml")
    msg = str(ei.value)
    assert fragment in msg
    assert "\n" not in msg
    assert msg.startswith("my.toml")


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(p)
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "none.toml")


def test_python_scenario(tmp_path: Path) -> None:
    p = tmp_path / "mine.py"
    p.write_text(
        "from tunnelswarm.scenario.model import Scenario\n"
        "scenario = Scenario(name='mine', duration=5)\n"
        "async def script(ctx):\n    pass\n"
    )
    s = load_scenario(p)
    assert isinstance(s, Scenario)
    assert s.name == "mine"
    assert s.script is not None
    assert s.source == str(p)
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        load_scenario(bad)
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="scenario = Scenario"):
        load_scenario(empty)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("99%", 0.99),
        ("1.5k", 1500.0),
        ("2M", 2e6),
        ("-3", -3.0),
        ("7", 7.0),
    ],
)
def test_numbers(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


def test_format_number() -> None:
    assert format_number(3.0) == "3"
    assert format_number(0.955) == "0.955"
    assert format_number(math.nan) == "n/a"


def test_checks_and_verdicts() -> None:
    m = Metrics()
    m.set("dtls_up_ratio", 0.0)
    m.family("reconnects_per_10min", {"mtu": 9})
    m.family("syslog", {"722036": 40})
    checks = [
        parse_check("dtls_up_ratio == 0", "UDP blocked"),
        parse_check("6 <= reconnects_per_10min[mtu] <= 11"),
        parse_check("reconnects_per_10min[dpd] == 0"),  # a key that never happened reads 0
        parse_check("reconnects_per_10min > 8"),  # a family without key: the sum
        parse_check("syslog[722036] < 10"),
        parse_check("flows_stalled == 0"),  # the run has no such metric
        parse_check("10 < reconnects_per_10min[mtu] < 20"),
    ]
    v = evaluate(checks, m)
    assert [x.passed for x in v] == [True, True, True, True, False, False, False]
    assert v[5].observed is None
    assert "no metric 'flows_stalled'" in v[5].note
    assert v[1].expectation.expected_text() == ">= 6 and <= 11"
    assert v[0].as_dict()["why"] == "UDP blocked"
    assert m.as_dict()["syslog"] == {"722036": 40.0}


def test_nan_never_holds() -> None:
    assert not parse_check("x >= 0").holds(math.nan)
