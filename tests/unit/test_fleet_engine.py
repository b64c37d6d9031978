"""The load engine's pure parts (``tunnelswarm.fleet.engine``) and the load form of
``tunnelswarm run`` (``tunnelswarm.fleet.cli``): phase latencies, error causes, the
embedded mock's configuration, the per-second rows, flags → spec, the summary."""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import pytest

from tunnelswarm.asa.config import parse_config
from tunnelswarm.cli import build_parser
from tunnelswarm.errors import (
    AuthError,
    ConfigError,
    ConnectionLost,
    TlsError,
    TunnelswarmError,
)
from tunnelswarm.fleet.cli import (
    LOAD_FLAGS,
    build_spec,
    format_summary,
    local_addresses,
    run_command,
)
from tunnelswarm.fleet.engine import (
    ENGINE_COUNTERS,
    LOAD_OVERLAY,
    PHASES,
    LoadResult,
    LoadSpec,
    bucket_row,
    error_cause,
    load_mock_config,
    os_reason,
    phase_samples,
)
from tunnelswarm.fleet.plan import ClosedModel, Credentials, OpenModel, SourcePool
from tunnelswarm.fleet.stats import RunStats


# ------------------------------------------------------------------ phase latencies
def feed(scheduled: float, boundaries: list[tuple[str, float]]) -> dict[str, float]:
    """Feed phase boundaries one by one as the engine does; the recorded samples."""
    seen: dict[str, float] = {}
    out: dict[str, float] = {}
    for name, t in boundaries:
        for histogram, seconds in phase_samples(scheduled, seen, name, t):
            assert histogram not in out
            out[histogram] = seconds
        seen[name] = t
    return out


def test_each_phase_counts_from_the_one_before_and_the_first_from_the_schedule() -> None:
    got = feed(
        10.0,
        [("tcp", 10.5), ("tls", 10.75), ("auth", 11.0), ("connect", 11.5), ("dtls", 12.0)],
    )
    assert got == pytest.approx(
        {
            "setup_tcp": 0.5,  # includes the engine's lateness: no coordinated omission
            "setup_tls": 0.25,
            "setup_auth": 0.25,
            "setup_connect": 0.5,
            "setup_total": 1.5,  # scheduled start to CONNECT answered
            "setup_dtls": 0.5,  # from CONNECT
        }
    )
    assert sum(got[f"setup_{p}"] for p in PHASES[:-1]) == pytest.approx(got["setup_total"])


def test_a_skipped_phase_folds_into_the_next_one() -> None:
    # a session with a cookie skips auth: CONNECT counts from the TLS handshake
    got = feed(0.0, [("tcp", 0.1), ("tls", 0.2), ("connect", 0.5)])
    assert got == pytest.approx(
        {"setup_tcp": 0.1, "setup_tls": 0.1, "setup_connect": 0.3, "setup_total": 0.5}
    )
    assert "setup_auth" not in got
    assert "setup_dtls" not in got


def test_dtls_without_connect_and_unknown_phases_record_nothing() -> None:
    assert phase_samples(0.0, {}, "dtls", 1.0) == []
    assert phase_samples(0.0, {}, "rekey", 1.0) == []


def test_a_boundary_before_the_schedule_is_never_negative() -> None:
    assert phase_samples(5.0, {}, "tcp", 4.999) == [("setup_tcp", 0.0)]


# ------------------------------------------------------------------ error causes
def test_error_cause_is_the_typed_cause_with_a_one_line_reason() -> None:
    assert error_cause(AuthError("login failed:\n  Login failed.")) == (
        "auth-failed",
        "login failed: Login failed.",
    )
    assert error_cause(TlsError("bad record mac"))[0] == "tls"
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [ConnectionLost("reset")])])
    assert error_cause(nested) == ("connection-lost", "reset")


def test_anything_that_is_not_a_tunnelswarm_error_is_internal() -> None:
    assert error_cause(KeyError("x")) == ("internal", "KeyError: 'x'")


