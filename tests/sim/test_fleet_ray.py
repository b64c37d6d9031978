"""``tunnelswarm run --ray``: a load run's workers as Ray actors on a two-node Ray
cluster on this machine (``ray start --head`` and ``ray start --address``, each node one
CPU, ports of its own), against the embedded mock ASA in a process of its own.

Checks that the workers land on two nodes, that the merged summary's counts are the sum
of the workers' own, that each node's workers bind the source addresses of its own pool
(``--ray-source``), that a worker killed mid-run is reported (and, with
``--ray-on-lost replace``, replaced), and -- without Ray -- the flags' checks, the
per-node pool's turns, the replacement plan, and that a run without ``--ray`` never
imports Ray.

Without Ray installed (``pip install 'tunnelswarm[ray]'``) the cluster tests skip, or
fail with ``TUNNELSWARM_REQUIRE_PEERS=1`` (CI installs the extra).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from _fleet_sim import run_json

from tunnelswarm.cli import main
from tunnelswarm.fleet.engine import LoadSpec
from tunnelswarm.fleet.plan import ClosedModel, OpenModel, SourcePool
from tunnelswarm.fleet.ray_options import NodeSourcePool, RayOptions, parse_ray_source
from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.fleet.workers import Coordinator, replacement_share, split_spec

POOL_A = "127.0.1.1-127.0.1.40"
POOL_B = "127.0.2.1-127.0.2.40"


# ------------------------------------------------------------------ the cluster
@dataclass
class RayCluster:
    address: str
    temp_dir: str
    procs: list[subprocess.Popen[bytes]]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port(span: int = 1) -> int:
    """A free TCP port (the first of ``span``) below the kernel's ephemeral range: a port
    the kernel handed out for binding to 0 could be taken by any outgoing connection
    before Ray binds it (the GCS once failed so, "Address already in use", under load)."""
    top = _ephemeral_low() - span
    for _ in range(500):
        port = random.randrange(10_000, top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def _node_ports() -> list[str]:
    low = _free_port(span=61)
    return [
        *("--node-manager-port", str(_free_port())),
        *("--object-manager-port", str(_free_port())),
        *("--dashboard-agent-listen-port", str(_free_port())),
        *("--dashboard-agent-grpc-port", str(_free_port())),
        *("--runtime-env-agent-port", str(_free_port())),
        *("--metrics-export-port", str(_free_port())),
        *("--min-worker-port", str(low)),
        *("--max-worker-port", str(low + 60)),
    ]


def _our_processes(marker: str) -> list[int]:
    """Processes whose command line names our cluster's own temp dir."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (d / "cmdline").read_bytes():
                pids.append(int(d.name))
    return pids


