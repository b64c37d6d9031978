"""``make demo``: a handful of emulated clients against the built-in mock ASA, in-process.

Theory of operation: the mock ASA (:func:`tunnelswarm.asa.server.serve_mock_asa`) starts
in this Trio run with ``examples/asa-9.1.cfg`` (the tech note's setup: DTLS on, no
``anyconnect mtu``, so X-DTLS-MTU 1418 and a TLS threshold of 1347) on a free loopback
port; ``--clients N`` emulated clients log in concurrently, bring DTLS up (one per DTLS
mode the mock offers), ping the ASA's inside host through the tunnel and disconnect.
The report lists each client's result and the mock's own ``show vpn-sessiondb
summary``-style view; a client that fails is counted and shown with its one-line
reason, never the end of the run. Needs no root, no tun device and no real peer.
The load engine (a later issue) grows this into a full load run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from tunnelswarm.asa.config import parse_config
from tunnelswarm.asa.server import (
    DEFAULT_CONFIG_TEXT,
    MockAsaConfig,
    MockAsaInfo,
    serve_mock_asa,
)
from tunnelswarm.client.session import ClientOptions, open_client
from tunnelswarm.config.profile import OPENCONNECT_9_01
from tunnelswarm.errors import TunnelswarmError

__all__ = ["main"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asa-9.1.cfg"
INSIDE_HOST = "10.1.1.1"
#: (X-DTLS-CipherSuite offer, X-DTLS12-CipherSuite offer), cycled over the clients
MODES = [("AES128-SHA", ""), ("AES256-SHA", ""), ("", "AES256-GCM-SHA384")]


@dataclass
class ClientResult:
    index: int
    address: str = "-"
    mtu: str = "-"
    dtls: str = "-"
    replies: int = 0
    sent: int = 0
    rtt_ms: float | None = None
    error: str | None = None


async def _one_client(info: MockAsaInfo, index: int, pings: int) -> ClientResult:
    res = ClientResult(index)
    dtls, dtls12 = MODES[index % len(MODES)]
    opts = ClientOptions(
        url=info.url,
        user="test",
        password="test",
        servercert=(info.pin,),
        profile=replace(OPENCONNECT_9_01, dtls_ciphers=dtls, dtls12_ciphers=dtls12),
        hostname=f"demo-{index}",
        seed=index,
        reconnect_timeout=10,
    )
    try:
        with trio.fail_after(60):
            async with open_client(opts) as s:
                p = s.params
                assert p is not None
                res.address = p.address or "-"
                res.mtu = f"{p.cstp_mtu}/{p.dtls_mtu}"
                with trio.move_on_after(15):
                    while s.dtls is not None and not s.dtls.up:
                        await trio.sleep(0.02)
                if s.dtls is not None and s.dtls.up and s.dtls.conn is not None:
                    res.dtls = f"{s.dtls.conn.version} {s.dtls.plan.cipher}"
                report = await s.adapter.ping(INSIDE_HOST, count=pings, interval=0.1)
                res.sent, res.replies = report.transmitted, report.received
                avg = report.stats.get("rtt_avg_us")
                res.rtt_ms = None if avg is None else float(avg) / 1000.0
    except TunnelswarmError as e:
        res.error = f"{e.cause}: {e}"
    return res


async def run_demo(clients: int, pings: int, config_path: Path) -> int:
    if config_path.is_file():
        text, name = config_path.read_text(encoding="utf-8"), config_path.name
    else:  # an installed package has no examples/: the mock's built-in default is the same setup
        text, name = DEFAULT_CONFIG_TEXT, "the built-in default configuration"
    print(f"demo: starting the mock ASA in-process with {name}")
    with tempfile.TemporaryDirectory(prefix="tunnelswarm-demo-") as state:
        cfg = MockAsaConfig(asa=parse_config(text), port=0, state_dir=Path(state))
        async with trio.open_nursery() as nursery:
            info: MockAsaInfo = await nursery.start(serve_mock_asa, cfg)
            print(f"demo: mock ASA at {info.url} (DTLS on UDP {info.udp_port}), {info.pin}")
            print(f"demo: {clients} emulated clients log in, bring DTLS up, ping {INSIDE_HOST}\n")
            results: list[ClientResult] = []

            async def run(i: int) -> None:
                results.append(await _one_client(info, i, pings))

            async with trio.open_nursery() as clients_nursery:
                for i in range(clients):
                    clients_nursery.start_soon(run, i)
            summary = info.asa.show("vpn-sessiondb summary")
            nursery.cancel_scope.cancel()
    results.sort(key=lambda r: r.index)
    print(f"{'client':>6}  {'address':<14} {'CSTP/DTLS MTU':<14} {'DTLS':<26} {'pings':<7} rtt avg")
    for r in results:
        if r.error:
            print(f"{r.index:>6}  FAILED  {r.error}")
            continue
        rtt = "-" if r.rtt_ms is None else f"{r.rtt_ms:.2f} ms"
        print(
            f"{r.index:>6}  {r.address:<14} {r.mtu:<14} {r.dtls:<26} {r.replies}/{r.sent:<5} {rtt}"
        )
    ok = sum(1 for r in results if not r.error and r.replies == r.sent and r.dtls != "-")
    print(f"\ndemo: {ok}/{len(results)} clients had DTLS up and every ping answered")
    print(
        "demo: mock ASA after the clients disconnected:\n"
        + "\n".join("  " + ln for ln in summary.splitlines())
    )
    return 0 if ok == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunnelswarm.demo", description=__doc__)
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--pings", type=int, default=3)
    ap.add_argument("--config", type=Path, default=EXAMPLE)
    args = ap.parse_args(argv)
    if args.clients < 1 or args.pings < 1:
        print("demo: error: --clients and --pings must be at least 1", file=sys.stderr)
        return 2
    try:
        return trio.run(run_demo, args.clients, args.pings, args.config)
    except (OSError, TunnelswarmError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