def test_os_reason_names_the_first_connect_attempt() -> None:
    inner = ConnectionRefusedError(111, "Connection refused")
    outer = OSError("all attempts to connect to 127.0.0.1:1 failed")
    outer.__cause__ = ExceptionGroup("attempts", [inner])
    assert os_reason(outer) == "Connection refused"
    assert os_reason(OSError(99, "Cannot assign requested address")) == (
        "Cannot assign requested address"
    )


# ------------------------------------------------------------------ the embedded mock
def test_the_embedded_default_holds_many_sessions_of_one_user() -> None:
    cfg = load_mock_config(None)
    group = next(t for t in cfg.tunnel_groups if t.name == "ac_users")
    pool = next(p for p in cfg.pools if p.name == group.address_pools[0])
    size = int(pool.last) - int(pool.first) + 1
    assert size == 65534
    policy = next(g for g in cfg.group_policies if g.name == "ac_users_group")
    assert policy.vpn_simultaneous_logins == size
    assert "load_pool" in LOAD_OVERLAY


def test_a_given_configuration_is_used_as_it_is() -> None:
    text = "ASA Version 9.8(2)\nhostname other\n"
    cfg = load_mock_config(text)
    assert cfg.hostname == "other"
    assert cfg == parse_config(text)


# ------------------------------------------------------------------ the spec
def closed(n: int = 3) -> ClosedModel:
    return ClosedModel(concurrency=n, ramp_up_rate=None, hold=1.0)


def test_spec_refuses_what_does_not_go_together() -> None:
    with pytest.raises(ConfigError, match="drop --headend"):
        LoadSpec(closed(), headend="https://vpn.example.com", virtual_time=True)
    with pytest.raises(ConfigError, match="--asa-config"):
        LoadSpec(closed(), headend="https://vpn.example.com", asa_config="hostname x\n")
    with pytest.raises(ConfigError, match="--source"):
        LoadSpec(closed(), sources=SourcePool.parse("127.0.0.2"), virtual_time=True)
    with pytest.raises(ConfigError, match="setup timeout"):
        LoadSpec(closed(), setup_timeout=0)


def test_default_credentials_are_the_mocks_user_or_a_template_for_a_headend() -> None:
    assert LoadSpec(closed()).effective_credentials.get(7) == ("test", "test")
    spec = LoadSpec(closed(), headend="https://vpn.example.com")
    assert spec.effective_credentials.get(7) == ("user8", "test")
    rows = Credentials.parse_csv("a,1\nb,2\n", "x.csv")
    assert LoadSpec(closed(), credentials=rows).effective_credentials.get(3) == ("b", "2")


def test_describe_names_the_model_profile_and_traffic() -> None:
    text = LoadSpec(ClosedModel(200, 50.0, 30.0)).describe()
    assert text == "closed model: 200 clients, ramp-up 50/s, hold 30s; openconnect-9; no traffic"
    text = LoadSpec(OpenModel(20.0, 60.0, max_concurrency=5, arrivals="poisson")).describe()
    assert text.startswith("open model: 20/s (poisson) for 60s, at most 5 live;")


# ------------------------------------------------------------------ per-second rows
def test_bucket_row_has_the_seconds_counters_levels_and_setup_latency() -> None:
    stats = RunStats()
    stats.count("sessions_started", 3, t=0.5)
    stats.count("setups_completed", 2, t=0.7)
    stats.count("errors", key="auth-failed", t=0.9)
    stats.count("sessions_failed", t=0.9)
    stats.record("setup_total", 0.010, t=0.2)
    stats.record("setup_total", 0.030, t=0.4)
    stats.set_gauge("sessions_up", 2, t=0)
    stats.set_gauge("dtls_up", 1, t=0)
    stats.count("sessions_started", 1, t=1.5)
    row = bucket_row(stats, 0)
    assert row["second"] == 0
    assert row["sessions_started"] == 3
    assert row["errors[auth-failed]"] == 1
    assert (row["sessions_up"], row["dtls_up"]) == (2, 1)
    assert row["setup_count"] == 2
    assert row["setup_p50"] == pytest.approx(0.010, rel=0.01)
    assert row["setup_max"] == pytest.approx(0.030, rel=0.01)
    assert row["total_sessions_started"] == 4
    assert row["total_errors"] == 1
    empty = bucket_row(stats, 5)
    assert empty["setup_count"] == 0
    assert empty["setup_p99"] is None
    assert empty["sessions_up"] == 2  # a level holds until set again