def _stop(cluster_procs: list[subprocess.Popen[bytes]], temp_dir: str) -> None:
    """Stop the nodes we started, by their ids: each ``ray start --block`` is told to end
    (it stops and reaps its raylet, GCS, agents and workers), the second node first;
    what is left of its process group is killed; then whatever still names our temp
    dir, by pid."""
    for p in reversed(cluster_procs):
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)
    for _ in range(20):
        left = _our_processes(temp_dir)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.25)
    shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def _two_nodes(peer_unavailable: Callable[[str], NoReturn]) -> Iterator[RayCluster]:
    """Two Ray nodes on this machine, one CPU each, custom resources ``pool_a`` and
    ``pool_b`` (for ``--ray-source``); stopped (and checked gone) at the end."""
    try:
        import ray  # noqa: F401
    except ImportError as e:
        peer_unavailable(f"Ray is not installed (pip install 'tunnelswarm[ray]'): {e}")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        peer_unavailable(f"no `ray` command next to {sys.executable}")
    temp_dir = tempfile.mkdtemp(prefix="tsray")  # short: Ray's socket paths have a limit
    port = _free_port()
    # HOME of their own: a ~/.ray/auth_token (Ray writes one when ray.init starts a local
    # cluster) would make the head ask the second node for a token it does not send
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": temp_dir}
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    head = [
        str(ray_bin), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
        "--temp-dir", temp_dir, "--include-dashboard=false",
        "--dashboard-port", str(_free_port()), "--resources", '{"pool_a": 1}',
        *common, *_node_ports(),
    ]  # fmt: skip
    second = [
        str(ray_bin), "start", "--address", f"127.0.0.1:{port}", "--node-ip-address",
        "127.0.0.1", "--resources", '{"pool_b": 1}', *common, *_node_ports(),
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for i, argv in enumerate((head, second)):
            log = Path(temp_dir) / f"node{i}.log"
            logs.append(log)
            with log.open("wb") as f:
                procs.append(
                    subprocess.Popen(
                        argv, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                )
            deadline = time.monotonic() + 60
            while b"block forever" not in log.read_bytes():
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")[-2000:]
                    pytest.fail(f"ray start (node {i}) did not come up:\n{text}")
                time.sleep(0.2)
        yield RayCluster(f"127.0.0.1:{port}", temp_dir, procs)
    finally:
        _stop(procs, temp_dir)


@pytest.fixture(scope="module")
def ray_cluster(peer_unavailable: Callable[[str], NoReturn]) -> Iterator[RayCluster]:
    """The module's two-node cluster (:func:`_two_nodes`)."""
    with _two_nodes(peer_unavailable) as cluster:
        yield cluster
    assert not _our_processes(cluster.temp_dir), "Ray processes left behind"


# ------------------------------------------------------------------ on the cluster
def test_a_run_split_over_two_nodes_merges_into_the_sum_of_its_workers(
    ray_cluster: RayCluster, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "rep"
    t0 = time.monotonic()
    rc, progress, summary, err = run_json(
        capsys,
        "-n", "300", "--rate", "100/s", "--hold", "5s",
        "--ray", ray_cluster.address, "--ray-workers", "2", "--ray-placement", "spread",
        "--ray-source", f"pool_a={POOL_A}", "--ray-source", f"pool_b={POOL_B}",
        "--threshold", "setups_completed==300", "--threshold", "workers_lost==0",
        "--report", str(report),
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert rc == 0, err
    assert wall < 60, f"the run took {wall:.0f} s"
    m = summary["metrics"]
    assert m["sessions_started"] == 300
    assert m["setups_completed"] == 300
    assert m["sessions_failed"] == 0
    assert m["workers"] == 2
    assert m["workers_lost"] == 0
    details = summary["worker_details"]
    assert [d["worker"] for d in details] == [0, 1]
    assert all(d["state"] == "done" for d in details)
    # the merged counts are the sum of the workers' own
    for name in ("sessions_started", "setups_completed", "sessions_failed"):
        assert m[name] == sum(d[name] for d in details), name
    assert [d["sessions_started"] for d in details] == [150, 150]
    # one worker on each node, each with its node's pool
    assert len({d["node_id"] for d in details}) == 2
    assert sorted(d["sources"] for d in details) == [POOL_A, POOL_B]
    assert progress
    assert progress[-1]["totals"]["setups_completed"] == 300
    assert "Ray cluster" in err
    doc = json.loads((report / "summary.json").read_text())
    assert doc["state"] == "completed"
    assert {w["node_id"] for w in doc["run"]["workers"]} == {d["node_id"] for d in details}
    # every session bound an address of its worker's node's pool, both pools in use
    seen = set(re.findall(r"IP <([0-9.]+)> AnyConnect parent session started", (
        report / "syslog.log"
    ).read_text()))  # fmt: skip
    pool_a = {f"127.0.1.{i}" for i in range(1, 41)}
    pool_b = {f"127.0.2.{i}" for i in range(1, 41)}
    assert seen <= pool_a | pool_b
    assert seen & pool_a == pool_a
    assert seen & pool_b == pool_b


@pytest.mark.parametrize("policy", ["count", "replace"])
def test_a_worker_killed_mid_run_is_reported_and_its_share_counted_or_replaced(
    ray_cluster: RayCluster, policy: str
) -> None:
    from tunnelswarm.fleet.ray_workers import RayLauncher

    spec = LoadSpec(model=ClosedModel(concurrency=60, ramp_up_rate=60.0, hold=6.0))
    launcher = RayLauncher(RayOptions(address=ray_cluster.address, on_lost=policy))  # type: ignore[arg-type]
    launcher.connect()
    lines: list[str] = []
    killed: list[int] = []
    coord: Coordinator

    def on_second(stats: RunStats, t: float) -> None:
        if t >= 2.0 and not killed:
            victim = coord.workers[1].link.facts()["pid"]
            assert isinstance(victim, int)
            killed.append(victim)
            os.kill(victim, signal.SIGKILL)

    coord = Coordinator(
        spec,
        2,
        launcher=launcher,
        on_lost=policy,  # type: ignore[arg-type]
        on_line=lines.append,
        on_second=on_second,
    )
    result = coord.run(watch_signals=False)
    assert killed
    assert not result.interrupted
    assert len(result.lost_workers) == 1
    assert result.lost_workers[0].startswith("worker 1: its Ray actor died")
    assert any("worker 1 lost" in line for line in lines)
    m = result.metrics()
    assert m["workers_lost"] == 1
    summary = result.summary()
    details = summary["worker_details"]
    for name in ("sessions_started", "setups_completed"):
        assert m[name] == sum(d[name] for d in details), name
    lost = [d for d in details if d["state"] == "lost"]
    assert [d["name"] for d in lost] == ["worker 1"]
    assert lost[0]["pid"] == killed[0]
    if policy == "count":
        assert len(details) == 2
        assert m["setups_completed"] == 60  # worker 1's thirty up before it died
        assert m["sessions_up"] == 60
    else:
        assert [d["name"] for d in details] == ["worker 0", "worker 1", "worker 1 (replacement 1)"]
        assert details[2]["state"] == "done"
        assert details[2]["setups_completed"] == 30  # the same thirty slots again
        assert m["setups_completed"] == 90
        assert any("replacement 1) started" in line for line in lines)
        # the replacement's seconds are the run's: none before the kill
        assert min(result.stats.series) == 0
        assert result.run_seconds < 15


def test_a_node_that_dies_mid_run_loses_its_worker_and_the_run_ends_with_a_report(
    peer_unavailable: Callable[[str], NoReturn],
) -> None:
    """The second node (its raylet, object store and the worker actor on it) SIGKILLed
    mid-run, as a host that loses power: its worker is reported lost, the other node's
    worker runs its share to the end, and the run ends with a complete result. A cluster
    of its own: the module's stays whole for the other tests."""
    import ray

    from tunnelswarm.fleet.ray_workers import RayLauncher

    with _two_nodes(peer_unavailable) as cluster:
        spec = LoadSpec(model=ClosedModel(concurrency=40, ramp_up_rate=40.0, hold=6.0))
        launcher = RayLauncher(RayOptions(address=cluster.address))
        launcher.connect()
        node_b = next(n["NodeID"] for n in ray.nodes() if "pool_b" in n["Resources"])
        lines: list[str] = []
        killed: list[str] = []
        coord: Coordinator

        def on_second(stats: RunStats, t: float) -> None:
            if t >= 2.0 and not killed:
                victims = [w.name for w in coord.workers if w.link.facts().get("node_id") == node_b]
                assert len(victims) == 1, [w.link.facts() for w in coord.workers]
                killed.extend(victims)
                os.killpg(cluster.procs[1].pid, signal.SIGKILL)

        coord = Coordinator(spec, 2, launcher=launcher, on_line=lines.append, on_second=on_second)
        started = time.monotonic()
        result = coord.run(watch_signals=False)
        took = time.monotonic() - started
    assert not _our_processes(cluster.temp_dir), "Ray processes left behind"
    assert killed
    assert took < 60, took
    assert not result.interrupted
    assert [w.split(":")[0] for w in result.lost_workers] == killed
    m = result.metrics()
    assert m["workers_lost"] == 1
    assert m["setups_completed"] == 40  # both workers' twenty came up before the kill
    details = result.summary()["worker_details"]
    assert [d["state"] for d in details if d["name"] in killed] == ["lost"]
    assert [d["state"] for d in details if d["name"] not in killed] == ["done"]


# ------------------------------------------------------------------ without a cluster
def test_a_node_pool_hands_every_address_out_across_the_nodes_workers() -> None:
    _, pool = parse_ray_source("10.9.0.1=10.9.0.1-10.9.0.4")
    spec = LoadSpec(model=ClosedModel(concurrency=16, ramp_up_rate=None, hold=1.0))
    shares = split_spec(spec, 4)
    # workers 1 and 3 on one node: they take turns through its four addresses
    got = []
    for position, share in enumerate((shares[1], shares[3])):
        p = NodeSourcePool(
            pool, base=share.index_base, stride=share.index_stride, position=position, spread=2
        )
        got.append([p.get(share.index_base + share.index_stride * i) for i in range(4)])
    assert got == [
        ["10.9.0.1", "10.9.0.3", "10.9.0.1", "10.9.0.3"],
        ["10.9.0.2", "10.9.0.4", "10.9.0.2", "10.9.0.4"],
    ]
    with pytest.raises(Exception, match="SELECTOR=POOL"):
        parse_ray_source("10.9.0.1")


def test_a_replacement_runs_the_rest_of_the_lost_workers_plan() -> None:
    closed = LoadSpec(model=ClosedModel(concurrency=10, ramp_up_rate=10.0, hold=20.0))
    share = split_spec(closed, 2)[1]
    end = share.plan_offset + share.spec.model.duration
    r = replacement_share(share, 5.0, started=5)
    assert r is not None
    assert r.spec.model.concurrency == share.spec.model.concurrency  # type: ignore[union-attr]
    assert (r.index_base, r.index_stride) == (share.index_base, share.index_stride)
    assert r.plan_offset + r.spec.model.duration == pytest.approx(end - 5.0)
    assert replacement_share(share, end + 1.0, started=5) is None
    open_ = LoadSpec(model=OpenModel(arrival_rate=10.0, duration=10.0))
    share = split_spec(open_, 2)[0]
    r = replacement_share(share, 4.0, started=20)
    assert r is not None
    assert r.spec.model.duration == pytest.approx(6.0)
    assert r.index_base == share.index_base + 2 * 20  # numbering goes on


def test_ray_flags_are_checked_without_ray(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-n", "5", "--ray-workers", "2", "-q"]) == 2
    assert "only with --ray" in capsys.readouterr().err
    assert main(["run", "-n", "5", "--ray", "auto", "--workers", "2", "-q"]) == 2
    assert "--ray-workers N instead of --workers" in capsys.readouterr().err
    assert main(["run", "-n", "5", "--ray", "auto", "--ray-placement", "x", "-q"]) == 2
    assert "--ray-placement" in capsys.readouterr().err
    assert main(["run", "-n", "5", "--ray", "auto", "--virtual-time", "-q"]) == 2
    assert "--virtual-time" in capsys.readouterr().err
    assert main(["run", "demo-basic", "--ray", "auto"]) == 2
    assert "--ray" in capsys.readouterr().err


def test_a_run_without_ray_never_imports_it(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import tunnelswarm.fleet.cli\n"
        "from tunnelswarm.cli import main\n"
        "if __name__ == '__main__':\n"
        "    assert 'ray' not in sys.modules, 'import'\n"
        "    rc = main(['run', '-n', '4', '--hold', '1s', '--workers', '2', '-q'])\n"
        "    assert rc == 0, rc\n"
        "    assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'run'\n"
    )
    script = tmp_path / "noray.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the extra is declared
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert re.search(r'^ray = \["ray', pyproject, re.M)


def test_split_spec_pools_stay_as_given_without_ray_source() -> None:
    pool = SourcePool.parse("127.0.0.2-127.0.0.9")
    spec = LoadSpec(model=ClosedModel(concurrency=4, ramp_up_rate=None, hold=1.0), sources=pool)
    assert all(s.spec.sources is pool for s in split_spec(spec, 2))
