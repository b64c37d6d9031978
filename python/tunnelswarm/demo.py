"""``make demo``: a short closed-model load run against the built-in mock ASA.

Theory of operation: the demo is ``tunnelswarm run`` with fixed arguments (printed first,
so a reader can run the same thing): 200 emulated clients (openconnect 9 profile) ramped
up at 50 per second, split over one worker process per core, against the mock ASA that
the load engine starts on a free loopback port (in a process of its own when there are
several workers; its default configuration sized for load, see
:data:`tunnelswarm.fleet.engine.LOAD_OVERLAY`), held 30 seconds, each pinging the ASA's
inside host once a second through its tunnel (over DTLS once it is up), then closed. The
report is the load run's summary -- sessions, setup latency per phase, DTLS ratio, pings,
reconnects and errors by cause -- and a threshold table; the exit status is the run's
(0 every threshold held). Needs no root, no tun device and no real peer; about 40 s.

``--clients``, ``--rate``, ``--hold`` and ``--ping`` change the run (the tests use a
small one). The single-client walk-through against a real ocserv is ``make demo-ocserv``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from tunnelswarm.cli import main as cli_main

__all__ = ["THRESHOLDS", "demo_argv", "main"]

#: what the demo checks: every session up with DTLS, no error, quick setups, pings answered
THRESHOLDS = ("errors==0", "dtls_ratio>0.99", "setup_p99<1s", "ping_loss<1%")


def demo_argv(clients: str, rate: str, hold: str, ping: str) -> list[str]:
    """The ``tunnelswarm`` arguments of the demo's load run."""
    argv = ["run", "-n", clients, "--rate", rate, "--hold", hold, "--ping", ping]
    for t in THRESHOLDS:
        argv += ["--threshold", t]
    return argv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunnelswarm.demo", description=__doc__)
    ap.add_argument("--clients", default="200", help="concurrent clients (200)")
    ap.add_argument("--rate", default="50/s", help="ramp-up rate (50/s)")
    ap.add_argument("--hold", default="30s", help="hold after the ramp-up (30s)")
    ap.add_argument("--ping", default="1/s:56", help="pings per client, RATE:SIZE (1/s:56)")
    args = ap.parse_args(argv)
    run = demo_argv(args.clients, args.rate, args.hold, args.ping)
    print("demo: a closed-model load run against the built-in mock ASA")
    print(f"demo: $ tunnelswarm {shlex.join(run)}\n", flush=True)
    return cli_main(run)


if __name__ == "__main__":
    sys.exit(main())