# ------------------------------------------------------------------ the result
def result_with(stats: RunStats, **kw: object) -> LoadResult:
    values: dict[str, object] = {
        "spec": LoadSpec(closed(4)),
        "stats": stats,
        "headend": "https://127.0.0.1:8443/",
        "started": 5,
        "late_starts": 1,
        "missed_starts": 2,
        "max_lateness": 1.5,
        "interrupted": False,
        "wall_seconds": 3.0,
        "run_seconds": 2.0,
        "error_examples": {"auth-failed": "login failed: Login failed."},
        "internal_errors": [],
    }
    values.update(kw)
    return LoadResult(**values)  # type: ignore[arg-type]


def filled_stats() -> RunStats:
    stats = RunStats()
    stats.count("sessions_started", 5)
    stats.count("setups_completed", 4)
    stats.count("sessions_failed", 1)
    stats.count("errors", key="auth-failed")
    stats.count("reconnects", key="dpd", n=2)
    for phase in PHASES:
        stats.record(f"setup_{phase}", 0.002)
    stats.record("setup_total", 0.250)
    stats.set_gauge("sessions_up", 4, t=0)
    stats.set_gauge("dtls_up", 4, t=0)
    stats.count("ping_sent", 10)
    stats.count("ping_lost", 1)
    return stats


def test_result_metrics_add_the_planners_numbers_and_the_engine_counters() -> None:
    m = result_with(filled_stats()).metrics([("setup", 99.9)])
    assert m["sessions_planned"] == 7  # started + missed
    assert m["late_starts"] == 1
    assert m["missed_starts"] == 2
    assert m["max_start_lateness"] == 1.5
    assert m["setup_p99.9"] == pytest.approx(0.25, rel=0.01)
    assert m["errors"] == 1
    assert m["errors[auth-failed]"] == 1
    assert m["reconnects[dpd]"] == 2
    assert m["ping_loss"] == pytest.approx(0.1)
    for name in ENGINE_COUNTERS:
        assert name in m
    empty = result_with(RunStats(), started=0, missed_starts=0).metrics()
    assert empty["sessions_failed"] == 0
    assert math.isnan(empty["setup_p99"])


def test_summary_text_shows_phases_dtls_reconnects_and_errors_by_cause() -> None:
    res = result_with(filled_stats())
    text = format_summary(res, res.metrics())
    assert "load run completed: closed model: 4 clients" in text
    assert "sessions: 7 planned, 5 started, 4 up, 1 failed; at most 4 up at once" in text
    assert "starts: 1 late" in text
    assert "2 missed" in text
    for phase in (*PHASES, "total"):
        assert any(line.split()[:2] == [phase, "1"] for line in text.splitlines()), phase
    assert " 250.1ms" in text or " 250.0ms" in text  # HDR: 3 significant digits
    assert "DTLS: up 100.0% of the session time" in text
    assert "pings: 10 sent, 10.0% lost" in text
    assert "reconnects: dpd 2" in text
    assert "errors: auth-failed 1" in text
    assert "  auth-failed: login failed: Login failed." in text
    interrupted = result_with(filled_stats(), interrupted=True)
    assert format_summary(interrupted, interrupted.metrics()).startswith("load run INTERRUPTED")


def test_json_summary_has_no_nan() -> None:
    import json

    doc = result_with(RunStats()).summary()
    json.dumps(doc, allow_nan=False)
    assert doc["metrics"]["setup_p99"] is None


# ------------------------------------------------------------------ the command line
def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_scenario_stays_a_positional_and_load_runs_go_without_it() -> None:
    args = parse("dtls-blocked", "--virtual-time")
    assert args.scenario == "dtls-blocked"
    assert args.virtual_time
    args = parse("-n", "20", "--rate", "50/s")
    assert args.scenario is None
    assert args.clients == "20"
    for dest in LOAD_FLAGS:
        assert hasattr(args, dest)


def test_closed_model_from_flags() -> None:
    spec, thresholds = build_spec(
        parse(
            "-n", "200", "--rate", "50/s", "--hold", "30s", "--ping", "1/s:56",
            "--lifetime", "uniform(10s,20s)", "--threshold", "setup_p99<500ms",
            "--profile", "anyconnect-4.10", "--seed", "7",
        )
    )  # fmt: skip
    m = spec.model
    assert isinstance(m, ClosedModel)
    assert (m.concurrency, m.ramp_up_rate, m.hold) == (200, 50.0, 30.0)
    assert str(m.lifetime) == "uniform(10s,20s)"
    assert spec.traffic.ping is not None
    assert spec.traffic.ping.size == 56
    assert spec.profile.name == "anyconnect-4.10"
    assert spec.seed == 7
    assert spec.headend is None
    assert spec.credentials is None
    assert [t.text for t in thresholds] == ["setup_p99<500ms"]


def test_open_model_from_flags() -> None:
    spec, _ = build_spec(
        parse("--open", "20/s", "--duration", "1m", "--max-concurrency", "50",
              "--arrivals", "poisson")
    )  # fmt: skip
    m = spec.model
    assert isinstance(m, OpenModel)
    assert (m.arrival_rate, m.duration, m.max_concurrency, m.arrivals) == (
        20.0,
        60.0,
        50,
        "poisson",
    )


def test_headend_flags_and_templates(tmp_path: Path) -> None:
    pin = "pin-sha256:" + "A" * 43 + "="
    spec, _ = build_spec(
        parse("-n", "2", "--headend", "https://vpn.example.com/grp", "--servercert", pin,
              "--user", "load{n:03d}", "--password", "pw{n}", "--ping", "1/s",
              "--target", "10.0.0.1")
    )  # fmt: skip
    assert spec.servercert == (pin,)
    assert spec.effective_credentials.get(0) == ("load001", "pw1")
    assert spec.target == "10.0.0.1"
    csv = tmp_path / "users.csv"
    csv.write_text("user,password\nalice,a\nbob,b\n", encoding="utf-8")
    spec, _ = build_spec(parse("-n", "2", "--credentials", str(csv)))
    assert spec.effective_credentials.get(1) == ("bob", "b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "run needs a SCENARIO or one load model"),
        (("-n", "0"), "-n/--clients: must be at least 1"),
        (("-n", "many"), "-n/--clients: expected a whole number"),
        (("-n", "5", "--open", "5/s"), "do not go together"),
        (("-n", "5", "--duration", "3s"), "--duration: open-model options"),
        (("--open", "5/s", "--duration", "3s", "--hold", "3s"), "--hold: closed-model"),
        (("--open", "5/s"), "--open needs --duration"),
        (("--open", "5/s", "--duration", "3s", "--arrivals", "bursty"), "--arrivals"),
        (("-n", "5", "--rate", "fast"), "--rate"),
        (("-n", "5", "--quick"), "--quick is for scenario runs"),
        (("-n", "5", "--threshold", "p99 fast"), "threshold 'p99 fast'"),
        (("-n", "5", "--servercert", "pin-sha256:x"), "--servercert is for --headend"),
        (("-n", "5", "--headend", "http://x"), "scheme must be https"),
        (("-n", "5", "--headend", "https://x", "--ping", "1/s"), "needs --target"),
        (("-n", "5", "--target", "inside"), "--target"),
        (("-n", "5", "--source", "192.0.2.1"), "not a loopback address"),
        (("-n", "5", "--asa-config", "/nonexistent.cfg"), "cannot read --asa-config"),
        (("-n", "5", "--credentials", "/nonexistent.csv"), "cannot read credentials"),
        (("-n", "5", "--profile", "anyconnect-0.1"), "anyconnect-0.1"),
        (("-n", "5", "--virtual-time", "--headend", "https://x"), "drop --headend"),
        (("dtls-blocked", "-n", "5"), "a scenario run takes no load options (-n/--clients)"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: tuple[str, ...], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_command(parse(*argv), out, err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tunnelswarm: error: ")
    assert message in lines[0]
    assert out.getvalue() == ""


def test_a_bad_asa_config_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "asa.cfg"
    cfg.write_text("interface GigabitEthernet0/0\n nameif\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"--asa-config {cfg}"):
        build_spec(parse("-n", "1", "--asa-config", str(cfg)))


def test_local_addresses_include_loopback() -> None:
    if not Path("/proc/net/fib_trie").exists():
        pytest.skip("no /proc/net/fib_trie on this system")
    assert "127.0.0.1" in local_addresses()


def test_errors_are_tunnelswarm_errors() -> None:
    from tunnelswarm.fleet.engine import RunSetupError

    assert issubclass(RunSetupError, TunnelswarmError)
    assert RunSetupError("x").cause == "run-setup"


# ------------------------------------------------------------------ live view, report
def test_planned_sessions_and_duration_for_the_live_view() -> None:
    from tunnelswarm.fleet.cli import planned_duration, planned_sessions
    from tunnelswarm.fleet.plan import Lifetime

    closed = LoadSpec(ClosedModel(10, 5.0, hold=3.0))
    assert planned_sessions(closed) == 10
    assert planned_duration(closed) == pytest.approx(1.8 + 3.0)
    churn = LoadSpec(ClosedModel(10, None, hold=3.0, lifetime=Lifetime.fixed(1.0)))
    assert planned_sessions(churn) is None
    opened = LoadSpec(OpenModel(10.0, 4.0))
    assert planned_sessions(opened) == 40
    assert planned_duration(opened) == 4.0
    assert planned_sessions(LoadSpec(OpenModel(10.0, 4.0, arrivals="poisson"))) is None


def test_a_report_dir_that_cannot_be_made_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    argv = ("-n", "1", "--hold", "1s", "--report", str(blocker / "sub"))
    assert run_command(parse(*argv), out, err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"tunnelswarm: error: --report {blocker / 'sub'}: ")


def test_the_engine_feeds_its_observers_in_virtual_time() -> None:
    """on_event: each session's start, up, session events and end; on_syslog: the mock's
    lines; on_second: once per second of the run, at the end of that second."""
    from tunnelswarm.fleet.engine import LoadEngine, run_engine
    from tunnelswarm.scenario.run import TimelineEntry

    events: list[TimelineEntry] = []
    syslog: list[str] = []
    seconds: list[float] = []
    spec = LoadSpec(ClosedModel(3, None, hold=2.5), virtual_time=True)
    engine = LoadEngine(
        spec,
        on_event=events.append,
        on_syslog=syslog.append,
        on_second=lambda stats, t: seconds.append(t),
    )
    result = run_engine(engine, watch_signals=False)
    assert result.metrics()["setups_completed"] == 3
    assert seconds == [1.0, 2.0, 3.0]
    for i in range(3):
        kinds = [e.kind for e in events if e.source == f"client {i}"]
        assert kinds[0] == "start"
        assert "up" in kinds
        assert "connect" in kinds
        assert "dtls-up" in kinds
        assert kinds[-1] == "end"
    assert any(e.source == "engine" and "mock ASA" in e.text for e in events)
    times = [e.t for e in events]
    assert times == sorted(times)
    assert all(0.0 <= t <= 3.0 for t in times)
    assert any("%ASA-" in line and "722022" in line for line in syslog), syslog[:5]
